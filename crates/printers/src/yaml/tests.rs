//! Tests for the YAML/JSON emitters: exact kubectl layouts and a parse round trip.

use super::*;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn service_like_kubectl() {
    let svc = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": "curl",
            "namespace": "default",
            "labels": {"app": "curl"},
            "creationTimestamp": "2026-11-24T10:00:00Z"
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "curl"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "clusterIP": "10.0.128.17"
        },
        "status": {"loadBalancer": {}}
    });
    let expected = "\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: \"2026-11-24T10:00:00Z\"
  labels:
    app: curl
  name: curl
  namespace: default
spec:
  clusterIP: 10.0.128.17
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: curl
  type: ClusterIP
status:
  loadBalancer: {}
";
    assert_eq!(to_yaml(&svc), expected);
}

#[test]
fn scalars_are_quoted_only_when_needed() {
    let cases: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("80", "\"80\""),
        ("1.0", "\"1.0\""),
        ("0777", "\"0777\""),
        ("0x1F", "\"0x1F\""),
        ("1e3", "\"1e3\""),
        ("1_000", "\"1_000\""),
        ("yes", "\"yes\""),
        ("No", "\"No\""),
        ("on", "\"on\""),
        ("y", "\"y\""),
        ("true", "\"true\""),
        ("null", "\"null\""),
        ("~", "\"~\""),
        ("", "\"\""),
        (".inf", "\".inf\""),
        ("1:20", "\"1:20\""),
        ("2026-11-24", "\"2026-11-24\""),
        ("2026-11-24T10:00:00Z", "\"2026-11-24T10:00:00Z\""),
        ("2026-13-24", "2026-13-24"),
        ("<<", "\"<<\""),
        (" lead", "' lead'"),
        ("trail ", "'trail '"),
        ("a: b", "'a: b'"),
        ("a:b", "a:b"),
        ("key:", "'key:'"),
        ("a #b", "'a #b'"),
        ("a#b", "a#b"),
        ("*x", "'*x'"),
        ("&x", "'&x'"),
        ("!x", "'!x'"),
        ("- x", "'- x'"),
        ("-x", "-x"),
        ("-", "'-'"),
        ("---", "'---'"),
        ("?x", "?x"),
        ("[a]", "'[a]'"),
        ("{a}", "'{a}'"),
        ("a,b", "a,b"),
        ("@x", "'@x'"),
        ("`x", "'`x'"),
        ("%x", "'%x'"),
        ("'q", "'''q'"),
        ("\"q", "'\"q'"),
        ("it's", "it's"),
        ("tab\there", "\"tab\\there\""),
        ("emoji 😀", "\"emoji \\U0001F600\""),
        ("bell\u{7}", "\"bell\\a\""),
        ("ctl\u{1}", "\"ctl\\x01\""),
        ("café", "café"),
        ("10.0.0.1", "10.0.0.1"),
        ("1.2.3", "1.2.3"),
        ("v1", "v1"),
        ("1-2", "1-2"),
        ("+", "+"),
        ("edition.cnn.com", "edition.cnn.com"),
        ("*.cnn.com", "'*.cnn.com'"),
    ];
    for (input, want) in cases {
        let got = to_yaml(&json!({ "k": input }));
        assert_eq!(got, format!("k: {want}\n"), "input {input:?}");
    }
}

#[test]
fn keys_are_quoted_like_values() {
    let v = json!({"80": 1, "": 2, "yes": 3, "a b": 4, "-": 5});
    assert_eq!(
        to_yaml(&v),
        "\"\": 2\n'-': 5\n\"80\": 1\na b: 4\n\"yes\": 3\n"
    );
}

#[test]
fn key_order_is_go_yaml_natural_order() {
    let v = json!({"b": 1, "a10": 2, "a9": 3, "A": 4, "a-b": 5, "a": 6, "_x": 7});
    assert_eq!(
        to_yaml(&v),
        "_x: 7\nA: 4\na: 6\na-b: 5\na9: 3\na10: 2\nb: 1\n"
    );
}

#[test]
fn block_literals() {
    let v = json!({
        "a": "line1\nline2",
        "b": "with newline\n",
        "c": "keep\n\n",
        "d": " indented\nnext",
        "e": "trailing space \nx",
        "f": "\n"
    });
    let expected = "\
a: |-
  line1
  line2
b: |
  with newline
c: |+
  keep

d: |2-
   indented
  next
e: \"trailing space \\nx\"
f: |2+

";
    assert_eq!(to_yaml(&v), expected);
}

#[test]
fn nested_collections() {
    let v = json!({
        "spec": {"containers": [{"name": "c", "args": ["a", "b"], "env": []}], "empty": {}},
        "list": [[1, 2], {"x": null}, [], {}],
        "t": true,
        "f": 1.5,
        "i": -3,
        "big": 1e21,
        "whole": 100.0
    });
    let expected = "\
big: 1e+21
f: 1.5
i: -3
list:
- - 1
  - 2
- x: null
- []
- {}
spec:
  containers:
  - args:
    - a
    - b
    env: []
    name: c
  empty: {}
t: true
whole: 100
";
    assert_eq!(to_yaml(&v), expected);
}

