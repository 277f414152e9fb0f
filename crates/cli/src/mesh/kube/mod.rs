//! Kubernetes mode of the mesh commands (`--kubeconfig PATH [--context NAME]`): the add-on's
//! objects for the gateways a command touches are written to a real API server instead of
//! the local store, while the ManagedCluster profile (az's side) stays in the local store.
//!
//! * Writes are server-side applies (`PATCH` `application/apply-patch+yaml`, field manager
//!   [`FIELD_MANAGER`], `force=true`) of exactly what
//!   [`egress_addon::objects::cluster_gateway_objects`] renders, in its order:
//!   ServiceAccount, Role, RoleBinding, ClusterRole, ClusterRoleBinding, Service, then
//!   Deployment, HPA and PDB per revision.
//! * Removals (a disabled gateway, a revision dropped by `upgrade complete|rollback`) delete
//!   those objects and nothing else, in reverse order; an object already gone is fine.
//! * `enable-egress-gateway` first checks the gateway namespace and its
//!   StaticGatewayConfiguration on the API server, then waits for the rollout
//!   ([`wait`]).
//! * The command's store transaction commits only after the API server accepted every
//!   write, so a refused write leaves the profile unchanged; the error names the object and
//!   carries the server's message.

mod wait;

use std::collections::BTreeSet;
use std::path::PathBuf;

use egress_addon::ServiceMeshProfile;
use egress_addon::objects::{EgressGatewayObjects, cluster_gateway_objects};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::sync::{enabled_gateways, touched};
use super::{IMAGE, MeshError, SGC_GROUP};

pub use wait::wait_for_rollout;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "egress";

/// Where Kubernetes mode writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// Its context to use (default: the current one).
    pub context: Option<String>,
    /// The gateway container image.
    pub image: String,
}

impl KubeTarget {
    /// The target named by a command's flags, if `--kubeconfig` was given.
    pub fn from_args(cluster: &super::ClusterArgs) -> Option<KubeTarget> {
        Some(KubeTarget {
            kubeconfig: cluster.kubeconfig.clone()?,
            context: cluster.context.clone(),
            image: cluster.image.clone().unwrap_or_else(|| IMAGE.to_owned()),
        })
    }
}

/// A connected client and the runtime driving it (the mesh commands are synchronous).
pub struct KubeWriter {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    image: String,
}

