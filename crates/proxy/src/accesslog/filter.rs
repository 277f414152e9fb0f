//! Telemetry access-log filters evaluated against one [`LogEntry`], with Envoy's CEL filter
//! semantics: an entry is logged only when the expression evaluates to `true`. An attribute the
//! entry lacks (request fields of a TCP entry, `response.code` when no response was sent, a
//! header that is absent) is an error; `&&` and `||` absorb errors as CEL does (`false && err` is
//! false, `true || err` is true) and any other error means the entry is not logged.

use std::borrow::Cow;

use egress_snapshot::snapshot::{
    FilterAttribute, FilterExpr, FilterValue, LogFilter, StringMethod,
};

use super::LogEntry;

/// An attribute the entry does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Missing;

/// A value of an attribute.
enum Val<'a> {
    Int(i64),
    Str(Cow<'a, str>),
    Bool(bool),
}

/// True when `entry` is to be logged under `filter`.
pub fn matches(filter: &LogFilter, entry: &LogEntry) -> bool {
    eval(&filter.expr, entry) == Ok(true)
}

fn eval(expr: &FilterExpr, entry: &LogEntry) -> Result<bool, Missing> {
    match expr {
        FilterExpr::Const(b) => Ok(*b),
        FilterExpr::Not(e) => eval(e, entry).map(|b| !b),
        FilterExpr::And(l, r) => match (eval(l, entry), eval(r, entry)) {
            (Ok(false), _) | (_, Ok(false)) => Ok(false),
            (Ok(true), Ok(true)) => Ok(true),
            _ => Err(Missing),
        },
        FilterExpr::Or(l, r) => match (eval(l, entry), eval(r, entry)) {
            (Ok(true), _) | (_, Ok(true)) => Ok(true),
            (Ok(false), Ok(false)) => Ok(false),
            _ => Err(Missing),
        },
        FilterExpr::Attribute(a) => match value(a, entry)? {
            Val::Bool(b) => Ok(b),
            _ => Err(Missing),
        },
        FilterExpr::Compare(a, op, lit) => {
            let ord = match (value(a, entry)?, lit) {
                (Val::Int(v), FilterValue::Int(l)) => v.cmp(l),
                (Val::Str(v), FilterValue::Str(l)) => v.as_ref().cmp(l.as_str()),
                (Val::Bool(v), FilterValue::Bool(l)) => v.cmp(l),
                _ => return Err(Missing),
            };
            Ok(op.holds(ord))
        }
        FilterExpr::Call(a, method, arg) => match value(a, entry)? {
            Val::Str(v) => Ok(match method {
                StringMethod::StartsWith => v.starts_with(arg.as_str()),
                StringMethod::EndsWith => v.ends_with(arg.as_str()),
                StringMethod::Contains => v.contains(arg.as_str()),
            }),
            _ => Err(Missing),
        },
    }
}

fn string(v: Option<&String>) -> Result<Val<'_>, Missing> {
    v.map(|s| Val::Str(Cow::Borrowed(s.as_str())))
        .ok_or(Missing)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<Val<'a>, Missing> {
    headers
        .get(name)
        .map(|v| Val::Str(String::from_utf8_lossy(v.as_bytes())))
        .ok_or(Missing)
}

