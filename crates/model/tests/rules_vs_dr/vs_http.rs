//! VirtualService HTTP matches, redirects, rewrites, direct responses, faults, retries, CORS and header operations.

use super::*;

#[test]
fn http_matches() {
    let m = |body: &str| http_vs(&format!("match:\n  - {}", body.trim_start()));
    valid(&m("uri:\n      prefix: \"\"\n"));
    valid(&m(
        "uri:\n      regex: \"/api/v[0-9]+\"\n    ignoreUriCase: true\n    name: m1\n    statPrefix: api\n",
    ));
    valid(&m(
        "headers:\n      x-user: {}\n      \":authority\":\n        exact: a.com\n    queryParams:\n      q:\n        exact: \"1\"\n",
    ));
    valid(&m(
        "withoutHeaders:\n      x-debug:\n        regex: \"*\"\n",
    ));
    valid(&m(
        "sourceLabels:\n      app: curl\n    sourceNamespace: default\n    port: 80\n",
    ));
    rejected(
        &m("headers:\n      x-user:\n        prefix: \"\"\n"),
        "spec.http[0].match[0].headers.x-user.prefix",
        "\"headers\": prefix string match should not be empty",
    );
    for (field, place) in [
        ("scheme", "scheme"),
        ("method", "method"),
        ("authority", "authority"),
    ] {
        rejected(
            &m(&format!("{field}:\n      prefix: \"\"\n")),
            &format!("spec.http[0].match[0].{field}.prefix"),
            &format!("\"{place}\": prefix string match should not be empty"),
        );
    }
    rejected(
        &m("queryParams:\n      q:\n        prefix: \"\"\n"),
        "spec.http[0].match[0].queryParams.q.prefix",
        "\"queryParams\": prefix string match should not be empty",
    );
    rejected(
        &m("withoutHeaders:\n      x-a:\n        prefix: \"\"\n"),
        "spec.http[0].match[0].withoutHeaders.x-a.prefix",
        "\"withoutHeaders\": prefix string match should not be empty",
    );
    rejected(
        &m("uri:\n      regex: \"\"\n"),
        "spec.http[0].match[0].uri.regex",
        "\"uri\": regex string match should not be empty",
    );
    rejected(
        &m(&format!("uri:\n      regex: \"{}\"\n", "a".repeat(1025))),
        "spec.http[0].match[0].uri.regex",
        "\"uri\": regex is too large, max length allowed is 1024",
    );
    rejected(
        &m("headers:\n      x-a:\n        regex: \"(\"\n"),
        "spec.http[0].match[0].headers.x-a.regex",
        "\"headers\": error parsing regexp",
    );
    rejected(
        &m("uri:\n      exact: /a\n      prefix: /b\n"),
        "spec.http[0].match[0].uri",
        "spec.http[0].match[0].uri in body must validate one and only one schema (oneOf). Found 2 valid alternatives",
    );
    rejected(
        &m("headers:\n      \"bad header\":\n        exact: x\n"),
        "spec.http[0].match[0].headers.bad header",
        "header name bad header is not a valid header name",
    );
    rejected(
        &m("port: 70000\n"),
        "spec.http[0].match[0].port",
        "port number 70000 must be in the range 1..65535",
    );
    rejected(
        &m("sourceLabels:\n      \"bad key\": v\n"),
        "spec.http[0].match[0].sourceLabels.bad key",
        "invalid tag key: \"bad key\"",
    );
    rejected(
        &m("sourceLabels:\n      app: \"bad value\"\n"),
        "spec.http[0].match[0].sourceLabels.app",
        "invalid tag value: \"bad value\"",
    );
    rejected(
        &m("sourceNamespace: bad_ns\n"),
        "spec.http[0].match[0].sourceNamespace",
        "sourceNamespace match bad_ns is invalid",
    );
}

