//! The snapshot a gateway serves: everything the data plane needs, resolved and immutable.
//!
//! Names follow Envoy-as-configured-by-Istio so access logs and errors read the same:
//! listeners `0.0.0.0_8080`, clusters `outbound|<port>|<subset>|<host>`, virtual hosts
//! `<host>:<port>`, route names the HTTPRoute's `name` (empty, logged as `-`, when unnamed).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use crate::log_filter::{
    CompareOp, FilterAttribute, FilterError, FilterExpr, FilterValue, LogFilter, StringMethod,
};

/// Who this gateway instance is: what it selects Gateways with and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayIdentity {
    /// Pod namespace (Gateway `selector`s and `credentialName` Secrets are looked up here).
    pub namespace: String,
    /// Pod labels, matched against Gateway `spec.selector`.
    pub labels: BTreeMap<String, String>,
    /// Service account (its SPIFFE identity is the gateway's mesh identity).
    pub service_account: String,
    /// Control-plane revision (`asm-1-24`), if any.
    pub revision: Option<String>,
    /// Service port -> target port of the gateway's Service (80->8080, 443->8443 by default).
    pub service_ports: BTreeMap<u16, u16>,
}

/// Everything one gateway instance serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Monotonic version (the store's resourceVersion it was compiled from).
    pub version: u64,
    /// Listeners by bind address and target port.
    pub listeners: Vec<Listener>,
    /// Upstream clusters by name (`outbound|443||edition.cnn.com`).
    pub clusters: BTreeMap<String, Cluster>,
    /// Access logging.
    pub access_log: AccessLog,
    /// Mesh-wide settings.
    pub mesh: MeshSettings,
    /// AuthorizationPolicies the instance enforces (none: everything is allowed).
    pub authz: crate::authz::Authz,
    /// Non-fatal problems found while compiling (Istio logs these and skips the piece).
    pub warnings: Vec<String>,
    /// For a sidecar: the outbound snapshot this routable form was made from (its per-port
    /// plans and outbound policy), so a sidecar's whole configuration is one value. `None` at
    /// gateways.
    pub sidecar: Option<std::sync::Arc<SidecarSnapshot>>,
}

impl Snapshot {
    /// True when `other` makes the proxy do exactly what `self` does: every field equal but
    /// `version`. The destructuring names every field (no `..`), so a field added to the
    /// contract is compared or the crate does not compile; nothing keeps the list by hand.
    pub fn same_content(&self, other: &Snapshot) -> bool {
        let Snapshot {
            version: _,
            listeners,
            clusters,
            access_log,
            mesh,
            authz,
            warnings,
            sidecar,
        } = self;
        *listeners == other.listeners
            && *clusters == other.clusters
            && *access_log == other.access_log
            && *mesh == other.mesh
            && *authz == other.authz
            && *warnings == other.warnings
            && match (sidecar, &other.sidecar) {
                (Some(a), Some(b)) => a.same_content(b),
                (None, None) => true,
                _ => false,
            }
    }

    /// The route table called `name` (plaintext listener or HTTPS-terminated chain).
    pub fn route_config(&self, name: &str) -> Option<&RouteConfig> {
        self.listeners.iter().find_map(|l| match &l.kind {
            ListenerKind::Http(rc) if rc.name == name => Some(rc),
            ListenerKind::Http(_) => None,
            ListenerKind::Chains(chains) => chains.iter().find_map(|c| match &c.action {
                ChainAction::Http(rc) if rc.name == name => Some(rc),
                _ => None,
            }),
        })
    }
}

/// A configuration a running proxy serves, compared by what it makes the proxy do: the one
/// rule for whether a newly compiled configuration must reach a running gateway or sidecar
/// (`egress up`'s runtime, `gateway run`, `sidecar run`).
pub trait SameContent {
    /// True when `other` makes the proxy do exactly what `self` does (every field equal but
    /// the version).
    fn same_content(&self, other: &Self) -> bool;
}

impl SameContent for Snapshot {
    fn same_content(&self, other: &Snapshot) -> bool {
        Snapshot::same_content(self, other)
    }
}

impl SameContent for SidecarSnapshot {
    fn same_content(&self, other: &SidecarSnapshot) -> bool {
        SidecarSnapshot::same_content(self, other)
    }
}

