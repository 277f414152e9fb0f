//! The gateway's HTTP request path without sockets: the input is the byte stream a client
//! sends (HTTP/1.1 or, with the preface, HTTP/2), fed through an in-memory pipe to
//! `http::serve_http` with a snapshot compiled from real manifests (a Gateway, a
//! VirtualService with matchers, redirects, direct responses, header operations and a
//! forward with retries, and DENY AuthorizationPolicies), and TEXT plus JSON access logs.
//! hyper parses the head, then normalization, authorization, route selection, local replies
//! or the forward path run; upstream names resolve nowhere (no DNS is configured), so nothing
//! leaves the process. The clock is tokio's paused clock: "the server waits for more bytes"
//! ends the exchange at once instead of after a real timeout.
//!
//! Invariants: no panic; no response ever carries the body of the `/admin` route, which the
//! DENY policy covers with the same paths (routing and authorization must judge the same
//! path); every access-log line is one line without control characters.
#![no_main]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use egress_compile::snapshot::{AccessLog, ListenerKind, LogEncoding, Snapshot};
use egress_compile::{GatewayIdentity, compile, inputs_from_resources};
use egress_model::{DecodeOptions, Outcome, decode_file};
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::connect::Connector;
use egress_proxy::drain::Drain;
use egress_proxy::{ConnInfo, Ctx, ProxyOptions};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::watch;

const NS: &str = "aks-istio-egress";
/// The body only the `/admin` route answers with; the DENY policy must stop it first.
const ADMIN_BODY: &[u8] = b"ADMIN-ROUTE-REACHED";

const MANIFESTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: asm-egress-fuzz}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes}
spec:
  hosts: ["*"]
  gateways: [egress]
  http:
  - name: admin
    match: [{uri: {regex: "/admin(/.*)?"}}]
    directResponse: {status: 200, body: {string: ADMIN-ROUTE-REACHED}}
  - name: moved
    match: [{uri: {exact: /old}}, {uri: {prefix: /legacy/}, ignoreUriCase: true}]
    redirect: {uri: /new, authority: edition.cnn.com, redirectCode: 308}
  - name: teapot
    match: [{headers: {x-route: {regex: "a.*b"}}}, {queryParams: {q: {exact: "1"}}}]
    directResponse: {status: 418, body: {string: short and stout}}
    headers: {response: {set: {x-teapot: "yes"}}}
  - name: api
    match: [{uri: {regex: "/api/v[0-9]+/.*"}, method: {exact: GET}}, {authority: {prefix: edition.}}]
    rewrite: {uri: /v1/}
    headers:
      request: {set: {x-fuzz: "1"}, add: {x-more: two}, remove: [x-drop]}
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "connect-failure,5xx"}
    timeout: 3s
    route:
    - destination: {host: edition.cnn.com, port: {number: 80}}
      weight: 70
    - destination: {host: edition.cnn.com, port: {number: 80}}
      weight: 30
  - name: rest
    route:
    - destination: {host: edition.cnn.com, port: {number: 80}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  selector: {matchLabels: {istio: asm-egress-fuzz}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
  - to: [{operation: {methods: [DELETE], hosts: ["*.blocked.example"]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
"#;

struct Harness {
    rt: Runtime,
    ctx: Arc<Ctx>,
    route_config: String,
    log: Arc<Mutex<Vec<u8>>>,
    _snapshots: watch::Sender<Arc<Snapshot>>,
}

/// The access-log sink: lines land in a buffer each run inspects and clears.
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn snapshot() -> Snapshot {
    let opts = DecodeOptions {
        default_namespace: Some(NS.to_owned()),
        enforce_namespace: false,
    };
    let resources = decode_file("fuzz.yaml", MANIFESTS, &opts)
        .into_iter()
        .map(|o| match o {
            Outcome::Valid(d) => d.resource,
            other => panic!("invalid fuzz manifest: {:?}", other.diagnostics()),
        });
    let id = GatewayIdentity {
        namespace: NS.into(),
        labels: BTreeMap::from([("istio".into(), "asm-egress-fuzz".into())]),
        service_account: "asm-egress-fuzz".into(),
        revision: None,
        service_ports: BTreeMap::from([(80, 8080)]),
    };
    let mut s = compile(&id, &inputs_from_resources(resources), 1);
    assert!(
        s.warnings.is_empty(),
        "fuzz manifests compile with warnings: {:?}",
        s.warnings
    );
    let json = AccessLog {
        path: Some("/dev/stdout".into()),
        encoding: LogEncoding::Json,
        ..AccessLog::default()
    };
    s.access_log = AccessLog {
        path: Some("/dev/stdout".into()),
        encoding: LogEncoding::Text,
        additional: vec![json],
        ..AccessLog::default()
    };
    s
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let snapshot = snapshot();
        let route_config = snapshot
            .listeners
            .iter()
            .find_map(|l| match &l.kind {
                ListenerKind::Http(rc) => Some(rc.name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no HTTP listener compiled"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let logger = AccessLogger::to_writer(Box::new(Shared(Arc::clone(&log))));
        logger.prepare(&snapshot.access_log);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let options = ProxyOptions::default();
        let options_limits = options.limits.clone();
        let connector = rt
            .block_on(async { Connector::new(&options) })
            .unwrap_or_else(|e| panic!("connector: {e}"));
        let ctx = Arc::new(Ctx {
            snapshots: rx,
            connector,
            options,
            identity: None,
            access_log: logger,
            drain: Drain::new(),
            http: Arc::default(),
            conns: Arc::new(egress_proxy::limits::Connections::new(
                &options_limits,
                Arc::default(),
            )),
            active: Default::default(),
        });
        Harness {
            rt,
            ctx,
            route_config,
            log,
            _snapshots: tx,
        }
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, input)) = data.split_first() else {
        return;
    };
    let h = harness();
    // Bit 0: the connection came through TLS this gateway terminated (SNI edition.cnn.com).
    let tls = flags & 1 == 1;
    let conn = ConnInfo {
        downstream_remote: addr("10.1.2.3:50000"),
        downstream_local: addr("10.1.2.4:8080"),
        sni: tls.then(|| "edition.cnn.com".to_owned()),
        peer_identity: None,
        server_port: 80,
        tls_terminated: tls,
    };
    let response = h.rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(egress_proxy::http::serve_http(
            server,
            conn,
            h.route_config.clone(),
            Arc::clone(&h.ctx),
        ));
        let (mut rd, mut wr) = tokio::io::split(client);
        let mut out = Vec::new();
        let exchange = async {
            let write = async {
                let _ = wr.write_all(input).await;
                let _ = wr.flush().await;
            };
            let read = rd.read_to_end(&mut out);
            let _ = tokio::join!(write, read);
        };
        // On the paused clock this fires as soon as both sides are only waiting.
        let _ = tokio::time::timeout(Duration::from_secs(60), exchange).await;
        drop(rd);
        drop(wr);
        if tokio::time::timeout(Duration::from_secs(60), serve)
            .await
            .is_err()
        {
            panic!("the connection did not end after the client went away");
        }
        out
    });
    assert!(
        !response.windows(ADMIN_BODY.len()).any(|w| w == ADMIN_BODY),
        "the /admin route answered past the DENY policy: {}",
        String::from_utf8_lossy(&response)
    );
    let log = std::mem::take(&mut *h.log.lock().unwrap_or_else(PoisonError::into_inner));
    if !log.is_empty() {
        assert_eq!(log.last(), Some(&b'\n'), "unterminated access-log line");
        for line in log[..log.len() - 1].split(|b| *b == b'\n') {
            assert!(
                !line.iter().any(|b| b.is_ascii_control() && *b != b'\t'),
                "control character in access-log line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
});
