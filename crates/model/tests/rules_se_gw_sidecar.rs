//! Rule tables for ServiceEntry, Gateway and Sidecar (istio-egress.md §2, §2.1, §2.2, §2.5):
//! every rule has accepted and rejected examples, decoded through the public API so that
//! decoding and validation are exercised together; plus round-trip properties.

// Test helpers outside `#[test]` functions panic on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_model::decode::{DecodeOptions, Outcome, decode_document, to_resource};
use egress_model::diag::{Diagnostic, Severity};
use egress_model::kinds;
use egress_model::yaml::parse_stream;
use proptest::prelude::*;

#[path = "rules_se_gw_sidecar/gateway.rs"]
mod gateway;
#[path = "rules_se_gw_sidecar/service_entry.rs"]
mod service_entry;
#[path = "rules_se_gw_sidecar/sidecar.rs"]
mod sidecar;

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

fn decode(yaml: &str) -> Outcome {
    let mut docs = parse_stream(yaml).unwrap_or_else(|e| panic!("bad test YAML {yaml}: {e:?}"));
    assert_eq!(docs.len(), 1, "{yaml}");
    decode_document("test.yaml", docs.remove(0), &opts())
}

fn indent(spec: &str) -> String {
    spec.lines().map(|l| format!("  {l}\n")).collect()
}

fn object(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    )
}

fn se(spec: &str) -> String {
    object("ServiceEntry", "se", spec)
}

fn gw(spec: &str) -> String {
    object("Gateway", "gw", spec)
}

fn sc(spec: &str) -> String {
    object("Sidecar", "sc", spec)
}

fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|d| format!("\n  {d}")).collect()
}

/// The object is rejected with an error on `field` whose message contains `msg`.
fn rejects(yaml: &str, field: &str, msg: &str) -> Diagnostic {
    match decode(yaml) {
        Outcome::Invalid(d) => d
            .iter()
            .find(|d| d.severity == Severity::Error && d.field == field && d.message.contains(msg))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "{yaml}\nwant error on {field:?} containing {msg:?}, got:{}",
                    render(&d)
                )
            }),
        other => panic!(
            "{yaml}\nwant rejection ({msg:?}), got {:?}",
            other.diagnostics()
        ),
    }
}

/// The object is accepted; its warnings are returned.
fn accepts(yaml: &str) -> Vec<Diagnostic> {
    match decode(yaml) {
        Outcome::Valid(d) => d.warnings,
        other => panic!("{yaml}\nwant valid, got:{}", render(&other.diagnostics())),
    }
}

/// The object is accepted with a warning on `field` containing `msg`.
fn warns(yaml: &str, field: &str, msg: &str) {
    let w = accepts(yaml);
    assert!(
        w.iter().any(|d| d.severity == Severity::Warning
            && d.field == field
            && d.message.contains(msg)),
        "{yaml}\nwant warning on {field:?} containing {msg:?}, got:{}",
        render(&w)
    );
}

/// The object is accepted without any warning.
fn clean(yaml: &str) {
    let w = accepts(yaml);
    assert!(w.is_empty(), "{yaml}\nwant no warnings, got:{}", render(&w));
}

const SEED_SERVICE_ENTRIES: &[&str] = &[
    "hosts:\n- edition.cnn.com\nports:\n- number: 80\n  name: http-port\n  protocol: HTTP\n- number: 443\n  name: https\n  protocol: HTTPS\nresolution: DNS",
    "hosts:\n- edition.cnn.com\nports:\n- number: 443\n  name: tls\n  protocol: TLS\nresolution: DNS",
    "hosts:\n- edition.cnn.com\nports:\n- number: 80\n  name: http\n  protocol: HTTP\n- number: 443\n  name: https\n  protocol: HTTPS\nresolution: DNS",
];

const SEED_GATEWAYS: &[&str] = &[
    "selector:\n  istio: asm-egress-test\nservers:\n- port:\n    number: 80\n    name: http\n    protocol: HTTP\n  hosts:\n  - edition.cnn.com",
    "selector:\n  istio: asm-egress-test\nservers:\n- port:\n    number: 443\n    name: tls\n    protocol: TLS\n  hosts:\n  - edition.cnn.com\n  tls:\n    mode: PASSTHROUGH",
    "selector:\n  istio: asm-egress-test\nservers:\n- port:\n    number: 80\n    name: https-port-for-tls-origination\n    protocol: HTTPS\n  hosts:\n  - edition.cnn.com\n  tls:\n    mode: ISTIO_MUTUAL",
];

#[test]
fn seed_objects_are_clean() {
    for s in SEED_SERVICE_ENTRIES {
        clean(&se(s));
    }
    for g in SEED_GATEWAYS {
        clean(&object("Gateway", "istio-egressgateway", g));
    }
    clean(&sc("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY"));
    clean(&sc("egress:\n- hosts:\n  - exampleegressgw/*"));
}