/// Mesh-wide settings from MeshConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    /// Trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Upstream connect timeout (MeshConfig `connectTimeout`, 10s).
    pub connect_timeout: Duration,
    /// DNS refresh when no TTL is known (MeshConfig `dnsRefreshRate`, 60s).
    pub dns_refresh_rate: Duration,
    /// How request paths are normalized (MeshConfig `pathNormalization`, BASE).
    pub path_normalization: PathNormalization,
}

/// MeshConfig `pathNormalization.normalization`, as Envoy's HTTP connection manager applies
/// it (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`). Each level does
/// everything the one before it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum PathNormalization {
    /// Forwarded as received (only `%00` is still refused).
    None,
    /// RFC 3986: percent-encoded unreserved characters decoded, `\` made `/`, dot segments
    /// removed; Istio's default.
    #[default]
    Base,
    /// BASE, then runs of `/` merged into one.
    MergeSlashes,
    /// `%2F` and `%5C` decoded first, then MERGE_SLASHES.
    DecodeAndMergeSlashes,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            trust_domain: "cluster.local".into(),
            connect_timeout: Duration::from_secs(10),
            dns_refresh_rate: Duration::from_secs(60),
            path_normalization: PathNormalization::Base,
        }
    }
}

/// Access-log settings (MeshConfig `accessLogFile`/`Encoding`/`Format`, Telemetry).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessLog {
    /// Where lines go; `None` = off. `/dev/stdout` is the usual value.
    pub path: Option<String>,
    /// TEXT or JSON.
    pub encoding: LogEncoding,
    /// Custom format (Envoy command operators); `None` = Istio's default for the encoding.
    pub format: Option<String>,
    /// Telemetry `filter.expression`: an entry is written only when it evaluates to true (an
    /// error, such as a TCP entry asked for `response.code`, does not log); `None` = all.
    pub filter: Option<LogFilter>,
    /// The Telemetry provider this is (`envoy`, an `envoyFileAccessLog` extension provider);
    /// `None` for MeshConfig `accessLogFile`.
    pub provider: Option<String>,
    /// Further providers that apply (ordered by name, ignoring case), each writing its own line per entry.
    pub additional: Vec<AccessLog>,
}

/// Access-log encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogEncoding {
    /// Istio's default text line.
    #[default]
    Text,
    /// Istio's default JSON keys.
    Json,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `<bind>_<targetPort>`, e.g. `0.0.0.0_8080`.
    pub name: String,
    /// Bind address; `None` = all addresses (the instance's pod IP in the local cluster).
    pub bind: Option<IpAddr>,
    /// The port bound (the Service targetPort).
    pub port: u16,
    /// What the listener does with a connection.
    pub kind: ListenerKind,
}

/// Plaintext HTTP, or TLS-ish chains selected by SNI.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// Plaintext HTTP servers sharing one route table (RDS `http.<targetPort>`).
    Http(RouteConfig),
    /// TLS or TCP servers: filter chains matched on SNI in order; no match closes the
    /// connection (`NR`, `filter_chain_not_found`). A chain with no server names matches all.
    Chains(Vec<FilterChain>),
}

/// One filter chain of a TLS/TCP listener.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    /// SNI names (`edition.cnn.com`, `*.cnn.com`); empty = any (including no SNI).
    pub server_names: Vec<String>,
    /// The Gateway server's port number (the Service port), for matching and logs.
    pub server_port: u16,
    /// TLS termination; `None` = bytes pass through untouched (PASSTHROUGH).
    pub tls: Option<ServerTls>,
    /// What happens to the (decrypted, if terminated) stream.
    pub action: ChainAction,
}

/// Downstream TLS termination.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerTls {
    /// Mesh mTLS with the gateway's workload certificate; a client certificate from the mesh
    /// CA is required; `subject_alt_names` (exact) restrict the peer if non-empty.
    IstioMutual {
        /// Allowed peer SANs (exact match); empty = any mesh identity.
        subject_alt_names: Vec<String>,
    },
    /// SIMPLE (server certificate only) or MUTUAL/OPTIONAL_MUTUAL (client CA).
    Certificates {
        /// Certificate chain and key.
        identity: PemIdentity,
        /// CA bundle for client certificates (MUTUAL), PEM or `file:<path>` (see
        /// [`PemSource`]); `None` = no client certificate asked.
        client_ca: Option<String>,
        /// OPTIONAL_MUTUAL: ask for but do not require a client certificate.
        optional: bool,
        /// Allowed client SANs (exact); empty = any.
        subject_alt_names: Vec<String>,
    },
}

