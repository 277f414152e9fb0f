//! `egress mesh …`: the `az aks mesh …` commands against the embedded store.
//!
//! The local cluster's ManagedCluster is one cluster-scoped object (group
//! [`MC_GROUP`], kind [`MC_KIND`], named after the cluster) whose `spec` is the
//! [`ManagedCluster`] JSON `az aks show` prints; the store holds one, whose resource group and
//! name are the only ones `-g`/`-n` accept (`identity`). Each mutating command runs the add-on's pure
//! rules ([`egress_addon::ops`]) and, in the same store transaction as the profile update,
//! writes what the add-on deploys for the enabled egress gateways
//! ([`egress_addon::objects::egress_gateway_objects`]): ServiceAccount and Service `<name>`,
//! and per control-plane revision a Deployment, HPA and PDB `<name>-<revision>` (`sync`).
//! `enable-egress-gateway` then waits for the gateway's pods (`wait`). `get-revisions` and
//! `get-upgrades` print the revision catalogue (`profiles`); `manifests` prints the gateway
//! objects for a real cluster (`manifests`). With `--kubeconfig`, the gateway objects go to
//! that cluster's API server by server-side apply instead of the store, and the wait follows
//! the Deployments there (`kube`); the profile stays in the store either way.
//! Errors print as az prints them: `ERROR: <message>` on standard error, exit code 1 (3 for
//! a cluster that does not exist).

mod args;
pub mod identity;
pub mod kube;
pub mod manifests;
pub mod profiles;
pub mod sync;
pub mod wait;

use std::io::{BufRead, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::process::ExitCode;

use egress_addon::ops::{self, AddonError};
use egress_addon::profile::{DEFAULT_EGRESS_NAMESPACE, SUPPORTED_REVISIONS};
use egress_addon::sgc::PREFIX_NOT_READY;
use egress_addon::{ManagedCluster, ServiceMeshProfile};
use egress_store::{ObjectKey, Store, StoreError, Transaction};
use serde_json::{Value, json};

use crate::{Io, OpError};

use self::kube::{KubeTarget, KubeWriter};
pub use args::{ClusterArgs, ClusterRef, GatewayArgs, MeshCommand, UpgradeCommand};
pub use identity::{ensure_local_cluster, read_cluster};
pub use sync::allocate_cluster_ip;
pub use wait::{WaitOptions, WaitOutcome, WaitTarget};

/// API group of the stored ManagedCluster object.
pub const MC_GROUP: &str = "containerservice.azure.com";
/// Kind of the stored ManagedCluster object.
pub const MC_KIND: &str = "ManagedCluster";
/// Default cluster name and resource group.
pub const DEFAULT_CLUSTER: &str = "egress-local";
/// The local cluster's location.
pub const LOCATION: &str = "local";
/// Container image of the gateway Deployments (runs `egress gateway run`).
pub const IMAGE: &str = "egress:latest";
/// First and last cluster IPs handed to gateway Services (the local service range
/// `10.0.0.0/16` without its network and broadcast addresses).
pub const SERVICE_RANGE: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 255, 254));
/// Group of StaticGatewayConfiguration objects.
pub const SGC_GROUP: &str = "egressgateway.kubernetes.azure.com";
/// az's refusal to prompt without a terminal.
pub const NO_TTY: &str = "Unable to prompt for confirmation as no tty available. Use --yes.";
/// az's answer to a declined confirmation.
pub const CANCELLED: &str = "Operation cancelled.";

