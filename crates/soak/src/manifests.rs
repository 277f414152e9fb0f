//! The objects the soak declares: the cluster's fixed part (namespaces, the shared MeshConfig,
//! one StaticGatewayConfiguration per gateway, the seed's Gateway and DestinationRules per
//! scenario) and the objects the churn driver applies and deletes (a ServiceEntry, a
//! VirtualService and a DENY AuthorizationPolicy per scenario, unrelated "noise" objects).
//!
//! Each scenario has the shape of one of the seed's three configurations, with its own host,
//! its own add-on gateway and its own static egress prefix, so the three run side by side and
//! the stand-in can tell which gateway a request left through.

/// The namespace of the gateways, the workload and every namespaced object.
pub const NS: &str = "aks-istio-egress";

/// The add-on revision the soak installs.
pub const REVISION: &str = "asm-1-24";

/// How a scenario's request is made by the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The seed's HTTP egress gateway: `GET http://HOST/politics` through the sidecar, plain
    /// HTTP to the gateway, plain HTTP upstream.
    Http,
    /// The seed's HTTPS egress gateway: `CONNECT HOST:443`, TLS end to end, passthrough by SNI
    /// at the gateway.
    Passthrough,
    /// The seed's TLS origination: `GET http://HOST/politics` through the sidecar, mTLS
    /// (ISTIO_MUTUAL) to the gateway, TLS (SIMPLE) from the gateway to the host's port 443.
    Originate,
}

/// One of the three scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Short name (`http`, `passthrough`, `originate`).
    pub name: &'static str,
    /// What the request is.
    pub kind: Kind,
    /// The external host.
    pub host: &'static str,
    /// The add-on gateway (its name is also its `istio` label).
    pub gateway: &'static str,
    /// The gateway's StaticGatewayConfiguration.
    pub sgc: &'static str,
}

impl Scenario {
    /// Whether a DENY AuthorizationPolicy on the request's path can apply (HTTP at the gateway).
    pub fn has_authz(&self) -> bool {
        self.kind != Kind::Passthrough
    }

    /// The upstream port a request reaches when it goes through the gateway.
    pub fn upstream_port_via_gateway(&self) -> u16 {
        match self.kind {
            Kind::Http => 80,
            Kind::Passthrough | Kind::Originate => 443,
        }
    }

    /// The upstream port a request reaches when the sidecar sends it straight to the host.
    pub fn upstream_port_direct(&self) -> u16 {
        match self.kind {
            Kind::Http | Kind::Originate => 80,
            Kind::Passthrough => 443,
        }
    }

    /// The ServiceEntry registering the host (the seed's, per scenario).
    pub fn service_entry(&self) -> String {
        let ports = match self.kind {
            Kind::Http => {
                "  - {number: 80, name: http-port, protocol: HTTP}\n  - {number: 443, name: https, protocol: HTTPS}\n"
            }
            Kind::Passthrough => "  - {number: 443, name: tls, protocol: TLS}\n",
            Kind::Originate => {
                "  - {number: 80, name: http, protocol: HTTP}\n  - {number: 443, name: https, protocol: HTTPS}\n"
            }
        };
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {}\nspec:\n  hosts:\n  - {}\n  ports:\n{ports}  resolution: DNS\n",
            self.se_name(),
            self.host
        )
    }

    /// The VirtualService sending the host from the mesh to the gateway and from the gateway
    /// to the host (the seed's, per scenario).
    pub fn virtual_service(&self) -> String {
        let gw_svc = format!("{}.{NS}.svc.cluster.local", self.gateway);
        let (h, g, name) = (self.host, self.gateway, self.vs_name());
        match self.kind {
            Kind::Http | Kind::Originate => format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {h}\n  gateways:\n  - {g}\n  - mesh\n  http:\n  - match:\n    - gateways:\n      - mesh\n      port: 80\n    route:\n    - destination:\n        host: {gw_svc}\n        subset: soak\n        port:\n          number: 80\n      weight: 100\n  - match:\n    - gateways:\n      - {g}\n      port: 80\n    route:\n    - destination:\n        host: {h}\n        port:\n          number: {}\n      weight: 100\n",
                self.upstream_port_via_gateway()
            ),
            Kind::Passthrough => format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {h}\n  gateways:\n  - mesh\n  - {g}\n  tls:\n  - match:\n    - gateways:\n      - mesh\n      port: 443\n      sniHosts:\n      - {h}\n    route:\n    - destination:\n        host: {gw_svc}\n        subset: soak\n        port:\n          number: 443\n  - match:\n    - gateways:\n      - {g}\n      port: 443\n      sniHosts:\n      - {h}\n    route:\n    - destination:\n        host: {h}\n        port:\n          number: 443\n      weight: 100\n"
            ),
        }
    }

    /// A DENY AuthorizationPolicy on the request's path, at this scenario's gateway (the
    /// issue's reproduction).
    pub fn authz(&self) -> String {
        deny_path(&self.ap_name(), self.gateway, "/politics")
    }

    /// The Gateway and DestinationRules that stay for the whole run.
    pub fn fixed(&self) -> String {
        let gw_svc = format!("{}.{NS}.svc.cluster.local", self.gateway);
        let (h, g) = (self.host, self.gateway);
        match self.kind {
            Kind::Http => format!(
                "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {g}\nspec:\n  selector:\n    istio: {g}\n  servers:\n  - port:\n      number: 80\n      name: http\n      protocol: HTTP\n    hosts:\n    - {h}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {g}-for-soak\nspec:\n  host: {gw_svc}\n  subsets:\n  - name: soak\n"
            ),
            Kind::Passthrough => format!(
                "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {g}\nspec:\n  selector:\n    istio: {g}\n  servers:\n  - port:\n      number: 443\n      name: tls\n      protocol: TLS\n    hosts:\n    - {h}\n    tls:\n      mode: PASSTHROUGH\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {g}-for-soak\nspec:\n  host: {gw_svc}\n  subsets:\n  - name: soak\n"
            ),
            Kind::Originate => format!(
                "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {g}\nspec:\n  selector:\n    istio: {g}\n  servers:\n  - port:\n      number: 80\n      name: https-port-for-tls-origination\n      protocol: HTTPS\n    hosts:\n    - {h}\n    tls:\n      mode: ISTIO_MUTUAL\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {g}-for-soak\nspec:\n  host: {gw_svc}\n  subsets:\n  - name: soak\n    trafficPolicy:\n      loadBalancer:\n        simple: ROUND_ROBIN\n      portLevelSettings:\n      - port:\n          number: 80\n        tls:\n          mode: ISTIO_MUTUAL\n          sni: {h}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: originate-tls-for-{g}\nspec:\n  host: {h}\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n    portLevelSettings:\n    - port:\n        number: 443\n      tls:\n        mode: SIMPLE\n"
            ),
        }
    }

    /// Name of the scenario's ServiceEntry.
    pub fn se_name(&self) -> String {
        format!("se-{}", self.name)
    }

    /// Name of the scenario's VirtualService.
    pub fn vs_name(&self) -> String {
        format!("vs-{}", self.name)
    }

    /// Name of the scenario's AuthorizationPolicy.
    pub fn ap_name(&self) -> String {
        format!("deny-politics-{}", self.name)
    }
}

