//! What the sidecar does with a connection to a destination port, looked up in the sidecar
//! snapshot a [`Snapshot`](egress_snapshot::snapshot::Snapshot) carries: HTTP routed with the
//! port's table, TLS by SNI, opaque TCP, or the outbound policy. The route tables themselves are
//! built with the configuration (`egress_snapshot::sidecar_view`), not here.

use egress_snapshot::sidecar_view::{policy_table, port_table};
use egress_snapshot::snapshot::{OutboundPort, SidecarSnapshot, SniRoute, TcpRoute};

/// What a connection to one destination port gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan<'a> {
    /// HTTP, routed with the view's table of the port ([`port_table`]).
    Http,
    /// TLS: routes chosen by the ClientHello's SNI.
    Tls(&'a [SniRoute]),
    /// Opaque TCP to the route's clusters.
    Tcp(&'a TcpRoute),
    /// No entry: the outbound policy decides (passthrough or black hole).
    Policy,
}

/// What a connection to `port` gets.
pub fn plan(snapshot: &SidecarSnapshot, port: u16) -> Plan<'_> {
    match snapshot.ports.get(&port) {
        Some(OutboundPort::Http(_)) => Plan::Http,
        Some(OutboundPort::Tls(routes)) => Plan::Tls(routes),
        Some(OutboundPort::Tcp(route)) => Plan::Tcp(route),
        None => Plan::Policy,
    }
}

/// The route table for an HTTP request sent through the explicit proxy to `port`: the
/// port's own table for HTTP and TCP ports, else the policy's catch-all (a TLS port cannot
/// route plaintext HTTP by SNI, so, as for a TLS connection without a matching SNI, the
/// policy decides).
pub fn http_table(snapshot: &SidecarSnapshot, port: u16) -> String {
    match snapshot.ports.get(&port) {
        Some(OutboundPort::Http(_) | OutboundPort::Tcp(_)) => port_table(port),
        Some(OutboundPort::Tls(_)) | None => policy_table(snapshot.outbound).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use egress_snapshot::sidecar_view::weighted;
    use egress_snapshot::snapshot::{
        ALLOW_ANY_ROUTE, BLOCK_ALL_ROUTE, OutboundPolicy, RouteConfig,
    };

    use super::*;

    fn snapshot(policy: OutboundPolicy) -> SidecarSnapshot {
        let tcp = TcpRoute {
            clusters: vec![weighted("outbound|3306||db.example")],
            route_name: Some("db".into()),
        };
        let tls = vec![SniRoute {
            sni_hosts: vec!["edition.cnn.com".into()],
            clusters: vec![weighted("outbound|443||edition.cnn.com")],
            route_name: None,
        }];
        SidecarSnapshot {
            version: 3,
            outbound: policy,
            ports: BTreeMap::from([
                (
                    80,
                    OutboundPort::Http(RouteConfig {
                        name: "80".into(),
                        virtual_hosts: Vec::new(),
                    }),
                ),
                (443, OutboundPort::Tls(tls)),
                (3306, OutboundPort::Tcp(tcp)),
            ]),
            ..SidecarSnapshot::default()
        }
    }

    #[test]
    fn plans_and_http_tables_per_port() {
        let s = snapshot(OutboundPolicy::AllowAny);
        assert_eq!(plan(&s, 80), Plan::Http);
        assert!(matches!(plan(&s, 443), Plan::Tls(r) if r.len() == 1));
        assert!(matches!(plan(&s, 3306), Plan::Tcp(_)));
        assert_eq!(plan(&s, 8080), Plan::Policy);
        assert_eq!(http_table(&s, 80), "80");
        assert_eq!(http_table(&s, 3306), "3306");
        assert_eq!(http_table(&s, 443), ALLOW_ANY_ROUTE);
        assert_eq!(http_table(&s, 9), ALLOW_ANY_ROUTE);
        let s = snapshot(OutboundPolicy::RegistryOnly);
        assert_eq!(http_table(&s, 9), BLOCK_ALL_ROUTE);
    }
}
