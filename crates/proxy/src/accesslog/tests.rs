//! Unit tests of the access-log formats and sinks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use egress_snapshot::snapshot::LogEncoding;

fn http_entry() -> LogEntry {
    let mut request_headers = http::HeaderMap::new();
    request_headers.insert("x-custom", "c1".parse().unwrap());
    let mut response_headers = http::HeaderMap::new();
    response_headers.insert("x-envoy-upstream-service-time", "2".parse().unwrap());
    response_headers.insert("content-type", "text/html".parse().unwrap());
    LogEntry {
        start_time: Some(UNIX_EPOCH + Duration::from_millis(1_705_007_382_835)),
        method: Some("GET".into()),
        path: Some("/politics".into()),
        authority: Some("edition.cnn.com".into()),
        scheme: Some("http".into()),
        protocol: Some("HTTP/1.1".into()),
        response_code: 301,
        response_code_details: Some("via_upstream".into()),
        bytes_received: 0,
        bytes_sent: 0,
        duration: Some(Duration::from_millis(2)),
        x_forwarded_for: Some("172.30.239.55".into()),
        user_agent: Some("curl/7.87.0-DEV".into()),
        request_id: Some("6c01d65f-8a81-4a2c-9b7e-3b4d0e3f1a11".into()),
        request_headers,
        response_headers,
        upstream_host: Some("151.101.195.5:80".parse().unwrap()),
        upstream_cluster: Some("outbound|80||edition.cnn.com".into()),
        upstream_local_address: Some("172.30.239.16:55636".parse().unwrap()),
        downstream_local_address: Some("172.30.239.16:80".parse().unwrap()),
        downstream_remote_address: Some("172.30.239.55:59224".parse().unwrap()),
        route_name: Some("default.forward-cnn-from-egress-gateway.0".into()),
        ..LogEntry::default()
    }
}

#[test]
fn default_text_http_line_matches_istio_example() {
    let line = Formatter::default_text().render(&http_entry());
    assert_eq!(
        line,
        "[2024-01-11T21:09:42.835Z] \"GET /politics HTTP/1.1\" 301 - via_upstream - \"-\" 0 0 2 2 \
         \"172.30.239.55\" \"curl/7.87.0-DEV\" \"6c01d65f-8a81-4a2c-9b7e-3b4d0e3f1a11\" \"edition.cnn.com\" \
         \"151.101.195.5:80\" outbound|80||edition.cnn.com 172.30.239.16:55636 172.30.239.16:80 \
         172.30.239.55:59224 - default.forward-cnn-from-egress-gateway.0\n"
    );
}

#[test]
fn default_text_tcp_line_matches_istio_example() {
    let entry = LogEntry {
        start_time: Some(UNIX_EPOCH + Duration::from_millis(1_705_007_382_835)),
        bytes_received: 839,
        bytes_sent: 2_504_306,
        duration: Some(Duration::from_millis(231)),
        upstream_host: Some("151.101.195.5:443".parse().unwrap()),
        upstream_cluster: Some("outbound|443||edition.cnn.com".into()),
        upstream_local_address: Some("172.30.239.8:34470".parse().unwrap()),
        downstream_local_address: Some("172.30.239.8:443".parse().unwrap()),
        downstream_remote_address: Some("172.30.239.15:43956".parse().unwrap()),
        requested_server_name: Some("edition.cnn.com".into()),
        ..LogEntry::default()
    };
    assert_eq!(
        Formatter::default_text().render(&entry),
        "[2024-01-11T21:09:42.835Z] \"- - -\" 0 - - - \"-\" 839 2504306 231 - \"-\" \"-\" \"-\" \"-\" \
         \"151.101.195.5:443\" outbound|443||edition.cnn.com 172.30.239.8:34470 172.30.239.8:443 \
         172.30.239.15:43956 edition.cnn.com -\n"
    );
}

#[test]
fn original_path_wins_over_path() {
    let mut e = http_entry();
    e.path = Some("/rewritten".into());
    e.request_headers
        .insert("x-envoy-original-path", "/original".parse().unwrap());
    let f = Formatter::text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:PATH)%").unwrap();
    assert_eq!(f.render(&e), "/original /rewritten");
    let f = Formatter::text(
        "%REQ(X-MISSING?X-CUSTOM)% %REQ(x-custom)% %REQ(USER-AGENT):4% %RESP(CONTENT-TYPE)%",
    )
    .unwrap();
    assert_eq!(f.render(&e), "c1 c1 curl text/html");
}