#[test]
fn http_redirects() {
    let rd = |body: &str| vs(&format!("hosts:\n- a.com\nhttp:\n- redirect:\n{body}"));
    valid(&rd(
        "    uri: /new\n    authority: b.com\n    redirectCode: 302\n",
    ));
    valid(&rd(
        "    scheme: https\n    derivePort: FROM_REQUEST_PORT\n",
    ));
    valid(&rd("    port: 8443\n"));
    rejected(
        &rd("    redirectCode: 301\n"),
        "spec.http[0].redirect",
        "redirect must specify URI, authority, scheme, or port",
    );
    rejected(
        &rd("    uri: /x\n    redirectCode: 200\n"),
        "spec.http[0].redirect.redirectCode",
        "200 is not a valid redirect code, must be 3xx",
    );
    rejected(
        &rd("    scheme: ftp\n"),
        "spec.http[0].redirect.scheme",
        "invalid redirect scheme, must be \"http\" or \"https\"",
    );
    rejected(
        &rd("    port: 70000\n"),
        "spec.http[0].redirect.port",
        "port number 70000 must be in the range 1..65535",
    );
    rejected(
        &rd("    port: 8080\n    derivePort: FROM_REQUEST_PORT\n"),
        "spec.http[0].redirect",
        "must validate one and only one schema (oneOf)",
    );
    // prefixRewrite: exclusive with uri, and needs prefix URI matches.
    valid(&vs(
        "hosts:\n- a.com\nhttp:\n- match:\n  - uri:\n      prefix: /foo/\n  redirect:\n    authority: foo.a.com\n    prefixRewrite: /\n",
    ));
    rejected(
        &vs(
            "hosts:\n- a.com\nhttp:\n- match:\n  - uri:\n      prefix: /foo/\n  redirect:\n    uri: /bar\n    prefixRewrite: /\n",
        ),
        "spec.http[0].redirect.prefixRewrite",
        "redirect may only contain one of URI or PrefixRewrite",
    );
    rejected(
        &vs(
            "hosts:\n- a.com\nhttp:\n- match:\n  - uri:\n      exact: /foo\n  redirect:\n    prefixRewrite: /\n",
        ),
        "spec.http[0].redirect.prefixRewrite",
        "redirect PrefixRewrite requires all URI matches to be prefix matches",
    );
}

#[test]
fn http_rewrites() {
    valid(&http_vs("rewrite:\n    uri: /v2\n    authority: b.com\n"));
    valid(&http_vs(
        "rewrite:\n    uriRegexRewrite:\n      match: ^/service/([^/]+)(/.*)$\n      rewrite: \\2/instance/\\1\n",
    ));
    rejected(
        &http_vs(
            "rewrite:\n    uri: /v2\n    uriRegexRewrite:\n      match: a\n      rewrite: b\n",
        ),
        "spec.http[0].rewrite",
        "rewrite may only contain one of URI or UriRegexRewrite",
    );
    rejected(
        &http_vs("rewrite: {}\n"),
        "spec.http[0].rewrite",
        "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
    );
    rejected(
        &http_vs("rewrite:\n    uriRegexRewrite:\n      match: a\n"),
        "spec.http[0].rewrite.uriRegexRewrite",
        "UriRegexRewrite requires both Rewrite and Match fields to be specified",
    );
    rejected(
        &http_vs("rewrite:\n    uriRegexRewrite:\n      match: \"(\"\n      rewrite: b\n"),
        "spec.http[0].rewrite.uriRegexRewrite.match",
        "\"HTTPRewrite.UriRegexRewrite.Match\": error parsing regexp",
    );
    rejected(
        &http_vs(
            "rewrite:\n    authority: b.com\n  headers:\n    request:\n      set:\n        host: c.com\n",
        ),
        "spec.http[0].headers.request.set.host",
        "authority header cannot be set multiple times: have \"b.com\", attempting to set \"c.com\"",
    );
}

#[test]
fn http_direct_responses() {
    let dr_ = |body: &str| {
        vs(&format!(
            "hosts:\n- a.com\nhttp:\n- directResponse:\n{body}"
        ))
    };
    valid(&dr_("    status: 200\n    body:\n      string: ok\n"));
    valid(&dr_("    status: 600\n")); // Istio accepts 600 despite its "200-599" message.
    valid(&dr_("    status: 503\n    body:\n      bytes: aGVsbG8=\n"));
    rejected(
        &dr_("    status: 199\n"),
        "spec.http[0].directResponse.status",
        "HTTP status 199 is not in range 200-599",
    );
    rejected(
        &dr_("    status: 601\n"),
        "spec.http[0].directResponse.status",
        "HTTP status 601 is not in range 200-599",
    );
    rejected(
        &dr_("    body:\n      string: x\n"),
        "spec.http[0].directResponse.status",
        "spec.http[0].directResponse.status: Required value",
    );
    rejected(
        &dr_("    status: 200\n    body:\n      string: x\n      bytes: eA==\n"),
        "spec.http[0].directResponse.body",
        "must validate one and only one schema (oneOf)",
    );
    warned(
        &dr_(&format!(
            "    status: 200\n    body:\n      string: {}\n",
            "x".repeat(101 * 1024)
        )),
        "spec.http[0].directResponse.body",
        "large direct_responses may impact control plane performance",
    );
    rejected(
        &dr_(&format!(
            "    status: 200\n    body:\n      string: {}\n",
            "x".repeat(1024 * 1024 + 1)
        )),
        "spec.http[0].directResponse.body",
        "large direct_responses may impact control plane performance, must be less than 1MB",
    );
}

