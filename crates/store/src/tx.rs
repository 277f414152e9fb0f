//! Transactions: reads that see staged writes, and API-server write semantics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::journal::{EventType, WatchEvent};
use crate::key::{self, ObjectKey};
use crate::objects::{self, ListResult};
use crate::recover::object_rv;
use crate::store::Paths;
use crate::time;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A new object was stored.
    Created,
    /// An existing object was changed.
    Configured,
    /// The write changed nothing; no resourceVersion was used and no event emitted.
    Unchanged,
    /// The object was removed.
    Deleted,
}

impl Action {
    /// The word kubectl prints for it (`created`, `configured`, `unchanged`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
        }
    }
}

/// The result of one staged write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The object written.
    pub key: ObjectKey,
    /// What happened to it.
    pub action: Action,
    /// The object as stored (for deletes: its last state, with the deletion's rv).
    pub object: Value,
}

/// An open transaction: holds the store's exclusive lock until it commits or fails.
///
/// Reads see the writes staged so far; nothing reaches the disk unless the closure
/// passed to [`crate::Store::transact`] returns `Ok`.
#[derive(Debug)]
pub struct Transaction<'s> {
    paths: &'s Paths,
    rv: u64,
    now: String,
    states: BTreeMap<ObjectKey, Option<Value>>,
    events: Vec<WatchEvent>,
    outcomes: Vec<WriteOutcome>,
    /// Damaged object files to rewrite with their last committed body (from the journal).
    repairs: BTreeMap<ObjectKey, Value>,
}

/// What a finished transaction hands to the commit.
pub(crate) struct Staged {
    pub(crate) states: BTreeMap<ObjectKey, Option<Value>>,
    pub(crate) events: Vec<WatchEvent>,
    pub(crate) outcomes: Vec<WriteOutcome>,
}

/// An incoming object split into its body and its metadata; the body keeps a
/// placeholder where `metadata` goes so field order is preserved.
struct Prepared {
    body: Map<String, Value>,
    meta: Map<String, Value>,
}

impl Prepared {
    fn into_value(mut self) -> Value {
        self.body
            .insert("metadata".to_owned(), Value::Object(self.meta));
        Value::Object(self.body)
    }
}

impl<'s> Transaction<'s> {
    pub(crate) fn new(paths: &'s Paths, rv: u64) -> Self {
        Transaction {
            paths,
            rv,
            now: time::rfc3339(SystemTime::now()),
            states: BTreeMap::new(),
            events: Vec::new(),
            outcomes: Vec::new(),
            repairs: BTreeMap::new(),
        }
    }

    pub(crate) fn into_staged(self) -> Staged {
        let mut states = self.states;
        for (key, body) in self.repairs {
            states.entry(key).or_insert(Some(body));
        }
        Staged {
            states,
            events: self.events,
            outcomes: self.outcomes,
        }
    }

    /// The resourceVersion of the store including the writes staged so far.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The outcomes of the writes staged so far, in order.
    pub fn outcomes(&self) -> &[WriteOutcome] {
        &self.outcomes
    }