#[test]
fn annotation_block_is_indented_under_its_key() {
    let v = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}\n"}}});
    let expected = "\
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {\"a\":1}
";
    assert_eq!(to_yaml(&v), expected);
}

#[test]
fn long_strings_fold_after_column_80() {
    let word = "abcdefghi";
    let text = [word; 12].join(" ");
    let got = to_yaml(&json!({ "k": text }));
    let first = [word; 8].join(" ");
    let second = [word; 4].join(" ");
    assert_eq!(got, format!("k: {first}\n  {second}\n"));
    let quoted = format!("'{}: x", [word; 10].join(" "));
    let got = to_yaml(&json!({ "k": quoted }));
    assert!(got.starts_with("k: '''abcdefghi"), "{got}");
    assert_eq!(got.lines().count(), 2, "{got}");
}

#[test]
fn long_and_multiline_keys_use_complex_form() {
    let long = "k".repeat(130);
    let v = json!({ long.clone(): 1, "a\nb": {"x": 1} });
    let got = to_yaml(&v);
    assert_eq!(got, format!("? |-\n  a\n  b\n: x: 1\n? {long}\n: 1\n"));
}

#[test]
fn top_level_scalars_and_lists() {
    assert_eq!(to_yaml(&json!("x")), "x\n");
    assert_eq!(to_yaml(&json!([1, "a"])), "- 1\n- a\n");
    assert_eq!(to_yaml(&json!({})), "{}\n");
    assert_eq!(to_yaml(&json!("a\nb")), "|-\n  a\n  b\n");
}

#[test]
fn json_like_kubectl() {
    let v = json!({"kind": "List", "items": [], "metadata": {"name": "<none>"}, "n": [1, 2.5]});
    let expected = "{\n    \"kind\": \"List\",\n    \"items\": [],\n    \"metadata\": {\n        \"name\": \"\\u003cnone\\u003e\"\n    },\n    \"n\": [\n        1,\n        2.5\n    ]\n}\n";
    assert_eq!(to_json(&v), expected);
}

#[test]
fn list_wrapper() {
    let l = list(vec![json!({"kind": "Pod"})]);
    assert_eq!(
        serde_json::to_string(&l).unwrap(),
        r#"{"apiVersion":"v1","items":[{"kind":"Pod"}],"kind":"List","metadata":{"resourceVersion":""}}"#
    );
    assert_eq!(
        to_yaml(&l),
        "apiVersion: v1\nitems:\n- kind: Pod\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
    );
}

fn tricky_string() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "null",
        "~",
        "true",
        "1.0",
        "0777",
        "0x1F",
        "1e3",
        "-",
        "---",
        "...",
        "",
        " ",
        "1:20",
        "2026-11-24",
        ".inf",
        ".5",
        "+1",
        "- x",
        "a: b",
        "#",
        "&a",
        "*a",
        "!t",
        "|",
        ">",
        "%",
        "@",
        "`",
        "?",
        ":",
        "'",
        "\"",
        "\\",
        "\n",
        "\r",
        "\t",
        "\u{85}",
        "\u{2028}",
        "\u{feff}",
        "\u{a0}",
        "é",
        "中",
        "😀",
        "\u{0}",
        "\u{7f}",
        "[",
        "]",
        "{",
        "}",
        ",",
        "word",
        "0",
        "08",
        "1_0",
        "abc def",
    ]);
    let piece = prop_oneof![words.prop_map(String::from), "[ -~]{0,6}", "\\PC{0,3}"];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn long_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z]{1,12}",
            Just(" ".to_string()),
            Just("  ".to_string()),
            Just(": x".to_string())
        ],
        0..40,
    )
    .prop_map(|p| p.concat())
}

fn float() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL.prop_filter("integral floats come back as integers", |f| {
        f.fract() != 0.0 || f.abs() >= 1.9e19
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        float().prop_map(|f| json!(f)),
        tricky_string().prop_map(Value::String),
        long_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..5).prop_map(|entries| {
                let mut m = Map::new();
                for (k, v) in entries {
                    // The model's parser treats any `<<` key as a merge key, even quoted.
                    if k != "<<" {
                        m.insert(k, v);
                    }
                }
                Value::Object(m)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn yaml_round_trips(v in json_value()) {
        let doc = json!({ "v": v.clone() });
        let text = to_yaml(&doc);
        let parsed = egress_model::yaml::parse_stream(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.len(), 1, "{}", text);
        prop_assert_eq!(&parsed[0].value, &doc, "{}", text);
        if !v.is_null() {
            let text = to_yaml(&v);
            let parsed = egress_model::yaml::parse_stream(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&parsed[0].value, &v, "{}", text);
        }
    }
}
