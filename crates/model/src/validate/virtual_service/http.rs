//! HTTP route validation (`validateHTTPRoute` and what it calls).

use std::collections::BTreeMap;

use super::actions::{cors, direct_response, fault, mirror, redirect, retries, rewrite};
use super::util;
use crate::diag::{Report, idx, join};
use crate::resources::virtual_service::{
    HeaderOperations, Headers, HttpMatchRequest, HttpRoute, HttpRouteDestination,
};
use crate::validate::common;

#[derive(PartialEq)]
enum RouteType {
    Independent,
    Root,
    Delegate,
}

/// `validateHTTPRoute`; `delegate` is true inside a delegate (hostless) VirtualService.
pub(super) fn validate_route(r: &mut Report, path: &str, route: &HttpRoute, delegate: bool) {
    let kind = if delegate {
        RouteType::Delegate
    } else if route.delegate.is_some() {
        RouteType::Root
    } else {
        RouteType::Independent
    };
    conflicts(r, path, route, &kind);

    for (j, m) in route.matches().iter().enumerate() {
        match_request(r, &idx(&join(path, "match"), j), m);
    }

    header_operations(r, &join(path, "headers"), route.headers.as_ref());
    if let Some(c) = &route.cors_policy {
        cors(r, &join(path, "corsPolicy"), c);
    }
    if let Some(f) = &route.fault {
        fault(r, &join(path, "fault"), f);
    }
    if let Some(v) = route.mirror_percent {
        let field = join(path, "mirrorPercent");
        if v > 100 {
            r.error(
                &field,
                format!("mirror_percent must have a max value of 100 (it has {v})"),
            );
        }
        r.warn(
            &field,
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = &route.mirror_percentage {
        let v = p.value();
        let field = join(&join(path, "mirrorPercentage"), "value");
        if v > 100.0 {
            r.error(
                &field,
                format!("mirror_percentage must have a max value of 100 (it has {v:.6})"),
            );
        }
        if v < 0.0 {
            r.error(
                &field,
                format!("mirror_percentage must have a min value of 0 (it has {v:.6})"),
            );
        }
    }
    if let Some(m) = &route.mirror {
        util::destination(r, &join(path, "mirror"), m);
    }
    for (k, m) in route.mirrors().iter().enumerate() {
        mirror(r, &idx(&join(path, "mirrors"), k), m);
    }
    if let Some(rd) = &route.redirect {
        redirect(r, &join(path, "redirect"), rd, route);
    }
    if let Some(d) = &route.direct_response {
        direct_response(r, &join(path, "directResponse"), d);
    }
    if let Some(rt) = &route.retries {
        retries(r, &join(path, "retries"), rt);
    }
    if let Some(rw) = &route.rewrite {
        rewrite(r, &join(path, "rewrite"), rw);
    }
    authority_rewrite(r, path, route);
    destinations(r, &join(path, "route"), route.route());
    util::duration(r, &join(path, "timeout"), route.timeout.as_ref());
}

/// `validateHTTPRouteConflict`.
fn conflicts(r: &mut Report, path: &str, route: &HttpRoute, kind: &RouteType) {
    if *kind == RouteType::Root {
        if route.redirect.is_some() {
            r.error(
                join(path, "redirect"),
                format!("root HTTP route {} must not specify redirect", route.name()),
            );
        }
        if route.route.is_some() {
            r.error(
                join(path, "route"),
                format!("root HTTP route {} must not specify route", route.name()),
            );
        }
        return;
    }
    if *kind == RouteType::Delegate && route.delegate.is_some() {
        r.error(
            join(path, "delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    let has_route = !route.route().is_empty();
    if route.redirect.is_some() {
        if has_route {
            r.error(
                join(path, "route"),
                "HTTP route cannot contain both route and redirect",
            );
        }
        if route.fault.is_some() {
            r.error(
                join(path, "fault"),
                "HTTP route cannot contain both fault and redirect",
            );
        }
        if route.rewrite.is_some() {
            r.error(
                join(path, "rewrite"),
                "HTTP route rule cannot contain both rewrite and redirect",
            );
        }
        if route.direct_response.is_some() {
            r.error(
                join(path, "directResponse"),
                "HTTP route rule cannot contain both direct_response and redirect",
            );
        }
    } else if route.direct_response.is_some() {
        if has_route {
            r.error(
                join(path, "route"),
                "HTTP route cannot contain both route and direct_response",
            );
        }
        if route.fault.is_some() {
            r.error(
                join(path, "fault"),
                "HTTP route cannot contain both fault and direct_response",
            );
        }
        if route.rewrite.is_some() {
            r.error(
                join(path, "rewrite"),
                "HTTP route rule cannot contain both rewrite and direct_response",
            );
        }
    } else if !has_route {
        r.error(path, "HTTP route, redirect or direct_response is required");
    }
    if route.mirror.is_some() && !route.mirrors().is_empty() {
        r.error(
            join(path, "mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

/// `validateHTTPRouteMatchRequest` for one match.
fn match_request(r: &mut Report, path: &str, m: &HttpMatchRequest) {
    for (name, sm) in m.headers.iter().flatten() {
        let field = join(&join(path, "headers"), name);
        if let Err(e) = util::header_name_or_jwt_claim(name) {
            r.error(&field, e);
        }
        util::string_match(r, &field, sm, "headers");
    }
    for (name, sm) in m.without_headers.iter().flatten() {
        let field = join(&join(path, "withoutHeaders"), name);
        if let Err(e) = util::header_name_or_jwt_claim(name) {
            r.error(&field, e);
        }
        // `*` is not a regex here: it means "present".
        if sm.regex.as_deref() == Some("*") {
            util::string_match_one_of(r, &field, sm);
        } else {
            util::string_match(r, &field, sm, "withoutHeaders");
        }
    }
    // The URI allows an empty prefix (Envoy's path matcher does), the others do not.
    if let Some(uri) = &m.uri {
        let field = join(path, "uri");
        util::string_match_one_of(r, &field, uri);
        util::string_match_regexp(r, &field, uri, "uri");
    }
    for (name, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            util::string_match(r, &join(path, name), sm, name);
        }
    }
    for (name, sm) in m.query_params.iter().flatten() {
        util::string_match(
            r,
            &join(&join(path, "queryParams"), name),
            sm,
            "queryParams",
        );
    }
    if let Some(p) = m.port.filter(|p| *p != 0) {
        util::port(r, &join(path, "port"), p);
    }
    util::labels(r, &join(path, "sourceLabels"), m.source_labels.as_ref());
    util::gateway_names(r, &join(path, "gateways"), m.gateways());
    if let Some(ns) = m.source_namespace.as_deref().filter(|s| !s.is_empty())
        && !common::is_dns1123_label(ns)
    {
        r.error(
            join(path, "sourceNamespace"),
            format!("sourceNamespace match {ns} is invalid"),
        );
    }
}

/// Header manipulation of a route or destination.
fn header_operations(r: &mut Report, path: &str, headers: Option<&Headers>) {
    let Some(h) = headers else { return };
    if let Some(req) = &h.request {
        let rpath = join(path, "request");
        ops(r, &rpath, req, true);
    }
    if let Some(resp) = &h.response {
        let rpath = join(path, "response");
        ops(r, &rpath, resp, false);
    }
}

fn ops(r: &mut Report, path: &str, o: &HeaderOperations, request: bool) {
    for (op, map) in [("add", &o.add), ("set", &o.set)] {
        for (name, value) in map.iter().flatten() {
            let field = join(&join(path, op), name);
            let res = if request {
                name_with_authority(name)
            } else {
                operation_name(name)
            };
            if let Err(e) = res {
                r.error(&field, e);
            }
            if let Err(e) = util::header_value(value) {
                r.error(&field, e);
            }
        }
    }
    for (k, name) in o.remove.iter().flatten().enumerate() {
        if let Err(e) = operation_name(name) {
            r.error(idx(&join(path, "remove"), k), e);
        }
    }
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// `ValidateHTTPHeaderWithAuthorityOperationName` (request add / set).
fn name_with_authority(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// `ValidateHTTPHeaderOperationName` (request remove, all response operations).
fn operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// `validateAuthorityRewrite`: the authority may be set in one place only.
fn authority_rewrite(r: &mut Report, path: &str, route: &HttpRoute) {
    let mut current = route
        .rewrite
        .as_ref()
        .and_then(|rw| rw.authority.clone())
        .unwrap_or_default();
    let req = route.headers.as_ref().and_then(|h| h.request.as_ref());
    for (op, map) in [
        ("set", req.and_then(|q| q.set.as_ref())),
        ("add", req.and_then(|q| q.add.as_ref())),
    ] {
        for (k, v) in map.into_iter().flat_map(BTreeMap::iter) {
            if !is_authority_header(k) {
                continue;
            }
            if !current.is_empty() {
                r.error(
                    join(&join(&join(&join(path, "headers"), "request"), op), k),
                    format!("authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"),
                );
                return;
            }
            current = v.clone();
        }
    }
}

/// `validateHTTPRouteDestinations`.
fn destinations(r: &mut Report, path: &str, dests: &[HttpRouteDestination]) {
    let mut total: i64 = 0;
    for (k, d) in dests.iter().enumerate() {
        let dpath = idx(path, k);
        match &d.destination {
            None => util::required(r, &join(&dpath, "destination")),
            Some(dest) => util::destination(r, &join(&dpath, "destination"), dest),
        }
        header_operations(r, &join(&dpath, "headers"), d.headers.as_ref());
        let w = d.weight.unwrap_or_default();
        if w < 0 {
            r.error(join(&dpath, "weight"), format!("weight {w} < 0"));
        }
        total += i64::from(w);
    }
    if dests.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}