fn value<'a>(attr: &FilterAttribute, e: &'a LogEntry) -> Result<Val<'a>, Missing> {
    match attr {
        FilterAttribute::ResponseCode => match e.response_code {
            0 => Err(Missing),
            code => Ok(Val::Int(i64::from(code))),
        },
        FilterAttribute::ResponseFlags => Ok(Val::Int(i64::from(e.response_flags.bits()))),
        FilterAttribute::ResponseCodeDetails => string(e.response_code_details.as_ref()),
        FilterAttribute::RequestHost => string(e.authority.as_ref()),
        FilterAttribute::RequestMethod => string(e.method.as_ref()),
        FilterAttribute::RequestPath => string(e.path.as_ref()),
        FilterAttribute::RequestUrlPath => e
            .path
            .as_deref()
            .map(|p| Val::Str(Cow::Borrowed(p.split('?').next().unwrap_or(p))))
            .ok_or(Missing),
        FilterAttribute::RequestScheme => string(e.scheme.as_ref()),
        FilterAttribute::RequestProtocol => string(e.protocol.as_ref()),
        FilterAttribute::RequestHeader(name) => {
            if e.protocol.is_none() {
                return Err(Missing);
            }
            match name.as_str() {
                "user-agent" => string(e.user_agent.as_ref()),
                "x-forwarded-for" => string(e.x_forwarded_for.as_ref()),
                "x-request-id" => string(e.request_id.as_ref()),
                ":authority" | "host" => string(e.authority.as_ref()),
                ":method" => string(e.method.as_ref()),
                ":path" => string(e.path.as_ref()),
                other => header(&e.request_headers, other),
            }
        }
        FilterAttribute::ResponseHeader(name) => header(&e.response_headers, name),
        FilterAttribute::ConnectionMtls => Ok(Val::Bool(e.peer_uri_san.is_some())),
        FilterAttribute::RequestedServerName => string(e.requested_server_name.as_ref()),
        FilterAttribute::RouteName => string(e.route_name.as_ref()),
        FilterAttribute::ClusterName => string(e.upstream_cluster.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::accesslog::{ResponseFlag, ResponseFlags};

    fn http(code: u16) -> LogEntry {
        let mut request_headers = http::HeaderMap::new();
        request_headers.insert("x-team", "blue".parse().unwrap());
        LogEntry {
            method: Some("GET".into()),
            path: Some("/api/v1?x=1".into()),
            authority: Some("edition.cnn.com".into()),
            scheme: Some("http".into()),
            protocol: Some("HTTP/1.1".into()),
            response_code: code,
            request_headers,
            user_agent: Some("curl/8".into()),
            ..LogEntry::default()
        }
    }

    fn tcp() -> LogEntry {
        LogEntry {
            requested_server_name: Some("edition.cnn.com".into()),
            ..LogEntry::default()
        }
    }

    fn check(expr: &str, entry: &LogEntry) -> bool {
        matches(&LogFilter::parse(expr).unwrap(), entry)
    }

    #[test]
    fn table() {
        let nr = LogEntry {
            response_flags: ResponseFlags::from(ResponseFlag::NoRouteFound),
            ..http(404)
        };
        let mtls = LogEntry {
            peer_uri_san: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            ..tcp()
        };
        let cases: &[(&str, &LogEntry, bool)] = &[
            ("response.code >= 400", &http(404), true),
            ("response.code >= 400", &http(200), false),
            ("400 <= response.code", &http(503), true),
            ("response.code == 503", &http(503), true),
            (
                "response.code != 200 && response.code < 500",
                &http(404),
                true,
            ),
            (
                "response.code > 500 || request.method == 'GET'",
                &http(200),
                true,
            ),
            ("!(response.code == 200)", &http(200), false),
            ("request.host == \"edition.cnn.com\"", &http(200), true),
            ("request.url_path.startsWith(\"/api\")", &http(200), true),
            ("request.url_path == '/api/v1'", &http(200), true),
            ("request.path.endsWith('x=1')", &http(200), true),
            ("request.headers['X-Team'] == 'blue'", &http(200), true),
            (
                "request.headers['user-agent'].contains('curl')",
                &http(200),
                true,
            ),
            ("request.headers['absent'] == 'x'", &http(200), false),
            ("response.flags != 0", &nr, true),
            ("response.flags == 0", &http(200), true),
            ("response.flags == 256", &nr, true),
            // TCP entries have no response code nor request attributes: errors do not log...
            ("response.code >= 400", &tcp(), false),
            ("response.code == 0", &tcp(), false),
            ("request.method == 'GET'", &tcp(), false),
            // ...unless absorbed by && / ||.
            (
                "response.code >= 400 || connection.requested_server_name != ''",
                &tcp(),
                true,
            ),
            ("request.method == 'GET' && false", &tcp(), false),
            ("!(request.method == 'GET')", &tcp(), false),
            ("connection.mtls", &mtls, true),
            ("connection.mtls == false", &tcp(), true),
            ("true", &tcp(), true),
        ];
        for (expr, entry, want) in cases {
            assert_eq!(check(expr, entry), *want, "{expr}");
        }
    }
}