/// A certificate chain and private key: inline PEM, or `file:<path>` (see [`PemSource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemIdentity {
    /// Certificate chain: PEM, or `file:<path>` of a PEM file.
    pub cert_chain: String,
    /// Private key: PEM, or `file:<path>` of a PEM file.
    pub private_key: String,
}

/// Prefix of a certificate, key or CA value that names a file instead of holding PEM.
///
/// Gateway `serverCertificate`/`privateKey`/`caCertificates` and DestinationRule
/// `clientCertificate`/`privateKey`/`caCertificates` are paths on the proxy's file system
/// (Istio serves them over SDS as `file-cert:`/`file-root:` resources). The compiler is pure and
/// never reads files, so it passes such paths on as `file:<path>`; the data plane loads (and
/// re-reads) them. Values from Kubernetes Secrets (`credentialName`) are always inline PEM.
pub const FILE_PREFIX: &str = "file:";

/// Where a PEM value of the snapshot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemSource<'a> {
    /// The PEM text itself.
    Inline(&'a str),
    /// A path to read the PEM text from.
    File(&'a str),
}

impl<'a> PemSource<'a> {
    /// Classify a certificate/key/CA value of the snapshot (`file:<path>` or inline PEM).
    pub fn of(value: &'a str) -> PemSource<'a> {
        match value.strip_prefix(FILE_PREFIX) {
            Some(path) => PemSource::File(path),
            None => PemSource::Inline(value),
        }
    }
}

/// What a filter chain does.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainAction {
    /// TCP proxy to weighted clusters (passthrough and TLS-terminated TCP servers).
    TcpProxy {
        /// Destinations; one is picked per connection by weight.
        clusters: Vec<WeightedCluster>,
        /// Route/VirtualService that produced it, for logs (`-` when none).
        route_name: Option<String>,
    },
    /// HTTP over the terminated stream (HTTPS servers), with their own route table.
    Http(RouteConfig),
}

/// A route table: virtual hosts matched by Host/:authority (lower-cased, port ignored).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteConfig {
    /// `http.8080` or `https.443.https.<gw>.<ns>`.
    pub name: String,
    /// In order; the first whose domains match wins (exact before wildcard, as Envoy does).
    pub virtual_hosts: Vec<VirtualHost>,
}

/// One virtual host.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    /// `<host>:<serverPort>`.
    pub name: String,
    /// Domains: exact names, `*.suffix`, or `*`.
    pub domains: Vec<String>,
    /// Routes in order; the first match wins. None matching = 404 `NR`.
    pub routes: Vec<Route>,
    /// `httpsRedirect`: every request gets a 301 to `https://`.
    pub require_tls: bool,
}

/// One route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Route name for `%ROUTE_NAME%`: the HTTPRoute's `name` (plus `.<match name>` when the
    /// match is named). Empty when the HTTPRoute is unnamed, as Istio leaves Envoy's route name
    /// unset for VirtualService routes, so `%ROUTE_NAME%` prints `-`. (The `<ns>.<name>.<index>`
    /// names in istio.io's logs come from Gateway API HTTPRoutes, which egress does not serve.)
    pub name: String,
    /// Request conditions (all must hold); `None` fields match anything.
    pub matcher: RouteMatch,
    /// What to do.
    pub action: RouteAction,
    /// Header operations on the request sent upstream.
    pub request_headers: HeaderOps,
    /// Header operations on the response sent downstream.
    pub response_headers: HeaderOps,
}

/// Request conditions of a route (from one HTTPMatchRequest; a VirtualService rule with
/// several matches becomes several routes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Path condition.
    pub uri: Option<StringMatch>,
    /// `:scheme` condition.
    pub scheme: Option<StringMatch>,
    /// Method condition.
    pub method: Option<StringMatch>,
    /// Host/:authority condition.
    pub authority: Option<StringMatch>,
    /// Header conditions (lower-case names); `None` value = presence.
    pub headers: Vec<(String, Option<StringMatch>)>,
    /// Headers that must NOT match.
    pub without_headers: Vec<(String, Option<StringMatch>)>,
    /// Query parameter conditions.
    pub query_params: Vec<(String, Option<StringMatch>)>,
    /// Case-insensitive path matching.
    pub ignore_uri_case: bool,
}

