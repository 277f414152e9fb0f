//! Per-object last-good configuration. Every configuration source (the store, a directory, the
//! Kubernetes API server) reads each object on its own: one that cannot be read or fails
//! validation never blocks the others. [`LastGood::merge`] takes one full reading of the source
//! and returns the objects in effect: every good object as read (objects no longer read are
//! deleted), and for each bad one its last good version (or nothing when it never had one),
//! with a report naming it. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use egress_model::Resource;

/// Which object: kind, namespace (none for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// The kind (`VirtualService`).
    pub kind: String,
    /// The namespace, when namespaced.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectId {
    /// An id from its parts.
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> ObjectId {
        ObjectId {
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One object as a source read it. (A `Resource` is large; reads are moved, not copied.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Read {
    /// Read and valid.
    Good(Resource),
    /// Unreadable or invalid: every problem (file, line and field where known).
    Bad(Vec<String>),
    /// Unreadable as stored (a file damaged by hand), while the store's journal still holds
    /// the object as last committed and that version is valid: the problems, and that
    /// version, which is what was declared and so what stays in effect.
    Damaged {
        /// Why the stored object cannot be read.
        problems: Vec<String>,
        /// The object as last committed.
        committed: Resource,
    },
}

/// One object as read, with the unit (file) it came from, if any.
pub type Reading = (ObjectId, Option<String>, Read);

/// What happened to a bad object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Held {
    /// Its last good version stays in effect.
    LastGood,
    /// It never had a good version: absent.
    Refused,
}

impl Held {
    /// The metric label value (`last_good`, `refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Held::LastGood => "last_good",
            Held::Refused => "refused",
        }
    }
}

/// A bad object and what is in effect for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object.
    pub id: ObjectId,
    /// Whether its last good version is in effect.
    pub held: Held,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// The result of one merge.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// The objects in effect.
    pub resources: Vec<Resource>,
    /// Whether they differ from the previous merge's.
    pub changed: bool,
    /// The bad objects, by id.
    pub problems: Vec<Problem>,
}

impl Merged {
    /// Bad objects counted by (kind, held), for a gauge.
    pub fn counts(&self) -> BTreeMap<(String, Held), u64> {
        let mut out = BTreeMap::new();
        for p in &self.problems {
            *out.entry((p.id.kind.clone(), p.held)).or_insert(0) += 1;
        }
        out
    }

    /// Every problem as one log line each: `<Kind> <ns>/<name> (last good version kept | not
    /// applied): <problem>`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.problems {
            let what = match p.held {
                Held::LastGood => "last good version kept",
                Held::Refused => "not applied, no good version",
            };
            for e in &p.problems {
                out.push(format!("{} ({what}): {e}", p.id));
            }
        }
        out
    }
}

/// The last good version of every object a source has shown, keyed by [`ObjectId`].
#[derive(Debug, Default, Clone)]
pub struct LastGood {
    good: BTreeMap<ObjectId, Resource>,
    origins: BTreeMap<ObjectId, String>,
}

impl LastGood {
    /// An empty record.
    pub fn new() -> LastGood {
        LastGood::default()
    }

    /// Merges one full reading: `reads` are every object the source holds now (an object
    /// missing from it was deleted), each with the unit it came from (a file; `None` for the
    /// store and the API server). `lost_origins` are units that could not be read at all
    /// (a file that does not parse): objects last seen there and not read elsewhere keep
    /// their last good version.
    pub fn merge(
        &mut self,
        reads: impl IntoIterator<Item = Reading>,
        lost_origins: &BTreeSet<String>,
    ) -> Merged {
        let mut good = BTreeMap::new();
        let mut origins = BTreeMap::new();
        let mut problems: BTreeMap<ObjectId, Problem> = BTreeMap::new();
        let mut committed: BTreeMap<ObjectId, Resource> = BTreeMap::new();
        for (id, origin, read) in reads {
            let found = match read {
                Read::Good(r) => {
                    problems.remove(&id);
                    if let Some(o) = origin {
                        origins.insert(id.clone(), o);
                    }
                    good.insert(id, r);
                    continue;
                }
                Read::Bad(found) => found,
                Read::Damaged {
                    problems: found,
                    committed: last,
                } => {
                    committed.insert(id.clone(), last);
                    found
                }
            };
            if good.contains_key(&id) {
                continue;
            }
            let entry = problems.entry(id.clone()).or_insert_with(|| Problem {
                id: id.clone(),
                held: Held::Refused,
                problems: Vec::new(),
            });
            entry.problems.extend(found);
            if let Some(o) = origin {
                origins.insert(id, o);
            }
        }
        for (id, problem) in &mut problems {
            // The journal's committed version is the declared one; the version this record
            // last saw good is the fallback.
            if let Some(last) = committed.remove(id).or_else(|| self.good.get(id).cloned()) {
                problem.held = Held::LastGood;
                good.insert(id.clone(), last);
            }
        }
        for (id, last) in &self.good {
            let Some(origin) = self.origins.get(id) else {
                continue;
            };
            if lost_origins.contains(origin) && !good.contains_key(id) && !problems.contains_key(id)
            {
                good.insert(id.clone(), last.clone());
                origins.insert(id.clone(), origin.clone());
                problems.insert(
                    id.clone(),
                    Problem {
                        id: id.clone(),
                        held: Held::LastGood,
                        problems: vec![format!("{origin} could not be read")],
                    },
                );
            }
        }
        let changed = good != self.good;
        self.good = good;
        self.origins = origins;
        Merged {
            resources: self.good.values().cloned().collect(),
            changed,
            problems: problems.into_values().collect(),
        }
    }
}

#[cfg(test)]
#[path = "lastgood_tests.rs"]
mod tests;
