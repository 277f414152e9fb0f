//! Request paths of the Kubernetes API, parsed: discovery documents, and resource paths
//! (`/api/v1/namespaces/{ns}/{plural}[/{name}[/{subresource}]]`, the cluster-scoped and
//! all-namespaces forms, and the same under `/apis/{group}/{version}`), resolved against the
//! kinds egress models ([`egress_model::kinds::KINDS`]).

use egress_model::KindInfo;
use egress_model::kinds::KINDS;

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    Resources {
        /// API group (empty for the core group).
        group: String,
        /// Version.
        version: String,
    },
    /// A resource collection or object.
    Resource(ResourcePath),
    /// `/openapi/v2`, `/openapi/v3[/...]`.
    OpenApi(String),
}

/// A resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The kind.
    pub info: &'static KindInfo,
    /// The version asked for.
    pub version: String,
    /// The namespace in the path (none: cluster-scoped, or all namespaces).
    pub namespace: Option<String>,
    /// The object's name (none: the collection).
    pub name: Option<String>,
    /// A subresource (`status`, `log`, `exec`, ...).
    pub subresource: Option<String>,
}

impl ResourcePath {
    /// `apiVersion` of the version asked for (`v1`, `networking.istio.io/v1`).
    pub fn api_version(&self) -> String {
        if self.info.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.info.group, self.version)
        }
    }
}

/// Why a path names nothing served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not a path of the API.
    #[error("the server could not find the requested resource")]
    NotFound,
}

/// The kind served as `plural` in `group` at `version`.
pub fn kind_for(group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.plural == plural && k.versions.contains(&version))
}

/// Parses a request path (without its query).
pub fn parse(path: &str) -> Result<Target, PathError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["version"] => Ok(Target::Version),
        ["api"] => Ok(Target::CoreVersions),
        ["apis"] => Ok(Target::Groups),
        ["openapi", rest @ ..] => Ok(Target::OpenApi(rest.join("/"))),
        ["apis", group] => Ok(Target::Group((*group).to_owned())),
        ["api", version] => Ok(Target::Resources {
            group: String::new(),
            version: (*version).to_owned(),
        }),
        ["apis", group, version] => Ok(Target::Resources {
            group: (*group).to_owned(),
            version: (*version).to_owned(),
        }),
        ["api", version, rest @ ..] => resource("", version, rest),
        ["apis", group, version, rest @ ..] => resource(group, version, rest),
        _ => Err(PathError::NotFound),
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Result<Target, PathError> {
    let owned = |s: &&str| (*s).to_owned();
    // `namespaces/{ns}/{plural}...` is a namespaced path, unless it is the Namespace object
    // itself (`namespaces/{name}[/status]`).
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] if kind_for(group, version, plural).is_some() => {
            (Some((*ns).to_owned()), {
                let mut v = vec![*plural];
                v.extend_from_slice(rest);
                v
            })
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(owned(name)), None),
        [plural, name, sub] => (*plural, Some(owned(name)), Some(owned(sub))),
        _ => return Err(PathError::NotFound),
    };
    let info = kind_for(group, version, plural).ok_or(PathError::NotFound)?;
    if namespace.is_some() && !info.namespaced {
        return Err(PathError::NotFound);
    }
    Ok(Target::Resource(ResourcePath {
        info,
        version: version.to_owned(),
        namespace,
        name,
        subresource,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths_resolve_kind_namespace_name_and_subresource() {
        let r = res("/api/v1/namespaces/apps/services/curl");
        assert_eq!(
            (r.info.kind, r.namespace.as_deref(), r.name.as_deref()),
            ("Service", Some("apps"), Some("curl"))
        );
        let r = res("/api/v1/namespaces/apps/pods/curl-1/log");
        assert_eq!(r.subresource.as_deref(), Some("log"));
        let r = res("/api/v1/namespaces/apps");
        assert_eq!(
            (r.info.kind, r.name.as_deref()),
            ("Namespace", Some("apps"))
        );
        let r = res("/api/v1/namespaces/apps/status");
        assert_eq!(
            (r.info.kind, r.name.as_deref(), r.subresource.as_deref()),
            ("Namespace", Some("apps"), Some("status"))
        );
        let r = res("/apis/networking.istio.io/v1beta1/serviceentries");
        assert_eq!(
            (r.info.kind, r.namespace.clone(), r.name.clone()),
            ("ServiceEntry", None, None)
        );
        assert_eq!(r.api_version(), "networking.istio.io/v1beta1");
        let r = res("/apis/apps/v1/namespaces/x/deployments/");
        assert_eq!(r.info.kind, "Deployment");
    }

    #[test]
    fn discovery_and_unknown_paths() {
        assert_eq!(parse("/api").unwrap(), Target::CoreVersions);
        assert_eq!(parse("/apis").unwrap(), Target::Groups);
        assert_eq!(
            parse("/apis/apps/v1").unwrap(),
            Target::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        for bad in [
            "/",
            "/apis/networking.istio.io/v9/serviceentries",
            "/api/v1/widgets",
            "/api/v1/namespaces/a/namespaces/b",
            "/api/v1/namespaces/a/pods/b/c/d",
        ] {
            assert_eq!(parse(bad), Err(PathError::NotFound), "{bad}");
        }
    }
}
