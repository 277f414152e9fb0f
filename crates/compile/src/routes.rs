//! VirtualService `http` rules to routes (Istio's `BuildHTTPRoutesForVirtualService` and
//! `TranslateRoute`): match conditions, redirects, direct responses, weighted destinations,
//! rewrites, header operations, timeouts and retries.

use std::collections::BTreeMap;

use egress_model::resources::virtual_service::{
    Destination, HeaderOperations, HttpMatchRequest, HttpRedirect, HttpRoute,
    RedirectPortSelection, StringMatch as VsStringMatch,
};
use egress_model::validate::common::parse_go_duration;

use crate::ctx::{Ctx, Vs};
use crate::endpoints::labels_match;
use crate::host::subset_key;
use crate::retry::{convert_retry, mesh_default_retry};
use crate::snapshot::{
    Forward, HeaderOps, Redirect, Route, RouteAction, RouteMatch, StringMatch, WeightedCluster,
};

/// Header keys of a match that Istio ignores (they have their own fields).
const RESERVED_HEADERS: [&str; 4] = ["uri", "scheme", "method", "authority"];

/// Where routes are being built: the server port and the gateway (`ns/name`).
pub(crate) struct RouteScope<'s> {
    /// The server port (the gateway Service port, which `match.port` compares with).
    pub port: u32,
    /// The gateway, `ns/name` (`mesh` for sidecars).
    pub gateway: &'s str,
    /// Sidecar rules: a destination without a port takes the listener port (Istio looks the
    /// service up among those on the listener's port, so the "only port" rule never applies).
    pub sidecar: bool,
}