/// A mesh command failed; `Display` is what follows `ERROR: `.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// One of az's (or the service's) refusals.
    #[error("{}", addon_message(.0))]
    Addon(#[from] AddonError),
    /// A local precondition (missing namespace or StaticGatewayConfiguration, no terminal,
    /// declined confirmation, unknown cluster).
    #[error("{0}")]
    Refused(String),
    /// `-g`/`-n` name a cluster other than the local one (az's 404: exit code 3).
    #[error("{}", identity::not_found_message(.name, .resource_group))]
    NotFound {
        /// The cluster name asked for.
        name: String,
        /// The resource group asked for.
        resource_group: String,
    },
    /// The stored ManagedCluster is not readable.
    #[error("stored ManagedCluster {name} is corrupt: {reason}")]
    Corrupt {
        /// Cluster name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The Kubernetes API server refused or failed a request (Kubernetes mode).
    #[error("{action} {object}: {message}")]
    Kube {
        /// `applying`, `deleting`, `reading`.
        action: String,
        /// `Kind namespace/name`.
        object: String,
        /// The server's message, reason and code.
        message: String,
    },
    /// Opening the store or writing output failed.
    #[error("{0}")]
    Op(#[from] OpError),
    /// The gateway did not become ready in time.
    #[error(
        "timed out after {after} waiting for egress gateway {name} in {namespace} to become ready: {ready}/{want} pods ready"
    )]
    Timeout {
        /// The timeout, as `10m`.
        after: String,
        /// Gateway name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Ready pods when it gave up.
        ready: i64,
        /// Wanted pods.
        want: i64,
    },
}

impl From<std::io::Error> for MeshError {
    fn from(e: std::io::Error) -> Self {
        MeshError::Op(OpError::Output(e))
    }
}

fn corrupt(name: &str) -> impl FnOnce(serde_json::Error) -> MeshError + '_ {
    move |e| MeshError::Corrupt {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

fn addon_message(e: &AddonError) -> String {
    match e {
        AddonError::BadRequest(m) => format!("(BadRequest) {m}"),
        other => other.to_string(),
    }
}

/// Asks a yes/no question; `Ok(false)` is "no".
pub type Confirm<'a> = dyn FnMut(&str) -> Result<bool, MeshError> + 'a;

/// The process entry point of `egress mesh`: runs the command on the opened store, prompts
/// on the terminal (refusing without one), prints `ERROR: …` and exits 1 on failure.
pub fn cli_main(store: Result<Store, OpError>, command: &MeshCommand) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let result = store.map_err(MeshError::from).and_then(|store| {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        let mut confirm = terminal_confirm;
        let wait = WaitOptions {
            progress: std::io::stderr().is_terminal(),
            ..WaitOptions::default()
        };
        run_with(&store, command, &mut io, &mut confirm, &wait)
    });
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "ERROR: {e}");
            match e {
                MeshError::NotFound { .. } => ExitCode::from(identity::NOT_FOUND_EXIT),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// az's `prompt_y_n`: the question on standard error, the answer from a terminal on
/// standard input (default "n"); no terminal is an error.
pub fn terminal_confirm(question: &str) -> Result<bool, MeshError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(MeshError::Refused(NO_TTY.into()));
    }
    let mut err = std::io::stderr();
    write!(err, "{question} (y/n): ")?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The mesh change a command asks for.
#[derive(Debug, Clone)]
enum Change<'a> {
    Enable(Option<&'a str>),
    Disable,
    UpgradeStart(&'a str),
    UpgradeFinish {
        complete: bool,
    },
    EnableEgress {
        name: &'a str,
        namespace: Option<&'a str>,
        sgc: &'a str,
    },
    DisableEgress {
        name: &'a str,
        namespace: Option<&'a str>,
    },
}

impl Change<'_> {
    fn apply(&self, p: &ServiceMeshProfile) -> Result<ServiceMeshProfile, AddonError> {
        match self {
            Change::Enable(rev) => ops::enable(p, *rev),
            Change::Disable => ops::disable(p),
            Change::UpgradeStart(rev) => ops::upgrade_start(p, rev),
            Change::UpgradeFinish { complete: true } => Ok(ops::upgrade_complete(p)?.profile),
            Change::UpgradeFinish { complete: false } => Ok(ops::upgrade_rollback(p)?.profile),
            Change::EnableEgress {
                name,
                namespace,
                sgc,
            } => ops::enable_egress_gateway(p, name, *namespace, sgc),
            Change::DisableEgress { name, namespace } => {
                ops::disable_egress_gateway(p, name, *namespace)
            }
        }
    }
}

