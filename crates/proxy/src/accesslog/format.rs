//! Envoy command operators: parsing a format (TEXT line or JSON object of format strings) and
//! rendering a [`LogEntry`] with it. Null values print `-` in text and `null` in JSON; a JSON
//! value that is exactly one operator keeps its type (`"response_code": 200`).

use std::borrow::Cow;
use std::fmt::Write;

use egress_snapshot::snapshot::{AccessLog, LogEncoding};
use serde_json::{Map, Value as Json};

use super::{LogEntry, time::format_start_time};

/// Istio's default TEXT format (`EnvoyTextLogFormat`).
pub const DEFAULT_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% \
%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% \
%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's default JSON keys (`EnvoyJSONLogFormatIstio`), in order.
pub const DEFAULT_JSON_FORMAT: [(&str, &str); 24] = [
    ("start_time", "%START_TIME%"),
    ("route_name", "%ROUTE_NAME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
];

/// Why a custom format was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// An operator Envoy (or this implementation) does not know.
    #[error("unsupported access log command operator %{0}%")]
    UnknownOperator(String),
    /// A `%` that does not start a well-formed operator.
    #[error("malformed command operator at byte {position} of {format:?}")]
    Malformed {
        /// The format string.
        format: String,
        /// Byte offset of the `%`.
        position: usize,
    },
    /// A JSON format that is not a JSON object.
    #[error("JSON access log format is not a JSON object: {0}")]
    Json(String),
}

