//! Properties of the compiler over generated inputs (valid or not): it never panics, it is
//! deterministic, and the order the objects arrive in does not matter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use egress_compile::{Inputs, compile};
use proptest::prelude::*;
use serde_json::{Value, json};

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn host() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => pick(&["edition.cnn.com", "*.cnn.com", "*", "asm-egress-test"]),
        1 => pick(&[
            "api.example.com",
            "svc",
            "asm-egress-test.aks-istio-egress.svc.cluster.local",
            "10.0.0.1",
            "",
            "./edition.cnn.com",
            "*/api.example.com",
            "team/edition.cnn.com",
        ]),
    ]
}

fn ns() -> impl Strategy<Value = &'static str> {
    pick(&["aks-istio-egress", "team", "aks-istio-system"])
}

fn port() -> impl Strategy<Value = i64> {
    prop_oneof![4 => pick(&[80_i64, 443]), 1 => pick(&[0_i64, 8080, 5432, 70000])]
}

fn maybe<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    prop::option::of(s)
}

fn tls_mode() -> impl Strategy<Value = &'static str> {
    pick(&[
        "PASSTHROUGH",
        "SIMPLE",
        "MUTUAL",
        "ISTIO_MUTUAL",
        "AUTO_PASSTHROUGH",
        "OPTIONAL_MUTUAL",
    ])
}

fn server() -> impl Strategy<Value = Value> {
    (
        port(),
        prop_oneof![3 => pick(&["HTTP", "HTTPS", "TLS"]), 1 => pick(&["TCP", "GRPC", "bogus", ""])],
        prop::collection::vec(host(), 1..3),
        maybe((tls_mode(), maybe(pick(&["cnn-cert", "missing"])), any::<bool>())),
        prop_oneof![6 => Just(""), 1 => pick(&["127.0.0.1", "unix:///sock", "not-an-ip"])],
        pick(&["http", "https", "tls"]),
    )
        .prop_map(|(number, protocol, hosts, tls, bind, name)| {
            let mut s = json!({"port": {"number": number, "protocol": protocol, "name": name}, "hosts": hosts});
            if !bind.is_empty() {
                s["bind"] = json!(bind);
            }
            if let Some((mode, cred, redirect)) = tls {
                let mut t = json!({"mode": mode, "httpsRedirect": redirect});
                if let Some(c) = cred {
                    t["credentialName"] = json!(c);
                }
                s["tls"] = t;
            }
            s
        })
}

fn destination() -> impl Strategy<Value = Value> {
    (
        prop_oneof![3 => Just(""), 1 => pick(&["cnn", "v1"])],
        host(),
        maybe(port()),
        prop_oneof![2 => Just(None), 1 => maybe(pick(&[0_i32, 50, -1, 100]))],
    )
        .prop_map(|(subset, h, p, w)| (h, subset, p, w))
        .prop_map(|(h, subset, p, w)| {
            let mut d = json!({"destination": {"host": h}});
            if !subset.is_empty() {
                d["destination"]["subset"] = json!(subset);
            }
            if let Some(p) = p {
                d["destination"]["port"] = json!({"number": p});
            }
            if let Some(w) = w {
                d["weight"] = json!(w);
            }
            d
        })
}

fn gateways() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop_oneof![
            3 => pick(&["egress", "aks-istio-egress/egress"]),
            1 => pick(&["team/egress", "mesh", "egress.aks-istio-egress", "egress-1", "other"]),
        ],
        1..3,
    )
}

