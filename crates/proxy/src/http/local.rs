//! Local replies, the way Envoy's router sends them: the status, a `text/plain` body when
//! there is one (404 `NR` has none), and the Envoy texts for upstream failures; redirects
//! (VirtualService `redirect`, Gateway `httpsRedirect`) with their `location`.

use egress_snapshot::snapshot::Redirect;
use http::{HeaderValue, Response, StatusCode, header};

use super::body::{Body, empty, full};

/// Envoy's body for 503 `UH`.
pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
/// Envoy's body for 504 `UT`.
pub const UPSTREAM_TIMEOUT: &str = "upstream request timeout";

/// A response generated here rather than by the upstream.
pub fn reply(status: u16, body: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(if body.is_empty() {
        empty()
    } else {
        full(body.to_owned())
    });
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if !body.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp
}

/// A redirect to `location`.
pub fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut resp = reply(status, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The body Envoy sends when the upstream failed before sending headers:
/// `upstream connect error or disconnect/reset before headers. [retried and the latest ]reset
/// reason: <reason>[, transport failure reason: <reason>]`.
pub fn upstream_reset_body(retried: bool, reason: &str, transport_failure: Option<&str>) -> String {
    let mut s = String::from("upstream connect error or disconnect/reset before headers. ");
    if retried {
        s.push_str("retried and the latest ");
    }
    s.push_str("reset reason: ");
    s.push_str(reason);
    if let Some(t) = transport_failure.filter(|t| !t.is_empty()) {
        s.push_str(", transport failure reason: ");
        s.push_str(&transport_failure_text(t));
    }
    s
}

/// `%RESPONSE_CODE_DETAILS%` for such a failure:
/// `upstream_reset_before_response_started{connection_failure[,<reason, spaces as _>]}`.
pub fn upstream_reset_details(reason: &str, transport_failure: Option<&str>) -> String {
    let mut s = format!(
        "upstream_reset_before_response_started{{{}",
        reason.replace(' ', "_")
    );
    if let Some(t) = transport_failure.filter(|t| !t.is_empty()) {
        s.push(',');
        s.push_str(&t.replace(' ', "_"));
    }
    s.push('}');
    s
}

/// The transport failure reason as Envoy writes it in a body (with spaces).
fn transport_failure_text(reason: &str) -> String {
    match reason.strip_prefix("delayed_connect_error:_") {
        Some(rest) => format!("delayed connect error: {}", rest.replace('_', " ")),
        None => reason.to_owned(),
    }
}

/// Default port of a scheme.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into host and port.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let port = authority[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (&authority[..=end], port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

/// The `location` of a VirtualService redirect for a request with `scheme`, `authority` and
/// `path_and_query`: each part replaced when the redirect sets it; a new path keeps the
/// original query unless it has its own; a default port of the final scheme is left out.
pub fn redirect_location(
    r: &Redirect,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
) -> String {
    let final_scheme = r.scheme.as_deref().unwrap_or(scheme);
    let (orig_host, orig_port) = split_port(authority);
    let (host, mut port) = match r.authority.as_deref() {
        Some(a) => split_port(a),
        None => (orig_host, orig_port),
    };
    if let Some(p) = r.port {
        port = Some(p);
    } else if r.scheme.is_some() && r.authority.is_none() && port == default_port(scheme) {
        // Switching scheme: the old scheme's default port does not carry over.
        port = None;
    }
    if port.is_some() && port == default_port(final_scheme) {
        port = None;
    }
    let path = match r.uri.as_deref() {
        Some(uri) if uri.contains('?') => uri.to_owned(),
        Some(uri) => match path_and_query.split_once('?') {
            Some((_, q)) => format!("{uri}?{q}"),
            None => uri.to_owned(),
        },
        None => path_and_query.to_owned(),
    };
    match port {
        Some(p) => format!("{final_scheme}://{host}:{p}{path}"),
        None => format!("{final_scheme}://{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn r() -> Redirect {
        Redirect {
            uri: None,
            authority: None,
            scheme: None,
            port: None,
            status: 301,
        }
    }

    #[test]
    fn redirect_locations() {
        assert_eq!(
            redirect_location(&r(), "http", "a.com", "/x?q=1"),
            "http://a.com/x?q=1"
        );
        let mut x = r();
        x.uri = Some("/new".into());
        assert_eq!(
            redirect_location(&x, "http", "a.com:8080", "/x?q=1"),
            "http://a.com:8080/new?q=1"
        );
        x.scheme = Some("https".into());
        assert_eq!(
            redirect_location(&x, "http", "a.com:80", "/x"),
            "https://a.com/new"
        );
        x.authority = Some("b.com".into());
        x.port = Some(8443);
        assert_eq!(
            redirect_location(&x, "http", "a.com", "/x"),
            "https://b.com:8443/new"
        );
        x.port = Some(443);
        assert_eq!(
            redirect_location(&x, "http", "a.com", "/x"),
            "https://b.com/new"
        );
    }

    #[test]
    fn upstream_failure_texts() {
        assert_eq!(
            upstream_reset_body(
                false,
                "connection failure",
                Some("delayed_connect_error:_111")
            ),
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, \
             transport failure reason: delayed connect error: 111"
        );
        assert_eq!(
            upstream_reset_body(true, "connection failure", None),
            "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: \
             connection failure"
        );
        assert_eq!(
            upstream_reset_details(
                "connection failure",
                Some("TLS_error:|268435581:SSL routines:X")
            ),
            "upstream_reset_before_response_started{connection_failure,TLS_error:|268435581:SSL_routines:X}"
        );
        let resp = reply(404, "");
        assert_eq!(resp.headers()["content-length"], "0");
        assert!(resp.headers().get("content-type").is_none());
        let resp = reply(503, NO_HEALTHY_UPSTREAM);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.headers()["content-length"], "19");
    }
}
