//! `egress sidecar run`: a workload's outbound sidecar as its own process (what an injected
//! `istio-proxy` container runs; `egress up` embeds the same data plane per injected Pod). It
//! reads the configuration like `egress gateway run` (the cluster store's change feed, or a
//! directory), compiles the workload's outbound view (registry, outboundTrafficPolicy, routes
//! bound to `mesh`, DestinationRules) and serves it as an explicit HTTP/CONNECT proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use egress_compile::snapshot::SidecarSnapshot;

use egress_proxy::metrics::LocalWorkload;
use egress_proxy::sidecar::{Sidecar, SidecarOptions, SidecarTelemetry};
use tokio::sync::watch;

use crate::OpError;
use crate::gateway::{GatewayRunArgs, hangup, reload_loop, wait_for_signal, workload_identity};

/// Runs the sidecar until SIGTERM/SIGINT, then drains. `args.options.listen_address` is the
/// Pod IP the explicit proxy listens on, at `proxy_port`.
pub async fn run(args: GatewayRunArgs, proxy_port: u16) -> Result<(), OpError> {
    let hup = hangup();
    let (identity, renewal) = workload_identity(&args).await?;
    let (tx, rx) = watch::channel(Arc::new(SidecarSnapshot::default()));
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
    let sidecar =
        Sidecar::start_with_telemetry(rx, options, telemetry, Some(identity.clone()), access_log)
            .await
            .map_err(|e| OpError::failed("starting the sidecar", e))?;
    tracing::info!(addr = %sidecar.proxy_addr(), "outbound proxy (http_proxy/https_proxy)");
    if let Some(addr) = sidecar.metrics_addr() {
        tracing::info!(%addr, "metrics on /stats/prometheus");
    }
    let metrics = Arc::clone(sidecar.metrics());
    let reload = tokio::spawn(reload_loop(
        args.clone(),
        tx,
        metrics,
        hup,
        |id, inputs, version| {
            let snap = egress_compile::compile_sidecar(id, inputs, version);
            for w in &snap.warnings {
                tracing::warn!("{w}");
            }
            tracing::info!(
                version,
                ports = snap.ports.len(),
                clusters = snap.clusters.len(),
                policy = ?snap.outbound,
                "configuration loaded"
            );
            snap
        },
    ));
    wait_for_signal().await;
    tracing::info!(grace = ?args.drain_grace, "draining");
    reload.abort();
    renewal.stop();
    sidecar.shutdown(args.drain_grace).await;
    Ok(())
}
