//! `kind: List` documents (apiVersion `v1`), as kubectl and istioctl read them: each item is
//! decoded and validated on its own, with positions inside the List.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_model::{DecodeOptions, Outcome, decode_file};

const LIST: &str = "\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: good, namespace: default}
  spec:
    hosts: [a.example.com]
    ports: [{number: 80, name: http, protocol: HTTP}]
    resolution: DNS
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: bad, namespace: default}
  spec:
    hosts: [b.example.com]
    ports: [{number: 80, name: http, protocol: HTTP}]
    resolution: DNSX
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: after, namespace: default}
spec:
  hosts: [c.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
";

#[test]
fn a_lists_items_are_decoded_and_validated_one_by_one() {
    let out = decode_file("list.yaml", LIST, &DecodeOptions::default());
    assert_eq!(out.len(), 3, "{out:?}");
    let Outcome::Valid(good) = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert_eq!(good.value["metadata"]["name"], "good");
    let Outcome::Invalid(diags) = &out[1] else {
        panic!("{:?}", out[1])
    };
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d.object.as_ref().unwrap().name, "bad");
    assert_eq!(d.field, "spec.resolution");
    // The line and column of the item's own field inside the List.
    assert_eq!((d.pos.unwrap().line, d.pos.unwrap().col), (17, 5), "{d:?}");
    assert_eq!(d.document, 0);
    let Outcome::Valid(after) = &out[2] else {
        panic!("{:?}", out[2])
    };
    assert_eq!(after.value["metadata"]["name"], "after");
}

#[test]
fn only_a_v1_list_is_expanded() {
    let other = "apiVersion: example.com/v1\nkind: List\nitems: []\n";
    let out = decode_file("other.yaml", other, &DecodeOptions::default());
    assert_eq!(out.len(), 1);
    assert!(!matches!(out[0], Outcome::Valid(_)), "{:?}", out[0]);
    let empty = "apiVersion: v1\nkind: List\nitems: []\n";
    assert!(decode_file("empty.yaml", empty, &DecodeOptions::default()).is_empty());
}