/// Istio StringMatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// RE2 regex matching the whole value.
    Regex(String),
}

/// What a matched route does.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Proxy to weighted clusters.
    Forward(Forward),
    /// Redirect.
    Redirect(Redirect),
    /// Answer locally.
    DirectResponse {
        /// Status code.
        status: u16,
        /// Body.
        body: Option<String>,
    },
}

/// Proxying settings of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// Destinations with weights (0-weight entries already dropped).
    pub clusters: Vec<WeightedCluster>,
    /// Route timeout; `None` = no timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// Retries; `None` = no retry policy (`attempts: 0`).
    pub retry: Option<RetryPolicy>,
    /// Path rewrite.
    pub rewrite_uri: Option<String>,
    /// Authority/Host rewrite.
    pub rewrite_authority: Option<String>,
}

/// One weighted destination.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCluster {
    /// Cluster name; may name a cluster that does not exist (then 503 `NC`).
    pub cluster: String,
    /// Relative weight (>0).
    pub weight: u32,
    /// Per-destination header operations (request).
    pub request_headers: HeaderOps,
    /// Per-destination header operations (response).
    pub response_headers: HeaderOps,
}

/// Retry policy (Istio's default: 2 attempts on
/// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Per-try timeout.
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry-on conditions.
    pub retry_on: Vec<String>,
    /// Status codes retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
}

impl RetryPolicy {
    /// Istio's default policy when a route sets no `retries`.
    pub fn istio_default() -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: [
                "connect-failure",
                "refused-stream",
                "unavailable",
                "cancelled",
                "retriable-status-codes",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            // Istio's DefaultPolicy retries upstream 503s under `retriable-status-codes`.
            retriable_status_codes: vec![503],
        }
    }
}

/// Redirect settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// New scheme.
    pub scheme: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// Status (default 301).
    pub status: u16,
}

/// Header operations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderOps {
    /// Set (replace).
    pub set: Vec<(String, String)>,
    /// Append.
    pub add: Vec<(String, String)>,
    /// Remove.
    pub remove: Vec<String>,
}

/// An upstream cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<host>`.
    pub name: String,
    /// The service host (`edition.cnn.com`, `x.ns.svc.cluster.local`).
    pub host: String,
    /// The service port.
    pub port: u16,
    /// How endpoints are found.
    pub discovery: Discovery,
    /// Load balancing.
    pub lb: LbPolicy,
    /// Upstream TLS origination; `None` = plaintext.
    pub tls: Option<UpstreamTls>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Connection pool limits.
    pub pool: PoolSettings,
    /// Outlier detection; `None` = off.
    pub outlier: Option<OutlierDetection>,
    /// True for MESH_EXTERNAL services (metadata `istio.external`).
    pub external: bool,
    /// DestinationRule `trafficPolicy.tunnel`: the endpoints are a forward proxy, asked to
    /// open a tunnel to the target (`None` = connect directly).
    pub tunnel: Option<Tunnel>,
}

/// Tunnelling through a forward proxy (Envoy's tcp_proxy `tunneling_config`): after connecting
/// to an endpoint (and originating TLS to it when the cluster says so), the proxy asks it for
/// a tunnel to `target_host:target_port` and the connection's bytes then flow through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// How the tunnel is asked for.
    pub protocol: TunnelProtocol,
    /// Ask over HTTP/2 (one stream) rather than HTTP/1.1: the forward proxy's cluster is an
    /// HTTP/2 cluster (its port's protocol is HTTP2 or gRPC, or HTTP with `h2UpgradePolicy:
    /// UPGRADE`), as Envoy decides from the cluster's protocol options.
    pub http2: bool,
    /// The tunnel's destination host (FQDN or IP).
    pub target_host: String,
    /// The tunnel's destination port.
    pub target_port: u16,
}

/// How a tunnel is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelProtocol {
    /// `CONNECT host:port`: the tunnel is the upgraded connection (HTTP/1.1) or stream (HTTP/2).
    Connect,
    /// `POST /` with `Host`/`:authority` `host:port` (Envoy's `use_post`): the bytes ride as the
    /// request and response bodies.
    Post,
}

