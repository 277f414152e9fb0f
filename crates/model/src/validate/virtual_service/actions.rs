//! HTTP route actions and policies: redirect, rewrite, direct response, fault injection,
//! retries and CORS (`validateHTTPRedirect`, `validateHTTPRewrite`, …).

use super::util;
use crate::diag::{Report, idx, join};
use crate::resources::virtual_service::{
    CorsPolicy, HttpDirectResponse, HttpFaultInjection, HttpMirrorPolicy, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, Percent,
};
use crate::validate::common;

const KB: usize = 1024;
const MB: usize = 1024 * KB;

const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `validateCORSPolicy`.
pub(super) fn cors(r: &mut Report, path: &str, c: &CorsPolicy) {
    for (k, origin) in c.allow_origins.iter().flatten().enumerate() {
        let field = idx(&join(path, "allowOrigins"), k);
        util::string_match_one_of(r, &field, origin);
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref())
            .unwrap_or_default();
        if value.is_empty() {
            r.error(
                &field,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
        } else {
            util::string_match_regexp(r, &field, origin, "corsPolicy.allowOrigins");
        }
    }
    for (k, m) in c.allow_methods.iter().flatten().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            r.error(
                idx(&join(path, "allowMethods"), k),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (k, name) in list.iter().flatten().enumerate() {
            let res = if name.is_empty() {
                Err("header name cannot be empty".to_owned())
            } else if name == "*" || common::is_header_token(name) {
                Ok(())
            } else {
                Err(format!("header name {name} is not a valid header name"))
            };
            if let Err(e) = res {
                r.error(idx(&join(path, field), k), e);
            }
        }
    }
    if let Some(age) = &c.max_age {
        let field = join(path, "maxAge");
        if util::duration(r, &field, Some(age))
            && common::parse_go_duration(age).is_ok_and(|d| d.subsec_nanos() > 0)
        {
            r.error(
                field,
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}

/// `validatePercentage`: 0, or within [0.0001, 100].
fn percentage(r: &mut Report, path: &str, p: Option<&Percent>) {
    if let Some(p) = p {
        let v = p.value();
        if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
            r.error(
                join(path, "value"),
                format!(
                    "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                    util::go_float(v)
                ),
            );
        }
    }
}

/// `validateHTTPStatus`: 200..=600 (the message says 200-599; Istio's quirk).
fn http_status(status: i64) -> Result<(), String> {
    if !(200..=600).contains(&status) {
        return Err(format!("HTTP status {status} is not in range 200-599"));
    }
    Ok(())
}

/// `validateHTTPFaultInjection`.
pub(super) fn fault(r: &mut Report, path: &str, f: &HttpFaultInjection) {
    if f.abort.is_none() && f.delay.is_none() {
        r.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(a) = &f.abort {
        let apath = join(path, "abort");
        percentage(r, &join(&apath, "percentage"), a.percentage.as_ref());
        util::one_of(
            r,
            &apath,
            util::count_set(&[
                a.http_status.is_some(),
                a.grpc_status.is_some(),
                a.http2_error.is_some(),
            ]),
        );
        if let Some(s) = a.http_status {
            if let Err(e) = http_status(i64::from(s)) {
                r.error(join(&apath, "httpStatus"), e);
            }
        } else if let Some(g) = &a.grpc_status {
            if !GRPC_STATUS.contains(&g.as_str()) {
                r.error(
                    join(&apath, "grpcStatus"),
                    format!("gRPC status {g:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"),
                );
            }
        } else if a.http2_error.is_some() {
            r.error(
                join(&apath, "http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else {
            r.warn(&apath, "abort configured, but error type not set");
        }
    }
    if let Some(d) = &f.delay {
        let dpath = join(path, "delay");
        percentage(r, &join(&dpath, "percentage"), d.percentage.as_ref());
        util::one_of(
            r,
            &dpath,
            util::count_set(&[d.fixed_delay.is_some(), d.exponential_delay.is_some()]),
        );
        if let Some(fixed) = &d.fixed_delay {
            util::duration(r, &join(&dpath, "fixedDelay"), Some(fixed));
        } else if let Some(exp) = &d.exponential_delay {
            let field = join(&dpath, "exponentialDelay");
            util::duration(r, &field, Some(exp));
            r.error(field, "exponentialDelay not supported yet");
        }
    }
}

/// One entry of `mirrors` (`validateHTTPMirrors`).
pub(super) fn mirror(r: &mut Report, path: &str, m: &HttpMirrorPolicy) {
    let Some(d) = &m.destination else {
        util::required(r, &join(path, "destination"));
        return;
    };
    util::destination(r, &join(path, "destination"), d);
    if let Some(p) = &m.percentage {
        let v = p.value();
        let field = join(&join(path, "percentage"), "value");
        if v > 100.0 {
            r.error(
                &field,
                format!("mirror percentage must have a max value of 100 (it has {v:.6})"),
            );
        }
        if v < 0.0 {
            r.error(
                &field,
                format!("mirror percentage must have a min value of 0 (it has {v:.6})"),
            );
        }
    }
}

/// `validateHTTPRedirect`: like Istio, only the first problem is reported.
pub(super) fn redirect(r: &mut Report, path: &str, rd: &HttpRedirect, route: &HttpRoute) {
    util::one_of(
        r,
        path,
        util::count_set(&[rd.port.is_some(), rd.derive_port.is_some()]),
    );
    let empty = |s: &Option<String>| s.as_deref().unwrap_or_default().is_empty();
    let has_port = rd.port.is_some() || rd.derive_port.is_some();
    if empty(&rd.uri)
        && empty(&rd.authority)
        && !has_port
        && empty(&rd.scheme)
        && empty(&rd.prefix_rewrite)
    {
        r.error(
            path,
            "redirect must specify URI, authority, scheme, or port",
        );
        return;
    }
    if let Some(code) = rd.redirect_code.filter(|c| *c != 0)
        && !(300..=399).contains(&code)
    {
        r.error(
            join(path, "redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
        return;
    }
    if let Some(s) = rd.scheme.as_deref().filter(|s| !s.is_empty())
        && s != "http"
        && s != "https"
    {
        r.error(
            join(path, "scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
        return;
    }
    if let Some(p) = rd.port
        && !util::uint32(r, &join(path, "port"), p)
    {
        return;
    }
    if let Some(p) = rd.port.filter(|p| *p > 0)
        && let Err(e) = common::validate_port(p)
    {
        r.error(join(path, "port"), e);
        return;
    }
    if !empty(&rd.prefix_rewrite) {
        if !empty(&rd.uri) {
            r.error(
                join(path, "prefixRewrite"),
                "redirect may only contain one of URI or PrefixRewrite",
            );
            return;
        }
        let all_prefix = route
            .matches()
            .iter()
            .all(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_some()));
        if !all_prefix {
            r.error(
                join(path, "prefixRewrite"),
                "redirect PrefixRewrite requires all URI matches to be prefix matches",
            );
        }
    }
}

/// `validateHTTPDirectResponse`.
pub(super) fn direct_response(r: &mut Report, path: &str, d: &HttpDirectResponse) {
    if let Some(body) = &d.body {
        let bpath = join(path, "body");
        util::one_of(
            r,
            &bpath,
            util::count_set(&[body.string.is_some(), body.bytes.is_some()]),
        );
        let size = match (&body.string, &body.bytes) {
            (Some(s), _) => s.len(),
            (None, Some(b)) => base64_decoded_len(b),
            (None, None) => 0,
        };
        if size > MB {
            r.error(&bpath, "large direct_responses may impact control plane performance, must be less than 1MB");
        } else if size > 100 * KB {
            r.warn(
                &bpath,
                "large direct_responses may impact control plane performance",
            );
        }
    }
    match d.status {
        None => util::required(r, &join(path, "status")),
        Some(s) => {
            if let Err(e) = http_status(i64::from(s)) {
                r.error(join(path, "status"), e);
            }
        }
    }
}

/// Length of base64-encoded data once decoded (what the bytes body weighs).
fn base64_decoded_len(b: &str) -> usize {
    let data = b
        .trim_end_matches('=')
        .chars()
        .filter(|c| !c.is_whitespace())
        .count();
    data * 3 / 4
}

/// `validateHTTPRetry`.
pub(super) fn retries(r: &mut Report, path: &str, rt: &HttpRetry) {
    let attempts = rt.attempts.unwrap_or_default();
    if attempts < 0 {
        r.error(join(path, "attempts"), "attempts cannot be negative");
    }
    let retry_on = rt.retry_on.as_deref().unwrap_or_default();
    if attempts == 0
        && (rt.per_try_timeout.is_some()
            || !retry_on.is_empty()
            || rt.retry_remote_localities.is_some())
    {
        r.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    util::duration(r, &join(path, "perTryTimeout"), rt.per_try_timeout.as_ref());
    if !retry_on.is_empty() {
        for policy in retry_on.split(',') {
            let code = policy
                .parse::<u16>()
                .ok()
                .filter(|c| is_http_status_with_text(*c));
            if code.is_none() && !RETRY_ON.contains(&policy) {
                r.error(
                    join(path, "retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    util::duration(r, &join(path, "backoff"), rt.backoff.as_ref());
}

/// True when Go's `http.StatusText(code)` is non-empty.
fn is_http_status_with_text(code: u16) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// `validateHTTPRewrite`: like Istio, only the first problem is reported.
pub(super) fn rewrite(r: &mut Report, path: &str, rw: &HttpRewrite) {
    let uri = rw.uri.as_deref().unwrap_or_default();
    let authority = rw.authority.as_deref().unwrap_or_default();
    if !uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        r.error(
            path,
            "rewrite may only contain one of URI or UriRegexRewrite",
        );
        return;
    }
    if uri.is_empty() && rw.uri_regex_rewrite.is_none() && authority.is_empty() {
        r.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
        return;
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        let rpath = join(path, "uriRegexRewrite");
        let m = rr.matches.as_deref().unwrap_or_default();
        if m.is_empty() || rr.rewrite.as_deref().unwrap_or_default().is_empty() {
            r.error(
                rpath,
                "UriRegexRewrite has errors\nUriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        } else if let Err(e) = util::string_regexp(m, "HTTPRewrite.UriRegexRewrite.Match") {
            r.error(
                join(&rpath, "match"),
                format!("UriRegexRewrite has errors\n{e}"),
            );
        }
    }
}
