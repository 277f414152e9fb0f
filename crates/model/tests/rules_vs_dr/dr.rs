//! DestinationRule rules (§2.4): host, subsets, traffic policy, tunnel, connection pool, load balancer, warmup, locality, outlier detection, port-level settings, client TLS, exportTo and workload selector.

use super::*;

// ---------------------------------------------------------------------------------------------
// DestinationRule (§2.4).

#[test]
fn dr_host_and_subsets() {
    valid(&dr("host: \"*\"\n"));
    valid(&dr(
        "host: reviews\nsubsets:\n- name: v1\n  labels:\n    version: v1\n- name: V2\n  labels:\n    example.com/version: v2\n",
    ));
    rejected(
        &dr("subsets:\n- name: v1\n"),
        "spec.host",
        "spec.host: Required value",
    );
    rejected(
        &dr("host: \"\"\n"),
        "spec.host",
        "empty domain name not allowed",
    );
    rejected(
        &dr("host: foo*.com\n"),
        "spec.host",
        "domain name \"foo*.com\" invalid (label \"foo*\" invalid)",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: v1\n- name: v1\n"),
        "spec.subsets[1].name",
        "duplicate subset names: v1",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: bad_name\n"),
        "spec.subsets[0].name",
        "subset name is invalid: bad_name",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: \"\"\n"),
        "spec.subsets[0].name",
        "subset name cannot be empty",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- labels:\n    a: b\n"),
        "spec.subsets[0].name",
        "spec.subsets[0].name: Required value",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: v1\n  labels:\n    \"bad key\": v\n"),
        "spec.subsets[0].labels.bad key",
        "invalid tag key: \"bad key\"",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: v1\n  labels:\n    app: \"-bad\"\n"),
        "spec.subsets[0].labels.app",
        "invalid tag value: \"-bad\"",
    );
    rejected(
        &dr("host: a.com\nsubsets:\n- name: v1\n  trafficPolicy: {}\n"),
        "spec.subsets[0].trafficPolicy",
        "traffic policy must have at least one field",
    );
    rejected(
        &dr("host: a.com\nbogus: 1\n"),
        "spec.bogus",
        "unknown field \"spec.bogus\"",
    );
}

#[test]
fn dr_traffic_policy_shape() {
    rejected(
        &dr("host: a.com\ntrafficPolicy: {}\n"),
        "spec.trafficPolicy",
        "traffic policy must have at least one field",
    );
    valid(&dr(
        "host: a.com\ntrafficPolicy:\n  proxyProtocol:\n    version: V2\n",
    ));
    valid(&dr(
        "host: a.com\ntrafficPolicy:\n  retryBudget:\n    percent:\n      value: 25\n    minRetryConcurrency: 5\n    budgetInterval: 10s\n",
    ));
    rejected(
        &dr("host: a.com\ntrafficPolicy:\n  proxyProtocol:\n    version: V3\n"),
        "spec.trafficPolicy.proxyProtocol.version",
        "Unsupported value: \"V3\": supported values: \"V1\", \"V2\"",
    );
    rejected(
        &dr(
            "host: a.com\ntrafficPolicy:\n  tunnel:\n    targetHost: proxy.corp\n    targetPort: 3128\n  proxyProtocol: {}\n",
        ),
        "spec.trafficPolicy",
        "tunnel and proxyProtocol must not be set together",
    );
}

#[test]
fn dr_tunnel() {
    let t = |body: &str| dr(&format!("host: a.com\ntrafficPolicy:\n  tunnel:\n{body}"));
    valid(&t(
        "    protocol: CONNECT\n    targetHost: proxy.corp.example\n    targetPort: 3128\n",
    ));
    valid(&t(
        "    protocol: POST\n    targetHost: 10.0.0.1\n    targetPort: 8080\n",
    ));
    rejected(
        &t("    protocol: GET\n    targetHost: a.com\n    targetPort: 1\n"),
        "spec.trafficPolicy.tunnel.protocol",
        "tunnel protocol must be \"CONNECT\" or \"POST\"",
    );
    rejected(
        &t("    targetHost: bad_host\n    targetPort: 1\n"),
        "spec.trafficPolicy.tunnel.targetHost",
        "tunnel target host must be valid FQDN or IP address: domain name \"bad_host\" invalid (label \"bad_host\" invalid); bad_host is not a valid IP",
    );
    rejected(
        &t("    targetHost: a.com\n    targetPort: 0\n"),
        "spec.trafficPolicy.tunnel.targetPort",
        "tunnel target port is invalid: port number 0 must be in the range 1..65535",
    );
    rejected(
        &t("    targetPort: 1\n"),
        "spec.trafficPolicy.tunnel.targetHost",
        "spec.trafficPolicy.tunnel.targetHost: Required value",
    );
    rejected(
        &t("    targetHost: a.com\n"),
        "spec.trafficPolicy.tunnel.targetPort",
        "spec.trafficPolicy.tunnel.targetPort: Required value",
    );
}