/// Endpoint discovery.
#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    /// STRICT_DNS: every address the name resolves to (ServiceEntry `DNS`).
    StrictDns {
        /// Name to resolve.
        hostname: String,
        /// Port to connect to.
        port: u16,
    },
    /// LOGICAL_DNS: the first address only (`DNS_ROUND_ROBIN`).
    LogicalDns {
        /// Name to resolve.
        hostname: String,
        /// Port to connect to.
        port: u16,
    },
    /// Fixed endpoints (`STATIC` ServiceEntries, in-cluster Services' ready pods).
    Static(Vec<Endpoint>),
    /// DNS endpoints of a ServiceEntry with `endpoints:` of hostnames (resolved each).
    DnsEndpoints(Vec<(String, u16, u32)>),
    /// ORIGINAL_DST (`PassthroughCluster`): the destination the client asked for (the
    /// captured connection's original address, or the explicit proxy request's host:port).
    OriginalDst,
    /// DYNAMIC_DNS (Envoy's dynamic forward proxy): each connection resolves the name the
    /// client asked for (the request's Host/:authority, or the SNI of a passthrough
    /// connection), which must be covered by `hosts` (the ServiceEntry's wildcard hosts).
    DynamicDns {
        /// The names this cluster may reach: `*.example.com` (any name under it) or exact.
        hosts: Vec<String>,
        /// Port to connect to.
        port: u16,
    },
}

/// A static endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub address: SocketAddr,
    /// Weight (1 when unset).
    pub weight: u32,
}

/// Load-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    /// Round robin.
    #[default]
    RoundRobin,
    /// Least request (power of two choices).
    LeastRequest,
    /// Random.
    Random,
}

/// Upstream TLS origination.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    /// SIMPLE, MUTUAL or ISTIO_MUTUAL.
    pub mode: UpstreamTlsMode,
    /// SNI to send; `None` = from the downstream Host/:authority (`auto_sni`).
    pub sni: Option<String>,
    /// Accepted server SANs; empty with `sni: None` = check against the Host (`auto_san`).
    pub subject_alt_names: Vec<String>,
    /// Roots (PEM or `file:<path>`, see [`PemSource`]); `None` = system roots plus the
    /// cluster's extra roots (ISTIO_MUTUAL: mesh root).
    pub ca_certificates: Option<String>,
    /// Certificate revocation lists the server's chain is checked against (PEM or
    /// `file:<path>`): DestinationRule `caCrl`, or `ca.crl`/`crl` of the `credentialName`
    /// Secret. With them every certificate of the chain must be covered by an unexpired CRL
    /// of its issuer and not be revoked (Envoy's `crl` with `only_verify_leaf_cert_crl: false`).
    pub ca_crl: Option<String>,
    /// Client certificate for MUTUAL (ISTIO_MUTUAL uses the workload certificate).
    pub client_identity: Option<PemIdentity>,
    /// Skip server certificate verification.
    pub insecure_skip_verify: bool,
    /// ALPN to offer.
    pub alpn: Vec<String>,
}

/// Upstream TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    /// Server-authenticated TLS.
    Simple,
    /// Mutual TLS with user certificates.
    Mutual,
    /// Mesh mTLS with the workload certificate.
    IstioMutual,
}

/// Connection pool limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolSettings {
    /// Max TCP connections (unlimited when `None`).
    pub max_connections: Option<u32>,
    /// Max pending HTTP/1 requests.
    pub http1_max_pending_requests: Option<u32>,
    /// Max requests per connection (0/None = unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Idle timeout of pooled connections (1h default).
    pub idle_timeout: Option<Duration>,
}

/// Outlier detection basics.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection.
    pub consecutive_5xx: u32,
    /// Consecutive local-origin (connect) failures before ejection.
    pub consecutive_local_origin_failures: u32,
    /// Ejection analysis interval.
    pub interval: Duration,
    /// Base ejection time.
    pub base_ejection_time: Duration,
    /// Max ejected percentage.
    pub max_ejection_percent: u32,
}

/// Name of the cluster that forwards to the original destination (ALLOW_ANY).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// Name of the cluster that has no endpoints (REGISTRY_ONLY: TLS/TCP to unknown destinations
/// is closed, flag `UH`).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";

/// Name of the catch-all virtual host and route of a sidecar's HTTP port under ALLOW_ANY.
pub const ALLOW_ANY_ROUTE: &str = "allow_any";

