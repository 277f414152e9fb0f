//! The objects a gateway reads, as JSON, per planned watch: a pure state machine driven by
//! watcher events. A (re)list is staged and swapped in on `InitDone`, so readers never see half
//! a relist; the generation moves on every visible change.

use std::collections::BTreeMap;

use kube::runtime::watcher::Event;
use serde_json::Value;

use crate::scope::WatchSpec;

type Key = (String, String);

#[derive(Debug, Clone)]
struct WatchState {
    spec: WatchSpec,
    objects: BTreeMap<Key, Value>,
    staged: Option<BTreeMap<Key, Value>>,
    listed: bool,
}

/// The cache of every planned watch.
#[derive(Debug, Clone)]
pub struct Cache {
    watches: Vec<WatchState>,
    generation: u64,
}

/// A consistent copy of the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSnapshot {
    /// The generation this copy reflects.
    pub generation: u64,
    /// Whether every watch has been listed at least once.
    pub ready: bool,
    /// Every object: the watch that holds it and its JSON.
    pub objects: Vec<(WatchSpec, Value)>,
}

fn key(v: &Value) -> Key {
    let field = |f: &str| {
        v.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("namespace"), field("name"))
}

impl Cache {
    /// An empty, not yet ready cache for these watches (indexed in this order).
    pub fn new(specs: Vec<WatchSpec>) -> Self {
        Self {
            watches: specs
                .into_iter()
                .map(|spec| WatchState {
                    spec,
                    objects: BTreeMap::new(),
                    staged: None,
                    listed: false,
                })
                .collect(),
            generation: 0,
        }
    }

    /// The watches, in index order.
    pub fn specs(&self) -> impl Iterator<Item = &WatchSpec> {
        self.watches.iter().map(|w| &w.spec)
    }

    /// Applies one watcher event of watch `index`; returns whether the visible state changed
    /// (and so the generation moved).
    pub fn apply(&mut self, index: usize, event: Event<Value>) -> bool {
        let Some(w) = self.watches.get_mut(index) else {
            return false;
        };
        let changed = match event {
            Event::Init => {
                w.staged = Some(BTreeMap::new());
                false
            }
            Event::InitApply(v) => {
                w.staged
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&v), v);
                false
            }
            Event::InitDone => {
                let staged = w.staged.take().unwrap_or_default();
                let changed = !w.listed || staged != w.objects;
                w.objects = staged;
                w.listed = true;
                changed
            }
            Event::Apply(v) => {
                let k = key(&v);
                if w.objects.get(&k) == Some(&v) {
                    false
                } else {
                    w.objects.insert(k, v);
                    true
                }
            }
            Event::Delete(v) => w.objects.remove(&key(&v)).is_some(),
        };
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// The current generation (0 until the first change).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether every watch has been listed at least once.
    pub fn ready(&self) -> bool {
        self.watches.iter().all(|w| w.listed)
    }

    /// The watches not listed yet (for logs while waiting).
    pub fn pending(&self) -> Vec<String> {
        self.watches
            .iter()
            .filter(|w| !w.listed)
            .map(|w| w.spec.describe())
            .collect()
    }

    /// A consistent copy of everything.
    pub fn snapshot(&self) -> CacheSnapshot {
        CacheSnapshot {
            generation: self.generation,
            ready: self.ready(),
            objects: self
                .watches
                .iter()
                .flat_map(|w| w.objects.values().map(|v| (w.spec.clone(), v.clone())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scope::{Scope, plan};

    fn obj(ns: &str, name: &str, host: &str) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
               "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"},
               "spec": {"hosts": [host]}})
    }

    fn cache() -> Cache {
        Cache::new(plan(&Scope {
            namespace: "egress".into(),
            ..Default::default()
        }))
    }

    fn list(c: &mut Cache, i: usize, objs: &[Value]) -> bool {
        let mut changed = c.apply(i, Event::Init);
        for o in objs {
            changed |= c.apply(i, Event::InitApply(o.clone()));
        }
        changed | c.apply(i, Event::InitDone)
    }

    #[test]
    fn ready_once_every_watch_listed() {
        let mut c = cache();
        let n = c.specs().count();
        for i in 0..n {
            assert!(!c.ready());
            assert!(list(&mut c, i, &[]), "first listing is a change");
        }
        assert!(c.ready());
        assert!(c.pending().is_empty());
        assert_eq!(c.generation(), n as u64);
    }

    #[test]
    fn a_relist_is_invisible_until_done_and_then_replaces_everything() {
        let mut c = cache();
        list(&mut c, 0, &[obj("a", "x", "x.com"), obj("a", "y", "y.com")]);
        let g = c.generation();
        assert!(!c.apply(0, Event::Init));
        assert!(!c.apply(0, Event::InitApply(obj("a", "y", "y.org"))));
        assert_eq!(c.snapshot().objects.len(), 2, "old state still visible");
        assert_eq!(c.generation(), g);
        assert!(c.apply(0, Event::InitDone));
        let objs: Vec<_> = c.snapshot().objects.into_iter().map(|(_, v)| v).collect();
        assert_eq!(objs, vec![obj("a", "y", "y.org")]);
        assert_eq!(c.generation(), g + 1);
    }

    #[test]
    fn identical_relist_and_identical_apply_do_not_move_the_generation() {
        let mut c = cache();
        list(&mut c, 0, &[obj("a", "x", "x.com")]);
        let g = c.generation();
        assert!(!list(&mut c, 0, &[obj("a", "x", "x.com")]));
        assert!(!c.apply(0, Event::Apply(obj("a", "x", "x.com"))));
        assert_eq!(c.generation(), g);
        assert!(c.apply(0, Event::Apply(obj("a", "x", "x.org"))));
        assert!(c.apply(0, Event::Delete(obj("a", "x", "x.org"))));
        assert!(!c.apply(0, Event::Delete(obj("a", "x", "x.org"))));
        assert_eq!(c.generation(), g + 2);
        assert!(c.snapshot().objects.is_empty());
    }

    #[test]
    fn unknown_watch_index_is_ignored() {
        let mut c = cache();
        assert!(!c.apply(999, Event::InitDone));
        assert_eq!(c.generation(), 0);
    }
}