// ---------------------------------------------------------------- positions and rendering

#[test]
fn diagnostics_point_at_the_field() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: bad-port\n  namespace: egress\nspec:\n  hosts:\n  - example.com\n  ports:\n  - name: a\n    number: 99999\n";
    let d = rejects(yaml, "spec.ports[0].number", "port must be between 1-65535");
    assert_eq!(d.pos.map(|p| p.line), Some(11));
    let text = d.to_string();
    assert!(text.contains("ServiceEntry/egress/bad-port"), "{text}");
    assert!(text.starts_with("test.yaml:11:"), "{text}");

    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  servers:\n  - port:\n      number: 443\n      name: https\n      protocol: HTTPS\n    hosts:\n    - edition.cnn.com\n    - reviews\n    tls:\n      mode: ISTIO_MUTUAL\n      credentialName: cnn\n";
    let d = rejects(
        yaml,
        "spec.servers[0].hosts[1]",
        "short names (non FQDN) are not allowed",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(13));
    assert!(d.to_string().contains("Gateway/default/gw"), "{d}");
    let d = rejects(
        yaml,
        "spec.servers[0].tls.credentialName",
        "ISTIO_MUTUAL TLS cannot have associated credentialName",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(16));

    let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\nspec:\n  egress:\n  - hosts:\n    - \"./*\"\n    - edition.cnn.com\n";
    let d = rejects(
        yaml,
        "spec.egress[0].hosts[1]",
        "host must be of form namespace/dnsName",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(9));
    assert!(d.to_string().contains("Sidecar/default/default"), "{d}");
}

#[test]
fn helpers_of_the_types() {
    use egress_model::resources::Resource;
    use egress_model::resources::gateway::TlsMode;
    use egress_model::resources::service_entry::{Location, Resolution};
    use egress_model::validate::common::Protocol;
    let Outcome::Valid(d) = decode(&gw(
        "servers:\n- port: {number: 443, name: tls, protocol: tls}\n  hosts: [a.com]\n  tls: {}",
    )) else {
        panic!("valid gateway expected")
    };
    let Resource::Gateway(g) = &d.resource else {
        panic!("gateway expected")
    };
    let s = &g.spec.as_ref().unwrap().servers()[0];
    assert_eq!(s.protocol(), Protocol::Tls);
    assert_eq!(
        s.tls.as_ref().unwrap().mode_or_default(),
        TlsMode::Passthrough
    );
    assert!(s.is_passthrough() && s.is_tls_server() && !s.is_tcp_with_tls_termination());
    let Outcome::Valid(d) = decode(&se("hosts: [a.com]")) else {
        panic!("valid service entry expected")
    };
    let Resource::ServiceEntry(e) = &d.resource else {
        panic!("service entry expected")
    };
    let spec = e.spec.as_ref().unwrap();
    assert_eq!(spec.resolution_or_default(), Resolution::None);
    assert_eq!(spec.location_or_default(), Location::MeshExternal);
}

// ---------------------------------------------------------------- round trip

/// decode → `serde_json::to_value` → decode gives an equal object (false when the object
/// is not valid and so was not tried).
fn round_trip(yaml: &str) -> bool {
    let Outcome::Valid(d) = decode(yaml) else {
        return false;
    };
    let encoded = d.resource.to_value().unwrap();
    let info = kinds::for_manifest(
        encoded["apiVersion"].as_str().unwrap(),
        encoded["kind"].as_str().unwrap(),
    )
    .unwrap();
    let (again, unknown) =
        to_resource(info, &encoded).unwrap_or_else(|e| panic!("{yaml}: re-decoding failed: {e:?}"));
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(again, d.resource, "{yaml}");
    true
}

#[test]
fn table_objects_round_trip() {
    for spec in service_entry::SE_CLEAN.iter().chain(SEED_SERVICE_ENTRIES) {
        assert!(round_trip(&se(spec)));
    }
    for spec in gateway::GW_CLEAN.iter().chain(SEED_GATEWAYS) {
        assert!(round_trip(&gw(spec)));
    }
    for spec in sidecar::SC_CLEAN {
        assert!(round_trip(&sc(spec)));
    }
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}\\.[a-z]{2,5}",
        "\\*\\.[a-z]{1,8}\\.com",
        Just("edition.cnn.com".to_owned()),
    ]
}

fn protocol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "HTTP", "HTTPS", "TLS", "TCP", "GRPC", "HTTP2", "MONGO", "",
    ])
}

