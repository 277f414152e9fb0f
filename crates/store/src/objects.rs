//! Object files: reading, validating against their path, listing and writing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::StoreError;
use crate::fsutil;
use crate::key::{self, GroupKind, ObjectKey};

/// The result of listing one kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListResult {
    /// Readable objects, sorted by namespace (cluster-scoped first) then name.
    pub items: Vec<Value>,
    /// Files that could not be read as the object their path names.
    pub corrupt: Vec<CorruptObject>,
    /// The store's resourceVersion the listing reflects; watch from it to follow changes.
    pub resource_version: u64,
}

/// An object file that is not valid JSON or does not match its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptObject {
    /// The key its path names.
    pub key: ObjectKey,
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the JSON error, when it is one.
    pub line: Option<usize>,
    /// 1-based column of the JSON error, when it is one.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The journal still holds the object as last committed, and that body is listed in its
    /// place ([`crate::Store::list_committed`] only).
    pub recovered: bool,
}

impl CorruptObject {
    fn from_error(key: ObjectKey, path: PathBuf, err: StoreError) -> CorruptObject {
        match err {
            StoreError::Corrupt {
                path,
                line,
                column,
                message,
            } => CorruptObject {
                key,
                path,
                line,
                column,
                message,
                recovered: false,
            },
            other => CorruptObject {
                path,
                key,
                line: None,
                column: None,
                message: other.to_string(),
                recovered: false,
            },
        }
    }
}

/// Parses an object file's bytes and checks they describe the object its path names.
pub(crate) fn parse(path: &Path, bytes: &[u8], key: &ObjectKey) -> Result<Value, StoreError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt_json(path, &e))?;
    check_identity(&value, key).map_err(|message| StoreError::corrupt(path, message))?;
    Ok(value)
}

/// Checks that `value` is an object whose apiVersion (if any), kind, name and namespace fit `key`.
pub(crate) fn check_identity(value: &Value, key: &ObjectKey) -> Result<(), String> {
    let Some(obj) = value.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    if let Some(api_version) = obj.get("apiVersion") {
        let group = api_version
            .as_str()
            .map(key::group_of)
            .ok_or("apiVersion is not a string")?;
        if group != key.group {
            return Err(format!(
                "apiVersion {api_version} does not belong to group {:?}",
                key.group
            ));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(kind) if kind == key.kind => {}
        Some(kind) => return Err(format!("kind {kind:?} does not match {:?}", key.kind)),
        None => return Err("kind is missing".to_owned()),
    }
    let metadata = obj.get("metadata").and_then(Value::as_object);
    let Some(metadata) = metadata else {
        return Err("metadata is missing".to_owned());
    };
    match metadata.get("name").and_then(Value::as_str) {
        Some(name) if name == key.name => {}
        Some(name) => {
            return Err(format!(
                "metadata.name {name:?} does not match {:?}",
                key.name
            ));
        }
        None => return Err("metadata.name is missing".to_owned()),
    }
    let namespace = metadata.get("namespace").and_then(Value::as_str);
    if namespace != key.namespace.as_deref() {
        return Err(format!(
            "metadata.namespace {namespace:?} does not match {:?}",
            key.namespace
        ));
    }
    Ok(())
}

/// Reads one object; `None` when its file does not exist.
pub(crate) fn read(objects: &Path, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
    let path = key.path(objects);
    match fsutil::read_optional(&path)? {
        None => Ok(None),
        Some(bytes) => parse(&path, &bytes, key).map(Some),
    }
}

/// Whether an object file exists (readable or not).
pub(crate) fn exists(objects: &Path, key: &ObjectKey) -> bool {
    key.path(objects).is_file()
}

/// Sorted names of the subdirectories of `dir` (empty when it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let (true, Ok(name)) = (is_dir, entry.file_name().into_string())
            && key::check_component("directory", &name).is_ok()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Names of the objects stored in one scope directory (files `<name>.json`).
pub(crate) fn names_in(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(name) = file_name.strip_suffix(".json")
            && key::check_component("name", name).is_ok()
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Every group/kind that has a directory in the store.
pub(crate) fn kinds(objects: &Path) -> Result<Vec<GroupKind>, StoreError> {
    let mut out = Vec::new();
    for group_dir in subdirs(objects)? {
        for kind in subdirs(&objects.join(&group_dir))? {
            out.push(GroupKind {
                group: key::group_from_dir(&group_dir).to_owned(),
                kind,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Namespaces (None = cluster scope) that have a directory for `group`/`kind`.
pub(crate) fn scopes(
    objects: &Path,
    group: &str,
    kind: &str,
) -> Result<Vec<Option<String>>, StoreError> {
    let kind_dir = objects.join(key::group_dir(group)).join(kind);
    Ok(subdirs(&kind_dir)?
        .into_iter()
        .map(|d| key::namespace_from_dir(&d).map(str::to_owned))
        .collect())
}

/// Lists one kind in one namespace, or in every namespace (and cluster scope) for `None`.
///
/// The resourceVersion of the result is left at 0 for the caller to fill in.
pub(crate) fn list(
    objects: &Path,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<ListResult, StoreError> {
    let probe = ObjectKey::new(group, kind, namespace, "probe");
    probe.validate()?;
    let scopes = match namespace {
        Some(ns) => vec![Some(ns.to_owned())],
        None => scopes(objects, group, kind)?,
    };
    let mut result = ListResult::default();
    for scope in scopes {
        let dir = key::scope_dir(objects, group, kind, scope.as_deref());
        for name in names_in(&dir)? {
            let key = ObjectKey::new(group, kind, scope.as_deref(), name);
            let path = key.path(objects);
            match fs::read(&path) {
                Ok(bytes) => match parse(&path, &bytes, &key) {
                    Ok(value) => result.items.push(value),
                    Err(err) => result
                        .corrupt
                        .push(CorruptObject::from_error(key, path, err)),
                },
                // Deleted between the directory read and the file read.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(path, e)),
            }
        }
    }
    Ok(result)
}

/// Sort key of a stored object: (namespace, name).
pub(crate) fn sort_key(value: &Value) -> (Option<&str>, &str) {
    let metadata = value.get("metadata");
    let field = |f: &str| metadata.and_then(|m| m.get(f)).and_then(Value::as_str);
    (field("namespace"), field("name").unwrap_or_default())
}

/// Writes the final state of every touched object (`None` = delete), then syncs the
/// directories so the renames are durable.
pub(crate) fn apply_states(
    objects: &Path,
    states: &BTreeMap<ObjectKey, Option<Value>>,
    fsync: bool,
) -> Result<(), StoreError> {
    let mut dirs = BTreeSet::new();
    for (key, state) in states {
        let dir = key.dir(objects);
        let path = key.path(objects);
        match state {
            Some(value) => {
                if !dir.is_dir() {
                    fsutil::create_dir_all(&dir)?;
                    // New directory entries must be made durable in their parents too.
                    let mut parent = dir.parent();
                    while let Some(p) = parent.filter(|p| p.starts_with(objects)) {
                        dirs.insert(p.to_path_buf());
                        parent = p.parent();
                    }
                }
                let mut bytes = serde_json::to_vec_pretty(value)
                    .map_err(|e| StoreError::corrupt(&path, e.to_string()))?;
                bytes.push(b'\n');
                fsutil::write_atomic(&path, &key.tmp_path(objects), &bytes, fsync)?;
            }
            None => fsutil::remove_optional(&path)?,
        }
        dirs.insert(dir);
    }
    if fsync {
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            fsutil::sync_dir(dir)?;
        }
    }
    Ok(())
}