/// A compiled access-log format.
#[derive(Debug, Clone, PartialEq)]
pub struct Formatter {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Text(Vec<Piece>),
    Json(Vec<(String, Template)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Template {
    /// A string that is exactly one operator: keeps the operator's type.
    Single(Op),
    /// Any other string.
    Text(Vec<Piece>),
    /// A nested object.
    Object(Vec<(String, Template)>),
    /// A non-string JSON literal.
    Literal(Json),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Op(Op),
}

#[derive(Debug, Clone, PartialEq)]
struct Op {
    kind: OpKind,
    max_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum OpKind {
    StartTime(Option<String>),
    Req(String, Option<String>),
    Resp(String, Option<String>),
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    ConnectionTerminationDetails,
    UpstreamTransportFailureReason,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    UpstreamLocalAddress,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    DownstreamLocalPort,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamRemotePort,
    RequestedServerName,
    RouteName,
    DownstreamPeerUriSan,
}

/// A rendered operator value.
enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(u64),
}

impl Formatter {
    /// Istio's default TEXT line.
    pub fn default_text() -> Formatter {
        Formatter::text(DEFAULT_TEXT_FORMAT).unwrap_or(Formatter {
            kind: Kind::Text(Vec::new()),
        })
    }

    /// Istio's default JSON object.
    pub fn default_json() -> Formatter {
        let fields = DEFAULT_JSON_FORMAT
            .iter()
            .filter_map(|(k, v)| Some(((*k).to_owned(), template_of_str(v).ok()?)))
            .collect();
        Formatter {
            kind: Kind::Json(fields),
        }
    }

    /// Istio's default for `encoding`.
    pub fn default_for(encoding: LogEncoding) -> Formatter {
        match encoding {
            LogEncoding::Text => Formatter::default_text(),
            LogEncoding::Json => Formatter::default_json(),
        }
    }

    /// The formatter a snapshot's access-log settings ask for.
    pub fn from_config(config: &AccessLog) -> Result<Formatter, FormatError> {
        match (&config.format, config.encoding) {
            (None, encoding) => Ok(Formatter::default_for(encoding)),
            (Some(f), _) if f.is_empty() => Ok(Formatter::default_for(config.encoding)),
            (Some(f), LogEncoding::Text) => {
                let mut f = f.clone();
                if !f.ends_with('\n') {
                    f.push('\n');
                }
                Formatter::text(&f)
            }
            (Some(f), LogEncoding::Json) => Formatter::json(f),
        }
    }

    /// A TEXT format of command operators and literal text.
    pub fn text(format: &str) -> Result<Formatter, FormatError> {
        Ok(Formatter {
            kind: Kind::Text(parse(format)?),
        })
    }

    /// A JSON format: an object whose string values are formats.
    pub fn json(format: &str) -> Result<Formatter, FormatError> {
        let value: Json =
            serde_json::from_str(format).map_err(|e| FormatError::Json(e.to_string()))?;
        match value {
            Json::Object(map) => Ok(Formatter {
                kind: Kind::Json(object_template(&map)?),
            }),
            other => Err(FormatError::Json(format!("got {other}"))),
        }
    }

    /// Renders `entry` (TEXT keeps the format's newline; JSON gets one appended).
    pub fn render(&self, entry: &LogEntry) -> String {
        match &self.kind {
            Kind::Text(pieces) => render_text(pieces, entry),
            Kind::Json(fields) => {
                let mut s = escape_json_extra(render_object(fields, entry).to_string());
                s.push('\n');
                s
            }
        }
    }
}

fn object_template(map: &Map<String, Json>) -> Result<Vec<(String, Template)>, FormatError> {
    map.iter()
        .map(|(k, v)| {
            let t = match v {
                Json::String(s) => template_of_str(s)?,
                Json::Object(inner) => Template::Object(object_template(inner)?),
                other => Template::Literal(other.clone()),
            };
            Ok((k.clone(), t))
        })
        .collect()
}

fn template_of_str(s: &str) -> Result<Template, FormatError> {
    let mut pieces = parse(s)?;
    if pieces.len() == 1
        && let Some(Piece::Op(_)) = pieces.first()
        && let Some(Piece::Op(op)) = pieces.pop()
    {
        return Ok(Template::Single(op));
    }
    Ok(Template::Text(pieces))
}

fn render_object(fields: &[(String, Template)], entry: &LogEntry) -> Json {
    let mut map = Map::new();
    for (key, t) in fields {
        let v = match t {
            Template::Single(op) => match op.eval(entry) {
                Value::Null => Json::Null,
                Value::Num(n) => Json::from(n),
                Value::Str(s) => Json::String(truncate(s, op.max_len).into_owned()),
            },
            Template::Text(pieces) => Json::String(render_text(pieces, entry)),
            Template::Object(inner) => render_object(inner, entry),
            Template::Literal(v) => v.clone(),
        };
        map.insert(key.clone(), v);
    }
    Json::Object(map)
}

fn render_text(pieces: &[Piece], entry: &LogEntry) -> String {
    let mut out = String::with_capacity(256);
    for piece in pieces {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Op(op) => match op.eval(entry) {
                Value::Null => out.push('-'),
                Value::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Str(s) => escape_text(&truncate(s, op.max_len), &mut out),
            },
        }
    }
    out
}

/// Appends an operator's value to a TEXT line so that no byte of it can end the line or
/// reach the reader as a control character: `\n`, `\r` and `\t` as those two characters, any
/// other control character (C0, DEL, C1) and the Unicode line and paragraph separators as
/// `\u{XXXX}`, and the backslash itself as `\\`, so an escaped value reads back unambiguously.
/// The format's own literal text (its closing newline) is written as it is. JSON needs no
/// such step: serde_json escapes every control character in strings, as Envoy's JSON does.
pub fn escape_text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// serde_json escapes C0 controls, `"` and `\\`; DEL, the C1 controls (NEL is a line break to
/// some readers) and U+2028/U+2029 pass through. They only ever occur inside JSON strings
/// here, so they are written as `\\uXXXX` escapes, which decode to the same value.
fn escape_json_extra(json: String) -> String {
    if !json.chars().any(needs_json_escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_json_escape(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_json_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

fn truncate(s: Cow<'_, str>, max: Option<usize>) -> Cow<'_, str> {
    match max {
        Some(n) if s.chars().count() > n => Cow::Owned(s.chars().take(n).collect()),
        _ => s,
    }
}

/// Splits a format into literal text and operators.
fn parse(format: &str) -> Result<Vec<Piece>, FormatError> {
    let malformed = |position| FormatError::Malformed {
        format: format.to_owned(),
        position,
    };
    let bytes = format.as_bytes();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(rel) = format[i..].find('%') else {
            lit.push_str(&format[i..]);
            break;
        };
        lit.push_str(&format[i..i + rel]);
        let start = i + rel;
        let mut j = start + 1;
        while j < bytes.len()
            && (bytes[j].is_ascii_uppercase() || bytes[j].is_ascii_digit() || bytes[j] == b'_')
        {
            j += 1;
        }
        let name = &format[start + 1..j];
        if name.is_empty() {
            return Err(malformed(start));
        }
        let mut arg = None;
        if bytes.get(j) == Some(&b'(') {
            let close = format[j..].find(')').ok_or_else(|| malformed(start))? + j;
            arg = Some(&format[j + 1..close]);
            j = close + 1;
        }
        let mut max_len = None;
        if bytes.get(j) == Some(&b':') {
            let digits_end = format[j + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(bytes.len(), |k| k + j + 1);
            max_len = Some(
                format[j + 1..digits_end]
                    .parse()
                    .map_err(|_| malformed(start))?,
            );
            j = digits_end;
        }
        if bytes.get(j) != Some(&b'%') {
            return Err(malformed(start));
        }
        let kind = op_kind(name, arg)?;
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Op(Op { kind, max_len }));
        i = j + 1;
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn op_kind(name: &str, arg: Option<&str>) -> Result<OpKind, FormatError> {
    let unknown = || {
        FormatError::UnknownOperator(match arg {
            Some(a) => format!("{name}({a})"),
            None => name.to_owned(),
        })
    };
    let header = |arg: Option<&str>| -> Result<(String, Option<String>), FormatError> {
        let arg = arg.filter(|a| !a.is_empty()).ok_or_else(unknown)?;
        let (main, alt) = match arg.split_once('?') {
            Some((m, a)) => (m, Some(a.to_ascii_lowercase())),
            None => (arg, None),
        };
        Ok((main.to_ascii_lowercase(), alt))
    };
    let no_arg = |kind: OpKind| {
        if arg.is_some() {
            Err(unknown())
        } else {
            Ok(kind)
        }
    };
    match name {
        "START_TIME" => Ok(OpKind::StartTime(
            arg.filter(|a| !a.is_empty()).map(str::to_owned),
        )),
        "REQ" => header(arg).map(|(m, a)| OpKind::Req(m, a)),
        "RESP" => header(arg).map(|(m, a)| OpKind::Resp(m, a)),
        "PROTOCOL" => no_arg(OpKind::Protocol),
        "RESPONSE_CODE" => no_arg(OpKind::ResponseCode),
        "RESPONSE_FLAGS" => no_arg(OpKind::ResponseFlags),
        "RESPONSE_CODE_DETAILS" => no_arg(OpKind::ResponseCodeDetails),
        "CONNECTION_TERMINATION_DETAILS" => no_arg(OpKind::ConnectionTerminationDetails),
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => no_arg(OpKind::UpstreamTransportFailureReason),
        "BYTES_RECEIVED" => no_arg(OpKind::BytesReceived),
        "BYTES_SENT" => no_arg(OpKind::BytesSent),
        "DURATION" => no_arg(OpKind::Duration),
        "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => no_arg(OpKind::UpstreamHost),
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => no_arg(OpKind::UpstreamCluster),
        "UPSTREAM_LOCAL_ADDRESS" => no_arg(OpKind::UpstreamLocalAddress),
        "DOWNSTREAM_LOCAL_ADDRESS" => no_arg(OpKind::DownstreamLocalAddress),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            no_arg(OpKind::DownstreamLocalAddressWithoutPort)
        }
        "DOWNSTREAM_LOCAL_PORT" => no_arg(OpKind::DownstreamLocalPort),
        "DOWNSTREAM_REMOTE_ADDRESS" | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
            no_arg(OpKind::DownstreamRemoteAddress)
        }
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"
        | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            no_arg(OpKind::DownstreamRemoteAddressWithoutPort)
        }
        "DOWNSTREAM_REMOTE_PORT" => no_arg(OpKind::DownstreamRemotePort),
        "REQUESTED_SERVER_NAME" => no_arg(OpKind::RequestedServerName),
        "ROUTE_NAME" => no_arg(OpKind::RouteName),
        "DOWNSTREAM_PEER_URI_SAN" => no_arg(OpKind::DownstreamPeerUriSan),
        _ => Err(unknown()),
    }
}

fn opt_str(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Null, |s| Value::Str(Cow::Borrowed(s)))
}

fn opt_display<T: ToString>(v: Option<T>) -> Value<'static> {
    v.map_or(Value::Null, |x| Value::Str(Cow::Owned(x.to_string())))
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn header_value<'a>(map: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

fn request_header<'a>(entry: &'a LogEntry, name: &str) -> Option<Cow<'a, str>> {
    let field = match name {
        ":method" => entry.method.as_deref(),
        ":path" => entry.path.as_deref(),
        ":authority" | "host" => entry.authority.as_deref(),
        ":scheme" => entry.scheme.as_deref(),
        ":protocol" => None,
        "x-forwarded-for" => entry.x_forwarded_for.as_deref(),
        "user-agent" => entry.user_agent.as_deref(),
        "x-request-id" => entry.request_id.as_deref(),
        _ => None,
    };
    field
        .or_else(|| {
            if name.starts_with(':') {
                None
            } else {
                header_value(&entry.request_headers, name)
            }
        })
        .map(Cow::Borrowed)
}