/// Name of the catch-all virtual host and route under REGISTRY_ONLY (direct response 502).
pub const BLOCK_ALL_ROUTE: &str = "block_all";

/// Who a sidecar serves: the workload's namespace, labels (Sidecar `workloadSelector`),
/// service account (its SPIFFE identity for ISTIO_MUTUAL) and revision (the MeshConfig).
/// `service_ports` is unused for sidecars.
pub type WorkloadIdentity = GatewayIdentity;

/// `outboundTrafficPolicy.mode` as it applies to one sidecar (its Sidecar resource, else the
/// MeshConfig; Istio's default is ALLOW_ANY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboundPolicy {
    /// Unknown destinations pass through (`PassthroughCluster`).
    #[default]
    AllowAny,
    /// Unknown destinations are refused: HTTP 502 from `block_all`, TLS/TCP closed.
    RegistryOnly,
}

/// Everything one sidecar serves for its workload's outbound traffic: Istio's outbound
/// listeners, keyed by destination port (the model of `0.0.0.0_<port>` listeners without
/// VIPs, which is how external ServiceEntries with `resolution: DNS` appear).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SidecarSnapshot {
    /// Monotonic version (the store's resourceVersion it was compiled from).
    pub version: u64,
    /// The policy for destinations not in the registry.
    pub outbound: OutboundPolicy,
    /// Per destination port: how traffic to it is handled. A port absent here is handled by
    /// the policy alone (ALLOW_ANY: passthrough; REGISTRY_ONLY: closed / 502 for HTTP).
    pub ports: BTreeMap<u16, OutboundPort>,
    /// Upstream clusters by name, as for gateways (`outbound|80|cnn|gw.ns.svc.cluster.local`),
    /// plus `PassthroughCluster` (`Discovery::OriginalDst`) and `BlackHoleCluster` (no endpoints).
    pub clusters: BTreeMap<String, Cluster>,
    /// Access logging (MeshConfig `accessLogFile` etc., Telemetry).
    pub access_log: AccessLog,
    /// Mesh-wide settings.
    pub mesh: MeshSettings,
    /// Non-fatal problems found while compiling.
    pub warnings: Vec<String>,
}

impl SidecarSnapshot {
    /// True when `other` makes the sidecar do exactly what `self` does: every field equal but
    /// `version` (every field named, as in [`Snapshot::same_content`]).
    pub fn same_content(&self, other: &SidecarSnapshot) -> bool {
        let SidecarSnapshot {
            version: _,
            outbound,
            ports,
            clusters,
            access_log,
            mesh,
            warnings,
        } = self;
        *outbound == other.outbound
            && *ports == other.ports
            && *clusters == other.clusters
            && *access_log == other.access_log
            && *mesh == other.mesh
            && *warnings == other.warnings
    }
}

/// How a sidecar handles one outbound destination port.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundPort {
    /// An HTTP port: route by Host with this table (named after the port, e.g. `"80"`). Its
    /// last virtual host is the catch-all `allow_any` (route to `PassthroughCluster`) or
    /// `block_all` (direct response 502, empty body).
    Http(RouteConfig),
    /// A TLS port: the first route whose SNI hosts match the ClientHello's SNI (exact or
    /// `*.suffix`) wins; no match (or no SNI) falls to the policy.
    Tls(Vec<SniRoute>),
    /// An opaque TCP port: every connection goes to these clusters.
    Tcp(TcpRoute),
}

/// A TLS route of a sidecar port: SNI hosts to weighted clusters (tcp_proxy, the client's TLS
/// bytes forwarded as they are unless the cluster originates TLS itself).
#[derive(Debug, Clone, PartialEq)]
pub struct SniRoute {
    /// Server names matched (exact names or `*.suffix`).
    pub sni_hosts: Vec<String>,
    /// Destinations; one is picked per connection by weight.
    pub clusters: Vec<WeightedCluster>,
    /// VirtualService that produced it, for logs (`None` = default route of a registry host).
    pub route_name: Option<String>,
}

/// A TCP route of a sidecar port.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpRoute {
    /// Destinations; one is picked per connection by weight.
    pub clusters: Vec<WeightedCluster>,
    /// VirtualService that produced it, for logs.
    pub route_name: Option<String>,
}
