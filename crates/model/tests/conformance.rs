//! Istio's own validation corpus (`shared/conformance/istio`): every `*-valid.yaml` document is
//! accepted, every `*-invalid.yaml` document is rejected with a message containing its `_err`,
//! and Istio's valid pilot test configs validate cleanly. Prints the pass count per file.
//!
//! Also the cases of Istio's table-driven validation tests (`validation_test.go` and its
//! siblings), restated as data in `tests/conformance/istio_cases.yaml`: each valid case is
//! accepted, each invalid one rejected (with Istio's error text when the Go test states one),
//! and a table of pass counts per Go test function is printed. Cases egress is known to disagree
//! on carry `known_gap` with the reason; one that starts passing fails the test too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use egress_model::decode::{DecodeOptions, Outcome, decode_document};
use egress_model::diag::Diagnostic;
use egress_model::kinds::KINDS;
use egress_model::yaml::parse_stream;
use serde_json::{Value, json};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/istio");
    dir.is_dir().then_some(dir)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

#[test]
fn istio_validation_corpus() {
    let Some(root) = corpus() else {
        egress_testkit::skip("shared/conformance/istio not found beside the repository");
        return;
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for file in yaml_files(&root.join("validation")) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let invalid = name.ends_with("-invalid.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = parse_stream(&text).unwrap();
        let (mut passed, count) = (0, docs.len());
        for mut doc in docs {
            let expected = doc
                .value
                .as_object_mut()
                .and_then(|m| m.remove("_err"))
                .and_then(|v| v.as_str().map(str::to_owned));
            let label = format!("{name} document {}", doc.index + 1);
            let outcome = decode_document(&name, doc, &opts());
            match (invalid, expected, outcome) {
                (false, _, Outcome::Valid(_)) => passed += 1,
                (false, _, other) => {
                    failures.push(format!("{label}: expected valid, got {:?}", render(&other)))
                }
                (true, Some(want), Outcome::Invalid(diags)) => {
                    if diags.iter().any(|d| d.to_string().contains(&want)) {
                        passed += 1;
                    } else {
                        failures.push(format!(
                            "{label}: want an error containing {want:?}, got {:?}",
                            render(&Outcome::Invalid(diags))
                        ));
                    }
                }
                (true, want, other) => failures.push(format!(
                    "{label}: expected rejection ({want:?}), got {:?}",
                    render(&other)
                )),
            }
        }
        total += count;
        println!("{name}: {passed}/{count} passed");
    }
    for file in yaml_files(&root.join("valid-configs")) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = parse_stream(&text).unwrap();
        let (mut passed, count) = (0, docs.len());
        for doc in docs {
            let label = format!("{name} document {}", doc.index + 1);
            match decode_document(&name, doc, &opts()) {
                Outcome::Valid(_) => passed += 1,
                Outcome::Unsupported { object, .. } => {
                    println!(
                        "  {label}: {object} is a kind egress does not model (unsupported, not invalid)"
                    );
                    passed += 1;
                }
                other => {
                    failures.push(format!("{label}: expected valid, got {:?}", render(&other)))
                }
            }
        }
        total += count;
        println!("valid-configs/{name}: {passed}/{count} passed");
    }
    assert!(total > 0, "the corpus had no documents");
    assert!(
        failures.is_empty(),
        "{} of {total} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn render(o: &Outcome) -> Vec<String> {
    match o {
        Outcome::Valid(_) => vec!["valid".into()],
        Outcome::Unsupported { object, .. } => vec![format!("unsupported {object}")],
        Outcome::Invalid(d) => d.iter().map(ToString::to_string).collect(),
    }
}

/// One case of `tests/conformance/istio_cases.yaml`.
struct Case {
    source: String,
    name: String,
    object: Value,
    valid: bool,
    error: Option<String>,
    warning: Option<String>,
    /// Whether any warning is expected (the Go tests that check only that one is given).
    warns: Option<bool>,
    known_gap: Option<String>,
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn load_cases() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/istio_cases.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = parse_stream(&text).unwrap();
    let mut cases = Vec::new();
    for doc in docs {
        for (i, c) in doc.value.as_array().unwrap().iter().enumerate() {
            let at = format!("case {} ({:?})", i + 1, c.get("name"));
            let known = [
                "source",
                "name",
                "kind",
                "apiVersion",
                "wrap",
                "metadata",
                "spec",
                "valid",
                "error",
                "warning",
                "warns",
                "known_gap",
            ];
            for key in c.as_object().unwrap().keys() {
                assert!(known.contains(&key.as_str()), "{at}: unknown key {key}");
            }
            let kind = str_field(c, "kind").unwrap_or_else(|| panic!("{at}: no kind"));
            let api_version = str_field(c, "apiVersion").unwrap_or_else(|| {
                KINDS
                    .iter()
                    .find(|k| k.kind == kind)
                    .unwrap_or_else(|| panic!("{at}: egress does not model {kind}"))
                    .api_version()
            });
            let metadata = c
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| json!({"name": "foo", "namespace": "bar"}));
            let mut object = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
            if let Some(spec) = c.get("spec") {
                object["spec"] = spec.clone();
            }
            let valid = c
                .get("valid")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| panic!("{at}: valid must be true or false"));
            let case = Case {
                source: str_field(c, "source").unwrap_or_else(|| panic!("{at}: no source")),
                name: str_field(c, "name").unwrap_or_else(|| panic!("{at}: no name")),
                object,
                valid,
                error: str_field(c, "error"),
                warning: str_field(c, "warning"),
                warns: c.get("warns").and_then(Value::as_bool),
                known_gap: str_field(c, "known_gap"),
            };
            assert!(
                valid || case.warning.is_none(),
                "{at}: a warning is only expected of a valid case"
            );
            assert!(
                !valid || case.error.is_none(),
                "{at}: an error is only expected of an invalid case"
            );
            cases.push(case);
        }
    }
    cases
}