    /// Reads one object, seeing staged writes. A damaged file reads as the object's last
    /// committed body when the journal still holds it, else it is an error naming the file.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        key.validate()?;
        match self.states.get(key) {
            Some(state) => Ok(state.clone()),
            None => match objects::read(&self.paths.objects, key) {
                Err(err @ StoreError::Corrupt { .. }) => {
                    match crate::recover::journal_state(self.paths, key)? {
                        Some(body) => Ok(Some(body)),
                        None => Err(err),
                    }
                }
                other => other,
            },
        }
    }

    /// Reads one object for a write: a damaged file is repaired from the journal (rewritten
    /// with its last committed body when this transaction commits) or, when the journal no
    /// longer holds it, reads as absent so the write replaces it.
    fn get_repairing(&mut self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        if let Some(state) = self.states.get(key) {
            return Ok(state.clone());
        }
        match objects::read(&self.paths.objects, key) {
            Err(StoreError::Corrupt { .. }) => {
                let body = crate::recover::journal_state(self.paths, key)?;
                if let Some(body) = &body {
                    self.repairs.insert(key.clone(), body.clone());
                }
                Ok(body)
            }
            other => other,
        }
    }

    /// Rewrites a damaged object file with its last committed body from the journal;
    /// `Ok(false)` when the file is not damaged or the journal no longer holds the object.
    pub fn repair(&mut self, key: &ObjectKey) -> Result<bool, StoreError> {
        key.validate()?;
        if self.states.contains_key(key) {
            return Ok(false);
        }
        match objects::read(&self.paths.objects, key) {
            Err(StoreError::Corrupt { .. }) => Ok(self.get_repairing(key)?.is_some()),
            _ => Ok(false),
        }
    }

    /// Whether an object exists (a corrupt file counts as existing).
    pub fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        key.validate()?;
        Ok(match self.states.get(key) {
            Some(state) => state.is_some(),
            None => objects::exists(&self.paths.objects, key),
        })
    }

    /// Lists one kind (in one namespace, or everywhere for `None`), seeing staged writes.
    pub fn list(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<ListResult, StoreError> {
        let mut result = objects::list(&self.paths.objects, group, kind, namespace)?;
        let in_scope = |k: &ObjectKey| {
            k.group == group
                && k.kind == kind
                && (namespace.is_none() || k.namespace.as_deref() == namespace)
        };
        let staged: BTreeMap<&ObjectKey, &Option<Value>> =
            self.states.iter().filter(|(k, _)| in_scope(k)).collect();
        if !staged.is_empty() {
            result.items.retain(|item| {
                let (ns, name) = objects::sort_key(item);
                !staged.contains_key(&ObjectKey::new(group, kind, ns, name))
            });
            result.corrupt.retain(|c| !staged.contains_key(&c.key));
            result
                .items
                .extend(staged.values().filter_map(|state| (*state).clone()));
            result
                .items
                .sort_by(|a, b| objects::sort_key(a).cmp(&objects::sort_key(b)));
        }
        result.resource_version = self.rv;
        Ok(result)
    }

    /// Creates an object; `AlreadyExists` if it exists, `NamespaceNotFound` if its
    /// namespace does not.
    pub fn create(&mut self, key: &ObjectKey, object: Value) -> Result<WriteOutcome, StoreError> {
        key.validate()?;
        let prepared = prepare(key, object)?;
        if self.exists(key)? {
            return Err(StoreError::AlreadyExists { key: key.clone() });
        }
        self.insert_new(key, prepared)
    }

    /// Creates the object or updates it without a resourceVersion precondition.
    pub fn apply(&mut self, key: &ObjectKey, object: Value) -> Result<WriteOutcome, StoreError> {
        key.validate()?;
        let prepared = prepare(key, object)?;
        match self.get_repairing(key)? {
            None => self.insert_new(key, prepared),
            Some(old) => self.replace(key, &old, prepared),
        }
    }

    /// Updates an existing object; with `expected_rv`, fails with `Conflict` unless the
    /// stored resourceVersion is that one.
    pub fn update(
        &mut self,
        key: &ObjectKey,
        object: Value,
        expected_rv: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        key.validate()?;
        let prepared = prepare(key, object)?;
        let old = self
            .get_repairing(key)?
            .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
        if let Some(expected) = expected_rv {
            let actual = object_rv(&old);
            if actual != expected {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected,
                    actual,
                });
            }
        }
        self.replace(key, &old, prepared)
    }

    /// Deletes an object (even one whose file is corrupt). Deleting a `Namespace` first
    /// deletes every object in it, each with its own event; their outcomes precede the
    /// namespace's in [`Transaction::outcomes`].
    pub fn delete(&mut self, key: &ObjectKey) -> Result<WriteOutcome, StoreError> {
        key.validate()?;
        let last = self.last_state(key)?;
        if key.is_namespace() {
            for member in self.namespace_members(&key.name)? {
                let state = self.last_state(&member)?;
                self.remove(&member, state);
            }
        }
        Ok(self.remove(key, last))
    }

    /// The state a delete reports: the stored object, or a stand-in for a corrupt file.
    fn last_state(&self, key: &ObjectKey) -> Result<Value, StoreError> {
        match self.get(key) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(StoreError::NotFound { key: key.clone() }),
            Err(StoreError::Corrupt { .. }) => {
                let mut meta = Map::new();
                meta.insert("name".to_owned(), Value::from(key.name.clone()));
                if let Some(ns) = &key.namespace {
                    meta.insert("namespace".to_owned(), Value::from(ns.clone()));
                }
                let mut obj = Map::new();
                obj.insert("kind".to_owned(), Value::from(key.kind.clone()));
                obj.insert("metadata".to_owned(), Value::Object(meta));
                Ok(Value::Object(obj))
            }
            Err(e) => Err(e),
        }
    }

    /// Every object currently in namespace `ns`, staged writes included.
    fn namespace_members(&self, ns: &str) -> Result<BTreeSet<ObjectKey>, StoreError> {
        let objects = &self.paths.objects;
        let mut members = BTreeSet::new();
        for gk in objects::kinds(objects)? {
            let dir = key::scope_dir(objects, &gk.group, &gk.kind, Some(ns));
            for name in objects::names_in(&dir)? {
                members.insert(ObjectKey::new(&gk.group, &gk.kind, Some(ns), name));
            }
        }
        for (k, state) in &self.states {
            if k.namespace.as_deref() == Some(ns) {
                if state.is_some() {
                    members.insert(k.clone());
                } else {
                    members.remove(k);
                }
            }
        }
        Ok(members)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn insert_new(
        &mut self,
        key: &ObjectKey,
        mut obj: Prepared,
    ) -> Result<WriteOutcome, StoreError> {
        if let Some(ns) = &key.namespace {
            let ns_key = ObjectKey::for_namespace(ns.clone());
            if !self.exists(&ns_key)? {
                return Err(StoreError::NamespaceNotFound { ns: ns.clone() });
            }
        }
        let rv = self.next_rv();
        let meta = &mut obj.meta;
        meta.insert(
            "uid".to_owned(),
            Value::from(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("resourceVersion".to_owned(), Value::from(rv.to_string()));
        meta.insert("generation".to_owned(), Value::from(1u64));
        meta.insert(
            "creationTimestamp".to_owned(),
            Value::from(self.now.clone()),
        );
        Ok(self.record(key, rv, EventType::Added, obj.into_value()))
    }

    fn replace(
        &mut self,
        key: &ObjectKey,
        old: &Value,
        mut obj: Prepared,
    ) -> Result<WriteOutcome, StoreError> {
        let old_meta = old.get("metadata");
        let old_field = |f: &str| old_meta.and_then(|m| m.get(f)).cloned();
        for field in ["uid", "creationTimestamp", "resourceVersion"] {
            match old_field(field) {
                Some(v) => obj.meta.insert(field.to_owned(), v),
                None => obj.meta.shift_remove(field),
            };
        }
        if !obj.body.contains_key("status")
            && let Some(status) = old.get("status")
        {
            obj.body.insert("status".to_owned(), status.clone());
        }
        let old_generation = old_field("generation")
            .and_then(|g| g.as_u64())
            .unwrap_or(1);
        let content_changed = match old.as_object() {
            Some(old_body) => !same_content(old_body, &obj.body),
            None => true,
        };
        let generation = old_generation + u64::from(content_changed);
        obj.meta
            .insert("generation".to_owned(), Value::from(generation));
        let candidate = obj.into_value();
        if candidate == *old {
            let outcome = WriteOutcome {
                key: key.clone(),
                action: Action::Unchanged,
                object: candidate,
            };
            self.outcomes.push(outcome.clone());
            return Ok(outcome);
        }
        let mut candidate = candidate;
        let rv = self.next_rv();
        set_rv(&mut candidate, rv);
        Ok(self.record(key, rv, EventType::Modified, candidate))
    }

    fn remove(&mut self, key: &ObjectKey, mut last: Value) -> WriteOutcome {
        let rv = self.next_rv();
        set_rv(&mut last, rv);
        self.record(key, rv, EventType::Deleted, last)
    }

    fn record(
        &mut self,
        key: &ObjectKey,
        rv: u64,
        event_type: EventType,
        object: Value,
    ) -> WriteOutcome {
        let (state, action) = match event_type {
            EventType::Added => (Some(object.clone()), Action::Created),
            EventType::Modified => (Some(object.clone()), Action::Configured),
            EventType::Deleted => (None, Action::Deleted),
        };
        self.states.insert(key.clone(), state);
        self.events.push(WatchEvent {
            rv,
            event_type,
            key: key.clone(),
            object: object.clone(),
        });
        let outcome = WriteOutcome {
            key: key.clone(),
            action,
            object,
        };
        self.outcomes.push(outcome.clone());
        outcome
    }
}

/// Sets `metadata.resourceVersion` (creating `metadata` if needed).
fn set_rv(object: &mut Value, rv: u64) {
    if let Some(obj) = object.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("resourceVersion".to_owned(), Value::from(rv.to_string()));
        }
    }
}

