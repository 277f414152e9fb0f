//! What enabling an egress gateway creates, as Kubernetes objects (JSON), the way the AKS
//! add-on renders Istio's `gateway` chart: a ClusterIP Service `<name>` shared by all
//! revisions (ports `status-port` 15021, `http2` 80, `https` 443), a ServiceAccount `<name>`,
//! and per control-plane revision a Deployment `<name>-<revision>` (pods annotated with the
//! StaticGatewayConfiguration, running `egress gateway run` as the chart's unprivileged,
//! read-only `istio-proxy` container), an `autoscaling/v2` HPA (2..5, CPU 80%) and a PDB
//! (`minAvailable: 1`).
//!
//! On a real cluster the gateway reads its configuration from the API server, so
//! [`cluster_gateway_objects`] adds its RBAC, read-only and no wider than what it watches
//! ([`rbac_objects`]): a Role and RoleBinding `<name>` in the gateway namespace (Secrets for
//! `credentialName`, its Service, its Pods) and a ClusterRole and ClusterRoleBinding named
//! after the Helm release (`asm-egx-<namespace>-<name>`) for the Istio routing and policy
//! kinds in every namespace and the shared MeshConfig ConfigMaps of the installed revisions
//! (by name). Verbs are `get`, `list`, `watch` only.

use serde_json::{Value, json};

use crate::ops::revision_version;
use crate::sgc::SGC_POD_ANNOTATION;

/// Label the add-on puts on egress gateway objects.
pub const COMPONENT_LABEL: &str = "azureservicemesh/istio.component";
/// Its value for egress gateways.
pub const COMPONENT_EGRESS: &str = "egress-gateway";
/// Node label preferred (with weight) by gateway pods.
pub const REPLICA_PREFERRED_LABEL: &str = "azureservicemesh/istio.replica.preferred";
/// AKS system node label.
pub const SYSTEM_MODE_LABEL: &str = "kubernetes.azure.com/mode";
/// HPA bounds and target (istio-scale.md: min 2, max 5, CPU 80%).
pub const HPA_MIN: i32 = 2;
/// HPA maximum replicas.
pub const HPA_MAX: i32 = 5;
/// HPA CPU utilization target.
pub const HPA_CPU: i32 = 80;
/// The container's name.
pub const CONTAINER: &str = "istio-proxy";
/// Health (readiness) port.
pub const STATUS_PORT: i32 = 15021;
/// User and group the gateway container runs as (Istio's proxy UID).
pub const GATEWAY_UID: i64 = 1337;

/// Everything needed to render one egress gateway.
#[derive(Debug, Clone)]
pub struct EgressGatewayObjects<'a> {
    /// Gateway name (Service, ServiceAccount, `app`/`istio` labels).
    pub name: &'a str,
    /// Namespace (the SGC's namespace).
    pub namespace: &'a str,
    /// The StaticGatewayConfiguration the pods use.
    pub gateway_configuration_name: &'a str,
    /// Control-plane revisions; one Deployment/HPA/PDB each.
    pub revisions: &'a [String],
    /// The Service's cluster IP (allocated by the caller); empty leaves `clusterIP` out, for
    /// a cluster whose API server allocates it.
    pub cluster_ip: &'a str,
    /// The container image (runs `egress gateway run`).
    pub image: &'a str,
}

