"""The pieces of bench/run."""
