//! The resource verbs over the store: GET, LIST (label and field selectors, Table output),
//! WATCH ([`crate::watch`]), POST (create), PUT (replace, with the resourceVersion
//! precondition), PATCH (merge, strategic merge, server-side apply) and DELETE. Every write is
//! admitted first ([`crate::admission`]); one write is one store transaction. Store calls
//! block on the store's file lock, so they run on the blocking pool.

use egress_printers::selector::{self, Selector};
use egress_store::{ObjectKey, Store};
use serde_json::{Value, json};

use crate::admission::{self, Admitted};
use crate::managed::{self, Writer};
use crate::patch;
use crate::path::ResourcePath;
use crate::status::ApiError;

/// A request's query parameters, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=b&c=d` (percent-decoded, `+` as space).
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` when the request did not.
    pub fn or_insert(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.0.push((key.to_owned(), value.to_owned()));
        }
    }

    /// True when `key` is `true` (or present without a value).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | ""))
    }
}

/// Percent-decoding of one query component (`%` not followed by two hex digits is kept).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or_default() * 16 + hex(l).unwrap_or_default();
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The selectors of a LIST or WATCH.
#[derive(Debug, Clone)]
pub struct Filter {
    labels: Selector,
    fields: Vec<(String, String, bool)>,
    name: Option<String>,
}

impl Filter {
    /// From `labelSelector` and `fieldSelector` (`a=b`, `a==b`, `a!=b`, comma-separated; a
    /// field is a dotted path into the object, as `metadata.name` or `involvedObject.uid`).
    pub fn from_query(q: &Query, name: Option<&str>) -> Result<Filter, ApiError> {
        let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => selector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            None => Selector::everything(),
        };
        let mut fields = Vec::new();
        for part in q
            .get("fieldSelector")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (k, v, equal) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, true)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            fields.push((k.trim().to_owned(), v.trim().to_owned(), equal));
        }
        Ok(Filter {
            labels,
            fields,
            name: name.map(str::to_owned),
        })
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(name) = &self.name
            && obj.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str())
        {
            return false;
        }
        self.labels.matches_object(obj)
            && self.fields.iter().all(|(path, want, equal)| {
                let pointer = format!("/{}", path.replace('.', "/"));
                let have = match obj.pointer(&pointer) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (have == *want) == *equal
            })
    }
}

/// The store key of `path`'s object named `name`.
pub fn key(path: &ResourcePath, name: &str) -> ObjectKey {
    ObjectKey::new(
        path.info.group,
        path.info.kind,
        if path.info.namespaced {
            path.namespace.as_deref()
        } else {
            None
        },
        name,
    )
}

/// `obj` as the version asked for (the Istio versions share one schema).
pub fn as_version(mut obj: Value, path: &ResourcePath) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::from(path.api_version()));
    }
    obj
}

/// Runs a store operation on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// GET of one object.
pub fn get(store: &Store, path: &ResourcePath, name: &str) -> Result<Value, ApiError> {
    let key = key(path, name);
    match store.get_committed(&key)? {
        Some(obj) => Ok(as_version(obj, path)),
        None => Err(not_found(path, name)),
    }
}

fn not_found(path: &ResourcePath, name: &str) -> ApiError {
    ApiError::NotFound(format!("{} {name:?} not found", resource(path)))
}

/// `services`, `serviceentries.networking.istio.io`: how the API server names a resource.
pub fn resource(path: &ResourcePath) -> String {
    if path.info.group.is_empty() {
        path.info.plural.to_owned()
    } else {
        format!("{}.{}", path.info.plural, path.info.group)
    }
}

/// LIST: the selected objects and the resourceVersion they reflect.
pub fn list(
    store: &Store,
    path: &ResourcePath,
    filter: &Filter,
) -> Result<(Vec<Value>, u64), ApiError> {
    let ns = if path.info.namespaced {
        path.namespace.as_deref()
    } else {
        None
    };
    // A damaged object file is listed as last committed (from the journal), so a client that
    // lists again (a gateway's watch relisting) keeps it; one the journal no longer has is
    // left out, and said so.
    let listed = store.list_committed(path.info.group, path.info.kind, ns)?;
    for lost in listed.corrupt.iter().filter(|c| !c.recovered) {
        tracing::warn!(
            key = %lost.key,
            "a damaged object the journal no longer holds is left out of the list"
        );
    }
    let items = listed
        .items
        .into_iter()
        .filter(|o| filter.matches(o))
        .map(|o| as_version(o, path))
        .collect();
    Ok((items, listed.resource_version))
}

/// A `<Kind>List` document.
pub fn list_doc(path: &ResourcePath, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", path.info.kind),
        "apiVersion": path.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

/// What a write did.
#[derive(Debug)]
pub struct Written {
    /// The stored object.
    pub object: Value,
    /// True when it was created.
    pub created: bool,
    /// Admission warnings.
    pub warnings: Vec<String>,
}

/// Who writes (the request's field manager) with what apiVersion, now.
fn writer<'a>(
    path: &'a ResourcePath,
    q: &'a Query,
    api_version: &'a str,
    now: &'a str,
) -> Writer<'a> {
    Writer {
        manager: q.get("fieldManager").unwrap_or("unknown"),
        api_version,
        subresource: path.subresource.as_deref(),
        now,
    }
}

fn now() -> String {
    egress_store::rfc3339(std::time::SystemTime::now())
}

fn dry_run(q: &Query) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// POST: creates an object.
pub fn create(
    store: &Store,
    path: &ResourcePath,
    body: Value,
    q: &Query,
) -> Result<Written, ApiError> {
    create_as(store, path, body, q, Ownership::Update)
}

/// How a write records field ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    /// The writer owns what it changed.
    Update,
    /// Already recorded (server-side apply).
    Recorded,
}

/// The stored object an update replaces, when the caller has read it already.
type Previous = Option<Value>;

fn create_as(
    store: &Store,
    path: &ResourcePath,
    body: Value,
    q: &Query,
    ownership: Ownership,
) -> Result<Written, ApiError> {
    let Admitted {
        mut object,
        warnings,
    } = admission::admit(path, body, admission::FieldValidation::of(q))?;
    // The API server's defaulting: a Secret without a type is Opaque.
    if path.info.group.is_empty()
        && path.info.kind == "Secret"
        && object
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        object["type"] = Value::from("Opaque");
    }
    if ownership == Ownership::Update {
        let (api_version, now) = (path.api_version(), now());
        managed::record_update(None, &mut object, &writer(path, q, &api_version, &now));
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            message: format!(
                "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                path.info.kind
            ),
            kind: path.info.kind.to_owned(),
            name: String::new(),
            causes: vec![(
                "metadata.name".to_owned(),
                "Required value: name or generateName is required".to_owned(),
            )],
        })?
        .to_owned();
    let key = key(path, &name);
    if dry_run(q) {
        if store.get(&key)?.is_some() {
            return Err(ApiError::AlreadyExists(format!(
                "{} {name:?} already exists",
                resource(path)
            )));
        }
        return Ok(Written {
            object,
            created: true,
            warnings,
        });
    }
    store.transact(|tx| tx.create(&key, object.clone()).map(|_| ()))?;
    Ok(Written {
        object: get(store, path, &name)?,
        created: true,
        warnings,
    })
}

/// The resourceVersion precondition an update body carries.
fn precondition(obj: &Value) -> Result<Option<u64>, ApiError> {
    match obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}"))),
    }
}

/// PUT: replaces an object (its `status` subresource: only the status).
pub fn replace(
    store: &Store,
    path: &ResourcePath,
    name: &str,
    body: Value,
    q: &Query,
) -> Result<Written, ApiError> {
    let expected = precondition(&body)?;
    let body = if path.subresource.as_deref() == Some("status") {
        let mut live = get(store, path, name)?;
        live["status"] = body.get("status").cloned().unwrap_or(Value::Null);
        live
    } else {
        body
    };
    write_existing(
        store,
        path,
        name,
        body,
        expected,
        q,
        (Ownership::Update, None),
    )
}

fn write_existing(
    store: &Store,
    path: &ResourcePath,
    name: &str,
    body: Value,
    expected: Option<u64>,
    q: &Query,
    (ownership, previous): (Ownership, Previous),
) -> Result<Written, ApiError> {
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::BadRequest(
            "the name of the object does not match the name on the URL".into(),
        ));
    }
    let Admitted {
        mut object,
        warnings,
    } = admission::admit(path, body, admission::FieldValidation::of(q))?;
    if ownership == Ownership::Update {
        let old = match previous {
            Some(old) => old,
            None => get(store, path, name)?,
        };
        let (api_version, now) = (path.api_version(), now());
        managed::record_update(
            Some(&old),
            &mut object,
            &writer(path, q, &api_version, &now),
        );
    }
    if dry_run(q) {
        return Ok(Written {
            object,
            created: false,
            warnings,
        });
    }
    let key = key(path, name);
    store.transact(|tx| tx.update(&key, object.clone(), expected).map(|_| ()))?;
    Ok(Written {
        object: get(store, path, name)?,
        created: false,
        warnings,
    })
}

/// How a PATCH body is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From the request's `Content-Type`.
    pub fn from_content_type(ct: &str) -> Result<PatchType, ApiError> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other:?}"
            ))),
        }
    }
}

/// PATCH: applies `patch` to the live object (server-side apply creates it when missing).
pub fn patch(
    store: &Store,
    path: &ResourcePath,
    name: &str,
    (kind, patch_body): (PatchType, Value),
    q: &Query,
) -> Result<Written, ApiError> {
    let live = match get(store, path, name) {
        Ok(live) => Some(live),
        Err(ApiError::NotFound(_)) if kind == PatchType::Apply => None,
        Err(e) => return Err(e),
    };
    // A patch never carries the live resourceVersion: no precondition unless it names one.
    let expected = precondition(&patch_body)?;
    if kind == PatchType::Apply {
        let (api_version, now) = (path.api_version(), now());
        let w = writer(path, q, &api_version, &now);
        let object = managed::apply(live.as_ref(), &patch_body, &w, q.flag("force"))?;
        return match live {
            None => create_as(store, path, object, q, Ownership::Recorded),
            Some(_) => write_existing(
                store,
                path,
                name,
                object,
                expected,
                q,
                (Ownership::Recorded, None),
            ),
        };
    }
    let Some(live) = live else {
        return Err(not_found(path, name));
    };
    let mut object = live.clone();
    match kind {
        PatchType::Merge | PatchType::Apply => patch::merge(&mut object, &patch_body),
        PatchType::Strategic => patch::strategic(&mut object, &patch_body),
    }
    write_existing(
        store,
        path,
        name,
        object,
        expected,
        q,
        (Ownership::Update, Some(live)),
    )
}

/// How a DELETE treats the object's dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector deletes its dependents after (the
    /// default, `kubectl delete`).
    Background,
    /// The object stays, terminating (`deletionTimestamp`, finalizer `foregroundDeletion`),
    /// until the garbage collector has deleted its dependents (`--cascade=foreground`).
    Foreground,
    /// The object goes; its dependents stay, without the owner reference
    /// (`--cascade=orphan`).
    Orphan,
}

impl Propagation {
    /// From the DeleteOptions body kubectl sends, else the query parameter.
    pub fn of(body: Option<&Value>, q: &Query) -> Result<Propagation, ApiError> {
        let asked = body
            .and_then(|b| b.get("propagationPolicy"))
            .and_then(Value::as_str)
            .or_else(|| q.get("propagationPolicy"));
        let orphan = body
            .and_then(|b| b.get("orphanDependents"))
            .and_then(Value::as_bool);
        match (asked, orphan) {
            (Some("Foreground"), _) => Ok(Propagation::Foreground),
            (Some("Orphan"), _) | (None, Some(true)) => Ok(Propagation::Orphan),
            (Some("Background") | None, _) => Ok(Propagation::Background),
            (Some(other), _) => Err(ApiError::BadRequest(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// True when an object of the owner's namespace (anywhere, for a cluster-scoped owner)
/// names `owner_uid` among its owners.
fn has_dependents(store: &Store, path: &ResourcePath, owner_uid: &str) -> Result<bool, ApiError> {
    for info in egress_model::kinds::KINDS.iter().filter(|k| k.namespaced) {
        let items = store
            .list(info.group, info.kind, path.namespace.as_deref())?
            .items;
        let owned = items.iter().any(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                })
        });
        if owned {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The finalizer a foreground deletion holds its object with.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// DELETE: removes an object (or, in the foreground, marks it terminating); returns it as
/// it was (or as it now is).
pub fn delete(
    store: &Store,
    path: &ResourcePath,
    name: &str,
    q: &Query,
    propagation: Propagation,
) -> Result<Value, ApiError> {
    let object = get(store, path, name)?;
    if dry_run(q) {
        return Ok(object);
    }
    let key = key(path, name);
    let owner_uid = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match propagation {
        Propagation::Background => {
            store.transact(|tx| tx.delete(&key).map(|_| ()))?;
            Ok(object)
        }
        Propagation::Foreground if !has_dependents(store, path, &owner_uid)? => {
            store.transact(|tx| tx.delete(&key).map(|_| ()))?;
            Ok(object)
        }
        Propagation::Foreground => {
            let mut marked = object.clone();
            if marked.pointer("/metadata/deletionTimestamp").is_none() {
                marked["metadata"]["deletionTimestamp"] = json!(now());
            }
            let finalizers = marked["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                let mut f = finalizers;
                f.push(json!(FOREGROUND_FINALIZER));
                marked["metadata"]["finalizers"] = Value::Array(f);
            }
            store.transact(|tx| tx.update(&key, marked.clone(), None).map(|_| ()))?;
            get(store, path, name)
        }
        Propagation::Orphan => {
            let ns = path.namespace.clone();
            store.transact(|tx| {
                // Dependents live in the owner's namespace (or anywhere, for a cluster-scoped
                // owner); each loses its reference to the owner in the same transaction.
                for info in egress_model::kinds::KINDS.iter().filter(|k| k.namespaced) {
                    for mut dependent in tx.list(info.group, info.kind, ns.as_deref())?.items {
                        let Some(refs) = dependent
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        else {
                            continue;
                        };
                        let before = refs.len();
                        refs.retain(|r| {
                            r.get("uid").and_then(Value::as_str) != Some(owner_uid.as_str())
                        });
                        if refs.len() == before {
                            continue;
                        }
                        if refs.is_empty()
                            && let Some(meta) =
                                dependent.get_mut("metadata").and_then(Value::as_object_mut)
                        {
                            meta.remove("ownerReferences");
                        }
                        let dkey = ObjectKey::new(
                            info.group,
                            info.kind,
                            dependent
                                .pointer("/metadata/namespace")
                                .and_then(Value::as_str),
                            dependent
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default(),
                        );
                        tx.update(&dkey, dependent, None)?;
                    }
                }
                tx.delete(&key).map(|_| ())
            })?;
            Ok(object)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_decode_and_field_selectors_match_paths() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dcurl&fieldSelector=involvedObject.name%3Dcurl-1%2Creason!%3DPulled&watch=true",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=curl"));
        assert!(q.flag("watch"));
        let f = Filter::from_query(&q, None).unwrap();
        let ev = |name: &str, reason: &str, app: &str| json!({"metadata": {"name": "e", "labels": {"app": app}}, "involvedObject": {"name": name}, "reason": reason});
        assert!(f.matches(&ev("curl-1", "Started", "curl")));
        assert!(!f.matches(&ev("curl-1", "Pulled", "curl")));
        assert!(!f.matches(&ev("curl-2", "Started", "curl")));
        assert!(!f.matches(&ev("curl-1", "Started", "other")));
        assert_eq!(decode("a%2"), "a%2");
    }
}
