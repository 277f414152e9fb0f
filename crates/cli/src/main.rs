//! `egress`: a thin clap front; each subcommand is one call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use egress_cli::gateway::args::{GatewayRun, gateway_run};
use egress_cli::ops::{apply, delete, exec, get, label, logs, up, validate};
use egress_cli::{Io, OpError, input};
use egress_store::Store;

/// mimalloc: the local cluster holds a thousand gateway instances across many threads, where
/// the system allocator's per-thread arenas keep several times the live heap resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Egress gateways for service meshes, with Istio's resources and kubectl's commands.
#[derive(Parser, Debug)]
#[command(name = "egress", version, about)]
struct Cli {
    /// Directory of the local cluster's store (default: $XDG_DATA_HOME/egress/cluster).
    #[arg(long, global = true, env = "EGRESS_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct NamespaceArg {
    /// Namespace scope for this request.
    #[arg(short = 'n', long = "namespace")]
    namespace: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create or update objects from files, directories or standard input.
    Apply {
        /// Files, directories or `-`.
        #[arg(short = 'f', long = "filename", required = true)]
        filename: Vec<String>,
        /// Process directories recursively.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// `none` (default), `client` or `server`: only validate.
        #[arg(long = "dry-run", default_value = "none")]
        dry_run: String,
        #[command(flatten)]
        ns: NamespaceArg,
    },
    /// Display objects.
    Get {
        /// `KIND[,KIND] [NAME...]` or `KIND/NAME...`.
        args: Vec<String>,
        #[command(flatten)]
        ns: NamespaceArg,
        /// List across all namespaces.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// Label selector (`app=curl`, `a in (x,y)`, `!b`).
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        /// Omit table headers.
        #[arg(long = "no-headers")]
        no_headers: bool,
        /// Show labels as the last column.
        #[arg(long = "show-labels")]
        show_labels: bool,
        /// Keep `metadata.managedFields` in `-o yaml|json` (hidden by default, as kubectl does).
        #[arg(long = "show-managed-fields")]
        show_managed_fields: bool,
    },
    /// Delete objects by name or by the files that define them.
    Delete {
        /// `KIND NAME...` or `KIND/NAME...`.
        args: Vec<String>,
        /// Files, directories or `-` whose objects are deleted.
        #[arg(short = 'f', long = "filename")]
        filename: Vec<String>,
        #[command(flatten)]
        ns: NamespaceArg,
        /// Succeed when an object does not exist.
        #[arg(long = "ignore-not-found")]
        ignore_not_found: bool,
    },
    /// Add, change or remove labels (`KEY=VALUE`, `KEY-`).
    Label {
        /// `KIND NAME KEY=VALUE...`.
        args: Vec<String>,
        #[command(flatten)]
        ns: NamespaceArg,
        /// Replace existing values.
        #[arg(long)]
        overwrite: bool,
    },
    /// Validate Istio and Kubernetes manifests (like `istioctl validate`).
    Validate {
        /// Files, directories or `-`.
        #[arg(short = 'f', long = "filename")]
        filename: Vec<String>,
        /// Files given without `-f`.
        files: Vec<String>,
        /// Process directories recursively.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Run the local cluster: the add-on's controllers and a gateway per gateway Pod.
    Up(up::UpArgs),
    /// Stop the local cluster started with `egress up -d`.
    Down,
    /// Print the logs of a Pod's container (gateways and sidecars log their access log).
    Logs {
        /// `POD` or `pod/NAME`.
        pod: Option<String>,
        #[command(flatten)]
        ns: NamespaceArg,
        /// Label selector instead of a Pod name (`--tail` defaults to 10 then).
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Container name.
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        /// Keep printing new lines.
        #[arg(short = 'f', long = "follow")]
        follow: bool,
        /// Lines from the end to show (-1 = all).
        #[arg(long = "tail", allow_negative_numbers = true)]
        tail: Option<i64>,
        /// Prefix each line with the Pod and container.
        #[arg(long = "prefix")]
        prefix: bool,
    },
    /// Run a command as a Pod: through its sidecar, trusting the cluster's CAs.
    Exec {
        /// `POD` or `pod/NAME`.
        pod: String,
        #[command(flatten)]
        ns: NamespaceArg,
        /// Container name.
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        /// Accepted for kubectl compatibility (standard input is always passed through).
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        /// Accepted for kubectl compatibility.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// How a sidecar Pod's traffic reaches the sidecar: `iptables` (captured transparently
        /// in a network namespace with the Pod's IP and hostname, as a sidecar's iptables rules
        /// do; needs root), `proxy` (http_proxy/https_proxy). Default: `iptables` where
        /// possible, else `proxy` with a notice
        #[arg(long = "capture", value_parser = ["iptables", "proxy"])]
        capture: Option<String>,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Azure Service Mesh add-on commands (like `az aks mesh`) on the local cluster.
    Mesh {
        #[command(subcommand)]
        command: egress_cli::mesh::MeshCommand,
    },
    /// Egress gateway processes.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Internal: the relay `egress exec --capture iptables` runs inside its network namespace.
    #[command(hide = true)]
    CaptureRelay {
        /// The Unix socket that reaches the Pod's sidecar.
        #[arg(long)]
        unix: PathBuf,
    },
    /// istioctl analyze's analyzers over files (`-f`), the store, or both; or `traffic`.
    #[command(args_conflicts_with_subcommands = true)]
    Analyze {
        #[command(subcommand)]
        what: Option<AnalyzeCommand>,
        #[command(flatten)]
        config: Box<AnalyzeConfigArgs>,
    },
    /// Workload sidecar processes.
    Sidecar {
        #[command(subcommand)]
        command: SidecarCommand,
    },
}

#[derive(clap::Args, Debug)]
struct AnalyzeConfigArgs {
    /// Files, directories or `-` to analyse, layered over the store's objects.
    #[arg(short = 'f', long = "filename")]
    filename: Vec<String>,
    /// Read directories given to `-f` recursively.
    #[arg(short = 'R', long = "recursive")]
    recursive: bool,
    /// The namespace analysed (and given to file objects without one); default `default`.
    #[command(flatten)]
    ns: NamespaceArg,
    /// Analyse every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
    /// Read the store's objects too (`--use-kube=false`: only the files).
    #[arg(long = "use-kube", default_value_t = true, action = clap::ArgAction::Set)]
    use_kube: bool,
    /// Output format: log, json or yaml.
    #[arg(short = 'o', long = "output", default_value = "log")]
    output: String,
    /// The lowest level that makes the exit code 79: Info, Warning or Error.
    #[arg(long = "failure-threshold", default_value = "Error")]
    failure_threshold: String,
    /// The lowest level printed: Info, Warning or Error.
    #[arg(long = "output-threshold", default_value = "Info")]
    output_threshold: String,
    /// Suppress findings: `CODE=KIND NAME` (`*` wildcards), repeatable.
    #[arg(short = 'S', long = "suppress")]
    suppress: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum AnalyzeCommand {
    /// Summarise the traffic the gateways logged into suggested ServiceEntries and
    /// AuthorizationPolicies (YAML on standard output, a table of source/host/port on standard
    /// error; dry-run denials counted).
    Traffic {
        /// Only gateways in this namespace.
        #[command(flatten)]
        ns: NamespaceArg,
    },
}

#[derive(Subcommand, Debug)]
enum SidecarCommand {
    /// Serve as a workload's outbound sidecar (what an injected `istio-proxy` container runs):
    /// an explicit HTTP/CONNECT proxy on `--listen-address:--proxy-port`.
    Run(Box<GatewayRun>),
}

#[derive(Subcommand, Debug)]
enum GatewayCommand {
    /// Serve as an egress gateway instance (what a gateway Deployment's container runs).
    Run(Box<GatewayRun>),
}

fn main() -> ExitCode {
    // Transparent huge pages would back the allocator's arenas with 2 MiB pages: a gateway
    // whose live heap is a few MiB would be charged tens. Best effort (not every kernel has it).
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    if let Command::Mesh { command } = &cli.command {
        return egress_cli::mesh::cli_main(open_store(cli.store), command);
    }
    if let Command::Up(args) = &cli.command {
        return up::cli_main(open_store(cli.store), args);
    }
    if let Command::Down = &cli.command {
        return up::down_main(open_store(cli.store));
    }
    if let Command::CaptureRelay { unix } = &cli.command {
        return match egress_cli::capture::relay_main(unix) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(&mut std::io::stderr()),
        };
    }
    if let Command::Exec {
        pod,
        ns,
        container,
        command,
        capture,
        ..
    } = &cli.command
    {
        let args = exec::ExecArgs {
            pod: pod.clone(),
            namespace: ns.namespace.clone(),
            container: container.clone(),
            command: command.clone(),
            capture: exec::Capture::from_flag(capture.as_deref()),
        };
        return match open_store(cli.store).and_then(|s| exec::run(&s, &args)) {
            Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
            Err(e) => e.report(&mut std::io::stderr()),
        };
    }
    if let Command::Logs {
        pod,
        ns,
        selector,
        container,
        follow,
        tail,
        prefix,
    } = &cli.command
    {
        let args = logs::LogsArgs {
            pod: pod.clone(),
            namespace: ns.namespace.clone(),
            selector: selector.clone(),
            container: container.clone(),
            follow: *follow,
            tail: *tail,
            prefix: *prefix,
        };
        let result = open_store(cli.store)
            .and_then(|s| logs::run(&s, &args, &mut std::io::stdout(), &mut std::io::stderr()));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(&mut std::io::stderr()),
        };
    }
    // Long-running processes write logs from many threads: no process-wide stream locks.
    if let Command::Gateway {
        command: GatewayCommand::Run(g),
    } = cli.command
    {
        return match gateway_run(cli.store, *g, false) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(&mut std::io::stderr()),
        };
    }
    if let Command::Sidecar {
        command: SidecarCommand::Run(g),
    } = cli.command
    {
        return match gateway_run(cli.store, *g, true) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(&mut std::io::stderr()),
        };
    }
    if let Command::Analyze { what: None, config } = &cli.command {
        return analyze_config_main(cli.store.clone(), config);
    }
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let result = run(cli, &mut io);
    let _ = io.out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(io.err),
    }
}