#[test]
fn http_faults() {
    valid(&http_vs(
        "fault:\n    delay:\n      fixedDelay: 5s\n      percentage:\n        value: 0.1\n    abort:\n      httpStatus: 500\n      percentage:\n        value: 100\n",
    ));
    valid(&http_vs(
        "fault:\n    abort:\n      grpcStatus: UNAVAILABLE\n",
    ));
    rejected(
        &http_vs("fault: {}\n"),
        "spec.http[0].fault",
        "HTTP fault injection must have an abort and/or a delay",
    );
    rejected(
        &http_vs("fault:\n    abort:\n      http2Error: REFUSED_STREAM\n"),
        "spec.http[0].fault.abort.http2Error",
        "HTTP/2 abort fault injection not supported yet",
    );
    rejected(
        &http_vs("fault:\n    abort:\n      grpcStatus: NOPE\n"),
        "spec.http[0].fault.abort.grpcStatus",
        "gRPC status \"NOPE\" is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'",
    );
    rejected(
        &http_vs("fault:\n    abort:\n      httpStatus: 100\n"),
        "spec.http[0].fault.abort.httpStatus",
        "HTTP status 100 is not in range 200-599",
    );
    warned(
        &http_vs("fault:\n    abort:\n      percentage:\n        value: 10\n"),
        "spec.http[0].fault.abort",
        "abort configured, but error type not set",
    );
    rejected(
        &http_vs(
            "fault:\n    abort:\n      httpStatus: 503\n      percentage:\n        value: 101\n",
        ),
        "spec.http[0].fault.abort.percentage.value",
        "percentage 101 is neither 0.0, nor in range [0.0001, 100.0]",
    );
    rejected(
        &http_vs(
            "fault:\n    delay:\n      fixedDelay: 1s\n      percentage:\n        value: 0.00001\n",
        ),
        "spec.http[0].fault.delay.percentage.value",
        "percentage 1e-05 is neither 0.0, nor in range [0.0001, 100.0]",
    );
    rejected(
        &http_vs("fault:\n    delay:\n      exponentialDelay: 1s\n"),
        "spec.http[0].fault.delay.exponentialDelay",
        "exponentialDelay not supported yet",
    );
    rejected(
        &http_vs("fault:\n    delay:\n      fixedDelay: 0.5ms\n"),
        "spec.http[0].fault.delay.fixedDelay",
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
}

#[test]
fn http_retries_and_timeouts() {
    valid(&http_vs(
        "retries:\n    attempts: 3\n    perTryTimeout: 2s\n    retryOn: gateway-error,connect-failure,503\n    retryRemoteLocalities: true\n    retryIgnorePreviousHosts: true\n    backoff: 25ms\n  timeout: 10s\n",
    ));
    valid(&http_vs("retries:\n    attempts: 0\n"));
    rejected(
        &http_vs("retries:\n    attempts: -1\n"),
        "spec.http[0].retries.attempts",
        "attempts cannot be negative",
    );
    rejected(
        &http_vs("retries:\n    attempts: 0\n    retryOn: 5xx\n"),
        "spec.http[0].retries",
        "http retry policy configured when attempts are set to 0 (disabled)",
    );
    rejected(
        &http_vs("retries:\n    perTryTimeout: 1s\n"),
        "spec.http[0].retries",
        "http retry policy configured when attempts are set to 0 (disabled)",
    );
    rejected(
        &http_vs("retries:\n    attempts: 2\n    retryOn: 5xx,foo\n"),
        "spec.http[0].retries.retryOn",
        "\"foo\" is not a valid retryOn policy",
    );
    rejected(
        &http_vs("retries:\n    attempts: 2\n    retryOn: \"599\"\n"),
        "spec.http[0].retries.retryOn",
        "\"599\" is not a valid retryOn policy",
    );
    rejected(
        &http_vs("retries:\n    attempts: 2\n    perTryTimeout: 1.5ms\n"),
        "spec.http[0].retries.perTryTimeout",
        "only durations to ms precision are supported",
    );
    rejected(
        &http_vs("timeout: 0.1ms\n"),
        "spec.http[0].timeout",
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
}

#[test]
fn http_cors() {
    valid(&http_vs(
        "corsPolicy:\n    allowOrigins:\n    - exact: https://a.com\n    - regex: \"https://.*\\\\.b\\\\.com\"\n    allowOrigin:\n    - https://legacy.com\n    allowMethods:\n    - GET\n    - POST\n    allowHeaders:\n    - x-custom\n    - \"*\"\n    exposeHeaders:\n    - x-exposed\n    maxAge: 24h\n    allowCredentials: true\n    unmatchedPreflights: IGNORE\n",
    ));
    rejected(
        &http_vs("corsPolicy:\n    allowMethods:\n    - FOO\n"),
        "spec.http[0].corsPolicy.allowMethods[0]",
        "\"FOO\" is not a supported HTTP method",
    );
    rejected(
        &http_vs("corsPolicy:\n    allowOrigins:\n    - exact: \"\"\n"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "'' is not a valid match type for CORS allow origins",
    );
    rejected(
        &http_vs("corsPolicy:\n    allowOrigins:\n    - regex: \"(\"\n"),
        "spec.http[0].corsPolicy.allowOrigins[0].regex",
        "\"corsPolicy.allowOrigins\": error parsing regexp",
    );
    rejected(
        &http_vs("corsPolicy:\n    allowHeaders:\n    - \"bad header\"\n"),
        "spec.http[0].corsPolicy.allowHeaders[0]",
        "header name bad header is not a valid header name",
    );
    rejected(
        &http_vs("corsPolicy:\n    exposeHeaders:\n    - \"\"\n"),
        "spec.http[0].corsPolicy.exposeHeaders[0]",
        "header name cannot be empty",
    );
    rejected(
        &http_vs("corsPolicy:\n    maxAge: 1.5s\n"),
        "spec.http[0].corsPolicy.maxAge",
        "max_age duration is accurate only to seconds precision",
    );
}

#[test]
fn http_header_operations() {
    valid(&http_vs(
        "headers:\n    request:\n      set:\n        x-a: \"%HOSTNAME%\"\n        host: b.com\n      add:\n        x-b: \"100%%\"\n      remove:\n      - x-c\n    response:\n      set:\n        x-d: d\n      remove:\n      - x-e\n",
    ));
    rejected(
        &http_vs("headers:\n    request:\n      add:\n        \":path\": /x\n"),
        "spec.http[0].headers.request.add.:path",
        "invalid header \":path\": header cannot have \":\" prefix",
    );
    rejected(
        &http_vs("headers:\n    request:\n      remove:\n      - Host\n"),
        "spec.http[0].headers.request.remove[0]",
        "invalid header \"Host\": cannot set Host header",
    );
    rejected(
        &http_vs("headers:\n    response:\n      set:\n        host: x\n"),
        "spec.http[0].headers.response.set.host",
        "invalid header \"host\": cannot set Host header",
    );
    rejected(
        &http_vs("headers:\n    response:\n      add:\n        \":status\": \"200\"\n"),
        "spec.http[0].headers.response.add.:status",
        "invalid header \":status\": header cannot have \":\" prefix",
    );
    rejected(
        &http_vs("headers:\n    request:\n      set:\n        x-a: \"abc%\"\n"),
        "spec.http[0].headers.request.set.x-a",
        "header value configuration: invalid header configuration. Un-escaped %",
    );
    rejected(
        &http_vs("headers:\n    response:\n      add:\n        x-a: \"%START_TIME\"\n"),
        "spec.http[0].headers.response.add.x-a",
        "invalid header configuration. Un-terminated variable expression '%START_TIME'",
    );
    rejected(
        &http_vs("headers:\n    request:\n      set:\n        x-a: \"a\\nb\"\n"),
        "spec.http[0].headers.request.set.x-a",
        "header value configuration a\nb is invalid",
    );
    rejected(
        &http_vs("headers:\n    request:\n      set:\n        \"\": x\n"),
        "spec.http[0].headers.request.set.",
        "header name cannot be empty",
    );
}
