//! Header handling of Istio's gateway HTTP connection manager and router: hop-by-hop
//! removal, `x-forwarded-for` (`use_remote_address: true`, no trusted hops),
//! `x-forwarded-proto`, `x-request-id` generation, `x-forwarded-client-cert` in
//! `SANITIZE_SET` mode, and route/destination header operations (remove first, then set/add,
//! as Envoy's header parser does).

use std::net::IpAddr;

use egress_snapshot::snapshot::HeaderOps;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;

/// Headers that describe one hop and are never forwarded.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// `x-forwarded-client-cert`.
pub const XFCC: &str = "x-forwarded-client-cert";
/// `x-request-id`.
pub const REQUEST_ID: &str = "x-request-id";
/// `x-envoy-original-path`, set when a route rewrites the path.
pub const ORIGINAL_PATH: &str = "x-envoy-original-path";
/// `x-envoy-upstream-service-time`.
pub const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";
/// `x-envoy-attempt-count`.
pub const ATTEMPT_COUNT: &str = "x-envoy-attempt-count";
/// `x-envoy-expected-rq-timeout-ms`.
pub const EXPECTED_TIMEOUT: &str = "x-envoy-expected-rq-timeout-ms";

/// Removes hop-by-hop headers and the headers the `connection` header names (keeping
/// `te: trailers`, which gRPC needs).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect();
    for name in named {
        if name != header::TE {
            headers.remove(name);
        }
    }
    let trailers_te = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if trailers_te {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the downstream address to `x-forwarded-for` (Envoy with `use_remote_address`).
pub fn append_xff(headers: &mut HeaderMap, remote: IpAddr) {
    let ip = remote.to_canonical().to_string();
    let joined = match headers
        .get(header::HeaderName::from_static("x-forwarded-for"))
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) if !existing.trim().is_empty() => format!("{existing},{ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert("x-forwarded-for", v);
    }
}

/// Sets `x-forwarded-proto` to the downstream scheme.
pub fn set_xfp(headers: &mut HeaderMap, scheme: &'static str) {
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
}

/// Keeps the client's `x-request-id`, or generates one (a random UUID v4). Returns it.
pub fn ensure_request_id(headers: &mut HeaderMap) -> String {
    if let Some(v) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return v.to_owned();
    }
    let id = uuid_v4();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, v);
    }
    id
}

/// A random RFC 4122 version-4 UUID, lower-case hex.
pub fn uuid_v4() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    out
}

/// `forward_client_cert_details: SANITIZE_SET`: drops any incoming XFCC and, when the client
/// presented a mesh certificate, sets `By=<gateway id>;URI=<peer id>`.
pub fn sanitize_set_xfcc(headers: &mut HeaderMap, local_id: Option<&str>, peer_id: Option<&str>) {
    headers.remove(XFCC);
    let Some(peer) = peer_id else { return };
    let value = match local_id {
        Some(by) => format!("By={by};URI={peer}"),
        None => format!("URI={peer}"),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(XFCC, v);
    }
}

/// Applies header operations: removes, then sets (replace), then adds (append). A set or add
/// of `host`/`:authority` changes `authority` instead (Istio turns those into a host rewrite).
/// Invalid names or values are skipped (the compiler validated them).
pub fn apply_ops(headers: &mut HeaderMap, ops: &HeaderOps, mut authority: Option<&mut String>) {
    for name in &ops.remove {
        if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            headers.remove(n);
        }
    }
    let ops_in_order = ops
        .set
        .iter()
        .map(|kv| (kv, true))
        .chain(ops.add.iter().map(|kv| (kv, false)));
    for ((name, value), replace) in ops_in_order {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || lower == ":authority" {
            if let Some(a) = authority.as_deref_mut() {
                value.clone_into(a);
            }
            continue;
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            tracing::debug!(header = %name, "skipping invalid header operation");
            continue;
        };
        if replace {
            headers.insert(n, v);
        } else {
            headers.append(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn uuid_v4_shape() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(&groups[2][..1], "4");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, X-Secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("te", "trailers, deflate".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-kept", "te"]);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn forwarded_headers() {
        let mut h = HeaderMap::new();
        append_xff(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        append_xff(&mut h, "::ffff:10.0.0.2".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "127.0.0.1,10.0.0.2");
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_eq!(ensure_request_id(&mut h), id, "an existing id is kept");
        h.insert(XFCC, "spoofed".parse().unwrap());
        sanitize_set_xfcc(&mut h, None, None);
        assert!(h.get(XFCC).is_none());
        sanitize_set_xfcc(
            &mut h,
            Some("spiffe://cluster.local/ns/istio-system/sa/gw"),
            Some("spiffe://cluster.local/ns/default/sa/sleep"),
        );
        assert_eq!(
            h[XFCC],
            "By=spiffe://cluster.local/ns/istio-system/sa/gw;URI=spiffe://cluster.local/ns/default/sa/sleep"
        );
    }

    #[test]
    fn header_ops_remove_then_set_then_add() {
        let mut h = HeaderMap::new();
        h.insert("x-a", "old".parse().unwrap());
        h.insert("x-gone", "1".parse().unwrap());
        let ops = HeaderOps {
            set: vec![
                ("X-A".into(), "new".into()),
                (":authority".into(), "other.com".into()),
            ],
            add: vec![("x-a".into(), "more".into()), ("x-b".into(), "b".into())],
            remove: vec!["X-Gone".into()],
        };
        let mut authority = "edition.cnn.com".to_owned();
        apply_ops(&mut h, &ops, Some(&mut authority));
        assert_eq!(authority, "other.com");
        let a: Vec<&str> = h
            .get_all("x-a")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(a, vec!["new", "more"]);
        assert_eq!(h["x-b"], "b");
        assert!(h.get("x-gone").is_none());
    }
}
