//! Istio's own validation corpus (`shared/conformance/istio`): every `*-valid.yaml` document is
//! accepted, every `*-invalid.yaml` document is rejected with a message containing its `_err`,
//! and Istio's valid pilot test configs validate cleanly. Prints the pass count per file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use egress_model::decode::{DecodeOptions, Outcome, decode_document};
use egress_model::yaml::parse_stream;

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
