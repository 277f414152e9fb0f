//! Envoy command-operator formats of the access log (`accesslog::format::Formatter`): the
//! first byte picks TEXT or JSON, the rest is the format, rendered for a filled-in entry with
//! multi-byte text (truncation `:N` has to cut on character boundaries).
//!
//! Invariants: no panic; a TEXT format without `%` renders to itself; a JSON format renders
//! one line that parses back to an object with the format's keys.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use egress_proxy::accesslog::{Formatter, LogEntry, ResponseFlag};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn entry() -> &'static LogEntry {
    static ENTRY: OnceLock<LogEntry> = OnceLock::new();
    ENTRY.get_or_init(|| {
        let addr = |s: &str| s.parse::<SocketAddr>().ok();
        let mut request_headers = HeaderMap::new();
        request_headers.insert("x-envoy-original-path", HeaderValue::from_static("/orig"));
        request_headers.insert("x-b3-traceid", HeaderValue::from_static("80f198ee56343ba8"));
        request_headers.insert(
            "x-utf8",
            HeaderValue::from_bytes("ünïcödé-値".as_bytes())
                .unwrap_or(HeaderValue::from_static("x")),
        );
        let mut response_headers = HeaderMap::new();
        response_headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let mut e = LogEntry {
            start_time: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_892_800_123)),
            method: Some("GET".into()),
            path: Some("/päth/ü?q=ä".into()),
            authority: Some("edition.cnn.com".into()),
            scheme: Some("https".into()),
            protocol: Some("HTTP/1.1".into()),
            response_code: 503,
            response_code_details: Some(
                "upstream_reset_before_response_started{connection_failure}".into(),
            ),
            connection_termination_details: Some(
                "rbac_access_denied_matched_policy[ns[a]-policy[b]-rule[0]]".into(),
            ),
            upstream_transport_failure_reason: Some("delayed connect error: 111".into()),
            bytes_received: 12,
            bytes_sent: 91,
            duration: Some(Duration::from_millis(17)),
            upstream_service_time: Some(Duration::from_millis(5)),
            x_forwarded_for: Some("10.0.0.5".into()),
            user_agent: Some("curl/8.5.0 ünï".into()),
            request_id: Some("7d4e2a5c-0000-4000-8000-000000000000".into()),
            request_headers,
            response_headers,
            upstream_host: addr("93.184.216.34:443"),
            upstream_cluster: Some("outbound|443||edition.cnn.com".into()),
            upstream_local_address: addr("10.0.0.9:40000"),
            downstream_local_address: addr("10.0.0.9:8443"),
            downstream_remote_address: addr("[fd00::5]:51000"),
            requested_server_name: Some("edition.cnn.com".into()),
            route_name: Some("route-ü".into()),
            peer_uri_san: Some("spiffe://cluster.local/ns/default/sa/curl".into()),
            ..LogEntry::default()
        };
        e.response_flags.insert(ResponseFlag::NoRouteFound);
        e
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(format) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(f) = Formatter::text(format) else {
            return;
        };
        let line = f.render(entry());
        let _ = f.render(&LogEntry::default());
        if !format.contains('%') {
            assert_eq!(line, format, "a format without operators changed");
        }
    } else {
        let Ok(f) = Formatter::json(format) else {
            return;
        };
        let _ = f.render(&LogEntry::default());
        let line = f.render(entry());
        let body = line
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("no newline: {line:?}"));
        assert!(!body.contains('\n'), "JSON line spans lines: {line:?}");
        let rendered: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
        let wanted: serde_json::Value = serde_json::from_str(format).unwrap_or_default();
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(
            keys(&rendered),
            keys(&wanted),
            "JSON keys differ for {format:?}"
        );
    }
});
