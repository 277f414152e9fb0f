//! `egress`: a thin clap front; each subcommand is one call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use egress_cli::ops::{apply, delete, get, label, up, validate};
use egress_cli::{Io, OpError, input};
use egress_store::Store;

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
    /// Run the local cluster.
    Up,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Err(e) => {
            let text = e.to_string();
            if e.is_server_error()
                || text.starts_with("Error from server")
                || text.starts_with("error:")
            {
                let _ = writeln!(io.err, "{text}");
            } else {
                let _ = writeln!(io.err, "error: {text}");
            }
            ExitCode::FAILURE
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
        Command::Up => {
            let store = open_store(cli.store)?;
            up::run(&store, io)
        }
    }
}
