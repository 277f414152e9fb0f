//! Object keys, their validation and their mapping onto paths of the store.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// Directory name used for the core (empty) API group.
pub const CORE_GROUP_DIR: &str = "core";
/// Directory name used in place of a namespace for cluster-scoped objects.
pub const CLUSTER_SCOPE_DIR: &str = "_cluster";
/// Longest name (in bytes) that still leaves room for the file suffixes.
const MAX_COMPONENT_LEN: usize = 250;

/// Identifies one object: API group, kind, namespace (None = cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group: `""` for core, e.g. `networking.istio.io`.
    pub group: String,
    /// Kind, e.g. `ServiceEntry`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

/// An API group and kind, as found in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKind {
    /// API group: `""` for core.
    pub group: String,
    /// Kind.
    pub kind: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
        }
    }

    /// The key of the core `Namespace` object called `name`.
    pub fn for_namespace(name: impl Into<String>) -> Self {
        ObjectKey {
            group: String::new(),
            kind: "Namespace".to_owned(),
            namespace: None,
            name: name.into(),
        }
    }

    /// True when this is the key of a core `Namespace`.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace" && self.namespace.is_none()
    }

    /// Lower-case plural resource name guessed from the kind (`ServiceEntry` → `serviceentries`).
    pub fn resource(&self) -> String {
        plural(&self.kind)
    }

    /// Resource qualified by its group as the API server prints it
    /// (`serviceentries.networking.istio.io`, or `configmaps` for core).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource()
        } else {
            format!("{}.{}", self.resource(), self.group)
        }
    }

    /// Checks every component can be used safely as a path component.
    pub fn validate(&self) -> Result<(), StoreError> {
        if !self.group.is_empty() {
            check_component("group", &self.group)?;
            if self.group == CORE_GROUP_DIR {
                return Err(invalid(
                    "group",
                    &self.group,
                    "reserved for the core group (use \"\")",
                ));
            }
        }
        check_component("kind", &self.kind)?;
        if let Some(ns) = &self.namespace {
            check_component("namespace", ns)?;
            if ns == CLUSTER_SCOPE_DIR {
                return Err(invalid(
                    "namespace",
                    ns,
                    "reserved for cluster-scoped objects",
                ));
            }
        }
        check_component("name", &self.name)
    }

    /// The directory holding objects of this key's group, kind and namespace.
    pub(crate) fn dir(&self, objects: &Path) -> PathBuf {
        scope_dir(objects, &self.group, &self.kind, self.namespace.as_deref())
    }

    /// The file holding this object.
    pub(crate) fn path(&self, objects: &Path) -> PathBuf {
        self.dir(objects).join(format!("{}.json", self.name))
    }

    /// The temporary file used while this object is being written.
    pub(crate) fn tmp_path(&self, objects: &Path) -> PathBuf {
        self.dir(objects).join(format!(".{}.tmp", self.name))
    }

    /// Derives the key of a stored object from its `apiVersion`, `kind` and metadata.
    pub fn from_object(object: &Value) -> Option<ObjectKey> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => None,
            Some(ns) => Some(ns.as_str()?),
        };
        Some(ObjectKey::new(group_of(api_version), kind, namespace, name))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)?;
        } else {
            write!(f, "{}.{}", self.kind, self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " {ns}/{}", self.name),
            None => write!(f, " {}", self.name),
        }
    }
}

/// The group part of an `apiVersion` (`networking.istio.io/v1` → `networking.istio.io`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    match api_version.rsplit_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Directory of one group/kind/namespace (None = cluster scope).
pub(crate) fn scope_dir(objects: &Path, group: &str, kind: &str, ns: Option<&str>) -> PathBuf {
    objects
        .join(group_dir(group))
        .join(kind)
        .join(ns.unwrap_or(CLUSTER_SCOPE_DIR))
}

/// Directory name of a group.
pub(crate) fn group_dir(group: &str) -> &str {
    if group.is_empty() {
        CORE_GROUP_DIR
    } else {
        group
    }
}

/// Group name of a group directory.
pub(crate) fn group_from_dir(dir: &str) -> &str {
    if dir == CORE_GROUP_DIR { "" } else { dir }
}

/// Namespace of a scope directory.
pub(crate) fn namespace_from_dir(dir: &str) -> Option<&str> {
    if dir == CLUSTER_SCOPE_DIR {
        None
    } else {
        Some(dir)
    }
}

fn invalid(field: &'static str, value: &str, reason: &'static str) -> StoreError {
    StoreError::InvalidKey {
        field,
        value: value.to_owned(),
        reason,
    }
}

/// Rejects values that are not a single, plain path component.
pub(crate) fn check_component(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    if value == "." || value == ".." {
        return Err(invalid(field, value, "must not be \".\" or \"..\""));
    }
    if value.contains('/') {
        return Err(invalid(field, value, "must not contain '/'"));
    }
    if value.contains('\0') {
        return Err(invalid(field, value, "must not contain NUL"));
    }
    if value.len() > MAX_COMPONENT_LEN {
        return Err(invalid(field, value, "is longer than 250 bytes"));
    }
    Ok(())
}

/// Lower-case English plural of a kind, the way Kubernetes derives resource names.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower == "endpoints" {
        return lower;
    }
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
        && !stem.is_empty()
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with('z')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural("ServiceEntry"), "serviceentries");
        assert_eq!(plural("Gateway"), "gateways");
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("Namespace"), "namespaces");
        assert_eq!(plural("Endpoints"), "endpoints");
        assert_eq!(plural("ConfigMap"), "configmaps");
    }

    #[test]
    fn rejects_escaping_components() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            let key = ObjectKey::new("", "ConfigMap", Some("default"), bad);
            assert!(
                matches!(
                    key.validate(),
                    Err(StoreError::InvalidKey { field: "name", .. })
                ),
                "{bad:?}"
            );
            let key = ObjectKey::new("", "ConfigMap", Some(bad), "x");
            assert!(key.validate().is_err(), "{bad:?}");
            let key = ObjectKey::new("", bad, None, "x");
            assert!(key.validate().is_err(), "{bad:?}");
        }
        assert!(ObjectKey::new("core", "X", None, "x").validate().is_err());
        assert!(
            ObjectKey::new("", "X", Some("_cluster"), "x")
                .validate()
                .is_err()
        );
        assert!(
            ObjectKey::new("", "X", None, "a".repeat(251))
                .validate()
                .is_err()
        );
        assert!(
            ObjectKey::new("a.b", "X", Some("ns"), ".hidden")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn qualified_names() {
        let key = ObjectKey::new("networking.istio.io", "ServiceEntry", Some("a"), "b");
        assert_eq!(
            key.qualified_resource(),
            "serviceentries.networking.istio.io"
        );
        assert_eq!(key.to_string(), "ServiceEntry.networking.istio.io a/b");
        assert_eq!(group_of("networking.istio.io/v1"), "networking.istio.io");
        assert_eq!(group_of("v1"), "");
    }
}
