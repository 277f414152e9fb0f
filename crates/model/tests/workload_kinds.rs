//! The kinds the local cluster writes beside the user's objects: `apps/v1` ReplicaSets, core
//! `v1` Events and `discovery.k8s.io/v1` EndpointSlices. Each decodes strictly, validates with the API server's messages, and encodes
//! back to the very JSON it came from (the form the store keeps and `get -o yaml` prints).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_model::decode::{DecodeOptions, Decoded, Outcome, decode_document, to_resource};
use egress_model::kinds;
use egress_model::resources::Resource;
use egress_model::yaml::parse_stream;

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

fn decode(yaml: &str) -> Outcome {
    let mut docs = parse_stream(yaml).unwrap_or_else(|e| panic!("bad test YAML {yaml}: {e:?}"));
    assert_eq!(docs.len(), 1, "{yaml}");
    decode_document("test.yaml", docs.remove(0), &opts())
}

fn valid(yaml: &str) -> Decoded {
    match decode(yaml) {
        Outcome::Valid(d) => *d,
        other => panic!("expected valid, got {:?}", other.diagnostics()),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match decode(yaml) {
        Outcome::Invalid(diags) => diags.iter().map(|d| d.message.clone()).collect(),
        Outcome::Valid(_) => panic!("expected rejection of\n{yaml}"),
        Outcome::Unsupported { .. } => panic!("expected a supported kind in\n{yaml}"),
    }
}

/// The typed object encodes back to the stored JSON, and decoding that again is lossless.
fn assert_round_trip(d: &Decoded) {
    let encoded = d.resource.to_value().unwrap();
    assert_eq!(encoded, d.value, "encode(decode(x)) == x");
    let (again, unknown) = to_resource(d.info, &encoded).unwrap();
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(again, d.resource);
}

const REPLICA_SET: &str = "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: curl-5b5d8f9b7
  labels:
    app: curl
    pod-template-hash: 5b5d8f9b7
  annotations:
    deployment.kubernetes.io/revision: \"1\"
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: curl
    uid: 0b7c1e52-3f0c-4c1e-9a57-1d2b3c4d5e6f
    controller: true
    blockOwnerDeletion: true
  creationTimestamp: \"2026-11-30T13:59:47Z\"
spec:
  replicas: 2
  selector:
    matchLabels:
      app: curl
      pod-template-hash: 5b5d8f9b7
  template:
    metadata:
      labels:
        app: curl
        pod-template-hash: 5b5d8f9b7
    spec:
      containers:
      - name: curl
        image: curlimages/curl
        command: [sleep, infinity]
status:
  replicas: 2
  readyReplicas: 1
  availableReplicas: 1
  fullyLabeledReplicas: 2
  observedGeneration: 1
";

const EVENT: &str = "\
apiVersion: v1
kind: Event
metadata:
  name: curl-5b5d8f9b7-abcde.18a2b3c4d5e6f708
  namespace: demo
  creationTimestamp: \"2026-11-30T13:59:48Z\"
involvedObject:
  apiVersion: v1
  kind: Pod
  name: curl-5b5d8f9b7-abcde
  namespace: demo
  uid: 7e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7
  fieldPath: spec.containers{curl}
reason: Started
message: Started container curl
type: Normal
source:
  component: kubelet
  host: egress-local
firstTimestamp: \"2026-11-30T13:59:48Z\"
lastTimestamp: \"2026-11-30T13:59:50Z\"
count: 2
reportingComponent: kubelet
reportingInstance: egress-local
";

#[test]
fn replica_set_decodes_and_round_trips() {
    let d = valid(REPLICA_SET);
    assert_eq!(d.info.kind, "ReplicaSet");
    assert_eq!(d.info.api_version(), "apps/v1");
    assert_eq!(d.namespace(), Some("default"), "namespaced: -n fills it in");
    let Resource::ReplicaSet(rs) = &d.resource else {
        panic!("wrong variant: {:?}", d.resource);
    };
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let status = rs.status.as_ref().unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (2, Some(1)));
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Deployment"
    );
    assert_round_trip(&d);
}

#[test]
fn event_decodes_and_round_trips() {
    let d = valid(EVENT);
    assert_eq!(d.info.kind, "Event");
    assert_eq!(d.info.api_version(), "v1");
    assert_eq!(d.namespace(), Some("demo"));
    let Resource::Event(ev) = &d.resource else {
        panic!("wrong variant: {:?}", d.resource);
    };
    assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(ev.reason.as_deref(), Some("Started"));
    assert_eq!(ev.count, Some(2));
    assert_round_trip(&d);
}

#[test]
fn event_with_event_time_and_series_round_trips() {
    let yaml = "\
apiVersion: v1
kind: Event
metadata:
  name: curl.18a2b3c4d5e6f709
involvedObject:
  kind: Deployment
  name: curl
reason: ScalingReplicaSet
message: Scaled up replica set curl-5b5d8f9b7 to 2
type: Normal
eventTime: \"2026-11-30T13:59:47.123456Z\"
series:
  count: 3
  lastObservedTime: \"2026-11-30T13:59:57.654321Z\"
reportingComponent: deployment-controller
reportingInstance: egress-local
action: Scale
";
    let d = valid(yaml);
    assert_eq!(d.namespace(), Some("default"));
    assert_round_trip(&d);
}

