//! The mock API server's state: the resource types it serves, the objects, one global
//! monotonically increasing resourceVersion, the retained event history that watches replay
//! (and that compaction trims), and the writes with the API server's metadata rules (uid,
//! creationTimestamp, generation bumped on spec changes, status kept apart).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Map, Value, json};

use super::select::Selectors;
pub(crate) use super::support::{ApiError, qualified};
use super::support::{merge, now};
use super::{ApiRequest, Failure, ResourceType};

/// One change in the retained history.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: Option<String>,
    pub(crate) old: Option<Value>,
    pub(crate) new: Option<Value>,
}

impl Event {
    /// The watch event type and object this change shows a watcher with `selectors`, if any.
    pub(crate) fn view(&self, selectors: &Selectors) -> Option<(&'static str, Value)> {
        let old = self.old.as_ref().filter(|o| selectors.matches(o));
        let new = self.new.as_ref().filter(|n| selectors.matches(n));
        match (old, new, self.old.is_some()) {
            (Some(_), Some(new), _) => Some(("MODIFIED", new.clone())),
            (None, Some(new), _) => Some(("ADDED", new.clone())),
            (Some(old), None, _) => {
                let mut old = old.clone();
                set_rv(&mut old, self.rv);
                Some(("DELETED", old))
            }
            (None, None, _) => None,
        }
    }
}

type Key = (String, String, String, String);

fn key(ty: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    (
        ty.group.clone(),
        ty.plural.clone(),
        namespace.unwrap_or("").to_string(),
        name.to_string(),
    )
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// The `metadata` map of an object, created when missing (`None` if `object` is no object).
fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

/// The object without `metadata` and `status`: what a generation counts changes of.
fn content(object: &Value) -> Value {
    let mut c = object.clone();
    if let Some(map) = c.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    c
}

/// Everything the server holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) types: Vec<ResourceType>,
    pub(crate) rv: u64,
    /// Events at or before this resourceVersion are forgotten.
    pub(crate) compacted: u64,
    objects: BTreeMap<Key, Value>,
    events: VecDeque<Event>,
    pub(crate) drop_generation: u64,
    pub(crate) bookmark_generation: u64,
    pub(crate) requests: Vec<ApiRequest>,
    pub(crate) failures: Vec<Failure>,
    pub(crate) open_watches: usize,
    uids: u64,
}

impl State {
    pub(crate) fn new(types: Vec<ResourceType>) -> Self {
        State {
            types,
            rv: 1,
            ..State::default()
        }
    }