#[test]
fn flags_render_in_envoy_order() {
    let mut flags = ResponseFlags::empty();
    assert_eq!(flags.to_string(), "-");
    flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
    assert!(flags.insert_short("UF"));
    assert!(!flags.insert_short("XX"));
    assert_eq!(flags.to_string(), "UF,URX");
    assert!(flags.contains(ResponseFlag::UpstreamConnectionFailure));
    assert_eq!(
        ResponseFlags::from(ResponseFlag::NoClusterFound).to_string(),
        "NC"
    );
}

#[test]
fn extra_operators() {
    let mut e = http_entry();
    e.response_flags
        .insert(ResponseFlag::UpstreamConnectionFailure);
    e.upstream_transport_failure_reason =
        Some("TLS_error:|1:SSL routines:CERTIFICATE_VERIFY_FAILED".into());
    e.connection_termination_details = Some("rbac".into());
    e.peer_uri_san = Some("spiffe://cluster.local/ns/default/sa/sleep".into());
    let f = Formatter::text(
        "%START_TIME(%s)% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
         %UPSTREAM_TRANSPORT_FAILURE_REASON% %DOWNSTREAM_PEER_URI_SAN% %RESPONSE_FLAGS% \
         %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT% %UPSTREAM_CLUSTER%",
    )
    .unwrap();
    assert_eq!(
        f.render(&e),
        "1705007382 via_upstream rbac TLS_error:|1:SSL_routines:CERTIFICATE_VERIFY_FAILED \
         spiffe://cluster.local/ns/default/sa/sleep UF 172.30.239.55 80 outbound|80||edition.cnn.com"
    );
}

#[test]
fn bad_formats_are_rejected() {
    assert!(
        matches!(Formatter::text("%NOPE%"), Err(FormatError::UnknownOperator(op)) if op == "NOPE")
    );
    assert!(matches!(
        Formatter::text("100% sure"),
        Err(FormatError::Malformed { .. })
    ));
    assert!(matches!(
        Formatter::text("%REQ(X"),
        Err(FormatError::Malformed { .. })
    ));
    assert!(matches!(
        Formatter::text("%REQ%"),
        Err(FormatError::UnknownOperator(_))
    ));
    assert!(matches!(Formatter::json("[1]"), Err(FormatError::Json(_))));
    assert!(matches!(Formatter::json("{"), Err(FormatError::Json(_))));
}

#[test]
fn default_json_keys_and_types() {
    let line = Formatter::default_json().render(&http_entry());
    assert!(line.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: Vec<&str> = format::DEFAULT_JSON_FORMAT
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(v["response_code"], 301);
    assert_eq!(v["response_flags"], "-");
    assert_eq!(v["upstream_service_time"], "2");
    assert_eq!(v["bytes_sent"], 0);
    assert_eq!(
        v["upstream_transport_failure_reason"],
        serde_json::Value::Null
    );
    assert_eq!(v["upstream_cluster"], "outbound|80||edition.cnn.com");
    assert_eq!(v["start_time"], "2024-01-11T21:09:42.835Z");
    assert_eq!(v["path"], "/politics");
}

#[test]
fn custom_json_format() {
    let f = Formatter::json(r#"{"code":"%RESPONSE_CODE%","msg":"to %REQ(:AUTHORITY)%","n":{"f":"%RESPONSE_FLAGS%"},"k":7}"#)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&f.render(&http_entry())).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"code": 301, "msg": "to edition.cnn.com", "n": {"f": "-"}, "k": 7})
    );
}

#[tokio::test]
async fn configure_picks_format_and_falls_back_once() {
    let (logger, lines) = AccessLogger::capture();
    let e = http_entry();
    logger.log(&e);
    logger.prepare(&AccessLog {
        path: Some("/dev/stdout".into()),
        encoding: LogEncoding::Text,
        format: Some("%RESPONSE_CODE% %ROUTE_NAME%".into()),
        ..AccessLog::default()
    });
    logger.log(&e);
    logger.prepare(&AccessLog {
        path: None,
        encoding: LogEncoding::Json,
        format: None,
        ..AccessLog::default()
    });
    logger.clone().log(&e);
    logger.prepare(&AccessLog {
        path: None,
        encoding: LogEncoding::Text,
        format: Some("%BOGUS%".into()),
        ..AccessLog::default()
    });
    logger.log(&e);
    let got = lines.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 4);
    assert!(got[0].starts_with("[2024-01-11T21:09:42.835Z] \"GET /politics HTTP/1.1\" 301"));
    assert_eq!(got[1], "301 default.forward-cnn-from-egress-gateway.0");
    assert!(got[2].starts_with("{\"start_time\":"));
    assert_eq!(
        got[3], got[0],
        "an invalid format falls back to the default"
    );
}