fn response_header<'a>(entry: &'a LogEntry, name: &str) -> Option<Cow<'a, str>> {
    if let Some(v) = header_value(&entry.response_headers, name) {
        return Some(Cow::Borrowed(v));
    }
    match name {
        ":status" if entry.response_code != 0 => Some(Cow::Owned(entry.response_code.to_string())),
        "x-envoy-upstream-service-time" => entry
            .upstream_service_time
            .map(|d| Cow::Owned(millis(d).to_string())),
        _ => None,
    }
}

impl Op {
    fn eval<'a>(&self, e: &'a LogEntry) -> Value<'a> {
        match &self.kind {
            OpKind::StartTime(fmt) => e.start_time.map_or(Value::Null, |t| {
                Value::Str(Cow::Owned(format_start_time(t, fmt.as_deref())))
            }),
            OpKind::Req(main, alt) => request_header(e, main)
                .or_else(|| alt.as_deref().and_then(|a| request_header(e, a)))
                .map_or(Value::Null, Value::Str),
            OpKind::Resp(main, alt) => response_header(e, main)
                .or_else(|| alt.as_deref().and_then(|a| response_header(e, a)))
                .map_or(Value::Null, Value::Str),
            OpKind::Protocol => opt_str(e.protocol.as_deref()),
            OpKind::ResponseCode => Value::Num(u64::from(e.response_code)),
            OpKind::ResponseFlags => Value::Str(Cow::Owned(e.response_flags.to_string())),
            OpKind::ResponseCodeDetails => opt_str(e.response_code_details.as_deref()),
            OpKind::ConnectionTerminationDetails => {
                opt_str(e.connection_termination_details.as_deref())
            }
            // Envoy prints the reason with spaces as underscores.
            OpKind::UpstreamTransportFailureReason => e
                .upstream_transport_failure_reason
                .as_deref()
                .map_or(Value::Null, |r| Value::Str(Cow::Owned(r.replace(' ', "_")))),
            OpKind::BytesReceived => Value::Num(e.bytes_received),
            OpKind::BytesSent => Value::Num(e.bytes_sent),
            OpKind::Duration => e.duration.map_or(Value::Null, |d| Value::Num(millis(d))),
            OpKind::UpstreamHost => opt_display(e.upstream_host),
            OpKind::UpstreamCluster => opt_str(e.upstream_cluster.as_deref()),
            OpKind::UpstreamLocalAddress => opt_display(e.upstream_local_address),
            OpKind::DownstreamLocalAddress => opt_display(e.downstream_local_address),
            OpKind::DownstreamLocalAddressWithoutPort => {
                opt_display(e.downstream_local_address.map(|a| a.ip()))
            }
            OpKind::DownstreamLocalPort => e
                .downstream_local_address
                .map_or(Value::Null, |a| Value::Num(u64::from(a.port()))),
            OpKind::DownstreamRemoteAddress => opt_display(e.downstream_remote_address),
            OpKind::DownstreamRemoteAddressWithoutPort => {
                opt_display(e.downstream_remote_address.map(|a| a.ip()))
            }
            OpKind::DownstreamRemotePort => e
                .downstream_remote_address
                .map_or(Value::Null, |a| Value::Num(u64::from(a.port()))),
            OpKind::RequestedServerName => opt_str(e.requested_server_name.as_deref()),
            OpKind::RouteName => opt_str(e.route_name.as_deref()),
            OpKind::DownstreamPeerUriSan => opt_str(e.peer_uri_san.as_deref()),
        }
    }
}
