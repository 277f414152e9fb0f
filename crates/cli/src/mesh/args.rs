//! The command line of `egress mesh …`: az's `aks mesh` commands, flags and aliases.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::IMAGE;

/// Which cluster, and how to print it.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Resource group of the local cluster (default: its own; another one is not found).
    #[arg(short = 'g', long = "resource-group")]
    pub resource_group: Option<String>,
    /// Name of the local cluster (default: its own; another one is not found).
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
    /// Output format: `json` (the cluster, as `az aks show` prints it) or `none`.
    #[arg(short = 'o', long = "output", default_value = "json", value_parser = ["json", "jsonc", "none"])]
    pub output: String,
    /// Do not wait for the operation to finish: nothing is printed. The store is updated
    /// synchronously either way; `enable-egress-gateway` otherwise waits until the gateway's
    /// pods are ready (when the local cluster, `egress up`, is running).
    #[arg(long = "no-wait")]
    pub no_wait: bool,
    /// Kubernetes mode: server-side-apply the add-on's gateway objects to the cluster of
    /// this kubeconfig (field manager `egress`) instead of the local cluster, and wait for
    /// their rollout there. The ManagedCluster profile stays in the local store.
    #[arg(long = "kubeconfig", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long = "context", value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,
    /// Kubernetes mode: the gateway Deployments' container image (runs `egress gateway run`;
    /// default `egress:latest`).
    #[arg(long = "image", value_name = "IMAGE", requires = "kubeconfig")]
    pub image: Option<String>,
}

impl ClusterArgs {
    /// The cluster `-g`/`-n` name, printed as JSON.
    pub fn of(resource_group: Option<String>, name: Option<String>) -> ClusterArgs {
        ClusterArgs {
            resource_group,
            name,
            output: "json".into(),
            no_wait: false,
            kubeconfig: None,
            context: None,
            image: None,
        }
    }
}

/// `-g`/`-n` alone, for commands that print something other than the cluster.
#[derive(Args, Debug, Clone)]
pub struct ClusterRef {
    /// Resource group of the local cluster (default: its own; another one is not found).
    #[arg(short = 'g', long = "resource-group")]
    pub resource_group: Option<String>,
    /// Name of the local cluster (default: its own; another one is not found).
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
}

impl ClusterRef {
    /// As [`ClusterArgs`] (for [`super::read_cluster`]).
    pub fn cluster(&self) -> ClusterArgs {
        ClusterArgs::of(self.resource_group.clone(), self.name.clone())
    }
}

/// The egress gateway's name and namespace.
#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Name of the Istio egress gateway (1-53 characters, lower case alphanumerics, `-`, `.`).
    #[arg(long = "istio-egressgateway-name", visible_alias = "istio-eg-gtw-name")]
    pub gateway_name: String,
    /// Namespace of the Istio egress gateway. Defaults to "aks-istio-egress" if unspecified.
    #[arg(
        long = "istio-egressgateway-namespace",
        visible_alias = "istio-eg-gtw-ns"
    )]
    pub gateway_namespace: Option<String>,
}

/// `egress mesh …`.
#[derive(Subcommand, Debug, Clone)]
pub enum MeshCommand {
    /// Show the managed cluster (like `az aks show`).
    Show {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Enable Azure Service Mesh.
    Enable {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Revision to install (`asm-X-Y`; default asm-1-24).
        #[arg(long)]
        revision: Option<String>,
    },
    /// Disable Azure Service Mesh.
    Disable {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Discover the mesh revisions available in a location.
    ///
    /// Each revision with its upgrades and compatible Kubernetes versions; every location
    /// shows the local cluster's catalogue.
    GetRevisions {
        /// Location in which to discover available Azure Service Mesh revisions.
        #[arg(short = 'l', long)]
        location: String,
        /// Output format.
        #[arg(short = 'o', long = "output", default_value = "json", value_parser = ["json", "jsonc", "table", "none"])]
        output: String,
    },
    /// Discover the upgrades available for the cluster's mesh revision.
    GetUpgrades {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterRef,
        /// Output format.
        #[arg(short = 'o', long = "output", default_value = "json", value_parser = ["json", "jsonc", "table", "none"])]
        output: String,
    },
    /// Canary upgrades of the control plane.
    Upgrade {
        /// The upgrade step.
        #[command(subcommand)]
        command: UpgradeCommand,
    },
    /// Enable an Azure Service Mesh egress gateway.
    ///
    /// The StaticGatewayConfiguration must exist in the gateway's namespace; without an
    /// egress IP prefix yet the gateway stays Pending. Waits until the gateway's pods are
    /// ready (when the local cluster runs) unless `--no-wait`.
    EnableEgressGateway {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The egress gateway.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Name of the StaticGatewayConfiguration resource (in the gateway's namespace).
        #[arg(long = "gateway-configuration-name", visible_alias = "gtw-config-name")]
        gateway_configuration_name: String,
    },
    /// Disable an Azure Service Mesh egress gateway.
    DisableEgressGateway {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The egress gateway.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Print the egress gateways' Kubernetes objects, for applying to a real cluster.
    ///
    /// Multi-document YAML: per enabled gateway its ServiceAccount, read-only RBAC (Role,
    /// RoleBinding, ClusterRole, ClusterRoleBinding) and Service, and Deployment,
    /// HorizontalPodAutoscaler and PodDisruptionBudget per installed revision, without a
    /// cluster IP (the cluster allocates it).
    Manifests {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterRef,
        /// Container image of the gateway Deployments (runs `egress gateway run`).
        #[arg(long, default_value = IMAGE)]
        image: String,
    },
}

/// `egress mesh upgrade …`.
#[derive(Subcommand, Debug, Clone)]
pub enum UpgradeCommand {
    /// Start a canary upgrade: install another revision beside the current one.
    Start {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Revision to upgrade to (`asm-X-Y`).
        #[arg(long)]
        revision: String,
    },
    /// Complete the upgrade: remove the lower revision.
    Complete {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Roll the upgrade back: remove the higher revision.
    Rollback {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}