fn http_rule() -> impl Strategy<Value = Value> {
    (
        maybe((
            maybe(port()),
            gateways(),
            maybe(pick(&["/", "/a", ""])),
            maybe(pick(&["n", ""])),
        )),
        prop::collection::vec(destination(), 1..3),
        0..6_u8,
        maybe(pick(&[0_i32, 1, 3])),
        maybe(pick(&["rw", ""])),
    )
        .prop_map(|(m, route, kind, attempts, name)| {
            let mut r = json!({});
            if let Some((p, gws, prefix, mname)) = m {
                let mut mm = json!({"gateways": gws});
                if let Some(p) = p {
                    mm["port"] = json!(p);
                }
                if let Some(prefix) = prefix {
                    mm["uri"] = json!({"prefix": prefix});
                }
                if let Some(n) = mname {
                    mm["name"] = json!(n);
                }
                if kind == 5 {
                    mm["headers"] =
                        json!({"x-a": {"exact": "1"}, "@request.auth.claims.sub": {"exact": "x"}});
                } else if kind == 4 {
                    mm["headers"] = json!({"X-A": {"exact": "1"}, "present": {}});
                }
                r["match"] = json!([mm]);
            }
            match kind {
                0 => {
                    r["redirect"] =
                        json!({"uri": "/x", "redirectCode": 399, "derivePort": "FROM_REQUEST_PORT"})
                }
                1 => r["directResponse"] = json!({"status": 503, "body": {"bytes": "!!notbase64"}}),
                _ => r["route"] = json!(route),
            }
            if let Some(a) = attempts {
                r["retries"] =
                    json!({"attempts": a, "retryOn": "5xx,429,599", "perTryTimeout": "bogus"});
            }
            if let Some(n) = name {
                r["name"] = json!(n);
                r["timeout"] = json!("1.5s");
                r["headers"] = json!({"request": {"set": {"Host": "h", "x": "y"}}});
            }
            r
        })
}

fn l4_rule(tls: bool) -> impl Strategy<Value = Value> {
    (
        maybe((
            maybe(port()),
            gateways(),
            prop::collection::vec(host(), 0..2),
        )),
        prop::collection::vec(destination(), 0..3),
    )
        .prop_map(move |(m, route)| {
            let mut r = json!({"route": route});
            if let Some((p, gws, sni)) = m {
                let mut mm = json!({"gateways": gws});
                if let Some(p) = p {
                    mm["port"] = json!(p);
                }
                if tls {
                    mm["sniHosts"] = json!(sni);
                }
                r["match"] = json!([mm]);
            }
            r
        })
}

fn meta(kind: &str, i: usize, ns: &str) -> Value {
    json!({"name": format!("{kind}-{i}"), "namespace": ns})
}

fn virtual_service() -> impl Strategy<Value = (Value, &'static str)> {
    (
        prop_oneof![3 => Just("aks-istio-egress"), 1 => ns()],
        prop::collection::vec(host(), 1..3),
        gateways(),
        prop::collection::vec(http_rule(), 0..3),
        prop::collection::vec(l4_rule(true), 0..2),
        prop::collection::vec(l4_rule(false), 0..2),
        maybe(pick(&[".", "*", "aks-istio-egress", "~"])),
    )
        .prop_map(|(ns, hosts, gws, http, tls, tcp, export)| {
            let mut spec =
                json!({"hosts": hosts, "gateways": gws, "http": http, "tls": tls, "tcp": tcp});
            if let Some(e) = export {
                spec["exportTo"] = json!([e]);
            }
            (spec, ns)
        })
}

