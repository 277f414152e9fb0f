//! Route lookup cost against the number of hosts: the virtual host for a request's Host in a
//! route table of 10, 1,000 and 10,000 ServiceEntry hosts (one virtual host each, plus one
//! `*.wild.example` wildcard), for an exact host, a wildcard match and a miss. The goal is a
//! cost that does not grow with the table (`bench/README.md`).
//!
//! `cargo bench -p egress-proxy --bench route_lookup`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use egress_proxy::http::vhost_index::VhostIndex;
use egress_snapshot::snapshot::{RouteConfig, VirtualHost};

fn table(n: usize) -> RouteConfig {
    let mut virtual_hosts: Vec<VirtualHost> = (0..n)
        .map(|i| VirtualHost {
            name: format!("host{i}.bench.example:80"),
            domains: vec![format!("host{i}.bench.example")],
            routes: Vec::new(),
            require_tls: false,
        })
        .collect();
    virtual_hosts.push(VirtualHost {
        name: "wild:80".into(),
        domains: vec!["*.wild.example".into()],
        routes: Vec::new(),
        require_tls: false,
    });
    RouteConfig {
        name: "http.8080".into(),
        virtual_hosts,
    }
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_vhost");
    for n in [10usize, 1_000, 10_000] {
        let rc = table(n);
        let last = format!("host{}.bench.example", n - 1);
        // Built when a version is prepared, as in the proxy; not part of the figures.
        let index = VhostIndex::build(&rc.virtual_hosts);
        let vhosts = rc.virtual_hosts.as_slice();
        assert!(index.select(vhosts, &last).is_some());
        for (case, host) in [
            ("exact", last.as_str()),
            ("wildcard", "api.wild.example"),
            ("miss", "nowhere.example"),
        ] {
            group.bench_with_input(BenchmarkId::new(case, n), &host, |b, host| {
                b.iter(|| index.select(black_box(vhosts), black_box(host)))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = lookup
}
criterion_main!(benches);