/// The warning `enable-egress-gateway` prints instead of waiting when no local cluster runs.
pub fn not_running_warning(name: &str, namespace: &str) -> String {
    format!(
        "the local cluster is not running (start it with \"egress up\"); egress gateway {name} in {namespace} will start when it runs."
    )
}

/// Runs one `egress mesh` command; `confirm` answers az's confirmation prompts. Waits as
/// [`WaitOptions::default`] (no progress line, 10 minutes at most).
pub fn run(
    store: &Store,
    command: &MeshCommand,
    io: &mut Io<'_>,
    confirm: &mut Confirm<'_>,
) -> Result<(), MeshError> {
    run_with(store, command, io, confirm, &WaitOptions::default())
}

/// [`run`], waiting for `enable-egress-gateway`'s gateway as `wait` says.
pub fn run_with(
    store: &Store,
    command: &MeshCommand,
    io: &mut Io<'_>,
    confirm: &mut Confirm<'_>,
    wait: &WaitOptions,
) -> Result<(), MeshError> {
    let (cluster, change) = match command {
        MeshCommand::Show { cluster } => {
            let mc = read_cluster(store, cluster)?;
            return print_cluster(&mc, cluster, io);
        }
        MeshCommand::GetRevisions { output, .. } => {
            return profiles::get_revisions(output, io);
        }
        MeshCommand::GetUpgrades { cluster, output } => {
            return profiles::get_upgrades(store, cluster, output, io);
        }
        MeshCommand::Manifests { cluster, image } => {
            return manifests::print_manifests(store, cluster, image, io);
        }
        MeshCommand::Enable { cluster, revision } => (cluster, Change::Enable(revision.as_deref())),
        MeshCommand::Disable { cluster, yes } => {
            if !yes && !confirm(ops::DISABLE_CONFIRMATION)? {
                return Err(MeshError::Refused(CANCELLED.into()));
            }
            (cluster, Change::Disable)
        }
        MeshCommand::Upgrade { command } => match command {
            UpgradeCommand::Start { cluster, revision } => {
                (cluster, Change::UpgradeStart(revision))
            }
            UpgradeCommand::Complete { cluster, yes }
            | UpgradeCommand::Rollback { cluster, yes } => {
                let complete = matches!(command, UpgradeCommand::Complete { .. });
                let mc = read_cluster(store, cluster)?;
                let p = mc.mesh_profile_or_disabled();
                let finish = if complete {
                    ops::upgrade_complete(&p)?
                } else {
                    ops::upgrade_rollback(&p)?
                };
                if !yes && !confirm(&finish.prompt)? {
                    // az's DecoratorEarlyExitException: nothing changes, nothing is printed.
                    return Ok(());
                }
                (cluster, Change::UpgradeFinish { complete })
            }
        },
        MeshCommand::EnableEgressGateway {
            cluster,
            gateway,
            gateway_configuration_name,
        } => (
            cluster,
            Change::EnableEgress {
                name: &gateway.gateway_name,
                namespace: gateway.gateway_namespace.as_deref(),
                sgc: gateway_configuration_name,
            },
        ),
        MeshCommand::DisableEgressGateway {
            cluster,
            gateway,
            yes,
        } => {
            if !yes && !confirm(ops::GENERIC_CONFIRMATION)? {
                return Err(MeshError::Refused(CANCELLED.into()));
            }
            (
                cluster,
                Change::DisableEgress {
                    name: &gateway.gateway_name,
                    namespace: gateway.gateway_namespace.as_deref(),
                },
            )
        }
    };
    let writer = KubeTarget::from_args(cluster)
        .map(|t| KubeWriter::connect(&t))
        .transpose()?;
    let committed = store.transact(|tx| commit(tx, cluster, &change, writer.as_ref()))?;
    let (mc, warnings) = committed.value;
    for w in warnings {
        writeln!(io.err, "WARNING: {w}")?;
    }
    if let Some(w) =
        ops::unsupported_revision_warning(&mc.mesh_profile_or_disabled(), SUPPORTED_REVISIONS)
    {
        writeln!(io.err, "WARNING: {w}")?;
    }
    if cluster.no_wait {
        return Ok(());
    }
    if let Change::EnableEgress {
        name, namespace, ..
    } = change
    {
        let ns = namespace.unwrap_or(DEFAULT_EGRESS_NAMESPACE);
        let revisions = mc.mesh_profile_or_disabled().revisions().to_vec();
        let target = WaitTarget::new(name, ns, &revisions);
        if let Some(writer) = &writer {
            writer.wait(&target, wait, io.err)?;
            return print_cluster(&mc, cluster, io);
        }
        let outcome =
            wait::wait_for_gateway(store, &target, committed.resource_version, wait, io.err)?;
        if outcome == WaitOutcome::NotRunning {
            writeln!(io.err, "WARNING: {}", not_running_warning(name, ns))?;
        }
    }
    print_cluster(&mc, cluster, io)
}

