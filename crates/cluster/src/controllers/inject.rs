//! Sidecar injection, as the add-on's revision-labelled injector does it: a Pod created in a
//! namespace labelled `istio.io/rev=<installed revision>` gets the `istio-proxy` container
//! (running `egress sidecar run`), unless the Pod opts out with `sidecar.istio.io/inject:
//! "false"`. `istio-injection=enabled` does not inject on AKS. Injection happens at creation
//! only; relabelling a namespace affects Pods created afterwards.

use serde_json::{Value, json};

use super::{State, at, name};

/// The injected container's name.
pub const SIDECAR_CONTAINER: &str = "istio-proxy";

/// The port of the sidecar's explicit outbound proxy on the Pod IP (Istio's outbound capture
/// port).
pub const SIDECAR_PROXY_PORT: u16 = 15001;

/// True when the Pod has an injected sidecar.
pub fn has_sidecar(pod: &Value) -> bool {
    at(pod, "/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("name").and_then(Value::as_str) == Some(SIDECAR_CONTAINER)
                    && at(c, "/args/0").and_then(Value::as_str) == Some("sidecar")
            })
        })
}

/// The revision a new Pod in `namespace` is injected with, if any.
pub(super) fn injection_revision<'a>(
    state: &'a State,
    namespace: &str,
    template: &Value,
) -> Option<&'a str> {
    let opted_out = |p: &str| at(template, p).and_then(Value::as_str) == Some("false");
    if opted_out("/metadata/labels/sidecar.istio.io~1inject")
        || opted_out("/metadata/annotations/sidecar.istio.io~1inject")
    {
        return None;
    }
    let ns = state.namespaces.iter().find(|n| name(n) == namespace)?;
    let rev = at(ns, "/metadata/labels/istio.io~1rev").and_then(Value::as_str)?;
    state.installed_revisions().into_iter().find(|r| *r == rev)
}

/// Adds the sidecar to a Pod's metadata and spec (Istio's injected labels and annotations).
pub(super) fn inject(metadata: &mut Value, spec: &mut Value, revision: &str, image: &str) {
    let app = spec
        .pointer("/containers/0/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let canonical = metadata
        .pointer("/labels/app")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let labels = &mut metadata["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["security.istio.io/tlsMode"] = json!("istio");
    labels["service.istio.io/canonical-name"] = json!(canonical);
    labels["service.istio.io/canonical-revision"] = json!("latest");
    let annotations = &mut metadata["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations["istio.io/rev"] = json!(revision);
    annotations["kubectl.kubernetes.io/default-container"] = json!(app);
    annotations["sidecar.istio.io/status"] = json!(
        json!({
            "initContainers": null,
            "containers": [SIDECAR_CONTAINER],
            "volumes": [],
            "imagePullSecrets": null,
            "revision": revision,
        })
        .to_string()
    );
    let sidecar = json!({
        "name": SIDECAR_CONTAINER,
        "image": image,
        "args": ["sidecar", "run", "--revision", revision],
        "ports": [
            {"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15,
            "timeoutSeconds": 3,
            "failureThreshold": 4,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 1337,
            "runAsGroup": 1337,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    if let Some(cs) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        cs.push(sidecar);
    }
}