    /// The type served at `group`/`version`/`plural`.
    pub(crate) fn type_at(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type of objects with `apiVersion` and `kind`.
    pub(crate) fn type_of(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
    }

    pub(crate) fn get(&self, ty: &ResourceType, ns: Option<&str>, name: &str) -> Option<Value> {
        self.objects.get(&key(ty, ns, name)).cloned()
    }

    /// Objects of `ty` (in `ns`, or everywhere) matching `selectors`, in key order.
    pub(crate) fn list(&self, ty: &ResourceType, ns: Option<&str>, sel: &Selectors) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == ty.group && *p == ty.plural && ns.is_none_or(|ns| ns == n)
            })
            .map(|(_, v)| v)
            .filter(|v| sel.matches(v))
            .cloned()
            .collect()
    }

    /// Retained events after `cursor` of `ty` (in `ns`, or everywhere).
    pub(crate) fn events_after<'a>(
        &'a self,
        cursor: u64,
        ty: &'a ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| {
            e.rv > cursor
                && e.group == ty.group
                && e.plural == ty.plural
                && ns.is_none_or(|ns| e.namespace.as_deref() == Some(ns))
        })
    }

    /// Forgets the events at or before `rv` (capped at the current resourceVersion).
    pub(crate) fn compact(&mut self, rv: u64) {
        self.compacted = self.compacted.max(rv.min(self.rv));
        let compacted = self.compacted;
        self.events.retain(|e| e.rv > compacted);
    }

    /// Stores `object` (metadata already prepared) with a fresh resourceVersion.
    fn write(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut object: Value,
    ) -> Value {
        self.rv += 1;
        set_rv(&mut object, self.rv);
        let old = self.objects.insert(key(ty, ns, name), object.clone());
        self.events.push_back(Event {
            rv: self.rv,
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: ns.map(str::to_string),
            old,
            new: Some(object.clone()),
        });
        object
    }

    /// Removes an object (and, for a Namespace, everything in it); returns it as deleted.
    pub(crate) fn remove(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut old = self.objects.remove(&key(ty, ns, name))?;
        if ty.group.is_empty() && ty.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, n, _)| n == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(types) = self
                    .types
                    .iter()
                    .find(|t| t.group == k.0 && t.plural == k.1)
                {
                    let types = types.clone();
                    self.remove(&types, Some(&k.2), &k.3);
                }
            }
        }
        self.rv += 1;
        set_rv(&mut old, self.rv);
        self.events.push_back(Event {
            rv: self.rv,
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: ns.map(str::to_string),
            old: Some(old.clone()),
            new: None,
        });
        Some(old)
    }

    /// Checks the body's identity against the URL and fills in what the URL implies.
    fn normalise(
        ty: &ResourceType,
        ns: Option<&str>,
        name: Option<&str>,
        mut body: Value,
    ) -> Result<(Value, String), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        if !api_version.is_empty() && api_version != ty.api_version()
            || !kind.is_empty() && kind != ty.kind
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind} is not {}",
                ty.api_version(),
                ty.kind
            )));
        }
        body["apiVersion"] = Value::String(ty.api_version());
        body["kind"] = Value::String(ty.kind.clone());
        let Some(meta) = metadata_mut(&mut body) else {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        };
        let body_name = meta.get("name").and_then(Value::as_str).map(str::to_string);
        let name = match (name, body_name) {
            (Some(url), Some(body)) if url != body => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body}) does not match the name on the URL ({url})"
                )));
            }
            (Some(url), _) => url.to_string(),
            (None, Some(body)) if !body.is_empty() => body,
            _ => return Err(ApiError::bad_request("name or generateName is required")),
        };
        meta.insert("name".into(), Value::String(name.clone()));
        if let Some(ns) = ns {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), Value::String(ns.to_string()));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok((body, name))
    }

    fn require_namespace(&self, ty: &ResourceType, ns: Option<&str>) -> Result<(), ApiError> {
        let Some(ns) = ns.filter(|_| ty.namespaced) else {
            return Ok(());
        };
        let present = self.objects.contains_key(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_string(),
        ));
        if present {
            Ok(())
        } else {
            Err(ApiError {
                code: 404,
                reason: "NotFound".to_string(),
                message: format!("namespaces \"{ns}\" not found"),
                details: Some((ns.to_string(), "namespaces".into())),
            })
        }
    }

    /// Fills in the server-owned metadata of a new or updated object.
    fn finish(
        &mut self,
        mut object: Value,
        old: Option<&Value>,
        manager: Option<(&str, &str)>,
    ) -> Value {
        let old_meta = old.and_then(|o| o.get("metadata"));
        let generation = match old {
            None => 1,
            Some(old) => {
                let g = old_meta
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                if content(old) == content(&object) {
                    g
                } else {
                    g + 1
                }
            }
        };
        let uid = match old_meta.and_then(|m| m.get("uid")).cloned() {
            Some(uid) => uid,
            None => {
                self.uids += 1;
                Value::String(format!("00000000-0000-4000-8000-{:012x}", self.uids))
            }
        };
        let created = old_meta
            .and_then(|m| m.get("creationTimestamp"))
            .cloned()
            .unwrap_or_else(|| Value::String(now()));
        let mut managed: Vec<Value> = old_meta
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some((manager, operation)) = manager {
            managed.retain(|e| {
                e.get("manager").and_then(Value::as_str) != Some(manager)
                    || e.get("operation").and_then(Value::as_str) != Some(operation)
            });
            managed.push(json!({
                "manager": manager,
                "operation": operation,
                "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
                "time": now(),
                "fieldsType": "FieldsV1",
            }));
        }
        if let Some(status) = old.and_then(|o| o.get("status")) {
            object["status"] = status.clone();
        }
        let Some(meta) = metadata_mut(&mut object) else {
            return object;
        };
        meta.insert("uid".into(), uid);
        meta.insert("creationTimestamp".into(), created);
        meta.insert("generation".into(), json!(generation));
        meta.remove("resourceVersion");
        if managed.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(managed));
        }
        object
    }

    /// POST: creates, refusing an existing name.
    pub(crate) fn create(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let (body, name) = Self::normalise(ty, ns, None, body)?;
        self.require_namespace(ty, ns)?;
        if self.get(ty, ns, &name).is_some() {
            return Err(ApiError {
                code: 409,
                reason: "AlreadyExists".to_string(),
                message: format!("{} \"{name}\" already exists", qualified(ty)),
                details: Some((name, ty.plural.clone())),
            });
        }
        let object = self.finish(body, None, Some((manager, "Update")));
        Ok(self.write(ty, ns, &name, object))
    }

    /// PUT: replaces, honouring an optimistic-concurrency resourceVersion in the body.
    pub(crate) fn replace(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let wanted = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (body, name) = Self::normalise(ty, ns, Some(name), body)?;
        let old = self
            .get(ty, ns, &name)
            .ok_or_else(|| ApiError::not_found(ty, &name))?;
        let current = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if wanted.is_some_and(|w| Some(w.as_str()) != current) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(ty)
                ),
            ));
        }
        let object = self.finish(body, Some(&old), Some((manager, "Update")));
        Ok(self.write(ty, ns, &name, object))
    }

    /// Server-side apply: creates or replaces the object's fields with the applied ones; the
    /// status is kept. Returns the object and whether it was created.
    pub(crate) fn apply(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        manager: &str,
    ) -> Result<(Value, bool), ApiError> {
        let (body, name) = Self::normalise(ty, ns, Some(name), body)?;
        let old = self.get(ty, ns, &name);
        if old.is_none() {
            self.require_namespace(ty, ns)?;
        }
        let created = old.is_none();
        let object = self.finish(body, old.as_ref(), Some((manager, "Apply")));
        Ok((self.write(ty, ns, &name, object), created))
    }

    /// JSON merge patch (RFC 7386) of an existing object; status changes are ignored (they go
    /// through the `/status` subresource).
    pub(crate) fn merge_patch(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(ty, ns, name)
            .ok_or_else(|| ApiError::not_found(ty, name))?;
        let mut merged = old.clone();
        merge(&mut merged, patch);
        let (body, name) = Self::normalise(ty, ns, Some(name), merged)?;
        let object = self.finish(body, Some(&old), Some((manager, "Update")));
        Ok(self.write(ty, ns, &name, object))
    }

    /// Replaces the status of an existing object (the `/status` subresource; generation kept).
    pub(crate) fn set_status(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let mut object = self
            .get(ty, ns, name)
            .ok_or_else(|| ApiError::not_found(ty, name))?;
        object["status"] = status;
        Ok(self.write(ty, ns, name, object))
    }

    /// Test control: stores `object` as given (system metadata filled in), no checks.
    pub(crate) fn put(&mut self, ty: &ResourceType, object: Value) -> Result<Value, ApiError> {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let ns = if ty.namespaced {
            Some(ns.unwrap_or_else(|| "default".to_string()))
        } else {
            None
        };
        let (body, name) = Self::normalise(ty, ns.as_deref(), None, object)?;
        let old = self.get(ty, ns.as_deref(), &name);
        let status = body.get("status").cloned();
        let mut object = self.finish(body, old.as_ref(), None);
        if let Some(status) = status {
            object["status"] = status;
        }
        Ok(self.write(ty, ns.as_deref(), &name, object))
    }
}