fn client_tls() -> impl Strategy<Value = Value> {
    (
        pick(&["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]),
        maybe(pick(&["client-cred", "cnn-cert", "missing"])),
        maybe(pick(&["sni.example.com", ""])),
    )
        .prop_map(|(mode, cred, sni)| {
            let mut t = json!({"mode": mode});
            if let Some(c) = cred {
                t["credentialName"] = json!(c);
            }
            if let Some(s) = sni {
                t["sni"] = json!(s);
            }
            t
        })
}

fn destination_rule() -> impl Strategy<Value = (Value, &'static str)> {
    (
        ns(),
        host(),
        maybe(client_tls()),
        maybe((port(), maybe(client_tls()))),
        prop::collection::vec((pick(&["cnn", "v1", ""]), maybe(client_tls()), any::<bool>()), 0..3),
        pick(&["ROUND_ROBIN", "RANDOM", "LEAST_CONN", "PASSTHROUGH", "UNSPECIFIED"]),
        maybe(pick(&[".", "*", "team"])),
    )
        .prop_map(|(ns, h, tls, pl, subsets, lb, export)| {
            let mut tp = json!({"loadBalancer": {"simple": lb}, "connectionPool": {"tcp": {"connectTimeout": "bogus", "maxConnections": -1}}, "outlierDetection": {"maxEjectionPercent": -5}});
            if let Some(t) = tls {
                tp["tls"] = t;
            }
            if let Some((p, t)) = pl {
                let mut pls = json!({"port": {"number": p}});
                if let Some(t) = t {
                    pls["tls"] = t;
                }
                tp["portLevelSettings"] = json!([pls]);
            }
            let subsets: Vec<Value> = subsets
                .into_iter()
                .map(|(name, t, labels)| {
                    let mut s = json!({"name": name});
                    if labels {
                        s["labels"] = json!({"version": "v2"});
                    }
                    if let Some(t) = t {
                        s["trafficPolicy"] = json!({"tls": t});
                    }
                    s
                })
                .collect();
            let mut spec = json!({"host": h, "trafficPolicy": tp, "subsets": subsets});
            if let Some(e) = export {
                spec["exportTo"] = json!([e]);
            }
            (spec, ns)
        })
}

fn service_entry() -> impl Strategy<Value = (Value, &'static str)> {
    (
        ns(),
        prop::collection::vec(host(), 1..3),
        prop::collection::vec((port(), pick(&["HTTP", "HTTPS", "TLS", "TCP", "GRPC", ""]), maybe(port())), 1..3),
        pick(&["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]),
        prop::collection::vec((pick(&["10.0.0.1", "a.example.net", "unix:///sock", "::1"]), any::<bool>()), 0..3),
        pick(&["MESH_EXTERNAL", "MESH_INTERNAL"]),
    )
        .prop_map(|(ns, hosts, ports, resolution, endpoints, location)| {
            let ports: Vec<Value> = ports
                .into_iter()
                .enumerate()
                .map(|(i, (n, p, t))| {
                    let mut v = json!({"number": n.max(0), "protocol": p, "name": format!("p{i}")});
                    if let Some(t) = t {
                        v["targetPort"] = json!(t.max(0));
                    }
                    v
                })
                .collect();
            let endpoints: Vec<Value> = endpoints
                .into_iter()
                .map(|(a, labelled)| {
                    let mut e = json!({"address": a, "ports": {"p0": 9999}, "weight": 0});
                    if labelled {
                        e["labels"] = json!({"version": "v2", "security.istio.io/tlsMode": "istio"});
                    }
                    e
                })
                .collect();
            (
                json!({"hosts": hosts, "ports": ports, "resolution": resolution, "endpoints": endpoints, "location": location, "subjectAltNames": ["spiffe://x"]}),
                ns,
            )
        })
}

fn kube_objects() -> impl Strategy<Value = (Vec<Value>, Vec<Value>, Vec<Value>)> {
    let service = (pick(&["asm-egress-test", "svc", "ext"]), ns(), any::<bool>(), pick(&["ClusterIP", "ExternalName"]))
        .prop_map(|(name, ns, named, ty)| {
            let target = if named { json!("http-alt") } else { json!(8080) };
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"type": ty, "externalName": "edition.cnn.com", "selector": {"app": name},
                    "ports": [{"name": "http2", "port": 80, "targetPort": target}, {"name": "https", "port": 443}]}})
        });
    let pod = (pick(&["asm-egress-test", "svc"]), ns(), pick(&["10.1.1.1", "bad", ""]), any::<bool>(), any::<bool>())
        .prop_map(|(app, ns, ip, ready, mtls)| {
            let mut labels = json!({"app": app, "version": "v2"});
            if mtls {
                labels["security.istio.io/tlsMode"] = json!("istio");
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{app}-{ip}-{ready}"), "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "http-alt", "containerPort": 9090}]}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
        });
    let secret = (pick(&["cnn-cert", "client-cred", "cnn-cert-cacert"]), ns(), any::<bool>())
        .prop_map(|(name, ns, tls_keys)| {
            let data = if tls_keys { json!({"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}) } else { json!({"ca.crt": "Q0E="}) };
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data})
        });
    (
        prop::collection::vec(service, 0..3),
        prop::collection::vec(pod, 0..3),
        prop::collection::vec(secret, 0..3),
    )
}

