//! kubectl's JSONPath templates (`printers::jsonpath`): parse, then run over a small
//! Kubernetes-like list with and without `allow_missing_keys`.
//!
//! Invariants: no panic; with missing keys allowed a template never fails for a missing key
//! where the strict run succeeded (allowing more can only turn errors into output), and the
//! two runs agree whenever both succeed. Not checked for filters (`[?(...)]`): an `exists`
//! filter takes a strict run's missing-key error to mean "absent", while the lenient run goes on
//! to a union's other alternatives, so `{.items[?(@.itemsat,)]}`
//! (`fuzz/findings/jsonpath/filter-union-strict-vs-lenient`) prints nothing strictly and every
//! item leniently; client-go's evaluator is built the same way. No panic is still asserted.
#![no_main]

use std::sync::OnceLock;

use egress_printers::jsonpath;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn data() -> &'static Value {
    static DATA: OnceLock<Value> = OnceLock::new();
    DATA.get_or_init(|| {
        serde_json::from_str(
            r#"{"kind":"List","apiVersion":"v1","items":[
              {"kind":"Pod","metadata":{"name":"curl-1","namespace":"default",
                "labels":{"app":"curl","tier":"front"},"annotations":{"a.b/c":"x"}},
               "spec":{"containers":[{"name":"curl","image":"curlimages/curl","ports":[{"containerPort":80}]},
                                     {"name":"istio-proxy","image":"proxyv2"}],"nodeName":"n1"},
               "status":{"phase":"Running","podIP":"10.0.0.5","conditions":[{"type":"Ready","status":"True"}]}},
              {"kind":"ServiceEntry","metadata":{"name":"cnn","namespace":"istio-system"},
               "spec":{"hosts":["edition.cnn.com"],"ports":[{"number":443,"name":"tls","protocol":"TLS"}],
                       "resolution":"DNS","weight":1.5,"enabled":true,"nothing":null}}
            ],"metadata":{"resourceVersion":""}}"#,
        )
        .unwrap_or(Value::Null)
    })
}

fuzz_target!(|data_in: &[u8]| {
    let Ok(text) = std::str::from_utf8(data_in) else {
        return;
    };
    let Ok(template) = jsonpath::parse(text) else {
        return;
    };
    let strict = template.execute(data(), false);
    let lenient = template.execute(data(), true);
    if let (Ok(s), false) = (&strict, text.contains("[?")) {
        assert_eq!(
            lenient.as_ref().ok(),
            Some(s),
            "allow_missing_keys changed {text:?}"
        );
    }
    let _ = template.find_results(data(), true);
});
