//! Load balancer, connection pool and outlier detection checks (`validateLoadBalancer`,
//! `ValidateLocalityLbSetting`, `validateConnectionPool`, `validateOutlierDetection`).

use std::collections::BTreeMap;

use crate::diag::{Report, idx, join};
use crate::resources::destination_rule::{
    ConnectionPoolSettings, H2UpgradePolicy, LoadBalancerSettings, LocalityLbSetting,
    OutlierDetection, WarmupConfiguration,
};
use crate::validate::common;
use crate::validate::virtual_service::util;

/// `validateOutlierDetection`, plus the CRD bounds on the error codes.
pub(super) fn outlier_detection(r: &mut Report, path: &str, od: &OutlierDetection) {
    util::duration(
        r,
        &join(path, "baseEjectionTime"),
        od.base_ejection_time.as_ref(),
    );
    if od.consecutive_errors.is_some_and(|c| c != 0) {
        r.warn(
            join(path, "consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if od.split_external_local_origin_errors != Some(true)
        && od.consecutive_local_origin_failures.is_some_and(|c| c > 0)
    {
        r.error(
            join(path, "consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    util::duration(r, &join(path, "interval"), od.interval.as_ref());
    for (field, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        let v = v.unwrap_or_default();
        if !(0..=100).contains(&v) {
            r.error(
                join(path, field),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
    for (i, code) in od
        .outlier_detection_http_error_codes
        .iter()
        .flatten()
        .enumerate()
    {
        let field = idx(&join(path, "outlierDetectionHttpErrorCodes"), i);
        if *code < 100 {
            r.error(
                &field,
                format!("{field}: Invalid value: {code}: {field} in body should be greater than or equal to 100"),
            );
        } else if *code > 599 {
            r.error(
                &field,
                format!("{field}: Invalid value: {code}: {field} in body should be less than or equal to 599"),
            );
        }
    }
}

/// `validateConnectionPool` (DestinationRule and Sidecar pools), with the CRD's duration rule.
pub(crate) fn connection_pool(r: &mut Report, path: &str, cp: &ConnectionPoolSettings) {
    if cp.http.is_none() && cp.tcp.is_none() {
        r.error(path, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &cp.http {
        let hpath = join(path, "http");
        for (field, v, what) in [
            (
                "http1MaxPendingRequests",
                h.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                h.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                h.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", h.max_retries, "max retries"),
        ] {
            if v.is_some_and(|v| v < 0) {
                r.error(join(&hpath, field), format!("{what} must be non-negative"));
            }
        }
        util::duration(r, &join(&hpath, "idleTimeout"), h.idle_timeout.as_ref());
        if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && h.use_client_protocol == Some(true)
        {
            r.error(
                join(&hpath, "useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if h.max_concurrent_streams.is_some_and(|v| v < 0) {
            r.error(
                join(&hpath, "maxConcurrentStreams"),
                "max concurrent streams must be non-negative",
            );
        }
        if let Some(ka) = &h.http2_keep_alive {
            let kpath = join(&hpath, "http2KeepAlive");
            if ka.interval.is_none() || ka.timeout.is_none() {
                r.error(&kpath, "http2KeepAlive requires both interval and timeout");
            }
            util::duration(r, &join(&kpath, "interval"), ka.interval.as_ref());
            util::duration(r, &join(&kpath, "timeout"), ka.timeout.as_ref());
        }
    }
    if let Some(t) = &cp.tcp {
        let tpath = join(path, "tcp");
        if t.max_connections.is_some_and(|v| v < 0) {
            r.error(
                join(&tpath, "maxConnections"),
                "max connections must be non-negative",
            );
        }
        util::duration(
            r,
            &join(&tpath, "connectTimeout"),
            t.connect_timeout.as_ref(),
        );
        util::duration(
            r,
            &join(&tpath, "maxConnectionDuration"),
            t.max_connection_duration.as_ref(),
        );
        if let Some(idle) = &t.idle_timeout {
            // `0s` disables the idle timeout and is allowed.
            let zero = common::parse_go_duration(idle).is_ok_and(|d| d.is_zero());
            if !zero {
                // The CRD opts this field out of the duration rule; the webhook checks it.
                util::webhook_duration(r, &join(&tpath, "idleTimeout"), Some(idle));
            }
        }
        if let Some(ka) = &t.tcp_keepalive {
            let kpath = join(&tpath, "tcpKeepalive");
            util::duration(r, &join(&kpath, "time"), ka.time.as_ref());
            util::duration(r, &join(&kpath, "interval"), ka.interval.as_ref());
        }
    }
}

/// Envoy's primality test, as Istio copies it (`isPrime`).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let limit = (x as f64).sqrt() as u64;
    let mut f = 3;
    while f <= limit {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// `validateLoadBalancer`, plus the CRD's `oneOf`s and warmup bounds.
pub(super) fn load_balancer(
    r: &mut Report,
    path: &str,
    lb: &LoadBalancerSettings,
    has_outlier: bool,
) {
    util::one_of(
        r,
        path,
        util::count_set(&[lb.simple.is_some(), lb.consistent_hash.is_some()]),
    );
    if let Some(ch) = &lb.consistent_hash {
        let cpath = join(path, "consistentHash");
        util::one_of(
            r,
            &cpath,
            util::count_set(&[
                ch.http_header_name.is_some(),
                ch.http_cookie.is_some(),
                ch.use_source_ip.is_some(),
                ch.http_query_parameter_name.is_some(),
            ]),
        );
        util::one_of(
            r,
            &cpath,
            util::count_set(&[ch.ring_hash.is_some(), ch.maglev.is_some()]),
        );
        if let Some(cookie) = &ch.http_cookie {
            let kpath = join(&cpath, "httpCookie");
            match cookie.name.as_deref() {
                None => util::required(r, &join(&kpath, "name")),
                Some("") => r.error(join(&kpath, "name"), "name required for HttpCookie"),
                Some(_) => {}
            }
            let mut seen: Vec<&str> = Vec::new();
            for (i, a) in cookie.attributes.iter().flatten().enumerate() {
                let field = join(&idx(&join(&kpath, "attributes"), i), "name");
                let name = a.name.as_deref().unwrap_or_default();
                if name.is_empty() {
                    r.error(field, "cookie attribute name cannot be empty");
                } else if seen.contains(&name) {
                    r.error(field, format!("duplicate cookie attribute name: {name}"));
                } else {
                    seen.push(name);
                }
            }
        }
        let min_ring = ch.minimum_ring_size.unwrap_or_default();
        if min_ring != 0 {
            r.warn(
                join(&cpath, "minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                r.error(
                    &cpath,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(ml) = &ch.maglev {
            let field = join(&join(&cpath, "maglev"), "tableSize");
            let size = ml.table_size.unwrap_or_default();
            if size == 0 {
                r.error(&field, "tableSize must be set for maglev");
            }
            if size >= 5_000_011 {
                r.error(&field, "tableSize must be less than 5000011 for maglev");
            }
            if !is_prime(size) {
                r.error(&field, "tableSize must be a prime number for maglev");
            }
        }
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        r.error(
            path,
            "only one of localityLbSetting or zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality(r, &join(path, "localityLbSetting"), l, has_outlier);
    }
    if let Some(w) = &lb.warmup {
        warmup(r, &join(path, "warmup"), w);
    }
    util::duration(
        r,
        &join(path, "warmupDurationSecs"),
        lb.warmup_duration_secs.as_ref(),
    );
}

/// The CRD rules on `warmup` (duration required, `0 <= minimumPercent <= 100`,
/// `aggression >= 1`), then the webhook's duration check.
fn warmup(r: &mut Report, path: &str, w: &WarmupConfiguration) {
    match &w.duration {
        None => util::required(r, &join(path, "duration")),
        Some(d) => {
            util::duration(r, &join(path, "duration"), Some(d));
        }
    }
    if let Some(p) = w.minimum_percent {
        let field = join(path, "minimumPercent");
        let v = util::go_float(p);
        if p > 100.0 {
            r.error(&field, format!("{field}: Invalid value: {v}: {field} in body should be less than or equal to 100"));
        } else if p < 0.0 {
            r.error(&field, format!("{field}: Invalid value: {v}: {field} in body should be greater than or equal to 0"));
        }
    }
    if let Some(a) = w.aggression {
        let field = join(path, "aggression");
        if a < 1.0 {
            let v = util::go_float(a);
            r.error(&field, format!("{field}: Invalid value: {v}: {field} in body should be greater than or equal to 1"));
        }
    }
}

/// `ValidateLocalityLbSetting`; like Istio, some problems end the check early.
fn locality(r: &mut Report, path: &str, l: &LocalityLbSetting, has_outlier: bool) {
    let distribute = l.distribute.as_deref().unwrap_or_default();
    let failover = l.failover.as_deref().unwrap_or_default();
    let priority = l.failover_priority.as_deref().unwrap_or_default();
    if !distribute.is_empty() && !failover.is_empty() {
        r.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !failover.is_empty() {
        for label in priority {
            if [
                "topology.kubernetes.io/region",
                "topology.kubernetes.io/zone",
                "topology.istio.io/subzone",
            ]
            .contains(&label.as_str())
            {
                r.error(
                    join(path, "failoverPriority"),
                    format!("can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"),
                );
                return;
            }
        }
    }
    let mut sources: Vec<&str> = Vec::new();
    for (i, d) in distribute.iter().enumerate() {
        let dpath = idx(&join(path, "distribute"), i);
        sources.push(d.from.as_deref().unwrap_or_default());
        let to: &BTreeMap<String, u32> = match &d.to {
            Some(t) => t,
            None => &BTreeMap::new(),
        };
        let mut total: u32 = 0;
        for w in to.values() {
            if *w == 0 || *w > 100 {
                r.error(
                    join(&dpath, "to"),
                    "locality weight must be in range [1, 100]",
                );
                return;
            }
            total = total.saturating_add(*w);
        }
        if total != 100 {
            r.error(
                join(&dpath, "to"),
                format!("total locality weight {total} != 100"),
            );
            return;
        }
        let dests: Vec<&str> = to.keys().map(String::as_str).collect();
        if let Err(e) = localities(&dests) {
            r.error(join(&dpath, "to"), e);
        }
    }
    if let Err(e) = localities(&sources) {
        r.error(join(path, "distribute"), e);
    }
    if (!failover.is_empty() || !priority.is_empty()) && !has_outlier {
        r.warn(
            path,
            "outlier detection policy must be provided for failover",
        );
    }
    for (i, f) in failover.iter().enumerate() {
        let fpath = idx(&join(path, "failover"), i);
        let from = f.from.as_deref().unwrap_or_default();
        let to = f.to.as_deref().unwrap_or_default();
        if from == to {
            r.error(
                &fpath,
                "locality lb failover settings must specify different regions",
            );
        }
        if from.contains('/') || to.contains('/') {
            r.error(&fpath, "locality lb failover only specify region");
        }
        if from.contains('*') || to.contains('*') {
            r.error(
                &fpath,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// `validateLocalities`: wildcards only at the end, no overlaps, no empty parts.
fn localities(list: &[&str]) -> Result<(), String> {
    // region -> zone -> subzones; "*" marks "everything below".
    let mut seen: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    let overlap = |l: &str| format!("locality {l} overlap with previous specified ones");
    for l in list {
        let stars = l.matches('*').count();
        if stars > 1 || (stars == 1 && !l.ends_with('*')) {
            return Err(format!(
                "locality {l} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return Err(overlap(l));
        }
        let items: Vec<&str> = l.splitn(3, '/').collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!(
                "locality {l} must not contain empty region/zone/subzone info"
            ));
        }
        match items.as_slice() {
            [region] => {
                if seen.contains_key(region) {
                    return Err(overlap(l));
                }
                seen.insert(region, BTreeMap::from([("*", vec!["*"])]));
            }
            [region, zone] => {
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") || zones.contains_key(zone) {
                    return Err(overlap(l));
                }
                zones.insert(zone, vec!["*"]);
            }
            [region, zone, sub] => {
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") {
                    return Err(overlap(l));
                }
                let subs = zones.entry(zone).or_default();
                if subs.contains(&"*") || subs.contains(sub) {
                    return Err(overlap(l));
                }
                subs.push(sub);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_like_envoy() {
        assert!(is_prime(65537));
        assert!(is_prime(2));
        assert!(!is_prime(0));
        assert!(!is_prime(65536));
        assert!(!is_prime(9));
    }

    #[test]
    fn locality_overlaps() {
        assert!(localities(&["region1/zone1", "region1/zone2"]).is_ok());
        assert!(localities(&["region1/*", "region1/zone2"]).is_err());
        assert!(localities(&["region1/zone1/sub", "region1/zone1/sub"]).is_err());
        assert!(localities(&["*", "region1"]).is_err());
        assert!(localities(&["region1//sub"]).is_err());
        assert!(localities(&["reg*ion"]).is_err());
    }
}
