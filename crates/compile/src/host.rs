//! Istio's host-name and naming rules: wildcard matching (`host.Name.SubsetOf`/`Matches`),
//! server/VirtualService host intersection, short-name and gateway-name resolution, exportTo
//! visibility and the cluster/SNI key formats.

use std::net::IpAddr;

/// The Kubernetes cluster domain appended to short service names.
pub(crate) const DOMAIN_SUFFIX: &str = "cluster.local";

/// The reserved gateway name meaning "all sidecars".
pub(crate) const MESH: &str = "mesh";

fn is_wildcard(h: &str) -> bool {
    h.starts_with('*')
}

/// The part after the leading `*` of a wildcard host.
fn tail(h: &str) -> &str {
    h.get(1..).unwrap_or_default()
}

/// `host.Name.SubsetOf`: every name `h` covers is covered by `o`.
pub(crate) fn subset_of(h: &str, o: &str) -> bool {
    match (is_wildcard(h), is_wildcard(o)) {
        (true, true) => tail(h).ends_with(tail(o)),
        (true, false) => false,
        (false, true) => h.ends_with(tail(o)),
        (false, false) => h == o,
    }
}

/// `host.Name.Matches`: the two names cover at least one common name.
pub(crate) fn matches(h: &str, o: &str) -> bool {
    match (is_wildcard(h), is_wildcard(o)) {
        (true, true) => {
            if h.len() < o.len() {
                tail(o).ends_with(tail(h))
            } else {
                tail(h).ends_with(tail(o))
            }
        }
        (true, false) => o.ends_with(tail(h)),
        (false, true) => h.ends_with(tail(o)),
        (false, false) => h == o,
    }
}

/// `host.Names.Intersection`: for each pair that overlaps, the more specific name, once.
pub(crate) fn intersection(hosts: &[String], other: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hosts {
        for o in other {
            let pick = if subset_of(h, o) {
                h
            } else if subset_of(o, h) {
                o
            } else {
                continue;
            };
            if !out.iter().any(|x| x == pick) {
                out.push(pick.clone());
            }
        }
    }
    out
}

/// `host.NamesForNamespace`: server hosts usable by a VirtualService in `namespace`
/// (`ns/host` only when `ns` is that namespace or `*`), with the namespace part removed.
pub(crate) fn names_for_namespace(hosts: &[String], namespace: &str) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((ns, name)) if ns == namespace || ns == "*" => Some(name.to_owned()),
            Some(_) => None,
            None => Some(h.clone()),
        })
        .collect()
}

/// `sanitizeServerHostNamespace`: `./h` becomes `<gwNs>/h`, `*/h` becomes `h`, `*/*` makes
/// the whole list `*`.
pub(crate) fn sanitize_server_hosts(hosts: &[String], gateway_ns: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        match h.split_once('/') {
            Some((".", name)) => out.push(format!("{gateway_ns}/{name}")),
            Some(("*", "*")) => return vec!["*".to_owned()],
            Some(("*", name)) => out.push(name.to_owned()),
            _ => out.push(h.clone()),
        }
    }
    out
}

/// The host part of a server host (`ns/` removed).
pub(crate) fn strip_namespace(h: &str) -> &str {
    h.split_once('/').map_or(h, |(_, name)| name)
}

/// `ResolveShortnameToFQDN`: a name without dots is `<name>.<ns>.svc.cluster.local`;
/// `*`, IP addresses and dotted names stay as written.
pub(crate) fn resolve_short(host: &str, namespace: &str) -> String {
    if host.is_empty() || host == "*" || host.parse::<IpAddr>().is_ok() || host.contains('.') {
        return host.to_owned();
    }
    let mut out = host.to_owned();
    if !namespace.is_empty() {
        out.push('.');
        out.push_str(namespace);
    }
    out.push_str(".svc.");
    out.push_str(DOMAIN_SUFFIX);
    out
}

/// `resolveGatewayName`: `name` means `<vsNs>/name`, `./name` too, the legacy `name.ns[.…]`
/// form means `ns/name`; `mesh` stays `mesh`.
pub(crate) fn resolve_gateway(gateway: &str, namespace: &str) -> String {
    if gateway == MESH {
        return gateway.to_owned();
    }
    match gateway.split_once('/') {
        Some((".", name)) => format!("{namespace}/{name}"),
        Some(_) => gateway.to_owned(),
        None => match gateway.split_once('.') {
            None => format!("{namespace}/{gateway}"),
            Some((name, rest)) => {
                let ns = rest.split_once('.').map_or(rest, |(ns, _)| ns);
                format!("{ns}/{name}")
            }
        },
    }
}

