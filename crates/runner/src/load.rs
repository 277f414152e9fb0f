//! Reading a gateway's configuration source object by object (the store, a directory of YAML
//! files, the Kubernetes API server's cache) into [`LastGood`], so one bad object never blocks
//! the others: they apply, deletions included, and the bad one keeps its last good version.
//! Incremental: a [`Reader`] remembers what each object (each file, for a directory) decoded
//! to, and decodes and validates only what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use egress_model::{DecodeOptions, Outcome, decode_file};

use crate::decode::{DecodeCache, object_id, read_store};
use crate::lastgood::{LastGood, Merged, ObjectId, Read, Reading};
use crate::settle;
use crate::source::ConfigSource;

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

/// What one file of a directory gave, by its text's hash.
#[derive(Debug, Clone)]
struct FileRead {
    hash: u64,
    reads: Vec<Reading>,
    lost: bool,
    problems: Vec<String>,
}

/// Reads a source again and again, decoding only what changed since the last reading.
#[derive(Debug, Default)]
pub struct Reader {
    objects: DecodeCache,
    files: BTreeMap<String, FileRead>,
    /// Files decoded (not found unchanged) since the reader was made.
    files_decoded: u64,
}

impl Reader {
    /// A reader that has read nothing yet.
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Objects (for a directory: files) decoded and validated so far; unchanged ones read
    /// again are not counted.
    pub fn decoded(&self) -> u64 {
        self.objects.decoded() + self.files_decoded
    }

    /// Reads `source` once and merges it into `last_good`.
    pub fn load(
        &mut self,
        source: &ConfigSource,
        namespace: &str,
        last_good: &mut LastGood,
    ) -> Loaded {
        let (reads, lost, source_problems, key) = match source {
            ConfigSource::Store(store) => match read_store(store, &mut self.objects) {
                Ok((reads, rv)) => (reads, BTreeSet::new(), Vec::new(), rv),
                Err(e) => return Loaded::Failed(e.to_string()),
            },
            ConfigSource::Kube(source) => {
                let (reads, generation) = self.read_kube(source);
                (reads, BTreeSet::new(), Vec::new(), generation)
            }
            ConfigSource::Dir(dir) => match self.read_dir(dir, namespace) {
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
    fn read_kube(&mut self, source: &egress_kube::KubeSource) -> (Vec<Reading>, u64) {
        let snapshot = source.snapshot();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (spec, v) in &snapshot.objects {
            let Some(info) = spec.info() else {
                continue;
            };
            let id = object_id(info, v);
            let read = self.objects.read(&id, info, v);
            seen.insert(id.clone());
            out.push((id, None, read));
        }
        self.objects.retain(&seen);
        (out, snapshot.generation)
    }

    /// Reads a directory's settled files (see [`settle`]) object by object; a file that does
    /// not parse at all is a lost unit whose objects keep their last good versions. A file
    /// whose text did not change is not decoded again.
    fn read_dir(&mut self, dir: &Path, namespace: &str) -> DirRead {
        let sources = match settle::read_settled(dir) {
            Ok(settle::Settled::Files(sources)) => sources,
            Ok(settle::Settled::Busy(files)) => return DirRead::Unsettled(files),
            Err(e) => return DirRead::Failed(e.to_string()),
        };
        let mut reads = Vec::new();
        let mut lost = BTreeSet::new();
        let mut problems = Vec::new();
        let mut files = BTreeMap::new();
        for src in &sources {
            let hash = text_hash(&src.text);
            let file = match self.files.remove(&src.name) {
                Some(f) if f.hash == hash => f,
                _ => {
                    self.files_decoded += 1;
                    read_file(src, namespace, hash)
                }
            };
            reads.extend(file.reads.iter().cloned());
            if file.lost {
                lost.insert(src.name.clone());
            }
            problems.extend(file.problems.iter().cloned());
            files.insert(src.name.clone(), file);
        }
        self.files = files;
        DirRead::Read {
            reads,
            lost,
            problems,
            key: fingerprint(&sources),
        }
    }
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

/// Decodes one file of a directory.
fn read_file(src: &crate::files::Source, namespace: &str, hash: u64) -> FileRead {
    let opts = DecodeOptions {
        default_namespace: Some(namespace.to_owned()),
        enforce_namespace: false,
    };
    let mut reads = Vec::new();
    let mut lost = false;
    let mut problems = Vec::new();
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
                        lost = true;
                        problems.extend(errors);
                    }
                }
            }
            Outcome::Unsupported { .. } => {}
        }
    }
    FileRead {
        hash,
        reads,
        lost,
        problems,
    }
}

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn fingerprint(sources: &[crate::files::Source]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in sources {
        s.name.hash(&mut h);
        s.text.hash(&mut h);
    }
    h.finish()
}