/// The three scenarios, in the seed's order.
pub const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "http",
        kind: Kind::Http,
        host: "http.soak.test",
        gateway: "soak-http",
        sgc: "soak-http-sgc",
    },
    Scenario {
        name: "passthrough",
        kind: Kind::Passthrough,
        host: "passthrough.soak.test",
        gateway: "soak-passthrough",
        sgc: "soak-passthrough-sgc",
    },
    Scenario {
        name: "originate",
        kind: Kind::Originate,
        host: "originate.soak.test",
        gateway: "soak-originate",
        sgc: "soak-originate-sgc",
    },
];

/// A DENY AuthorizationPolicy named `name` at gateway `gateway` for `path`.
fn deny_path(name: &str, gateway: &str, path: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels:\n      istio: {gateway}\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths:\n        - {path}\n"
    )
}

/// The shared MeshConfig with `outboundTrafficPolicy.mode` REGISTRY_ONLY or ALLOW_ANY.
pub fn mesh_config(registry_only: bool) -> String {
    let mode = if registry_only {
        "REGISTRY_ONLY"
    } else {
        "ALLOW_ANY"
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-{REVISION}\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    outboundTrafficPolicy:\n      mode: {mode}\n"
    )
}

/// Namespaces and one StaticGatewayConfiguration per scenario's gateway.
pub fn base() -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-system\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
    );
    for s in SCENARIOS {
        out.push_str(&format!(
            "---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: {}\n  namespace: {NS}\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n",
            s.sgc
        ));
    }
    out
}

/// The Istio `curl` sample (the workload whose sidecar every request goes through).
pub const CURL: &str = include_str!("../../../samples/curl.yaml");

/// Unrelated objects the driver churns between scenario changes: none of them may change what
/// any scenario's request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// A ServiceEntry for `noise-N.soak.test`.
    ServiceEntry(usize),
    /// A VirtualService for `noise-N.soak.test` (mesh only, straight to the host).
    VirtualService(usize),
    /// A DENY AuthorizationPolicy of path `/noise-N` at a scenario's gateway.
    AuthorizationPolicy(usize),
}

/// How many objects of each noise kind exist.
pub const NOISE_OBJECTS: usize = 4;

impl Noise {
    /// The object's YAML.
    pub fn manifest(&self) -> String {
        match *self {
            Noise::ServiceEntry(i) => format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: noise-{i}\nspec:\n  hosts:\n  - noise-{i}.soak.test\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: DNS\n"
            ),
            Noise::VirtualService(i) => format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: noise-{i}\nspec:\n  hosts:\n  - noise-{i}.soak.test\n  http:\n  - route:\n    - destination:\n        host: noise-{i}.soak.test\n        port:\n          number: 80\n"
            ),
            Noise::AuthorizationPolicy(i) => {
                let gw = SCENARIOS[if i % 2 == 0 { 0 } else { 2 }].gateway;
                deny_path(&format!("noise-{i}"), gw, &format!("/noise-{i}"))
            }
        }
    }

    /// `egress delete` arguments: kind and name.
    pub fn kind_and_name(&self) -> (&'static str, String) {
        match *self {
            Noise::ServiceEntry(i) => ("serviceentry", format!("noise-{i}")),
            Noise::VirtualService(i) => ("virtualservice", format!("noise-{i}")),
            Noise::AuthorizationPolicy(i) => ("authorizationpolicy", format!("noise-{i}")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn names_are_distinct_and_documents_name_themselves() {
        for s in SCENARIOS {
            assert!(
                s.service_entry()
                    .contains(&format!("name: {}\n", s.se_name()))
            );
            assert!(
                s.virtual_service()
                    .contains(&format!("name: {}\n", s.vs_name()))
            );
            assert!(s.authz().contains(&format!("name: {}\n", s.ap_name())));
            assert!(s.fixed().contains(&format!("istio: {}\n", s.gateway)));
        }
        assert!(mesh_config(true).contains("REGISTRY_ONLY"));
        assert!(mesh_config(false).contains("ALLOW_ANY"));
        assert!(CURL.contains("app: curl"));
    }
}
