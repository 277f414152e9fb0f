//! Unit tests of the metric registry and its exposition.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use crate::accesslog::{ResponseFlag, ResponseFlags};

/// A version without ISTIO_MUTUAL clusters.
fn none() -> MutualTls {
    MutualTls::new()
}

fn request(code: u16, cluster: Option<&str>) -> LogEntry {
    LogEntry {
        protocol: Some("HTTP/1.1".into()),
        response_code: code,
        upstream_cluster: cluster.map(str::to_owned),
        duration: Some(Duration::from_millis(3)),
        bytes_sent: 9,
        ..LogEntry::default()
    }
}

fn line<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn requests_are_counted_per_label_set() {
    let m = Metrics::gateway();
    m.record(&request(200, Some("outbound|80||edition.cnn.com")), &none());
    m.record(&request(200, Some("outbound|80||edition.cnn.com")), &none());
    let mut nr = request(404, None);
    nr.response_flags = ResponseFlags::from(ResponseFlag::NoRouteFound);
    m.record(&nr, &none());
    let out = m.render();
    let totals = line(&out, "istio_requests_total{");
    assert_eq!(totals.len(), 2, "{out}");
    assert!(
        totals
            .iter()
            .any(|l| l.contains("destination_service=\"edition.cnn.com\"")
                && l.contains("response_code=\"200\"")
                && l.ends_with(" 2")),
        "{out}"
    );
    assert!(
        totals.iter().any(|l| l.contains("response_flags=\"NR\"")
            && l.contains("destination_service=\"unknown\"")
            && l.ends_with(" 1")),
        "{out}"
    );
    assert!(
        out.contains("le=\"5\"} 2\n"),
        "3 ms lands in the 5 ms bucket: {out}"
    );
    assert!(out.contains("# TYPE istio_request_duration_milliseconds histogram"));
    assert!(!out.contains("istio_tcp_"), "no TCP series yet: {out}");
}

#[test]
fn tcp_connections_add_up() {
    let m = Metrics::gateway();
    for _ in 0..2 {
        m.record(
            &LogEntry {
                upstream_cluster: Some("outbound|443||edition.cnn.com".into()),
                bytes_sent: 10,
                bytes_received: 4,
                ..LogEntry::default()
            },
            &none(),
        );
    }
    let out = m.render();
    let opened = line(&out, "istio_tcp_connections_opened_total{");
    assert_eq!(opened.len(), 1, "{out}");
    assert!(opened[0].ends_with(" 2"), "{out}");
    assert!(opened[0].contains("request_protocol=\"tcp\""), "{out}");
    assert!(!opened[0].contains("response_code"), "{out}");
    assert!(line(&out, "istio_tcp_sent_bytes_total{")[0].ends_with(" 20"));
    assert!(line(&out, "istio_tcp_received_bytes_total{")[0].ends_with(" 8"));
}

#[test]
fn gateway_figures() {
    let drain = Drain::new();
    let m = Metrics::gateway()
        .with_connections(drain.clone())
        .with_build_tag("1.2.3");
    let _guard = drain.guard();
    m.set_config_version(7);
    let out = m.render();
    assert!(out.contains("istio_build{component=\"proxy\",tag=\"1.2.3\"} 1\n"));
    assert!(out.contains("egress_active_connections 1\n"), "{out}");
    assert!(out.contains("egress_config_version 7\n"), "{out}");
    assert!(out.contains("egress_config_reload_total{result=\"ok\"} 0\n"));
    assert!(!out.contains("egress_config_last_reload_success"), "{out}");
    m.record_reload(ReloadResult::Ok);
    m.record_reload(ReloadResult::Refused);
    let out = m.render();
    assert!(out.contains("egress_config_reload_total{result=\"ok\"} 1\n"));
    assert!(out.contains("egress_config_reload_total{result=\"refused\"} 1\n"));
    assert!(
        out.contains("egress_config_last_reload_success 0\n"),
        "{out}"
    );
    assert!(!out.contains("egress_config_last_reload_version"), "{out}");
}

#[test]
fn objects_held_are_a_gauge_by_kind_and_state() {
    let m = Metrics::gateway();
    assert!(!m.render().contains("egress_config_objects_held{"));
    let held = [
        (("ServiceEntry".to_owned(), "last_good".to_owned()), 2),
        (("VirtualService".to_owned(), "refused".to_owned()), 1),
    ]
    .into_iter()
    .collect();
    m.set_objects_held(held);
    let out = m.render();
    assert!(
        out.contains("# TYPE egress_config_objects_held gauge\n"),
        "{out}"
    );
    assert!(
        out.contains("egress_config_objects_held{kind=\"ServiceEntry\",state=\"last_good\"} 2\n"),
        "{out}"
    );
    assert!(
        out.contains("egress_config_objects_held{kind=\"VirtualService\",state=\"refused\"} 1\n"),
        "{out}"
    );
    m.set_objects_held(Default::default());
    assert!(!m.render().contains("egress_config_objects_held{"));
}

