//! `egress-soak`: the churn soak of the local cluster (see `bench/README.md`). Prints the
//! figures beside the goals; exits 0 when the run completed, 1 when it could not run, 2 when
//! it ran and found persistent mismatches.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use egress_soak::{Options, run};

/// The churn soak: fixed-rate load through the seed's three scenarios under `egress up`
/// while configuration churns, gateways are cycled and `egress up` is SIGKILLed.
#[derive(Parser, Debug)]
#[command(name = "egress-soak", version)]
struct Args {
    /// The `egress` binary to soak.
    #[arg(long = "egress-bin", value_name = "FILE")]
    egress_bin: PathBuf,
    /// The short mode: 30 s of load, a gateway cycle every 8 s, a restart every 12 s.
    #[arg(long)]
    short: bool,
    /// Seconds of load (default 600; 30 with --short).
    #[arg(long)]
    duration: Option<u64>,
    /// Requests per second per scenario.
    #[arg(long)]
    rate: Option<u32>,
    /// Seconds between restarts of `egress up`.
    #[arg(long = "restart-every")]
    restart_every: Option<u64>,
    /// Seconds between gateway disable/enable cycles.
    #[arg(long = "gateway-every")]
    gateway_every: Option<u64>,
    /// Seed of the churn driver's choices.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the work directory (the store and `egress up`'s log).
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut o = if args.short {
        Options::short(args.egress_bin)
    } else {
        Options::full(args.egress_bin)
    };
    if let Some(d) = args.duration {
        o.duration = Duration::from_secs(d);
    }
    if let Some(r) = args.rate {
        o.rate = r;
    }
    if let Some(r) = args.restart_every {
        o.restart_every = Duration::from_secs(r);
    }
    if let Some(g) = args.gateway_every {
        o.gateway_every = Duration::from_secs(g);
    }
    if let Some(s) = args.seed {
        o.seed = s;
    }
    o.keep = args.keep;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&o)) {
        Ok(report) => {
            print!("{report}");
            if report.persistent_mismatches() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
