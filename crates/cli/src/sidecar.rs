//! `egress sidecar run`: a workload's outbound sidecar as its own process (what an injected
//! `istio-proxy` container runs; `egress up` embeds the same data plane per injected Pod). It
//! reads the configuration like `egress gateway run` (the cluster store's change feed, or a
//! directory), compiles the workload's outbound view (registry, outboundTrafficPolicy, routes
//! bound to `mesh`, DestinationRules) and serves it as an explicit HTTP/CONNECT proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use egress_proxy::metrics::LocalWorkload;
use egress_proxy::sidecar::{SidecarOptions, SidecarTelemetry};
use egress_runner::reload::hangup;
use egress_runner::{Plane, run as run_instance};

use crate::OpError;
use crate::gateway::{GatewayRunArgs, wait_for_signal, workload_identity};

/// Runs the sidecar until SIGTERM/SIGINT, then drains. `args.options.listen_address` is the
/// Pod IP the explicit proxy listens on, at `proxy_port`.
pub async fn run(args: GatewayRunArgs, proxy_port: u16) -> Result<(), OpError> {
    let hup = hangup();
    let (identity, renewal) = workload_identity(&args).await?;
    let options = SidecarOptions {
        proxy_listen: SocketAddr::new(
            args.options
                .listen_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            proxy_port,
        ),
        capture_listen: None,
        source_address: args.options.source_address,
        limits: args.options.limits.clone(),
        // All of `gateway run`'s upstream flags (--dns-server included); the sidecar turns
        // the resolved-address guard off itself.
        upstream: args.options.upstream.clone(),
    };
    let access_log = egress_proxy::accesslog::AccessLogger::stdout_when_configured();
    let telemetry = SidecarTelemetry {
        metrics_port: args.options.metrics_port,
        prometheus_port: args.options.prometheus_port,
        workload: LocalWorkload::from_pod_labels(&args.identity.namespace, &args.identity.labels),
    };
    let served = run_instance(
        args.source.clone(),
        args.identity.clone(),
        Plane::Sidecar { options, telemetry },
        Some(identity),
        access_log,
        hup,
        |instance| {
            let Some(sidecar) = instance.sidecar() else {
                return;
            };
            tracing::info!(addr = %sidecar.proxy_addr(), "outbound proxy (http_proxy/https_proxy)");
            if let Some(addr) = sidecar.metrics_addr() {
                tracing::info!(%addr, "metrics on /stats/prometheus");
            }
        },
        wait_for_signal(),
        args.drain_grace,
    )
    .await;
    renewal.stop();
    served.map_err(|e| OpError::failed("serving the sidecar", e))
}