/// The Helm release name the add-on uses (`asm-egx-<namespace>-<name>`). Past 53 characters
/// the service shortens it to `asm-egx-` + first 15 + 15 hex digits of a hash + last 15; the
/// service's hash is a SHA, this local one is FNV-1a, so long names differ from AKS's.
pub fn helm_release_name(namespace: &str, name: &str) -> String {
    let real = format!("{namespace}-{name}");
    if real.len() <= 53 {
        return format!("asm-egx-{real}");
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in real.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let hex = format!("{h:016x}");
    let head: String = real.chars().take(15).collect();
    let tail: String = real
        .chars()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("asm-egx-{head}{}{tail}", &hex[..15])
}

/// The Service/selector labels: `app`, `istio` (both the name) and the component label.
pub fn gateway_labels(name: &str) -> Value {
    json!({
        "app": name,
        "istio": name,
        COMPONENT_LABEL: COMPONENT_EGRESS,
    })
}

fn revision_labels(name: &str, revision: &str) -> Value {
    let mut l = gateway_labels(name);
    l["istio.io/rev"] = json!(revision);
    l
}

fn metadata(s: &EgressGatewayObjects<'_>, name: &str, labels: Value) -> Value {
    json!({
        "name": name,
        "namespace": s.namespace,
        "labels": labels,
        "annotations": {
            "meta.helm.sh/release-name": helm_release_name(s.namespace, s.name),
            "meta.helm.sh/release-namespace": s.namespace,
        },
    })
}

/// `(weight, key, value)` preferences: system nodes first before `asm-1-30`, the
/// replica-preferred label first from `asm-1-30` on.
pub fn node_affinity_weights(revision: &str) -> [(i32, &'static str, &'static str); 2] {
    let from_1_30 = revision_version(revision).is_some_and(|v| v >= (1, 30));
    if from_1_30 {
        [
            (100, REPLICA_PREFERRED_LABEL, "true"),
            (50, SYSTEM_MODE_LABEL, "system"),
        ]
    } else {
        [
            (100, SYSTEM_MODE_LABEL, "system"),
            (50, REPLICA_PREFERRED_LABEL, "true"),
        ]
    }
}

/// All objects, in apply order: ServiceAccount, Service, then Deployment, HPA and PDB per
/// revision.
pub fn egress_gateway_objects(s: &EgressGatewayObjects<'_>) -> Vec<Value> {
    let mut out = vec![service_account(s), service(s)];
    for rev in s.revisions {
        out.push(deployment(s, rev));
        out.push(hpa(s, rev));
        out.push(pdb(s, rev));
    }
    out
}

/// What a real cluster gets for one gateway, in apply order: ServiceAccount, RBAC
/// ([`rbac_objects`]), Service, then Deployment, HPA and PDB per revision.
pub fn cluster_gateway_objects(s: &EgressGatewayObjects<'_>) -> Vec<Value> {
    let mut out = vec![service_account(s)];
    out.extend(rbac_objects(s));
    out.push(service(s));
    for rev in s.revisions {
        out.push(deployment(s, rev));
        out.push(hpa(s, rev));
        out.push(pdb(s, rev));
    }
    out
}

/// The read-only verbs every RBAC rule grants.
pub const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

/// The Istio kinds (group, plural resources) a gateway reads in every namespace: routing
/// (`networking.istio.io`), policy (`security.istio.io`) and telemetry.
pub const ISTIO_READ_RESOURCES: [(&str, &[&str]); 3] = [
    (
        "networking.istio.io",
        &[
            "gateways",
            "virtualservices",
            "destinationrules",
            "serviceentries",
            "sidecars",
        ],
    ),
    ("security.istio.io", &["authorizationpolicies"]),
    ("telemetry.istio.io", &["telemetries"]),
];

/// The core resources a gateway reads in its own namespace.
pub const NAMESPACE_READ_RESOURCES: [&str; 3] = ["secrets", "services", "pods"];

/// The shared MeshConfig ConfigMap of `revision` (in `aks-istio-system`).
pub fn shared_configmap_name(revision: &str) -> String {
    format!("istio-shared-configmap-{revision}")
}

fn cluster_metadata(s: &EgressGatewayObjects<'_>, name: &str) -> Value {
    let mut m = metadata(s, name, gateway_labels(s.name));
    if let Some(map) = m.as_object_mut() {
        map.remove("namespace");
    }
    m
}

fn subjects(s: &EgressGatewayObjects<'_>) -> Value {
    json!([{"kind": "ServiceAccount", "name": s.name, "namespace": s.namespace}])
}

/// Role and RoleBinding `<name>` in the gateway namespace, ClusterRole and
/// ClusterRoleBinding [`helm_release_name`] for the cluster-wide reads.
pub fn rbac_objects(s: &EgressGatewayObjects<'_>) -> Vec<Value> {
    let rbac = "rbac.authorization.k8s.io/v1";
    let cluster_name = helm_release_name(s.namespace, s.name);
    let mut cluster_rules: Vec<Value> = ISTIO_READ_RESOURCES
        .iter()
        .map(|(group, resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": READ_VERBS})
        })
        .collect();
    let configmaps: Vec<String> = s
        .revisions
        .iter()
        .map(|r| shared_configmap_name(r))
        .collect();
    if !configmaps.is_empty() {
        cluster_rules.push(json!({
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": configmaps,
            "verbs": READ_VERBS,
        }));
    }
    vec![
        json!({
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": metadata(s, s.name, gateway_labels(s.name)),
            "rules": [{"apiGroups": [""], "resources": NAMESPACE_READ_RESOURCES, "verbs": READ_VERBS}],
        }),
        json!({
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": metadata(s, s.name, gateway_labels(s.name)),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": s.name},
            "subjects": subjects(s),
        }),
        json!({
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": cluster_metadata(s, &cluster_name),
            "rules": cluster_rules,
        }),
        json!({
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": cluster_metadata(s, &cluster_name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": subjects(s),
        }),
    ]
}