#[test]
fn dr_connection_pool() {
    let cp = |body: &str| {
        dr(&format!(
            "host: a.com\ntrafficPolicy:\n  connectionPool:\n{body}"
        ))
    };
    valid(&cp(
        "    tcp:\n      maxConnections: 100\n      connectTimeout: 30ms\n      tcpKeepalive:\n        probes: 3\n        time: 7200s\n        interval: 75s\n      maxConnectionDuration: 1h\n      idleTimeout: 0s\n    http:\n      http1MaxPendingRequests: 10\n      http2MaxRequests: 100\n      maxRequestsPerConnection: 10\n      maxRetries: 3\n      idleTimeout: 90s\n      h2UpgradePolicy: UPGRADE\n      maxConcurrentStreams: 200\n      http2KeepAlive:\n        interval: 15s\n        timeout: 5s\n",
    ));
    rejected(
        &cp("    {}\n"),
        "spec.trafficPolicy.connectionPool",
        "connection pool must have at least one field",
    );
    rejected(
        &cp("    tcp:\n      maxConnections: -1\n"),
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "max connections must be non-negative",
    );
    for (field, what) in [
        ("http1MaxPendingRequests", "http1 max pending requests"),
        ("http2MaxRequests", "http2 max requests"),
        ("maxRequestsPerConnection", "max requests per connection"),
        ("maxRetries", "max retries"),
        ("maxConcurrentStreams", "max concurrent streams"),
    ] {
        rejected(
            &cp(&format!("    http:\n      {field}: -1\n")),
            &format!("spec.trafficPolicy.connectionPool.http.{field}"),
            &format!("{what} must be non-negative"),
        );
    }
    rejected(
        &cp("    http:\n      h2UpgradePolicy: UPGRADE\n      useClientProtocol: true\n"),
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
    );
    rejected(
        &cp("    http:\n      idleTimeout: 0s\n"),
        "spec.trafficPolicy.connectionPool.http.idleTimeout",
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
    rejected(
        &cp("    tcp:\n      connectTimeout: 1.5ms\n"),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "only durations to ms precision are supported",
    );
    rejected(
        &cp("    tcp:\n      tcpKeepalive:\n        time: 0.1ms\n"),
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time",
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
    rejected(
        &cp("    http:\n      http2KeepAlive:\n        interval: 15s\n"),
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive",
        "http2KeepAlive requires both interval and timeout",
    );
    rejected(
        &cp("    http:\n      h2UpgradePolicy: SOMETIMES\n"),
        "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy",
        "supported values: \"DEFAULT\", \"DO_NOT_UPGRADE\", \"UPGRADE\"",
    );
}

#[test]
fn dr_load_balancer() {
    let lb = |body: &str| {
        dr(&format!(
            "host: a.com\ntrafficPolicy:\n  loadBalancer:\n{body}"
        ))
    };
    for simple in [
        "UNSPECIFIED",
        "LEAST_CONN",
        "RANDOM",
        "PASSTHROUGH",
        "ROUND_ROBIN",
        "LEAST_REQUEST",
    ] {
        valid(&lb(&format!(
            "    simple: {simple}\n    warmupDurationSecs: 100s\n"
        )));
    }
    rejected(
        &lb("    simple: FASTEST\n"),
        "spec.trafficPolicy.loadBalancer.simple",
        "Unsupported value: \"FASTEST\": supported values: \"UNSPECIFIED\", \"LEAST_CONN\", \"RANDOM\", \"PASSTHROUGH\", \"ROUND_ROBIN\", \"LEAST_REQUEST\"",
    );
    valid(&lb(
        "    consistentHash:\n      httpCookie:\n        name: user\n        path: /\n        ttl: 0s\n        attributes:\n        - name: SameSite\n          value: Strict\n      ringHash:\n        minimumRingSize: 1024\n",
    ));
    valid(&lb(
        "    consistentHash:\n      useSourceIp: true\n      maglev:\n        tableSize: 65537\n",
    ));
    valid(&lb(
        "    consistentHash:\n      httpQueryParameterName: user\n",
    ));
    rejected(
        &lb("    simple: RANDOM\n    consistentHash:\n      httpHeaderName: x-user\n"),
        "spec.trafficPolicy.loadBalancer",
        "spec.trafficPolicy.loadBalancer in body must validate one and only one schema (oneOf). Found 2 valid alternatives",
    );
    rejected(
        &lb("    consistentHash:\n      httpHeaderName: x-user\n      useSourceIp: true\n"),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "must validate one and only one schema (oneOf)",
    );
    rejected(
        &lb("    consistentHash:\n      httpCookie:\n        ttl: 10s\n"),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: Required value",
    );
    rejected(
        &lb("    consistentHash:\n      httpCookie:\n        name: \"\"\n"),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
        "name required for HttpCookie",
    );
    rejected(
        &lb(
            "    consistentHash:\n      httpCookie:\n        name: c\n        attributes:\n        - name: a\n        - name: a\n",
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].name",
        "duplicate cookie attribute name: a",
    );
    warned(
        &lb("    consistentHash:\n      httpHeaderName: x\n      minimumRingSize: 1024\n"),
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
    );
    rejected(
        &lb(
            "    consistentHash:\n      httpHeaderName: x\n      minimumRingSize: 1024\n      ringHash:\n        minimumRingSize: 1024\n",
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "only one of MinimumRingSize or Maglev/Ringhash can be specified",
    );
    let maglev = |size: &str| {
        lb(&format!(
            "    consistentHash:\n      httpHeaderName: x\n      maglev:\n        tableSize: {size}\n"
        ))
    };
    let field = "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize";
    rejected(&maglev("0"), field, "tableSize must be set for maglev");
    rejected(
        &maglev("5000011"),
        field,
        "tableSize must be less than 5000011 for maglev",
    );
    rejected(
        &maglev("65536"),
        field,
        "tableSize must be a prime number for maglev",
    );
}

#[test]
fn dr_warmup() {
    // The CRD corpus (destinationrule-{valid,invalid}.yaml).
    let w = |body: &str| {
        dr(&format!(
            "host: ratings.prod.svc.cluster.local\ntrafficPolicy:\n  loadBalancer:\n    warmup:\n{body}"
        ))
    };
    valid(&w("      duration: 300s\n"));
    valid(&w(
        "      duration: 300s\n      minimumPercent: 5.0\n      aggression: 5.0\n",
    ));
    rejected(
        &w("      minimumPercent: 5.0\n"),
        "spec.trafficPolicy.loadBalancer.warmup.duration",
        "spec.trafficPolicy.loadBalancer.warmup.duration: Required value",
    );
    rejected(
        &w("      duration: 300s\n      aggression: -0.1\n"),
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
        "spec.trafficPolicy.loadBalancer.warmup.aggression: Invalid value: -0.1: spec.trafficPolicy.loadBalancer.warmup.aggression in body should be greater than or equal to 1",
    );
    rejected(
        &w("      duration: 300s\n      minimumPercent: -1\n"),
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
        "in body should be greater than or equal to 0",
    );
    rejected(
        &w("      duration: 0.5ms\n"),
        "spec.trafficPolicy.loadBalancer.warmup.duration",
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
}

#[test]
fn dr_locality() {
    let od = "  outlierDetection:\n    consecutive5xxErrors: 5\n";
    let loc = |body: &str, od: &str| {
        dr(&format!(
            "host: a.com\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n{body}{od}"
        ))
    };
    let field = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    valid(&loc(
        "      enabled: true\n      distribute:\n      - from: us-west/zone1/*\n        to:\n          us-west/zone1/*: 80\n          us-west/zone2/*: 20\n",
        "",
    ));
    valid(&loc(
        "      failover:\n      - from: us-east\n        to: eu-west\n      failoverPriority:\n      - topology.istio.io/network\n",
        od,
    ));
    warned(
        &loc(
            "      failover:\n      - from: us-east\n        to: eu-west\n",
            "",
        ),
        field,
        "outlier detection policy must be provided for failover",
    );
    rejected(
        &loc(
            "      distribute:\n      - from: a\n        to:\n          b: 100\n      failover:\n      - from: a\n        to: b\n",
            od,
        ),
        field,
        "can not simultaneously specify 'distribute' and 'failover'",
    );
    rejected(
        &loc(
            "      failover:\n      - from: a\n        to: b\n      failoverPriority:\n      - topology.kubernetes.io/region\n",
            od,
        ),
        &format!("{field}.failoverPriority"),
        "can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/region' in 'failover_priority'",
    );
    rejected(
        &loc(
            "      distribute:\n      - from: a\n        to:\n          b: 0\n",
            "",
        ),
        &format!("{field}.distribute[0].to"),
        "locality weight must be in range [1, 100]",
    );
    rejected(
        &loc(
            "      distribute:\n      - from: a\n        to:\n          b: 60\n          c: 30\n",
            "",
        ),
        &format!("{field}.distribute[0].to"),
        "total locality weight 90 != 100",
    );
    rejected(
        &loc(
            "      distribute:\n      - from: a/*/c\n        to:\n          b: 100\n",
            "",
        ),
        &format!("{field}.distribute"),
        "locality a/*/c wildcard '*' number can not exceed 1 and must be in the end",
    );
    rejected(
        &loc(
            "      distribute:\n      - from: a/*\n        to:\n          b: 100\n      - from: a/b\n        to:\n          b: 100\n",
            "",
        ),
        &format!("{field}.distribute"),
        "locality a/b overlap with previous specified ones",
    );
    rejected(
        &loc("      failover:\n      - from: a\n        to: a\n", od),
        &format!("{field}.failover[0]"),
        "locality lb failover settings must specify different regions",
    );
    rejected(
        &loc("      failover:\n      - from: a/z\n        to: b\n", od),
        &format!("{field}.failover[0]"),
        "locality lb failover only specify region",
    );
    rejected(
        &loc("      failover:\n      - from: a\n        to: \"*\"\n", od),
        &format!("{field}.failover[0]"),
        "locality lb failover region should not contain '*' wildcard",
    );
    rejected(
        &dr(
            "host: a.com\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      enabled: true\n    zoneAwareLbSetting:\n      enabled: true\n",
        ),
        "spec.trafficPolicy.loadBalancer",
        "only one of localityLbSetting or zoneAwareLbSetting can be set",
    );
    valid(&dr(
        "host: a.com\ntrafficPolicy:\n  loadBalancer:\n    zoneAwareLbSetting:\n      enabled: true\n      minClusterSize: 3\n",
    ));
}

#[test]
fn dr_outlier_detection() {
    let o = |body: &str| {
        dr(&format!(
            "host: a.com\ntrafficPolicy:\n  outlierDetection:\n{body}"
        ))
    };
    let f = "spec.trafficPolicy.outlierDetection";
    valid(&o(
        "    consecutive5xxErrors: 7\n    consecutiveGatewayErrors: 5\n    interval: 5m\n    baseEjectionTime: 15m\n    maxEjectionPercent: 100\n    minHealthPercent: 0\n    splitExternalLocalOriginErrors: true\n    consecutiveLocalOriginFailures: 5\n    outlierDetectionHttpErrorCodes: [429, 503]\n",
    ));
    warned(
        &o("    consecutiveErrors: 7\n"),
        &format!("{f}.consecutiveErrors"),
        "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
    );
    rejected(
        &o("    consecutiveLocalOriginFailures: 5\n"),
        &format!("{f}.consecutiveLocalOriginFailures"),
        "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
    );
    rejected(
        &o("    maxEjectionPercent: 101\n"),
        &format!("{f}.maxEjectionPercent"),
        "percentage 101 is not in range 0..100",
    );
    rejected(
        &o("    minHealthPercent: -1\n"),
        &format!("{f}.minHealthPercent"),
        "percentage -1 is not in range 0..100",
    );
    rejected(
        &o("    interval: 0s\n"),
        &format!("{f}.interval"),
        "Invalid value: \"string\": must be a valid duration greater than 1ms",
    );
    rejected(
        &o("    baseEjectionTime: 1.5ms\n"),
        &format!("{f}.baseEjectionTime"),
        "only durations to ms precision are supported",
    );
    rejected(
        &o("    outlierDetectionHttpErrorCodes: [99]\n"),
        &format!("{f}.outlierDetectionHttpErrorCodes[0]"),
        "Invalid value: 99: spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[0] in body should be greater than or equal to 100",
    );
}

#[test]
fn dr_port_level_settings() {
    let p = |body: &str| {
        dr(&format!(
            "host: a.com\ntrafficPolicy:\n  portLevelSettings:\n{body}"
        ))
    };
    valid(&p(
        "  - port:\n      number: 80\n    loadBalancer:\n      simple: LEAST_REQUEST\n    connectionPool:\n      tcp:\n        maxConnections: 10\n    outlierDetection:\n      consecutive5xxErrors: 1\n    tls:\n      mode: ISTIO_MUTUAL\n",
    ));
    rejected(
        &p("  - tls:\n      mode: SIMPLE\n"),
        "spec.trafficPolicy.portLevelSettings[0]",
        "portTrafficPolicy must have valid port",
    );
    rejected(
        &p("  - port:\n      number: 80\n"),
        "spec.trafficPolicy.portLevelSettings[0]",
        "port traffic policy must have at least one field",
    );
    rejected(
        &p("  - port:\n      number: 443\n    tls:\n      mode: MUTUAL\n"),
        "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate",
        "client certificate required for mutual tls",
    );
}

#[test]
fn dr_client_tls() {
    let t = |body: &str| dr(&format!("host: a.com\ntrafficPolicy:\n  tls:\n{body}"));
    let f = "spec.trafficPolicy.tls";
    valid(&t(
        "    mode: SIMPLE\n    sni: a.com\n    subjectAltNames: [a.com]\n    caCertificates: /etc/ca.pem\n",
    ));
    valid(&t(
        "    mode: MUTUAL\n    clientCertificate: /etc/cert.pem\n    privateKey: /etc/key.pem\n    caCrl: /etc/crl.pem\n",
    ));
    valid(&t(
        "    mode: MUTUAL\n    credentialName: client-credential\n",
    ));
    valid(&t("    mode: SIMPLE\n    insecureSkipVerify: true\n"));
    // ISTIO_MUTUAL with extra fields is not rejected by the webhook.
    valid(&t(
        "    mode: ISTIO_MUTUAL\n    sni: edition.cnn.com\n    clientCertificate: /x\n",
    ));
    valid(&t(
        "    credentialName: configmap://default/ca\n    mode: SIMPLE\n",
    ));
    rejected(
        &t("    mode: MUTUAL\n"),
        &format!("{f}.clientCertificate"),
        "client certificate required for mutual tls",
    );
    rejected(
        &t("    mode: MUTUAL\n"),
        &format!("{f}.privateKey"),
        "private key required for mutual tls",
    );
    rejected(
        &t("    mode: SIMPLE\n    credentialName: cred\n    caCertificates: /etc/ca.pem\n"),
        f,
        "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
    );
    rejected(
        &t("    mode: SIMPLE\n    insecureSkipVerify: true\n    subjectAltNames: [a.com]\n"),
        f,
        "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
    );
    rejected(
        &t(
            "    mode: MUTUAL\n    insecureSkipVerify: true\n    caCertificates: /ca\n    clientCertificate: /c\n    privateKey: /k\n",
        ),
        f,
        "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
    );
    rejected(
        &t("    mode: SIMPLE\n    credentialName: configmap://other/ca\n"),
        &format!("{f}.credentialName"),
        "invalid configmap:// credentialName: namespace must match the configuration namespace \"default\"",
    );
    rejected(
        &t("    mode: TLS13\n"),
        &format!("{f}.mode"),
        "Unsupported value: \"TLS13\": supported values: \"DISABLE\", \"SIMPLE\", \"MUTUAL\", \"ISTIO_MUTUAL\"",
    );
}

#[test]
fn dr_export_to_and_workload_selector() {
    let with = |extra: &str| dr(&format!("host: a.com\n{extra}"));
    valid(&with("exportTo: [\".\", \"other\"]\n"));
    rejected(
        &with("exportTo: [\"~\"]\n"),
        "spec.exportTo[0]",
        "exportTo ~ (none) is not allowed for Istio configuration objects",
    );
    rejected(
        &with("exportTo: [\"*\", \".\"]\n"),
        "spec.exportTo",
        "cannot have both public (*) and non-public exportTo values for a resource",
    );
    rejected(
        &with("exportTo: [\"default\", \".\"]\n"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo: . and current namespace default",
    );
    let sel = "workloadSelector:\n  matchLabels:\n    app: curl\n";
    valid(&with(sel));
    valid(&with(&format!("{sel}exportTo: [\".\"]\n")));
    rejected(
        &with(&format!("{sel}exportTo: [\"*\"]\n")),
        "spec.exportTo",
        "destination rule with workload selector cannot have exportTo beyond current namespace",
    );
    rejected(
        &with(&format!("{sel}exportTo: [\".\", \"other\"]\n")),
        "spec.exportTo",
        "destination rule with workload selector cannot have multiple entries in exportTo",
    );
    rejected(
        &with("workloadSelector:\n  matchLabels:\n    app: \"cu*\"\n"),
        "spec.workloadSelector.matchLabels.app",
        "wildcard is not supported in selector: \"app=cu*\"",
    );
    rejected(
        &with("workloadSelector:\n  matchLabels:\n    \"\": x\n"),
        "spec.workloadSelector.matchLabels.",
        "empty key is not supported in selector: \"=x\"",
    );
    warned(
        &with("workloadSelector: {}\n"),
        "spec.workloadSelector",
        "workload selector specified without labels",
    );
}
