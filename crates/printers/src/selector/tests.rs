//! Tests for label selectors: syntax, matching, and apimachinery's error texts.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn matching() {
    let l = labels(&[("app", "curl"), ("tier", "web"), ("replicas", "3")]);
    let yes = [
        "",
        "app=curl",
        "app==curl",
        "app!=nginx",
        "app in (curl,nginx)",
        "app notin (nginx)",
        "app",
        "!missing",
        "app=curl,tier=web",
        " app = curl , tier in ( web ) ",
        "missing!=x",
        "missing notin (x)",
        "replicas>2",
        "replicas<4",
    ];
    for s in yes {
        assert!(parse(s).unwrap().matches(&l), "{s:?} should match");
    }
    let no = [
        "app=nginx",
        "app!=curl",
        "app in (nginx)",
        "app notin (curl)",
        "missing",
        "!app",
        "app=curl,tier=db",
        "missing=x",
        "missing in (x)",
        "replicas>3",
        "tier>1",
        "app=",
    ];
    for s in no {
        assert!(!parse(s).unwrap().matches(&l), "{s:?} should not match");
    }
    let json_labels = json!({"app": "curl"});
    assert!(
        parse("app=curl")
            .unwrap()
            .matches(json_labels.as_object().unwrap())
    );
    assert!(
        parse("app=curl")
            .unwrap()
            .matches_object(&json!({"metadata": {"labels": {"app": "curl"}}}))
    );
    assert!(
        parse("!app")
            .unwrap()
            .matches_object(&json!({"metadata": {}}))
    );
    assert!(parse("x=").unwrap().matches(&labels(&[("x", "")])));
}

#[test]
fn display_is_canonical() {
    let s = parse("tier notin (b,a),app=curl,!gone,env,x==y,n>1").unwrap();
    assert_eq!(
        s.to_string(),
        "app=curl,env,!gone,n>1,tier notin (a,b),x==y"
    );
    let from = Selector::from_label_selector(&json!({
        "matchLabels": {"app": "curl"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}, {"key": "z", "operator": "Exists"}]
    }))
    .unwrap();
    assert_eq!(from.to_string(), "app=curl,tier in (api,web),z");
    assert!(
        Selector::from_label_selector(&json!({}))
            .unwrap()
            .is_empty()
    );
    let bad = Selector::from_label_selector(
        &json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}),
    );
    assert_eq!(
        bad.unwrap_err().to_string(),
        "\"Gt\" is not a valid label selector operator"
    );
}

#[test]
fn errors_in_apimachinery_words() {
    let cases: &[(&str, &str)] = &[
        ("app=", ""),
        (
            "app=my app",
            "found 'app', expected: ',' or 'end of string'",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "=x",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        (
            "a in x",
            "unable to parse requirement: found 'x' expected: '('",
        ),
        (
            "a in (x",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (x y)",
            "unable to parse requirement: found 'y', expected: ',' or ')'",
        ),
        (
            "a in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "-a=b",
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "app=-x",
            "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        (
            "Example.com/a=b",
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            "a/b/c",
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "a=!",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        (
            "a=~",
            "unable to parse requirement: values[0][a]: Invalid value: \"~\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
    ];
    for (input, want) in cases {
        match parse(input) {
            Ok(_) if want.is_empty() => {}
            Ok(s) => panic!("{input:?} parsed as {s}"),
            Err(e) => assert_eq!(e.to_string(), *want, "input {input:?}"),
        }
    }
    let long = format!("a={}", "v".repeat(64));
    let err = parse(&long).unwrap_err().to_string();
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    let err = parse(&format!("{}=x", "k".repeat(64)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("name part must be no more than 63 characters"),
        "{err}"
    );
}

#[test]
fn in_with_empty_members() {
    let s = parse("a in (,x)").unwrap();
    assert_eq!(s.requirements()[0].values(), ["", "x"]);
    assert!(s.matches(&labels(&[("a", "")])));
    let s = parse("a in ()").unwrap();
    assert_eq!(s.requirements()[0].values(), [""]);
}

proptest! {
    #[test]
    fn parser_never_panics(s in "[a-z0-9=!(),<> ./_\\-\t\n]{0,40}") {
        if let Ok(sel) = parse(&s) {
            let _ = sel.matches(&labels(&[("a", "1"), ("b", "x")]));
            let again = parse(&sel.to_string());
            prop_assert!(again.is_ok(), "{} -> {}", s, sel);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
    }
}