/// `BuildSubsetKey`: `outbound|<port>|<subset>|<host>`.
pub(crate) fn subset_key(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `BuildDNSSrvSubsetKey`: `outbound_.<port>_.<subset>_.<host>` (Istio's default mTLS SNI).
pub(crate) fn dns_srv_key(port: u16, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// Split a cluster name made by [`subset_key`].
pub(crate) fn parse_subset_key(name: &str) -> Option<(u16, &str, &str)> {
    let mut parts = name.splitn(4, '|');
    if parts.next()? != "outbound" {
        return None;
    }
    let port = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    Some((port, subset, host))
}

/// Istio's exportTo visibility: an object in `owner` with `export_to` (empty: the mesh
/// `defaults`, themselves `*` when empty) is visible from `client` when exported to `*`, to
/// `.` and `client` is its own namespace, or to `client` by name (`~` exports to nobody).
pub(crate) fn visible(
    export_to: &[String],
    defaults: &[String],
    owner: &str,
    client: &str,
) -> bool {
    let list = if export_to.is_empty() {
        defaults
    } else {
        export_to
    };
    if list.is_empty() {
        return true;
    }
    list.iter()
        .any(|e| e == "*" || (e == "." && owner == client) || e == client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn intersection_matches_istio_examples() {
        assert_eq!(
            intersection(&v(&["foo.com", "bar.com"]), &v(&["*.com"])),
            v(&["foo.com", "bar.com"])
        );
        assert_eq!(
            intersection(&v(&["foo.com", "*.net"]), &v(&["*.com", "bar.net"])),
            v(&["foo.com", "bar.net"])
        );
        assert_eq!(
            intersection(&v(&["foo.com", "*.net"]), &v(&["*.bar.net"])),
            v(&["*.bar.net"])
        );
        assert!(intersection(&v(&["foo.com"]), &v(&["bar.com"])).is_empty());
        assert_eq!(intersection(&v(&["*"]), &v(&["a.b"])), v(&["a.b"]));
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("*.cnn.com", "edition.cnn.com"));
        assert!(matches("*", "x.y"));
        assert!(matches("*.com", "*.cnn.com"));
        assert!(!matches("a.com", "b.com"));
        assert!(subset_of("a.cnn.com", "*.cnn.com"));
        assert!(!subset_of("*.cnn.com", "a.cnn.com"));
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(
            resolve_short("reviews", "ns"),
            "reviews.ns.svc.cluster.local"
        );
        assert_eq!(resolve_short("reviews.ns", "x"), "reviews.ns");
        assert_eq!(resolve_short("10.0.0.1", "x"), "10.0.0.1");
        assert_eq!(resolve_gateway("gw", "ns"), "ns/gw");
        assert_eq!(resolve_gateway("./gw", "ns"), "ns/gw");
        assert_eq!(resolve_gateway("other/gw", "ns"), "other/gw");
        assert_eq!(
            resolve_gateway("gw.other.svc.cluster.local", "ns"),
            "other/gw"
        );
        assert_eq!(resolve_gateway("gw.other", "ns"), "other/gw");
        assert_eq!(resolve_gateway("mesh", "ns"), "mesh");
        assert_eq!(
            parse_subset_key("outbound|80|cnn|a.b"),
            Some((80, "cnn", "a.b"))
        );
        assert_eq!(dns_srv_key(443, "", "a.b"), "outbound_.443_._.a.b");
        assert_eq!(
            sanitize_server_hosts(&v(&["./a.com", "*/b.com", "c/d.com"]), "gw"),
            v(&["gw/a.com", "b.com", "c/d.com"])
        );
        assert_eq!(
            sanitize_server_hosts(&v(&["a.com", "*/*"]), "gw"),
            v(&["*"])
        );
        assert_eq!(
            names_for_namespace(&v(&["x/a", "y/b", "*/c", "d"]), "x"),
            v(&["a", "c", "d"])
        );
    }

    #[test]
    fn export_visibility() {
        let star = v(&["*"]);
        assert!(visible(&[], &star, "a", "b"));
        assert!(visible(&v(&["."]), &star, "a", "a"));
        assert!(!visible(&v(&["."]), &star, "a", "b"));
        assert!(visible(&v(&["b"]), &star, "a", "b"));
        assert!(!visible(&v(&["~"]), &star, "a", "a"));
        assert!(!visible(&[], &v(&["."]), "a", "b"));
    }
}