/// Routes of `vs` for one server; `None` when no rule applies ("no routes matched"), in
/// which case Istio adds no virtual host for the VirtualService.
pub(crate) fn http_routes(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    scope: &RouteScope<'_>,
) -> Option<Vec<Route>> {
    let mut out = Vec::new();
    for (i, rule) in vs.spec.http().iter().enumerate() {
        if rule.delegate.is_some() {
            ctx.warn(format!(
                "VirtualService {}/{} http[{i}]: delegation is not supported; rule skipped",
                vs.ns, vs.name
            ));
            continue;
        }
        let mut catch_all = false;
        if rule.matches().is_empty() {
            if let Some(r) = translate(ctx, vs, i, rule, None, scope) {
                out.push(r);
            }
            catch_all = true;
        } else {
            for m in rule.matches() {
                if let Some(r) = translate(ctx, vs, i, rule, Some(m), scope) {
                    let stop = is_catch_all(&r.matcher);
                    out.push(r);
                    if stop {
                        catch_all = true;
                        break;
                    }
                }
            }
        }
        if catch_all {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `IsCatchAllRoute`: any path, no header or query conditions.
pub(crate) fn is_catch_all(m: &RouteMatch) -> bool {
    let path_any = match &m.uri {
        None => true,
        Some(StringMatch::Prefix(p)) => p == "/",
        Some(StringMatch::Regex(r)) => r == "*",
        Some(StringMatch::Exact(_)) => false,
    };
    path_any
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
}

/// `sourceMatchHTTP`: match-level `gateways` must name this gateway; otherwise
/// `sourceLabels` must select the gateway pod and `sourceNamespace` be its namespace.
fn source_matches(ctx: &Ctx<'_>, vs: &Vs<'_>, m: &HttpMatchRequest, gateway: &str) -> bool {
    if !m.gateways().is_empty() {
        return vs.match_gateways(m.gateways()).iter().any(|g| g == gateway);
    }
    let labels = m.source_labels.clone().unwrap_or_default();
    labels_match(&labels, Some(ctx.labels()))
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns.is_empty() || ns == ctx.id.namespace)
}

fn translate(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    index: usize,
    rule: &HttpRoute,
    m: Option<&HttpMatchRequest>,
    scope: &RouteScope<'_>,
) -> Option<Route> {
    let here = || format!("VirtualService {}/{} http[{index}]", vs.ns, vs.name);
    if let Some(m) = m {
        if m.port.is_some_and(|p| p != 0 && p != i64::from(scope.port)) {
            return None;
        }
        if !source_matches(ctx, vs, m, scope.gateway) {
            return None;
        }
    }
    let matcher = match m {
        Some(m) => route_match(m).or_else(|| {
            ctx.warn(format!(
                "{}: JWT claim matches need RequestAuthentication, which egress does not \
                 support; the route never matches and is skipped",
                here()
            ));
            None
        })?,
        None => RouteMatch::default(),
    };
    let mut name = rule.name().to_owned();
    if let Some(mn) = m.and_then(|m| m.name.as_deref()).filter(|n| !n.is_empty()) {
        name = format!("{name}.{mn}");
    }
    let headers = rule.headers.as_ref();
    let (mut request_headers, mut authority) =
        header_ops(headers.and_then(|h| h.request.as_ref()), true);
    let (mut response_headers, _) = header_ops(headers.and_then(|h| h.response.as_ref()), false);
    for (what, set) in [
        ("fault injection", rule.fault.is_some()),
        ("corsPolicy", rule.cors_policy.is_some()),
        (
            "mirror",
            rule.mirror.is_some() || !rule.mirrors().is_empty(),
        ),
    ] {
        if set {
            ctx.warn(format!(
                "{}: {what} is not supported by egress; ignored",
                here()
            ));
        }
    }
    let action = if let Some(r) = &rule.redirect {
        RouteAction::Redirect(redirect(ctx, r, scope.port, &here)?)
    } else if let Some(d) = &rule.direct_response {
        RouteAction::DirectResponse {
            status: u16::try_from(d.status.unwrap_or(200)).unwrap_or(200),
            body: d.body.as_ref().and_then(|b| {
                b.string
                    .clone()
                    .or_else(|| b.bytes.as_deref().map(crate::retry::base64_text))
            }),
        }
    } else {
        let mut fwd = Forward {
            clusters: Vec::new(),
            timeout: rule
                .timeout
                .as_deref()
                .and_then(|t| parse_go_duration(t).ok())
                .filter(|d| !d.is_zero()),
            retry: match &rule.retries {
                Some(r) => convert_retry(Some(r)),
                None => convert_retry(mesh_default_retry(ctx.mesh).as_ref()),
            },
            rewrite_uri: None,
            rewrite_authority: None,
        };
        if let Some(rw) = &rule.rewrite {
            fwd.rewrite_uri = rw.uri.clone().filter(|u| !u.is_empty());
            if rw.uri_regex_rewrite.is_some() {
                ctx.warn(format!(
                    "{}: uriRegexRewrite is not supported; ignored",
                    here()
                ));
            }
            if let Some(a) = rw.authority.clone().filter(|a| !a.is_empty()) {
                authority = Some(a);
            }
        }
        let dests = rule.route();
        if let [only] = dests {
            let dest = only.destination.clone().unwrap_or_default();
            let (rq, dst_authority) =
                header_ops(only.headers.as_ref().and_then(|h| h.request.as_ref()), true);
            let (rs, _) = header_ops(
                only.headers.as_ref().and_then(|h| h.response.as_ref()),
                false,
            );
            append_ops(&mut request_headers, rq);
            append_ops(&mut response_headers, rs);
            if dst_authority.is_some() {
                authority = dst_authority;
            }
            fwd.clusters.push(WeightedCluster {
                cluster: dest_cluster_for(ctx, vs, &dest, scope.port, true, !scope.sidecar),
                weight: 100,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
            });
        } else {
            for d in dests.iter().filter(|d| d.weight.unwrap_or(0) > 0) {
                let dest = d.destination.clone().unwrap_or_default();
                let (rq, dst_authority) =
                    header_ops(d.headers.as_ref().and_then(|h| h.request.as_ref()), true);
                let (rs, _) =
                    header_ops(d.headers.as_ref().and_then(|h| h.response.as_ref()), false);
                if dst_authority.is_some() {
                    ctx.warn(format!(
                        "{}: per-destination authority rewrite on a weighted route is not \
                         supported; ignored",
                        here()
                    ));
                }
                fwd.clusters.push(WeightedCluster {
                    cluster: dest_cluster_for(ctx, vs, &dest, scope.port, true, !scope.sidecar),
                    weight: u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0),
                    request_headers: rq,
                    response_headers: rs,
                });
            }
        }
        if fwd.clusters.is_empty() {
            ctx.warn(format!(
                "{}: no destination (with a weight above 0); rule skipped",
                here()
            ));
            return None;
        }
        fwd.rewrite_authority = authority.take();
        RouteAction::Forward(fwd)
    };
    Some(Route {
        name,
        matcher,
        action,
        request_headers,
        response_headers,
    })
}

/// `GetDestinationCluster`: the destination port, else the service's only port, else the
/// server port; ExternalName Services stand for their target. HTTP looks the service up in
/// the VirtualService's namespace first.
pub(crate) fn dest_cluster(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    dest: &Destination,
    listen_port: u32,
    prefer_vs_ns: bool,
) -> String {
    dest_cluster_for(ctx, vs, dest, listen_port, prefer_vs_ns, true)
}

/// [`dest_cluster`], with the service's only port used for a port-less destination only when
/// `only_port` is set (gateways; sidecars use the listener port).
fn dest_cluster_for(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    dest: &Destination,
    listen_port: u32,
    prefer_vs_ns: bool,
    only_port: bool,
) -> String {
    let mut host = vs.dest_host(dest.host());
    let svc = ctx
        .registry
        .lookup(&host, &ctx.id.namespace, prefer_vs_ns.then_some(vs.ns));
    let port = match dest.port_number() {
        Some(p) => u16::try_from(p).unwrap_or(0),
        None => match svc.map(|s| s.ports.as_slice()) {
            Some([only]) if only_port => only.number,
            _ => u16::try_from(listen_port).unwrap_or(0),
        },
    };
    if let Some(target) = svc.and_then(|s| s.external_name()) {
        host = target.to_owned();
    }
    subset_key(port, dest.subset(), &host)
}

fn redirect(
    ctx: &Ctx<'_>,
    r: &HttpRedirect,
    port: u32,
    here: &dyn Fn() -> String,
) -> Option<Redirect> {
    let status = match r.redirect_code.unwrap_or(0) {
        0 | 301 => 301,
        c @ (302 | 303 | 307 | 308) => u16::try_from(c).unwrap_or(301),
        other => {
            ctx.warn(format!(
                "{}: redirect code {other} is not supported; rule skipped",
                here()
            ));
            return None;
        }
    };
    if r.prefix_rewrite.is_some() {
        ctx.warn(format!(
            "{}: redirect prefixRewrite is not supported; the path is kept",
            here()
        ));
    }
    let port = match (r.port, r.derive_port) {
        (Some(p), _) => u16::try_from(p).ok(),
        (None, Some(RedirectPortSelection::FromRequestPort)) => u16::try_from(port).ok(),
        _ => None,
    };
    Some(Redirect {
        uri: r.uri.clone().filter(|s| !s.is_empty()),
        authority: r.authority.clone().filter(|s| !s.is_empty()),
        scheme: r.scheme.clone().filter(|s| !s.is_empty()),
        port,
        status,
    })
}

/// A match request as route conditions; `None` when it has JWT claim conditions.
fn route_match(m: &HttpMatchRequest) -> Option<RouteMatch> {
    let pairs = |map: Option<&BTreeMap<String, VsStringMatch>>| -> Option<Vec<(String, Option<StringMatch>)>> {
        let mut out = Vec::new();
        for (k, v) in map.into_iter().flatten() {
            if k.starts_with("@request.auth.claims") {
                return None;
            }
            if RESERVED_HEADERS.contains(&k.as_str()) {
                continue;
            }
            out.push((k.to_ascii_lowercase(), string_match(v)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    };
    Some(RouteMatch {
        uri: m.uri.as_ref().and_then(string_match),
        scheme: m.scheme.as_ref().and_then(string_match),
        method: m.method.as_ref().and_then(string_match),
        authority: m.authority.as_ref().and_then(string_match),
        headers: pairs(m.headers.as_ref())?,
        without_headers: pairs(m.without_headers.as_ref())?,
        query_params: m
            .query_params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect(),
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
    })
}

fn string_match(m: &VsStringMatch) -> Option<StringMatch> {
    if let Some(e) = &m.exact {
        Some(StringMatch::Exact(e.clone()))
    } else if let Some(p) = &m.prefix {
        Some(StringMatch::Prefix(p.clone()))
    } else {
        m.regex.as_ref().map(|r| StringMatch::Regex(r.clone()))
    }
}

/// Header operations; on requests, `:authority`/`host` in `set`/`add` become an authority
/// rewrite (returned separately), as Envoy refuses to set them as headers.
fn header_ops(ops: Option<&HeaderOperations>, request: bool) -> (HeaderOps, Option<String>) {
    let mut out = HeaderOps::default();
    let mut authority = None;
    let Some(ops) = ops else {
        return (out, authority);
    };
    let is_authority = |k: &str| {
        request && (k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host"))
    };
    for (k, v) in ops.set.iter().flatten() {
        if is_authority(k) {
            authority = Some(v.clone());
        } else {
            out.set.push((k.to_ascii_lowercase(), v.clone()));
        }
    }
    for (k, v) in ops.add.iter().flatten() {
        if is_authority(k) {
            authority = Some(v.clone());
        } else {
            out.add.push((k.to_ascii_lowercase(), v.clone()));
        }
    }
    out.remove = ops
        .remove
        .iter()
        .flatten()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    (out, authority)
}

fn append_ops(into: &mut HeaderOps, more: HeaderOps) {
    into.set.extend(more.set);
    into.add.extend(more.add);
    into.remove.extend(more.remove);
}
