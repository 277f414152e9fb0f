//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the same columns and cells
//! `egress get` prints ([`egress_printers::table`]); `-o wide` columns have priority 1. Each
//! row carries the object's metadata (`PartialObjectMetadata`), from which kubectl adds the
//! NAMESPACE and LABELS columns itself.

use std::time::SystemTime;

use serde_json::{Value, json};

/// True when the `Accept` header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

/// A Table of `objects` of `kind` at `resource_version`.
pub fn table(kind: &str, objects: &[Value], resource_version: u64) -> Value {
    let now = SystemTime::now();
    let columns: Vec<Value> = egress_printers::table::columns(kind, true)
        .iter()
        .map(|c| {
            json!({
                "name": title(&c.name),
                "type": "string",
                "format": if c.name == "NAME" { "name" } else { "" },
                "description": "",
                "priority": u8::from(c.wide_only),
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": egress_printers::table::row(kind, o, true, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// `CLUSTER-IP` → `Cluster-IP`: the API server's column names, which kubectl upper-cases.
fn title(header: &str) -> String {
    header
        .split('-')
        .map(|w| {
            if w.len() <= 2 {
                return w.to_owned();
            }
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kubectl_accept_headers_ask_for_tables() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
    }

    #[test]
    fn a_service_table_has_the_get_columns_and_wide_priorities() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "curl", "namespace": "apps", "creationTimestamp": "2026-12-06T00:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.7", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "curl"}},
        });
        let t = table("Service", &[svc], 7);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(t["columnDefinitions"][6]["priority"], 1);
        assert_eq!(t["rows"][0]["cells"][0], "curl");
        assert_eq!(t["rows"][0]["cells"][2], "10.0.0.7");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "apps");
    }
}
