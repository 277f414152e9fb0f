//! The add-on's objects in the store, kept in step with the mesh profile inside the
//! command's transaction, and the cluster IPs of gateway Services.
//!
//! A command touches only the gateways whose entry it changed (enabled, disabled, or given
//! another StaticGatewayConfiguration); a change of the installed revisions (enable,
//! disable, canary upgrades) touches every gateway. So the objects a command reads and
//! writes do not grow with the number of other gateways (the ManagedCluster object itself
//! still lists them all, as the AKS API does).
//!
//! Cluster IPs are recorded the way kube-apiserver's allocator records them since
//! Kubernetes 1.33: one cluster-scoped `networking.k8s.io/v1` `IPAddress` object per
//! allocated address, named after it, whose `spec.parentRef` is the Service. Allocating
//! checks those objects' existence by name, lowest address first, instead of reading every
//! Service. A gateway Service found without its record gets one the next time its gateway
//! is written. Services written by other means (`egress apply` with an explicit
//! `clusterIP`) reserve nothing unless an `IPAddress` names their address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use egress_addon::ServiceMeshProfile;
use egress_addon::objects::{EgressGatewayObjects, egress_gateway_objects};
use egress_store::{ObjectKey, Transaction};
use serde_json::{Value, json};

use super::{IMAGE, MeshError, SERVICE_RANGE};

/// API group of the cluster IP records.
pub const IP_ADDRESS_GROUP: &str = "networking.k8s.io";
/// Kind of the cluster IP records.
pub const IP_ADDRESS_KIND: &str = "IPAddress";

/// `(namespace, name)` of a gateway.
pub(super) type GatewayId = (String, String);