fn custom<S: serde::de::DeserializeOwned + Default>(
    kind: &str,
    i: usize,
    (spec, ns): (Value, &str),
) -> egress_model::resources::CustomObject<S> {
    serde_json::from_value(json!({"metadata": meta(kind, i, ns), "spec": spec})).unwrap()
}

/// Add generated Kubernetes objects to `into`, skipping names already taken in a namespace
/// (an API server never holds two).
fn add_unique<T: serde::Serialize + serde::de::DeserializeOwned>(
    into: &mut Vec<T>,
    generated: Vec<Value>,
) {
    let key = |v: &Value| {
        (
            v["metadata"]["name"].to_string(),
            v["metadata"]["namespace"].to_string(),
        )
    };
    let mut seen: std::collections::BTreeSet<(String, String)> = into
        .iter()
        .map(|o| key(&serde_json::to_value(o).unwrap()))
        .collect();
    for v in generated {
        if seen.insert(key(&v)) {
            into.push(serde_json::from_value(v).unwrap());
        }
    }
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        prop::collection::vec(
            (
                maybe(prop_oneof![3 => Just("asm-egress-test"), 1 => Just("nope")]),
                prop::collection::vec(server(), 1..4),
                prop_oneof![3 => Just("aks-istio-egress"), 1 => ns()],
            ),
            1..3,
        ),
        prop::collection::vec(virtual_service(), 1..5),
        prop::collection::vec(destination_rule(), 0..3),
        prop::collection::vec(service_entry(), 1..4),
        kube_objects(),
        maybe(pick(&["10s", "bogus", "0s", "250ms"])),
        maybe(any::<bool>()),
        prop::bool::weighted(0.75),
    )
        .prop_map(|(gws, vss, drs, ses, (svcs, pods, secrets), timeout, telemetry, base)| {
            let mut inputs = if base {
                common::inputs(&format!("{}---{}", common::CNN_SE, common::GATEWAY_SERVICE))
            } else {
                Inputs::default()
            };
            for (i, (sel, servers, ns)) in gws.into_iter().enumerate() {
                let mut spec = json!({"servers": servers});
                if let Some(sel) = sel {
                    spec["selector"] = json!({"istio": sel});
                }
                let mut gw: egress_model::resources::CustomObject<egress_model::resources::gateway::Gateway> =
                    custom("gw", i, (spec, ns));
                gw.metadata.name = Some(if i == 0 { "egress".to_owned() } else { format!("egress-{i}") });
                inputs.gateways.push(gw);
            }
            inputs.virtual_services = vss.into_iter().enumerate().map(|(i, v)| custom("vs", i, v)).collect();
            inputs.destination_rules = drs.into_iter().enumerate().map(|(i, v)| custom("dr", i, v)).collect();
            inputs.service_entries.extend(ses.into_iter().enumerate().map(|(i, v)| custom("se", i, v)));
            add_unique(&mut inputs.services, svcs);
            add_unique(&mut inputs.pods, pods);
            add_unique(&mut inputs.secrets, secrets);
            inputs.mesh.connect_timeout = timeout.map(str::to_owned);
            inputs.mesh.default_http_retry_policy = Some(json!({"attempts": 1}));
            if let Some(disabled) = telemetry {
                inputs.telemetries.push(custom(
                    "tel",
                    0,
                    (json!({"accessLogging": [{"providers": [{"name": "envoy"}], "disabled": disabled}]}), "aks-istio-system"),
                ));
            }
            inputs
        })
}

fn reversed(i: &Inputs) -> Inputs {
    let mut r = i.clone();
    r.gateways.reverse();
    r.virtual_services.reverse();
    r.destination_rules.reverse();
    r.service_entries.reverse();
    r.services.reverse();
    r.pods.reverse();
    r.secrets.reverse();
    r.telemetries.reverse();
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compile_is_total_and_deterministic(inputs in inputs()) {
        let id = common::identity();
        let a = compile(&id, &inputs, 3);
        let b = compile(&id, &inputs, 3);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &compile(&id, &reversed(&inputs), 3));
        // Every cluster built is referenced under its own name.
        for (name, c) in &a.clusters {
            prop_assert_eq!(name, &c.name);
        }
    }
}
