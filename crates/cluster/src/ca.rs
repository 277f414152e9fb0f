//! The local cluster's mesh CA: generated once per cluster and kept in the store as the Secret
//! `aks-istio-system/istio-ca-secret` (keys `ca-cert.pem`, `ca-key.pem`, as Istio's self-signed
//! CA keeps it), so every gateway and sidecar of the cluster shares one root.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use egress_identity::MeshCa;
use egress_store::{ObjectKey, Store};
use serde_json::{Value, json};

use crate::ClusterError;

/// Namespace and name of the Secret holding the local cluster's mesh root (as Istio's
/// self-signed CA keeps `istio-ca-secret`).
pub const CA_SECRET: (&str, &str) = ("aks-istio-system", "istio-ca-secret");

fn decode(v: &Value, key: &str) -> Option<String> {
    let b = STANDARD.decode(v["data"][key].as_str()?).ok()?;
    String::from_utf8(b).ok()
}

/// The cluster's mesh CA, created (with its namespace) on first use.
pub fn load_or_create(store: &Store, trust_domain: &str) -> Result<MeshCa, ClusterError> {
    load_or_create_in(store, CA_SECRET, trust_domain)
}

/// A CA kept in the Secret `secret` (namespace, name), created on first use.
pub fn load_or_create_in(
    store: &Store,
    secret: (&str, &str),
    trust_domain: &str,
) -> Result<MeshCa, ClusterError> {
    let (ns, name) = secret;
    let key = ObjectKey::new("", "Secret", Some(ns), name);
    let mut created: Option<MeshCa> = None;
    let committed = store.transact(|tx| -> Result<Option<Value>, ClusterError> {
        if let Some(existing) = tx.get(&key)? {
            return Ok(Some(existing));
        }
        let ca = MeshCa::generate(trust_domain).map_err(|e| ClusterError::Ca(e.to_string()))?;
        let ns_key = ObjectKey::for_namespace(ns);
        if tx.get(&ns_key)?.is_none() {
            tx.create(
                &ns_key,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        tx.create(
            &key,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "type": "istio.io/ca-root",
                "data": {
                    "ca-cert.pem": STANDARD.encode(ca.root_pem()),
                    "ca-key.pem": STANDARD.encode(ca.key_pem()),
                }
            }),
        )?;
        created = Some(ca);
        Ok(None)
    })?;
    if let Some(ca) = created {
        return Ok(ca);
    }
    let secret = committed.value.unwrap_or(Value::Null);
    match (
        decode(&secret, "ca-cert.pem"),
        decode(&secret, "ca-key.pem"),
    ) {
        (Some(cert), Some(key)) => {
            MeshCa::from_pem(&cert, &key).map_err(|e| ClusterError::Ca(format!("{ns}/{name}: {e}")))
        }
        _ => Err(ClusterError::Ca(format!(
            "the mesh CA Secret {ns}/{name} lacks ca-cert.pem/ca-key.pem"
        ))),
    }
}