/// Whether two objects agree on everything outside `metadata` and `status`.
fn same_content(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let content = |m: &Map<String, Value>| {
        m.iter()
            .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
            .count()
    };
    content(a) == content(b)
        && a.iter()
            .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
            .all(|(k, v)| b.get(k) == Some(v))
}

fn invalid(key: &ObjectKey, message: impl Into<String>) -> StoreError {
    StoreError::InvalidObject {
        key: key.clone(),
        message: message.into(),
    }
}

/// Checks an incoming object against its key and fills in `kind`, `metadata.name` and
/// `metadata.namespace` (removing the namespace of cluster-scoped objects).
fn prepare(key: &ObjectKey, object: Value) -> Result<Prepared, StoreError> {
    let Value::Object(mut body) = object else {
        return Err(invalid(key, "must be a JSON object"));
    };
    if let Some(api_version) = body.get("apiVersion") {
        let Some(api_version) = api_version.as_str() else {
            return Err(invalid(key, "apiVersion must be a string"));
        };
        if key::group_of(api_version) != key.group {
            return Err(invalid(
                key,
                format!(
                    "apiVersion {api_version:?} does not belong to group {:?}",
                    key.group
                ),
            ));
        }
    }
    match body.get("kind") {
        None | Some(Value::Null) => {
            body.insert("kind".to_owned(), Value::from(key.kind.clone()));
        }
        Some(Value::String(kind)) if *kind == key.kind => {}
        Some(other) => {
            return Err(invalid(
                key,
                format!("kind {other} does not match {:?}", key.kind),
            ));
        }
    }
    let meta = match body.get_mut("metadata").map(Value::take) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(invalid(key, "metadata must be an object")),
    };
    let mut prepared = Prepared { body, meta };
    match prepared.meta.get("name") {
        None | Some(Value::Null) => {
            prepared
                .meta
                .insert("name".to_owned(), Value::from(key.name.clone()));
        }
        Some(Value::String(name)) if *name == key.name => {}
        Some(other) => {
            return Err(invalid(
                key,
                format!("metadata.name {other} does not match {:?}", key.name),
            ));
        }
    }
    match (&key.namespace, prepared.meta.get("namespace")) {
        (None, _) => {
            prepared.meta.shift_remove("namespace");
        }
        (Some(ns), None | Some(Value::Null)) => {
            prepared
                .meta
                .insert("namespace".to_owned(), Value::from(ns.clone()));
        }
        (Some(ns), Some(Value::String(found))) if found == ns => {}
        (Some(ns), Some(other)) => {
            return Err(invalid(
                key,
                format!(
                    "the namespace of the provided object ({other}) does not match \
                     the namespace sent on the request ({ns:?})"
                ),
            ));
        }
    }
    Ok(prepared)
}