impl std::fmt::Debug for KubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeWriter")
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
pub fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The API server's refusal as printed after the object: `message (Reason, code)`.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!("{}, ", status.reason)
            };
            format!("{} ({reason}{})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

fn api_error(action: &str, object: String, e: &kube::Error) -> MeshError {
    MeshError::Kube {
        action: action.to_owned(),
        object,
        message: api_message(e),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The resource of an object, from its apiVersion and kind.
fn resource(obj: &Value) -> ApiResource {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().unwrap_or("");
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Identity of an object for set comparisons: apiVersion, kind, namespace, name.
type ObjectId = (String, String, Option<String>, String);

fn id(obj: &Value) -> ObjectId {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_owned);
    (
        s("/apiVersion").unwrap_or_default(),
        s("/kind").unwrap_or_default(),
        s("/metadata/namespace"),
        s("/metadata/name").unwrap_or_default(),
    )
}

impl KubeWriter {
    /// Loads the kubeconfig and builds a client for its context.
    pub fn connect(target: &KubeTarget) -> Result<KubeWriter, MeshError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let path = &target.kubeconfig;
        let refused = |e: &dyn std::fmt::Display| {
            MeshError::Refused(format!("cannot use kubeconfig {}: {e}", path.display()))
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| refused(&e))?;
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..KubeConfigOptions::default()
        };
        let client = runtime.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| refused(&e))?;
            kube::Client::try_from(config).map_err(|e| refused(&e))
        })?;
        Ok(KubeWriter {
            runtime,
            client,
            image: target.image.clone(),
        })
    }

    fn api(&self, obj: &Value) -> Api<DynamicObject> {
        let ar = resource(obj);
        match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Server-side-applies `obj` (force, field manager [`FIELD_MANAGER`]).
    pub fn apply(&self, obj: &Value) -> Result<(), MeshError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.runtime
            .block_on(self.api(obj).patch(name, &params, &Patch::Apply(obj)))
            .map_err(|e| api_error("applying", describe(obj), &e))?;
        Ok(())
    }

    /// Deletes the object `obj` names (background propagation); absent is fine.
    pub fn delete(&self, obj: &Value) -> Result<(), MeshError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match self
            .runtime
            .block_on(self.api(obj).delete(name, &DeleteParams::background()))
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_error("deleting", describe(obj), &e)),
        }
    }

    fn get(&self, obj: &Value) -> Result<Option<Value>, kube::Error> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match self.runtime.block_on(self.api(obj).get(name)) {
            Ok(found) => Ok(serde_json::to_value(found).ok()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `enable-egress-gateway`'s preconditions on the API server: the namespace must exist,
    /// and its StaticGatewayConfiguration too when the cluster serves that kind. Returns
    /// warnings (no egress prefix yet, kind not served).
    pub fn check_gateway(&self, ns: &str, name: &str, sgc: &str) -> Result<Vec<String>, MeshError> {
        let namespace =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match self.get(&namespace) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(MeshError::Refused(format!(
                    "namespace \"{ns}\" not found: egress gateway {name} is deployed in the namespace of its StaticGatewayConfiguration; create the namespace and StaticGatewayConfiguration \"{sgc}\" in it first"
                )));
            }
            Err(e) => return Err(api_error("reading", format!("Namespace {ns}"), &e)),
        }
        let sgc_obj = serde_json::json!({
            "apiVersion": format!("{SGC_GROUP}/v1alpha1"),
            "kind": "StaticGatewayConfiguration",
            "metadata": {"name": sgc, "namespace": ns},
        });
        let mut warnings = Vec::new();
        match self.get(&sgc_obj) {
            Ok(Some(found)) => {
                let prefix = found
                    .pointer("/status/egressIpPrefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if prefix.is_empty() {
                    warnings.push(format!(
                        "StaticGatewayConfiguration {ns}/{sgc} has no egressIpPrefix yet: egress gateway {name} pods stay Pending (\"{}\") until one is assigned.",
                        egress_addon::sgc::PREFIX_NOT_READY
                    ));
                }
            }
            Ok(None) => {
                return Err(MeshError::Refused(format!(
                    "StaticGatewayConfiguration \"{sgc}\" not found in namespace \"{ns}\": create it in the egress gateway's namespace before enabling egress gateway {name}"
                )));
            }
            Err(e) if is_unserved(&e) => warnings.push(format!(
                "the cluster does not serve StaticGatewayConfiguration ({SGC_GROUP}): kube-egress-gateway is not installed, so egress gateway {name}'s traffic leaves with the nodes' addresses"
            )),
            Err(e) => {
                return Err(api_error("reading", format!("StaticGatewayConfiguration {ns}/{sgc}"), &e));
            }
        }
        Ok(warnings)
    }

    /// Brings the cluster from what `old` deploys to what `new` deploys, for the gateways
    /// the change touches: deletions first (reverse apply order), then applies.
    pub fn sync(
        &self,
        old: &ServiceMeshProfile,
        new: &ServiceMeshProfile,
    ) -> Result<(), MeshError> {
        let (deletes, applies) = plan(old, new, &self.image);
        for obj in &deletes {
            self.delete(obj)?;
        }
        for obj in &applies {
            self.apply(obj)?;
        }
        Ok(())
    }

    /// Waits for the gateway's rollout; see [`wait_for_rollout`].
    pub fn wait(
        &self,
        target: &super::WaitTarget,
        opts: &super::WaitOptions,
        err: &mut dyn std::io::Write,
    ) -> Result<(), MeshError> {
        self.runtime
            .block_on(wait_for_rollout(self.client.clone(), target, opts, err))
    }
}

/// Whether a 404 means the kind is not served (no object name in the Status details).
fn is_unserved(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && s.details.as_ref().is_none_or(|d| d.name.is_empty()))
}

/// The objects to delete (reverse apply order) and to apply (apply order) to go from `old`
/// to `new` with gateway image `image`.
pub fn plan(
    old: &ServiceMeshProfile,
    new: &ServiceMeshProfile,
    image: &str,
) -> (Vec<Value>, Vec<Value>) {
    let before = enabled_gateways(old);
    let after = enabled_gateways(new);
    let mut deletes = Vec::new();
    let mut applies = Vec::new();
    for gw in touched(old, new, &before, &after) {
        let (ns, name) = (gw.0.as_str(), gw.1.as_str());
        let render = |sgc: &str, revisions: &[String]| {
            cluster_gateway_objects(&EgressGatewayObjects {
                name,
                namespace: ns,
                gateway_configuration_name: sgc,
                revisions,
                cluster_ip: "",
                image,
            })
        };
        let wanted = after
            .get(&gw)
            .map(|sgc| render(sgc, new.revisions()))
            .unwrap_or_default();
        let keep: BTreeSet<ObjectId> = wanted.iter().map(id).collect();
        if let Some(sgc) = before.get(&gw) {
            let mut gone: Vec<Value> = render(sgc, old.revisions())
                .into_iter()
                .filter(|o| !keep.contains(&id(o)))
                .collect();
            gone.reverse();
            deletes.extend(gone);
        }
        applies.extend(wanted);
    }
    (deletes, applies)
}
