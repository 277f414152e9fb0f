//! SPIFFE identities in Istio's shape: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The URI scheme prefix of every SPIFFE id.
pub(crate) const SCHEME: &str = "spiffe://";

/// An Istio workload identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// Trust domain, e.g. `cluster.local` (MeshConfig `trustDomain`).
    pub trust_domain: String,
    /// Kubernetes namespace of the workload.
    pub namespace: String,
    /// Kubernetes service account of the workload.
    pub service_account: String,
}

impl SpiffeId {
    /// Builds an id from its parts, checking each one.
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Result<Self> {
        let id = SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        };
        id.check().map_err(|reason| Error::InvalidSpiffeId {
            id: id.to_string(),
            reason,
        })?;
        Ok(id)
    }

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidSpiffeId {
            id: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("must start with spiffe://"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("missing path /ns/<namespace>/sa/<service-account>"))?;
        let parts: Vec<&str> = path.split('/').collect();
        let [ns_key, namespace, sa_key, service_account] = parts.as_slice() else {
            return Err(invalid(
                "path must be exactly /ns/<namespace>/sa/<service-account>",
            ));
        };
        if *ns_key != "ns" || *sa_key != "sa" {
            return Err(invalid(
                "path must be exactly /ns/<namespace>/sa/<service-account>",
            ));
        }
        let id = SpiffeId {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        };
        id.check().map_err(|reason| invalid(&reason))?;
        Ok(id)
    }

    /// The id without the `spiffe://` scheme, as AuthorizationPolicy `principals` spell it
    /// (`cluster.local/ns/default/sa/sleep`).
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    fn check(&self) -> Result<(), String> {
        check_trust_domain(&self.trust_domain)?;
        check_segment("namespace", &self.namespace)?;
        check_segment("service account", &self.service_account)
    }
}

/// Trust domain syntax from the SPIFFE spec: lowercase letters, digits, `.`, `-`, `_`.
pub(crate) fn check_trust_domain(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("trust domain is empty".to_string());
    }
    if let Some(c) = td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(format!(
            "trust domain {td:?} contains {c:?}; allowed: lowercase letters, digits, '.', '-', '_'"
        ));
    }
    Ok(())
}

/// Path segment syntax from the SPIFFE spec: letters, digits, `.`, `-`, `_`; not `.` or `..`.
fn check_segment(what: &str, seg: &str) -> Result<(), String> {
    if seg.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if seg == "." || seg == ".." {
        return Err(format!("{what} may not be {seg:?}"));
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "{what} {seg:?} contains {c:?}; allowed: letters, digits, '.', '-', '_'"
        ));
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.principal())
    }
}

impl FromStr for SpiffeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SpiffeId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id = SpiffeId::new(
            "cluster.local",
            "istio-system",
            "istio-egressgateway-service-account",
        )
        .unwrap();
        let s = id.to_string();
        assert_eq!(
            s,
            "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"
        );
        assert_eq!(SpiffeId::parse(&s).unwrap(), id);
        assert_eq!(
            id.principal(),
            "cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"
        );
        assert_eq!(s.parse::<SpiffeId>().unwrap(), id);
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "cluster.local/ns/a/sa/b",
            "spiffe://",
            "spiffe://cluster.local",
            "spiffe://cluster.local/",
            "spiffe:///ns/a/sa/b",
            "spiffe://Cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "spiffe://cluster.local/namespace/a/sa/b",
            "spiffe://cluster.local/ns/a/serviceaccount/b",
            "spiffe://cluster.local/ns/../sa/b",
            "spiffe://cluster.local/ns/a b/sa/b",
        ] {
            let err = SpiffeId::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidSpiffeId { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn new_checks_parts() {
        assert!(SpiffeId::new("cluster.local", "", "sa").is_err());
        assert!(SpiffeId::new("cluster local", "ns", "sa").is_err());
        assert!(SpiffeId::new("cluster.local", "ns", "a/b").is_err());
        assert!(SpiffeId::new("td_1-x.example", "NS", "sa.1").is_ok());
    }
}