#[test]
fn events_are_only_decoded_not_judged() {
    // The model has no Event rules: a bare Event (empty involvedObject) is accepted as is.
    let yaml = "apiVersion: v1\nkind: Event\nmetadata:\n  name: e\nreason: Started\n";
    let d = valid(yaml);
    let Resource::Event(ev) = &d.resource else {
        panic!("wrong variant: {:?}", d.resource);
    };
    assert_eq!(ev.involved_object, Default::default());
    // Types are still checked strictly.
    let yaml = "apiVersion: v1\nkind: Event\nmetadata:\n  name: e\ninvolvedObject:\n  kind: Pod\ncount: two\n";
    assert_eq!(
        errors(yaml),
        ["count: Invalid value: \"string\": count in body must be of type integer: \"string\""]
    );
}

#[test]
fn event_unknown_fields_are_refused() {
    let yaml = "apiVersion: v1\nkind: Event\nmetadata:\n  name: e\ninvolvedObject:\n  kind: Pod\n  name: p\nseverity: high\n";
    assert_eq!(errors(yaml), ["unknown field \"severity\""]);
}

#[test]
fn only_core_events_are_modelled() {
    let yaml = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: e\neventTime: \"2026-11-30T13:59:47.000000Z\"\n";
    assert!(matches!(decode(yaml), Outcome::Unsupported { .. }));
}

#[test]
fn replica_set_selector_must_match_template_labels() {
    let yaml = REPLICA_SET.replace(
        "      labels:\n        app: curl\n        pod-template-hash: 5b5d8f9b7\n    spec:",
        "      labels:\n        app: other\n    spec:",
    );
    assert_eq!(
        errors(&yaml),
        [
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
        ]
    );
}

#[test]
fn replica_set_needs_a_selector_and_containers() {
    let yaml = "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  selector: {}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers: []
";
    assert_eq!(
        errors(yaml),
        [
            "spec.selector: Invalid value: \"null\": empty selector is invalid for deployment",
            "spec.template.spec.containers: Required value",
        ]
    );
    let no_template = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\nspec:\n  selector:\n    matchLabels: {app: x}\n";
    assert_eq!(
        errors(no_template),
        [
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
            "spec.template.spec.containers: Required value",
        ]
    );
    let no_spec = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\n";
    assert_eq!(errors(no_spec), ["spec: Required value"]);
}

#[test]
fn cli_names_resolve_to_the_new_kinds() {
    for (name, kind) in [
        ("rs", "ReplicaSet"),
        ("replicaset", "ReplicaSet"),
        ("replicasets", "ReplicaSet"),
        ("replicasets.apps", "ReplicaSet"),
        ("ReplicaSet", "ReplicaSet"),
        ("events", "Event"),
        ("event", "Event"),
        ("ev", "Event"),
        ("Event", "Event"),
    ] {
        let info = kinds::for_cli_name(name).unwrap_or_else(|| panic!("{name} unresolved"));
        assert_eq!(info.kind, kind, "{name}");
        assert!(info.namespaced, "{name}");
    }
    let rs = kinds::for_cli_name("rs").unwrap();
    assert_eq!(
        (rs.group, rs.plural, rs.qualified_singular()),
        ("apps", "replicasets", "replicaset.apps".to_owned())
    );
    let ev = kinds::for_cli_name("events").unwrap();
    assert_eq!(
        (ev.group, ev.plural, ev.qualified_singular()),
        ("", "events", "event".to_owned())
    );
    assert_eq!(ev.api_version(), "v1");
}

const ENDPOINT_SLICE: &str = "\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-x7k2p
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses:
  - 127.1.0.2
  conditions:
    ready: true
    serving: true
    terminating: false
  nodeName: egress-local
  targetRef:
    kind: Pod
    name: web-5b5d8f9b7-abcde
    namespace: default
    uid: 0b8e1f4e-2c1a-4c55-9d43-3f0e5f3f0c11
";

#[test]
fn endpoint_slice_decodes_strictly_and_round_trips() {
    let d = valid(ENDPOINT_SLICE);
    assert_eq!(d.info.api_version(), "discovery.k8s.io/v1");
    assert_eq!(d.namespace(), Some("default"));
    let Resource::EndpointSlice(s) = &d.resource else {
        panic!("wrong variant: {:?}", d.resource);
    };
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        s.endpoints[0].conditions.as_ref().unwrap().ready,
        Some(true)
    );
    assert_round_trip(&d);
    let bad = ENDPOINT_SLICE.replace("  nodeName:", "  node:");
    assert_eq!(errors(&bad), ["unknown field \"endpoints[0].node\""]);
    let slices = kinds::for_cli_name("endpointslices").unwrap();
    assert_eq!(
        (slices.kind, slices.qualified_singular()),
        ("EndpointSlice", "endpointslice.discovery.k8s.io".to_owned())
    );
    assert!(slices.short_names.is_empty() && slices.namespaced);
}