/// The store key of the ManagedCluster called `name`.
pub fn cluster_key(name: &str) -> ObjectKey {
    ObjectKey::new(MC_GROUP, MC_KIND, None, name)
}

fn print_cluster(
    mc: &ManagedCluster,
    cluster: &ClusterArgs,
    io: &mut Io<'_>,
) -> Result<(), MeshError> {
    if cluster.output == "none" {
        return Ok(());
    }
    let mut v = serde_json::to_value(mc).map_err(corrupt(&mc.name))?;
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "id".into(),
            json!(format!(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
                mc.resource_group, mc.name
            )),
        );
        m.insert(
            "type".into(),
            json!("Microsoft.ContainerService/ManagedClusters"),
        );
    }
    let text = serde_json::to_string_pretty(&v).map_err(corrupt(&mc.name))?;
    writeln!(io.out, "{text}")?;
    Ok(())
}

/// One transaction: the profile change, its preconditions, the gateway objects (in the
/// store, or on the cluster of `kube`) and the stored cluster.
fn commit(
    tx: &mut Transaction<'_>,
    cluster: &ClusterArgs,
    change: &Change<'_>,
    kube: Option<&KubeWriter>,
) -> Result<(ManagedCluster, Vec<String>), MeshError> {
    let mut mc = identity::cluster_for_change(tx, cluster)?;
    let old = mc.mesh_profile_or_disabled();
    let new = change.apply(&old)?;
    let mut warnings = Vec::new();
    if let Change::EnableEgress {
        name,
        namespace,
        sgc,
    } = change
        && kube.is_none()
    {
        let ns = namespace.unwrap_or(DEFAULT_EGRESS_NAMESPACE);
        if !tx.exists(&ObjectKey::for_namespace(ns))? {
            return Err(MeshError::Refused(format!(
                "namespace \"{ns}\" not found: egress gateway {name} is deployed in the namespace of its StaticGatewayConfiguration; create the namespace and StaticGatewayConfiguration \"{sgc}\" in it first"
            )));
        }
        let sgc_key = ObjectKey::new(SGC_GROUP, "StaticGatewayConfiguration", Some(ns), *sgc);
        let Some(obj) = tx.get(&sgc_key)? else {
            return Err(MeshError::Refused(format!(
                "StaticGatewayConfiguration \"{sgc}\" not found in namespace \"{ns}\": create it in the egress gateway's namespace before enabling egress gateway {name}"
            )));
        };
        let prefix = obj
            .pointer("/status/egressIpPrefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if prefix.is_empty() {
            warnings.push(format!(
                "StaticGatewayConfiguration {ns}/{sgc} has no egressIpPrefix yet: egress gateway {name} pods stay Pending (\"{PREFIX_NOT_READY}\") until one is assigned."
            ));
        }
    }
    match kube {
        Some(kube) => {
            if let Change::EnableEgress {
                name,
                namespace,
                sgc,
            } = change
            {
                let ns = namespace.unwrap_or(DEFAULT_EGRESS_NAMESPACE);
                warnings.extend(kube.check_gateway(ns, name, sgc)?);
            }
            kube.sync(&old, &new)?;
        }
        None => sync::sync_objects(tx, &old, &new)?,
    }
    mc.service_mesh_profile = Some(new);
    identity::write(tx, &mc)?;
    Ok((mc, warnings))
}
