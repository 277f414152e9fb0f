//! Kubernetes mode: the API server as the configuration source of a gateway, and the writer of
//! the add-on's objects.