/// How one case fared.
#[derive(Default)]
struct Verdict {
    /// Valid and accepted, or invalid and rejected.
    outcome_right: bool,
    /// The expected error or warning text was found (true when none is expected).
    message_right: bool,
    /// What egress said, for the failure list.
    got: Vec<String>,
}

fn judge(case: &Case) -> Verdict {
    let text = serde_json::to_string(&case.object).unwrap();
    let doc = parse_stream(&text).unwrap().remove(0);
    let outcome = decode_document("case.yaml", doc, &opts());
    let diags = outcome.diagnostics();
    let mentions = |want: &Option<String>, errors: bool| match want {
        None => true,
        Some(w) => diags
            .iter()
            .filter(|d: &&Diagnostic| d.is_error() == errors)
            .any(|d| d.to_string().contains(w.as_str())),
    };
    let outcome_right = match (&outcome, case.valid) {
        (Outcome::Valid(_), true) | (Outcome::Invalid(_), false) => true,
        (Outcome::Valid(_) | Outcome::Invalid(_), _) | (Outcome::Unsupported { .. }, _) => false,
    };
    let warned = diags.iter().any(|d| !d.is_error());
    let message_right = if case.valid {
        mentions(&case.warning, false) && case.warns.is_none_or(|w| w == warned)
    } else {
        mentions(&case.error, true)
    };
    Verdict {
        outcome_right,
        message_right,
        got: render(&outcome),
    }
}

#[derive(Default)]
struct Row {
    cases: usize,
    passed: usize,
    accepted_valid: usize,
    valid: usize,
    rejected_invalid: usize,
    invalid: usize,
    matched: usize,
    with_message: usize,
    known_gaps: usize,
}

#[test]
fn istio_go_test_cases() {
    let cases = load_cases();
    assert!(cases.len() >= 480, "only {} cases", cases.len());
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let v = judge(case);
        let pass = v.outcome_right && v.message_right;
        let idx = match rows.iter().position(|(s, _)| *s == case.source) {
            Some(i) => i,
            None => {
                rows.push((case.source.clone(), Row::default()));
                rows.len() - 1
            }
        };
        let row = &mut rows[idx].1;
        row.cases += 1;
        row.passed += usize::from(pass);
        if case.valid {
            row.valid += 1;
            row.accepted_valid += usize::from(v.outcome_right);
        } else {
            row.invalid += 1;
            row.rejected_invalid += usize::from(v.outcome_right);
        }
        if case.error.is_some() || case.warning.is_some() || (case.valid && case.warns.is_some()) {
            row.with_message += 1;
            row.matched += usize::from(v.outcome_right && v.message_right);
        }
        let label = format!("{} / {:?}", case.source, case.name);
        match (&case.known_gap, pass) {
            (None, true) => {}
            (Some(_), false) => row.known_gaps += 1,
            (None, false) => {
                let want = match (case.valid, &case.error, &case.warning) {
                    (true, _, Some(w)) => format!("valid, warning containing {w:?}"),
                    (true, _, None) => match case.warns {
                        Some(true) => "valid, with a warning".to_owned(),
                        Some(false) => "valid, without warnings".to_owned(),
                        None => "valid".to_owned(),
                    },
                    (false, Some(e), _) => format!("invalid, error containing {e:?}"),
                    (false, None, _) => "invalid".to_owned(),
                };
                failures.push(format!(
                    "{label}: want {want}, got {:?}\n    {}",
                    v.got, case.object
                ));
            }
            (Some(why), true) => failures.push(format!(
                "{label}: listed as a known gap ({why}) but now passes; drop known_gap"
            )),
        }
    }
    print_table(&rows);
    assert!(
        failures.is_empty(),
        "{} of {} Istio test cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn print_table(rows: &[(String, Row)]) {
    let width = rows.iter().map(|(s, _)| s.len()).max().unwrap_or(0).max(6);
    println!(
        "{:width$}  {:>5}  {:>6}  {:>14}  {:>16}  {:>15}  {:>10}",
        "source",
        "cases",
        "passed",
        "accepted-valid",
        "rejected-invalid",
        "message-matched",
        "known-gaps"
    );
    let mut total = Row::default();
    for (source, r) in rows {
        print_row(source, r, width);
        total.cases += r.cases;
        total.passed += r.passed;
        total.accepted_valid += r.accepted_valid;
        total.valid += r.valid;
        total.rejected_invalid += r.rejected_invalid;
        total.invalid += r.invalid;
        total.matched += r.matched;
        total.with_message += r.with_message;
        total.known_gaps += r.known_gaps;
    }
    print_row("total", &total, width);
}

fn print_row(source: &str, r: &Row, width: usize) {
    println!(
        "{source:width$}  {:>5}  {:>6}  {:>14}  {:>16}  {:>15}  {:>10}",
        r.cases,
        r.passed,
        format!("{}/{}", r.accepted_valid, r.valid),
        format!("{}/{}", r.rejected_invalid, r.invalid),
        format!("{}/{}", r.matched, r.with_message),
        r.known_gaps
    );
}