prop_compose! {
    fn service_entry_yaml()(
        hosts in prop::collection::vec(host(), 1..4),
        resolution in prop::sample::select(vec!["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]),
        location in prop::option::of(prop::sample::select(vec!["MESH_EXTERNAL", "MESH_INTERNAL"])),
        ports in prop::collection::vec((1u32..65536, protocol(), prop::option::of(1u32..65536)), 0..4),
        addresses in prop::collection::vec("10\\.[0-9]{1,2}\\.0\\.[0-9]{1,2}", 0..3),
        export in prop::option::of(prop::sample::select(vec!["[\".\"]", "[\"*\"]", "[\"~\"]", "[a, b]"])),
    ) -> String {
        let mut s = format!("hosts: [{}]\nresolution: {resolution}\n", hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", "));
        if let Some(l) = location { s.push_str(&format!("location: {l}\n")); }
        if !ports.is_empty() {
            s.push_str("ports:\n");
            for (i, (n, p, t)) in ports.iter().enumerate() {
                s.push_str(&format!("- {{name: p{i}, number: {n}, protocol: \"{p}\"{}}}\n", t.map(|t| format!(", targetPort: {t}")).unwrap_or_default()));
            }
        }
        if !addresses.is_empty() { s.push_str(&format!("addresses: [{}]\n", addresses.join(", "))); }
        if let Some(e) = export { s.push_str(&format!("exportTo: {e}\n")); }
        se(&s)
    }
}

prop_compose! {
    fn gateway_yaml()(
        servers in prop::collection::vec((1u32..65536, protocol(), prop::collection::vec(host(), 1..3),
            prop::option::of(prop::sample::select(vec!["PASSTHROUGH", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", "AUTO_PASSTHROUGH", "OPTIONAL_MUTUAL"])),
            any::<bool>()), 1..4),
    ) -> String {
        let mut s = "selector: {istio: asm-egress-test}\nservers:\n".to_owned();
        for (i, (n, p, hosts, mode, redirect)) in servers.iter().enumerate() {
            s.push_str(&format!("- port: {{number: {n}, name: s{i}, protocol: \"{p}\"}}\n  hosts: [{}]\n", hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ")));
            if let Some(m) = mode {
                s.push_str(&format!("  tls: {{mode: {m}, credentialName: c{i}, httpsRedirect: {redirect}, minProtocolVersion: TLSV1_2}}\n"));
            }
        }
        gw(&s)
    }
}

prop_compose! {
    fn sidecar_yaml()(
        listeners in prop::collection::vec((prop::option::of(1u32..65536), prop::collection::vec(host(), 1..3),
            prop::option::of(prop::sample::select(vec!["DEFAULT", "IPTABLES", "NONE"]))), 0..3),
        mode in prop::option::of(prop::sample::select(vec!["REGISTRY_ONLY", "ALLOW_ANY"])),
        pool in prop::option::of((0i32..1000, 1u32..100)),
    ) -> String {
        let mut s = String::new();
        if !listeners.is_empty() {
            s.push_str("egress:\n");
            for (port, hosts, capture) in &listeners {
                s.push_str(&format!("- hosts: [{}]\n", hosts.iter().map(|h| format!("\"ns/{h}\"")).collect::<Vec<_>>().join(", ")));
                if let Some(p) = port { s.push_str(&format!("  port: {{number: {p}, protocol: HTTP}}\n")); }
                if let Some(c) = capture { s.push_str(&format!("  captureMode: {c}\n")); }
            }
        }
        if let Some(m) = mode { s.push_str(&format!("outboundTrafficPolicy: {{mode: {m}}}\n")); }
        if let Some((c, k)) = pool { s.push_str(&format!("inboundConnectionPool: {{tcp: {{maxConnections: {c}, tcpKeepalive: {{probes: {k}, time: {k}s}}}}}}\n")); }
        if s.is_empty() { s.push_str("outboundTrafficPolicy: {}\n"); }
        sc(&s)
    }
}

proptest! {
    #[test]
    fn service_entries_round_trip(yaml in service_entry_yaml()) {
        prop_assume!(round_trip(&yaml));
    }

    #[test]
    fn gateways_round_trip(yaml in gateway_yaml()) {
        prop_assume!(round_trip(&yaml));
    }

    #[test]
    fn sidecars_round_trip(yaml in sidecar_yaml()) {
        prop_assume!(round_trip(&yaml));
    }

    #[test]
    fn typed_objects_reencode_identically(yaml in prop_oneof![service_entry_yaml(), gateway_yaml(), sidecar_yaml()]) {
        // Whatever the validation outcome, strict decoding of the encoding is lossless.
        let doc = parse_stream(&yaml).unwrap().remove(0);
        let info = kinds::for_manifest(doc.value["apiVersion"].as_str().unwrap(), doc.value["kind"].as_str().unwrap()).unwrap();
        let (typed, unknown) = to_resource(info, &doc.value).unwrap();
        prop_assert!(unknown.is_empty());
        let (again, _) = to_resource(info, &typed.to_value().unwrap()).unwrap();
        prop_assert_eq!(again, typed);
    }
}