/// The ServiceAccount `<name>`.
pub fn service_account(s: &EgressGatewayObjects<'_>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(s, s.name, gateway_labels(s.name)),
    })
}

/// The ClusterIP Service `<name>`, shared by every revision.
pub fn service(s: &EgressGatewayObjects<'_>) -> Value {
    let port = |name: &str, port: i32| json!({"name": name, "port": port, "protocol": "TCP", "targetPort": port});
    let mut spec = json!({
        "type": "ClusterIP",
        "clusterIP": s.cluster_ip,
        "clusterIPs": [s.cluster_ip],
        "selector": {"app": s.name, "istio": s.name},
        "ports": [port("status-port", STATUS_PORT), port("http2", 80), port("https", 443)],
    });
    if s.cluster_ip.is_empty()
        && let Some(m) = spec.as_object_mut()
    {
        m.remove("clusterIP");
        m.remove("clusterIPs");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(s, s.name, gateway_labels(s.name)),
        "spec": spec,
    })
}

/// The gateway container's arguments: `egress gateway run` for `revision`, listening on the
/// Service's ports (targetPort = port) with health on [`STATUS_PORT`]. The namespace, labels
/// and service account come from the environment ([`deployment`]).
pub fn gateway_args(revision: &str) -> Vec<String> {
    let health = STATUS_PORT.to_string();
    let istiod = format!("istiod-{revision}.{ISTIOD_NAMESPACE}.svc");
    let ca_address = format!("{istiod}:15012");
    [
        "gateway",
        "run",
        "--revision",
        revision,
        "--service-ports",
        "80:80,443:443",
        "--health-port",
        &health,
        // Kubernetes mode: configuration from the API server, identity from the downward API
        // (POD_* env), the workload certificate from istiod's CA as Istio's agent gets it.
        "--kube",
        "--ca-address",
        &ca_address,
        "--ca-server-name",
        &istiod,
        "--ca-root",
        ROOT_CERT_PATH,
        "--token-file",
        TOKEN_PATH,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Namespace of the add-on's istiod.
const ISTIOD_NAMESPACE: &str = "aks-istio-system";
/// Where the mesh root (ConfigMap `istio-ca-root-cert`, as Istio mounts it) is read.
const ROOT_CERT_PATH: &str = "/var/run/secrets/istio/root-cert.pem";
/// The projected service-account token for istiod (audience `istio-ca`).
const TOKEN_PATH: &str = "/var/run/secrets/tokens/istio-token";

/// The Deployment `<name>-<revision>`.
pub fn deployment(s: &EgressGatewayObjects<'_>, revision: &str) -> Value {
    let labels = revision_labels(s.name, revision);
    let mut pod_labels = labels.clone();
    pod_labels["sidecar.istio.io/inject"] = json!("false");
    let pod_label_arg = format!(
        "app={n},istio={n},{COMPONENT_LABEL}={COMPONENT_EGRESS},istio.io/rev={revision}",
        n = s.name
    );
    let affinity: Vec<Value> = node_affinity_weights(revision)
        .iter()
        .map(|(w, k, v)| {
            json!({
                "weight": w,
                "preference": {"matchExpressions": [{"key": k, "operator": "In", "values": [v]}]},
            })
        })
        .collect();
    let field_env = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(s, &format!("{}-{revision}", s.name), labels.clone()),
        "spec": {
            "replicas": HPA_MIN,
            "selector": {"matchLabels": {"app": s.name, "istio": s.name, "istio.io/rev": revision}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        SGC_POD_ANNOTATION: s.gateway_configuration_name,
                        "prometheus.io/path": "/stats/prometheus",
                        "prometheus.io/port": "15020",
                        "prometheus.io/scrape": "true",
                    },
                },
                "spec": {
                    "serviceAccountName": s.name,
                    "affinity": {"nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": affinity,
                    }},
                    // Istio's gateway chart: binding 80/443 without privileges.
                    "securityContext": {
                        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
                    },
                    // As Istio's gateway Pods: the mesh root and a token for istiod.
                    "volumes": [
                        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
                        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }}]}},
                    ],
                    "containers": [{
                        "name": CONTAINER,
                        "image": s.image,
                        "args": gateway_args(revision),
                        "env": [
                            field_env("POD_NAME", "metadata.name"),
                            field_env("POD_NAMESPACE", "metadata.namespace"),
                            field_env("INSTANCE_IP", "status.podIP"),
                            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                            {"name": "POD_LABELS", "value": pod_label_arg},
                            {"name": "ISTIO_REVISION", "value": revision},
                        ],
                        "ports": [
                            {"name": "status-port", "containerPort": STATUS_PORT, "protocol": "TCP"},
                            {"name": "http2", "containerPort": 80, "protocol": "TCP"},
                            {"name": "https", "containerPort": 443, "protocol": "TCP"},
                            {"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz/ready", "port": STATUS_PORT, "scheme": "HTTP"},
                            "initialDelaySeconds": 1,
                            "periodSeconds": 2,
                            "failureThreshold": 30,
                            "successThreshold": 1,
                            "timeoutSeconds": 1,
                        },
                        "volumeMounts": [
                            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio", "readOnly": true},
                            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true},
                        ],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "2000m", "memory": "1024Mi"},
                        },
                        // Istio's gateway chart's container securityContext.
                        "securityContext": {
                            "capabilities": {"drop": ["ALL"]},
                            "allowPrivilegeEscalation": false,
                            "privileged": false,
                            "readOnlyRootFilesystem": true,
                            "runAsUser": GATEWAY_UID,
                            "runAsGroup": GATEWAY_UID,
                            "runAsNonRoot": true,
                        },
                    }],
                },
            },
        },
    })
}

/// The `autoscaling/v2` HPA `<name>-<revision>`.
pub fn hpa(s: &EgressGatewayObjects<'_>, revision: &str) -> Value {
    let name = format!("{}-{revision}", s.name);
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(s, &name, revision_labels(s.name, revision)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": HPA_MIN,
            "maxReplicas": HPA_MAX,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": HPA_CPU}},
            }],
        },
    })
}

/// The `policy/v1` PDB `<name>-<revision>` (`minAvailable: 1`).
pub fn pdb(s: &EgressGatewayObjects<'_>, revision: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(s, &format!("{}-{revision}", s.name), revision_labels(s.name, revision)),
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": {"app": s.name, "istio": s.name, "istio.io/rev": revision}},
        },
    })
}

/// The `PORT(S)` column kubectl prints for a Service object (`15021/TCP,80/TCP,443/TCP`).
pub fn service_ports_column(service: &Value) -> String {
    service["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