#[test]
fn a_refused_reload_keeps_its_version_reason_and_time() {
    let m = Metrics::gateway();
    assert_eq!(m.last_reload(), None);
    m.set_config_version(4);
    m.reload(4, Ok(()));
    m.reload(5, Err("VirtualService default/cnn: bad host".into()));
    let last = m.last_reload().unwrap();
    assert_eq!(last.version, Some(5));
    assert_eq!(last.result(), ReloadResult::Refused);
    assert_eq!(
        last.error.as_deref(),
        Some("VirtualService default/cnn: bad host")
    );
    let out = m.render();
    assert!(out.contains("egress_config_version 4\n"), "{out}");
    assert!(
        out.contains("egress_config_last_reload_version 5\n"),
        "{out}"
    );
    assert!(
        out.contains("egress_config_last_reload_success 0\n"),
        "{out}"
    );
    let stamp = line(&out, "egress_config_last_reload_timestamp_seconds ");
    assert_eq!(stamp.len(), 1, "{out}");
    let secs: f64 = stamp[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 1.0e9, "{out}");
    m.reload(6, Ok(()));
    assert!(m.render().contains("egress_config_last_reload_success 1\n"));
}

fn connection(remote: u16) -> LogEntry {
    LogEntry {
        upstream_cluster: Some("outbound|443||edition.cnn.com".into()),
        downstream_remote_address: Some(([127, 0, 0, 1], remote).into()),
        downstream_local_address: Some(([127, 0, 0, 1], 8443).into()),
        ..LogEntry::default()
    }
}

#[test]
fn connections_count_as_opened_when_reported_and_closed_once() {
    let m = Metrics::gateway();
    let open = connection(40000);
    m.tcp_opened(&open, &none());
    m.tcp_opened(&open, &none());
    let out = m.render();
    assert!(line(&out, "istio_tcp_connections_opened_total{")[0].ends_with(" 1"));
    assert!(line(&out, "istio_tcp_connections_closed_total{")[0].ends_with(" 0"));
    // The close keeps the opening's labels even if its flags changed meanwhile.
    let mut closing = connection(40000);
    closing.response_flags = ResponseFlags::from(ResponseFlag::DownstreamConnectionTermination);
    closing.bytes_sent = 7;
    m.record(&closing, &none());
    // A connection never reported open counts both when it closes.
    m.record(&connection(40001), &none());
    let out = m.render();
    let opened = line(&out, "istio_tcp_connections_opened_total{");
    assert_eq!(opened.len(), 1, "{out}");
    assert!(opened[0].ends_with(" 2"), "{out}");
    assert!(line(&out, "istio_tcp_connections_closed_total{")[0].ends_with(" 2"));
    assert!(line(&out, "istio_tcp_sent_bytes_total{")[0].ends_with(" 7"));
    // The same addresses again make a new connection.
    m.tcp_opened(&open, &none());
    assert!(line(&m.render(), "istio_tcp_connections_opened_total{")[0].ends_with(" 3"));
}

#[test]
fn istio_mutual_clusters_show_the_local_principal() {
    let m = Metrics::sidecar(LocalWorkload {
        workload: "sleep".into(),
        namespace: "default".into(),
        principal: "spiffe://cluster.local/ns/default/sa/sleep".into(),
        ..LocalWorkload::default()
    });
    let mutual: MutualTls = ["outbound|443|cnn|gw.ns.svc.cluster.local".to_owned()]
        .into_iter()
        .collect();
    m.record(
        &request(200, Some("outbound|443|cnn|gw.ns.svc.cluster.local")),
        &mutual,
    );
    m.record(&request(200, Some("PassthroughCluster")), &mutual);
    let out = m.render();
    let totals = line(&out, "istio_requests_total{");
    assert_eq!(totals.len(), 2, "{out}");
    assert!(totals.iter().any(|l| {
        l.contains("source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"")
            && l.contains("destination_service_name=\"gw\"")
    }));
    assert!(
        totals
            .iter()
            .any(|l| l.contains("source_principal=\"unknown\"")
                && l.contains("destination_service_name=\"PassthroughCluster\""))
    );
}

#[test]
fn local_workload_fills_source_labels() {
    let m = Metrics::gateway();
    m.set_local_workload(LocalWorkload {
        workload: "asm-egress-test".into(),
        namespace: "aks-istio-egress".into(),
        ..LocalWorkload::default()
    });
    m.record(&request(200, None), &none());
    let out = m.render();
    assert!(out.contains(
        "source_workload=\"asm-egress-test\",source_workload_namespace=\"aks-istio-egress\""
    ));
    assert!(out.contains("source_canonical_revision=\"latest\""));
}

#[test]
fn subsets_of_one_host_share_a_label_set() {
    let m = Metrics::gateway();
    m.record(
        &request(200, Some("outbound|80|v1|edition.cnn.com")),
        &none(),
    );
    m.record(
        &request(200, Some("outbound|80|v2|edition.cnn.com")),
        &none(),
    );
    let out = m.render();
    let totals = line(&out, "istio_requests_total{");
    assert_eq!(totals.len(), 1, "{out}");
    assert!(totals[0].ends_with(" 2"), "{out}");
    let counts = line(&out, "istio_request_duration_milliseconds_count{");
    assert_eq!(counts.len(), 1, "{out}");
    assert!(counts[0].ends_with(" 2"), "{out}");
}
