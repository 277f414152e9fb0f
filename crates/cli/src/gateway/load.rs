//! Reading a gateway's configuration source object by object (the store, a directory of YAML
//! files, the Kubernetes API server's cache) into [`LastGood`], so one bad object never blocks
//! the others: they apply, deletions included, and the bad one keeps its last good version.

use std::collections::BTreeSet;
use std::path::Path;

use egress_cluster::lastgood::{LastGood, Merged, ObjectId, Read, Reading};
use egress_model::{DecodeOptions, Outcome, decode_file};

use super::ConfigSource;
use super::settle;

/// The result of reading a source once.
#[derive(Debug)]
pub enum Loaded {
    /// Read: the objects in effect, the problems of the source itself (a file that does not
    /// parse), and a key of the source's content (resourceVersion, generation, fingerprint).
    Read {
        /// The merge with the last good versions.
        merged: Merged,
        /// Problems not tied to one object (each already names its file).
        source_problems: Vec<String>,
        /// The source's content key.
        key: u64,
    },
    /// The source could not be read at all (an unreadable store `meta.json`, a missing
    /// directory): nothing changes.
    Failed(String),
    /// A directory's files are still being written: nothing is read until they settle.
    Unsettled(Vec<String>),
}

/// Reads `source` once and merges it into `last_good`.
pub fn load(source: &ConfigSource, namespace: &str, last_good: &mut LastGood) -> Loaded {
    let (reads, lost, source_problems, key) = match source {
        ConfigSource::Store(store) => match egress_cluster::config::read_store(store) {
            Ok((reads, rv)) => (reads, BTreeSet::new(), Vec::new(), rv),
            Err(e) => return Loaded::Failed(e),
        },
        ConfigSource::Kube(source) => {
            let (reads, generation) = read_kube(source);
            (reads, BTreeSet::new(), Vec::new(), generation)
        }
        ConfigSource::Dir(dir) => match read_dir(dir, namespace) {
            DirRead::Read {
                reads,
                lost,
                problems,
                key,
            } => (reads, lost, problems, key),
            DirRead::Failed(e) => return Loaded::Failed(e),
            DirRead::Unsettled(files) => return Loaded::Unsettled(files),
        },
    };
    let merged = last_good.merge(reads, &lost);
    Loaded::Read {
        merged,
        source_problems,
        key,
    }
}

/// The Kubernetes source's cache, object by object, through the store's decode and
/// validation rules; the key is the cache generation.
fn read_kube(source: &egress_kube::KubeSource) -> (Vec<Reading>, u64) {
    let snapshot = source.snapshot();
    let mut out = Vec::new();
    for (spec, v) in &snapshot.objects {
        let Some(info) = spec.info() else {
            continue;
        };
        let meta = v.get("metadata");
        let field = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(serde_json::Value::as_str)
        };
        let id = ObjectId::new(info.kind, field("namespace"), field("name").unwrap_or(""));
        let read = match egress_cluster::config::decode_object(info, v) {
            Ok(r) => Read::Good(r),
            Err(problems) => Read::Bad(problems),
        };
        out.push((id, None, read));
    }
    (out, snapshot.generation)
}

/// A directory read once.
enum DirRead {
    Read {
        reads: Vec<Reading>,
        lost: BTreeSet<String>,
        problems: Vec<String>,
        key: u64,
    },
    Failed(String),
    Unsettled(Vec<String>),
}

/// Reads a directory's settled files (see [`settle`]) object by object; a file that does not
/// parse at all is a lost unit whose objects keep their last good versions.
fn read_dir(dir: &Path, namespace: &str) -> DirRead {
    let sources = match settle::read_settled(dir) {
        Ok(settle::Settled::Files(sources)) => sources,
        Ok(settle::Settled::Busy(files)) => return DirRead::Unsettled(files),
        Err(e) => return DirRead::Failed(e.to_string()),
    };
    let opts = DecodeOptions {
        default_namespace: Some(namespace.to_owned()),
        enforce_namespace: false,
    };
    let mut reads = Vec::new();
    let mut lost = BTreeSet::new();
    let mut problems = Vec::new();
    for src in &sources {
        for outcome in decode_file(&src.name, &src.text, &opts) {
            match outcome {
                Outcome::Valid(d) => {
                    let id = ObjectId::new(d.info.kind, d.namespace(), d.name());
                    reads.push((id, Some(src.name.clone()), Read::Good(d.resource)));
                }
                Outcome::Invalid(diags) => {
                    let errors: Vec<String> = diags
                        .iter()
                        .filter(|d| d.is_error())
                        .map(ToString::to_string)
                        .collect();
                    let object = diags
                        .iter()
                        .filter_map(|d| d.object.as_ref())
                        .find(|o| !o.kind.is_empty() && !o.name.is_empty());
                    match object {
                        Some(o) => {
                            // Defaulted like the valid objects' namespaces.
                            let ns = match (&o.namespace, o.kind.as_str()) {
                                (Some(ns), _) => Some(ns.as_str()),
                                (None, "Namespace") => None,
                                (None, _) => Some(namespace),
                            };
                            let id = ObjectId::new(&o.kind, ns, &o.name);
                            reads.push((id, Some(src.name.clone()), Read::Bad(errors)));
                        }
                        None => {
                            lost.insert(src.name.clone());
                            problems.extend(errors);
                        }
                    }
                }
                Outcome::Unsupported { .. } => {}
            }
        }
    }
    DirRead::Read {
        reads,
        lost,
        problems,
        key: fingerprint(&sources),
    }
}

fn fingerprint(sources: &[crate::input::Source]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in sources {
        s.name.hash(&mut h);
        s.text.hash(&mut h);
    }
    h.finish()
}