/// The enabled gateways of `p` (none when the mesh is off), with their
/// StaticGatewayConfiguration.
pub(super) fn enabled_gateways(p: &ServiceMeshProfile) -> BTreeMap<GatewayId, String> {
    if !p.is_enabled() {
        return BTreeMap::new();
    }
    p.enabled_egress_gateways()
        .map(|g| {
            (
                (g.namespace.clone(), g.name.clone()),
                g.gateway_configuration_name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The keys of the objects the add-on deploys for one gateway and `revisions`, Service
/// first.
fn gateway_keys(ns: &str, name: &str, revisions: &[String]) -> Vec<ObjectKey> {
    let mut keys = vec![
        ObjectKey::new("", "Service", Some(ns), name),
        ObjectKey::new("", "ServiceAccount", Some(ns), name),
    ];
    for rev in revisions {
        let obj = format!("{name}-{rev}");
        keys.push(ObjectKey::new("apps", "Deployment", Some(ns), obj.as_str()));
        keys.push(ObjectKey::new(
            "autoscaling",
            "HorizontalPodAutoscaler",
            Some(ns),
            obj.as_str(),
        ));
        keys.push(ObjectKey::new(
            "policy",
            "PodDisruptionBudget",
            Some(ns),
            obj,
        ));
    }
    keys
}

/// The gateways a change from `old` to `new` touches: all of them when the revisions (or
/// the mesh mode) change, else those whose entry differs.
pub(super) fn touched(
    old: &ServiceMeshProfile,
    new: &ServiceMeshProfile,
    before: &BTreeMap<GatewayId, String>,
    after: &BTreeMap<GatewayId, String>,
) -> BTreeSet<GatewayId> {
    let everything = old.revisions() != new.revisions() || old.is_enabled() != new.is_enabled();
    before
        .keys()
        .chain(after.keys())
        .filter(|id| everything || before.get(*id) != after.get(*id))
        .cloned()
        .collect()
}

/// Deletes what `old` deployed and `new` does not, then writes what `new` deploys, for the
/// gateways the change touches.
pub(super) fn sync_objects(
    tx: &mut Transaction<'_>,
    old: &ServiceMeshProfile,
    new: &ServiceMeshProfile,
) -> Result<(), MeshError> {
    let before = enabled_gateways(old);
    let after = enabled_gateways(new);
    for id in touched(old, new, &before, &after) {
        let (ns, name) = (id.0.as_str(), id.1.as_str());
        let keep: BTreeSet<ObjectKey> = if after.contains_key(&id) {
            gateway_keys(ns, name, new.revisions())
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        if before.contains_key(&id) {
            for key in gateway_keys(ns, name, old.revisions()) {
                if !keep.contains(&key) {
                    remove(tx, &key)?;
                }
            }
        }
        if let Some(sgc) = after.get(&id) {
            write_gateway(tx, ns, name, sgc, new.revisions())?;
        }
    }
    Ok(())
}

/// Deletes an object if it exists; a Service's cluster IP record goes with it.
fn remove(tx: &mut Transaction<'_>, key: &ObjectKey) -> Result<(), MeshError> {
    let Some(obj) = tx.get(key)? else {
        return Ok(());
    };
    if key.kind == "Service"
        && let Some(ip) = cluster_ip(&obj)
    {
        release(tx, ip, key)?;
    }
    tx.delete(key)?;
    Ok(())
}

fn cluster_ip(service: &Value) -> Option<Ipv4Addr> {
    service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
}

/// Renders and writes one gateway's objects; a gateway whose namespace is gone is skipped.
fn write_gateway(
    tx: &mut Transaction<'_>,
    ns: &str,
    name: &str,
    sgc: &str,
    revisions: &[String],
) -> Result<(), MeshError> {
    if !tx.exists(&ObjectKey::for_namespace(ns))? {
        return Ok(());
    }
    let service_key = ObjectKey::new("", "Service", Some(ns), name);
    let ip = match tx.get(&service_key)?.as_ref().and_then(cluster_ip) {
        Some(ip) => ip,
        None => allocate_cluster_ip(tx)?,
    };
    reserve(tx, ip, &service_key)?;
    let cluster_ip = ip.to_string();
    let objects = egress_gateway_objects(&EgressGatewayObjects {
        name,
        namespace: ns,
        gateway_configuration_name: sgc,
        revisions,
        cluster_ip: &cluster_ip,
        image: IMAGE,
    });
    for obj in objects {
        if let Some(key) = ObjectKey::from_object(&obj) {
            tx.apply(&key, obj)?;
        }
    }
    Ok(())
}

/// The store key of the record of cluster IP `ip`.
pub fn ip_address_key(ip: Ipv4Addr) -> ObjectKey {
    ObjectKey::new(IP_ADDRESS_GROUP, IP_ADDRESS_KIND, None, ip.to_string())
}

/// The `IPAddress` object recording that `service` holds `ip`.
pub fn ip_address(ip: Ipv4Addr, service: &ObjectKey) -> Value {
    json!({
        "apiVersion": format!("{IP_ADDRESS_GROUP}/v1"),
        "kind": IP_ADDRESS_KIND,
        "metadata": {
            "name": ip.to_string(),
            "labels": {
                "ipaddress.kubernetes.io/ip-family": "IPv4",
                "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
            },
        },
        "spec": {
            "parentRef": {
                "group": "",
                "resource": "services",
                "namespace": service.namespace,
                "name": service.name,
            },
        },
    })
}

fn parent_is(record: &Value, service: &ObjectKey) -> bool {
    let parent = |field: &str| {
        record
            .pointer(&format!("/spec/parentRef/{field}"))
            .and_then(Value::as_str)
    };
    parent("resource") == Some("services")
        && parent("namespace") == service.namespace.as_deref()
        && parent("name") == Some(service.name.as_str())
}

/// Records `ip` as `service`'s (a no-op when already recorded).
fn reserve(tx: &mut Transaction<'_>, ip: Ipv4Addr, service: &ObjectKey) -> Result<(), MeshError> {
    tx.apply(&ip_address_key(ip), ip_address(ip, service))?;
    Ok(())
}

/// Drops the record of `ip` if `service` holds it.
fn release(tx: &mut Transaction<'_>, ip: Ipv4Addr, service: &ObjectKey) -> Result<(), MeshError> {
    let key = ip_address_key(ip);
    if tx.get(&key)?.is_some_and(|r| parent_is(&r, service)) {
        tx.delete(&key)?;
    }
    Ok(())
}

/// The lowest address of [`SERVICE_RANGE`] that no `IPAddress` object records.
pub fn allocate_cluster_ip(tx: &Transaction<'_>) -> Result<Ipv4Addr, MeshError> {
    let (first, last) = (u32::from(SERVICE_RANGE.0), u32::from(SERVICE_RANGE.1));
    for ip in (first..=last).map(Ipv4Addr::from) {
        if !tx.exists(&ip_address_key(ip))? {
            return Ok(ip);
        }
    }
    Err(MeshError::Refused(
        "the service range 10.0.0.0/16 has no free cluster IP".into(),
    ))
}