#[test]
fn file_sink_appends_whole_lines_from_many_threads() {
    let dir = std::env::temp_dir().join(format!("egress-accesslog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, "existing\n").unwrap();
    let logger = AccessLogger::to_path(path.to_str().unwrap()).unwrap();
    let e = http_entry();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let logger = logger.clone();
            let e = e.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    logger.log(&e);
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 401);
    assert_eq!(lines[0], "existing");
    let expected = Formatter::default_text().render(&e);
    assert!(lines[1..].iter().all(|l| format!("{l}\n") == expected));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn disabled_logger_writes_nothing() {
    let logger = AccessLogger::disabled();
    assert!(!logger.is_enabled());
    logger.log(&http_entry());
    let logger = AccessLogger::from_config(&AccessLog::default()).unwrap();
    assert!(!logger.is_enabled());
}

#[tokio::test]
async fn each_provider_writes_its_own_filtered_line() {
    use egress_snapshot::snapshot::LogFilter;
    let (logger, lines) = AccessLogger::capture();
    logger.prepare(&AccessLog {
        path: Some("/dev/stdout".into()),
        format: Some("envoy %RESPONSE_CODE%".into()),
        filter: Some(LogFilter::parse("response.code >= 400").unwrap()),
        provider: Some("envoy".into()),
        additional: vec![AccessLog {
            path: Some("/dev/stdout".into()),
            format: Some("all %RESPONSE_CODE%".into()),
            provider: Some("text-file".into()),
            ..AccessLog::default()
        }],
        ..AccessLog::default()
    });
    let ok = http_entry();
    let missing = LogEntry {
        response_code: 404,
        ..http_entry()
    };
    assert_eq!(logger.lines_for(&ok), vec!["all 301\n".to_owned()]);
    logger.log(&ok);
    logger.log(&missing);
    let got = lines.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got, vec!["all 301", "envoy 404", "all 404"]);
}

/// A client's SNI, Host, path, user agent and header values carrying a newline and a forged
/// TCP log line, CR, ESC, NUL, DEL, C1 and U+2028 render as one line in TEXT and in JSON.
#[test]
fn client_bytes_cannot_end_or_forge_a_line() {
    let forged = "x\n[2024-01-11T21:09:42.835Z] \"- - -\" 0 - - - \"-\" 0 0 1 - \"-\" \"-\" \"-\" \"-\" \"1.2.3.4:443\" outbound|443||evil.example - 10.0.0.1:443 10.0.0.2:1 evil.example -";
    let hostile = format!("{forged}\r\u{1b}[31m\u{0}\u{7f}\u{85}\u{2028}\\");
    let mut e = http_entry();
    e.requested_server_name = Some(hostile.clone());
    e.authority = Some(hostile.clone());
    e.path = Some(hostile.clone());
    e.user_agent = Some(hostile.clone());
    let text_custom = Formatter::text(
        "%REQUESTED_SERVER_NAME% %REQ(:AUTHORITY)% %REQ(:PATH)% %REQ(USER-AGENT)%\n",
    )
    .unwrap();
    for f in [
        Formatter::default_text(),
        Formatter::default_json(),
        text_custom,
    ] {
        let line = f.render(&e);
        let body = line.strip_suffix('\n').unwrap();
        assert!(
            !body.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{line:?}"
        );
        assert!(body.contains("evil.example"), "the value is kept: {line:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&Formatter::default_json().render(&e)).unwrap();
    assert_eq!(
        json["path"],
        hostile.as_str(),
        "JSON escapes decode to the value"
    );
    let mut out = String::new();
    format::escape_text(&hostile, &mut out);
    assert!(out.starts_with("x\\n[2024"), "{out}");
    assert!(
        out.ends_with("\\r\\u{001b}[31m\\u{0000}\\u{007f}\\u{0085}\\u{2028}\\\\"),
        "{out}"
    );
}