fn analyze_config_main(store: Option<PathBuf>, c: &AnalyzeConfigArgs) -> ExitCode {
    use egress_cli::ops::analyze_config;
    let args = analyze_config::ConfigArgs {
        files: c.filename.clone(),
        recursive: c.recursive,
        namespace: c.ns.namespace.clone(),
        all_namespaces: c.all_namespaces,
        use_store: c.use_kube,
        output: c.output.clone(),
        failure_threshold: c.failure_threshold.clone(),
        output_threshold: c.output_threshold.clone(),
        suppress: c.suppress.clone(),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let store = if c.use_kube {
        match open_store(store) {
            Ok(s) => Some(s),
            Err(e) => return e.report(io.err),
        }
    } else {
        None
    };
    let result = analyze_config::run(store.as_ref(), &args, &mut std::io::stdin(), &mut io);
    let _ = io.out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, e)) => {
            let _ = writeln!(io.err, "Error: {e}");
            ExitCode::from(code)
        }
    }
}

fn open_store(flag: Option<PathBuf>) -> Result<Store, OpError> {
    let dir = egress_store::default_dir(
        flag,
        None,
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
    .map_err(OpError::store)?;
    Store::open(&dir).map_err(OpError::store)
}

fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), OpError> {
    let mut stdin = std::io::stdin();
    match cli.command {
        Command::Validate {
            filename,
            files,
            recursive,
        } => {
            let all: Vec<String> = filename.into_iter().chain(files).collect();
            if all.is_empty() {
                return Err(OpError::Usage(
                    "validate needs at least one file (-f FILE)".into(),
                ));
            }
            let sources = input::read_sources(&all, recursive, &mut stdin)?;
            validate::run(&sources, io)
        }
        Command::Apply {
            filename,
            recursive,
            dry_run,
            ns,
        } => {
            let dry_run = match dry_run.as_str() {
                "none" => false,
                "client" | "server" => true,
                other => {
                    return Err(OpError::Usage(format!(
                        "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
                    )));
                }
            };
            let sources = input::read_sources(&filename, recursive, &mut stdin)?;
            let store = open_store(cli.store)?;
            apply::run(
                &store,
                &sources,
                &apply::ApplyArgs {
                    namespace: ns.namespace,
                    dry_run,
                },
                io,
            )
        }
        Command::Get {
            args,
            ns,
            all_namespaces,
            selector,
            output,
            no_headers,
            show_labels,
            show_managed_fields,
        } => {
            let store = open_store(cli.store)?;
            get::run(
                &store,
                &get::GetArgs {
                    args,
                    namespace: ns.namespace,
                    all_namespaces,
                    selector,
                    output,
                    no_headers,
                    show_labels,
                    show_managed_fields,
                },
                io,
            )
        }
        Command::Delete {
            args,
            filename,
            ns,
            ignore_not_found,
        } => {
            let sources = input::read_sources(&filename, false, &mut stdin)?;
            let store = open_store(cli.store)?;
            delete::run(
                &store,
                &delete::DeleteArgs {
                    args,
                    namespace: ns.namespace,
                    ignore_not_found,
                },
                &sources,
                io,
            )
        }
        Command::Label {
            args,
            ns,
            overwrite,
        } => {
            let store = open_store(cli.store)?;
            label::run(
                &store,
                &label::LabelArgs {
                    args,
                    namespace: ns.namespace,
                    overwrite,
                },
                io,
            )
        }
        Command::Gateway { .. }
        | Command::Sidecar { .. }
        | Command::CaptureRelay { .. }
        | Command::Mesh { .. }
        | Command::Up(_)
        | Command::Down
        | Command::Exec { .. }
        | Command::Logs { .. }
        | Command::Analyze { what: None, .. } => {
            Err(OpError::Usage("unreachable: handled before".into()))
        }
        Command::Analyze {
            what: Some(AnalyzeCommand::Traffic { ns }),
            ..
        } => {
            let store = open_store(cli.store)?;
            egress_cli::ops::analyze::run(&store, ns.namespace.as_deref(), io.out, io.err)
        }
    }
}
