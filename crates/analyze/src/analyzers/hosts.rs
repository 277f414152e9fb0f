//! Istio's analyzer host helpers (`analyzers/util`): short names made FQDNs, FQDNs read back as
//! Service names, and `exportTo` scopes.

/// The cluster domain the analyzers assume.
pub(super) const DEFAULT_KUBERNETES_DOMAIN: &str = "cluster.local";

/// A short name (no dot, not a wildcard) as `host.<ns>.svc.cluster.local`; others unchanged.
pub(super) fn to_fqdn(namespace: &str, host: &str) -> String {
    if is_short_name(host) {
        format!("{host}.{namespace}.svc.{DEFAULT_KUBERNETES_DOMAIN}")
    } else {
        host.to_owned()
    }
}

/// No dot and not a wildcard.
pub(super) fn is_short_name(host: &str) -> bool {
    !host.starts_with('*') && !host.contains('.')
}

/// `name.ns.svc.cluster.local` as `(ns, name)` (the last label before `.svc` is the
/// namespace); `None` for anything else.
pub(super) fn service_of_fqdn(fqdn: &str) -> Option<(String, String)> {
    let rest = fqdn.strip_suffix(&format!(".svc.{DEFAULT_KUBERNETES_DOMAIN}"))?;
    let (name, ns) = rest.rsplit_once('.')?;
    (!name.is_empty() && !ns.is_empty()).then(|| (ns.to_owned(), name.to_owned()))
}

/// The `(ns, name)` a host refers to: an FQDN's own, else `host` in `default_ns`.
pub(super) fn resource_of_host(default_ns: &str, host: &str) -> (String, String) {
    service_of_fqdn(host).unwrap_or_else(|| (default_ns.to_owned(), host.to_owned()))
}

/// The namespaces an `exportTo` list exposes to: `["*"]` for all (also when empty), else the
/// named ones with `.` as the resource's own, deduplicated, in order.
pub(super) fn export_scopes(export_to: &[String], own_ns: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return vec!["*".to_owned()];
    }
    let mut out: Vec<String> = Vec::new();
    for e in export_to {
        let ns = if e == "." { own_ns } else { e.as_str() };
        if !out.iter().any(|o| o == ns) {
            out.push(ns.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdns() {
        assert_eq!(to_fqdn("ns", "reviews"), "reviews.ns.svc.cluster.local");
        assert_eq!(to_fqdn("ns", "a.com"), "a.com");
        assert_eq!(to_fqdn("ns", "*"), "*");
        assert_eq!(
            service_of_fqdn("a.b.c.svc.cluster.local"),
            Some(("c".to_owned(), "a.b".to_owned()))
        );
        assert_eq!(service_of_fqdn("a.com"), None);
        assert_eq!(
            resource_of_host("d", "a.com"),
            ("d".to_owned(), "a.com".to_owned())
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(export_scopes(&[], "a"), vec!["*"]);
        let e = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(export_scopes(&e(&[".", "b", "*"]), "a"), vec!["*"]);
        assert_eq!(export_scopes(&e(&[".", "b", "a"]), "a"), vec!["a", "b"]);
    }
}
