//! The live configuration source: one `kube::runtime::watcher` per planned watch feeding the
//! [`Cache`], with the cache's generation published on a tokio watch channel.

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, TypeMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::cache::{Cache, CacheSnapshot};
use crate::scope::{Namespace, Scope, WatchSpec, plan};

struct Inner {
    cache: Mutex<Cache>,
    generation: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

/// The API server as a gateway's configuration source. Cheap to clone; the watches stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct KubeSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("generation", &*self.inner.generation.borrow())
            .finish_non_exhaustive()
    }
}

impl KubeSource {
    /// Starts the watches `scope` plans on the current tokio runtime.
    pub fn start(client: kube::Client, scope: &Scope) -> Result<Self, Error> {
        let specs = plan(scope);
        let mut resources = Vec::new();
        for s in &specs {
            let ar = s.api_resource().ok_or_else(|| Error::UnknownKind {
                group: s.group.to_owned(),
                kind: s.kind.to_owned(),
            })?;
            resources.push(ar);
        }
        let (generation, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            cache: Mutex::new(Cache::new(specs.clone())),
            generation,
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&inner);
        let tasks: Vec<JoinHandle<()>> = specs
            .into_iter()
            .zip(resources)
            .enumerate()
            .map(|(index, (spec, ar))| {
                tokio::spawn(run_watch(client.clone(), index, spec, ar, weak.clone()))
            })
            .collect();
        *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        Ok(Self { inner })
    }

    /// A consistent copy of every object (and whether every watch has listed once).
    pub fn snapshot(&self) -> CacheSnapshot {
        self.lock().snapshot()
    }

    /// The cache generation, moving on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// The watches not listed yet.
    pub fn pending(&self) -> Vec<String> {
        self.lock().pending()
    }

    /// Resolves once every watch has listed once.
    pub async fn ready(&self) {
        let mut rx = self.subscribe();
        loop {
            if self.lock().ready() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_json(ar: &ApiResource, mut obj: DynamicObject) -> Value {
    if obj.types.is_none() {
        obj.types = Some(TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
    }
    serde_json::to_value(&obj).unwrap_or(Value::Null)
}

async fn run_watch(
    client: kube::Client,
    index: usize,
    spec: WatchSpec,
    ar: ApiResource,
    inner: std::sync::Weak<Inner>,
) {
    let api: Api<DynamicObject> = match &spec.namespace {
        Namespace::All => Api::all_with(client, &ar),
        Namespace::One(ns) => Api::namespaced_with(client, ns, &ar),
    };
    let mut config = watcher::Config::default();
    if let Some(f) = &spec.field_selector {
        config = config.fields(f);
    }
    if let Some(l) = &spec.label_selector {
        config = config.labels(l);
    }
    let what = spec.describe();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(watch = %what, "watch failed, retrying with backoff: {e}");
                continue;
            }
        };
        let event = match event {
            Event::Apply(o) => Event::Apply(to_json(&ar, o)),
            Event::Delete(o) => Event::Delete(to_json(&ar, o)),
            Event::Init => Event::Init,
            Event::InitApply(o) => Event::InitApply(to_json(&ar, o)),
            Event::InitDone => Event::InitDone,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let published = {
            let mut cache = inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.apply(index, event).then(|| cache.generation())
        };
        if let Some(g) = published {
            tracing::debug!(watch = %what, generation = g, "configuration changed");
            inner.generation.send_replace(g);
        }
    }
}
