//! Waiting for a gateway's rollout on a real cluster: a kube watcher on the gateway's
//! Deployments (labels `app=<name>,istio=<name>` in its namespace; it re-lists after a 410
//! and resumes after a dropped watch), judged with `kubectl rollout status`'s rules
//! ([`crate::mesh::wait::deployment_readiness`]), with the local wait's progress line.

use std::collections::BTreeMap;
use std::io::Write;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use super::super::wait::{Progress, Readiness, deployment_readiness, human_duration};
use super::super::{MeshError, WaitOptions, WaitTarget};

/// The gateway's readiness from the Deployments seen; a missing one is an error.
fn readiness(target: &WaitTarget, seen: &BTreeMap<String, Value>) -> Result<Readiness, MeshError> {
    let mut r = Readiness {
        done: true,
        ..Readiness::default()
    };
    for name in &target.deployments {
        let Some(d) = seen.get(name) else {
            return Err(MeshError::Refused(format!(
                "Deployment {name} of egress gateway {} in {} is not on the cluster (deleted while waiting for it to become ready)",
                target.name, target.namespace
            )));
        };
        let (ready, want, done) = deployment_readiness(d);
        r.ready += ready;
        r.want += want;
        r.done &= done;
    }
    Ok(r)
}

fn name_of(d: &DynamicObject) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

/// Waits until every Deployment of `target` is rolled out and ready, at most
/// `opts.timeout`; progress on `err` when `opts.progress`.
pub async fn wait_for_rollout(
    client: kube::Client,
    target: &WaitTarget,
    opts: &WaitOptions,
    err: &mut dyn Write,
) -> Result<(), MeshError> {
    let mut progress = Progress::new(err, opts.progress);
    let mut last = Readiness::default();
    let result = tokio::time::timeout(
        opts.timeout,
        follow(client, target, &mut progress, &mut last),
    )
    .await;
    progress.clear()?;
    match result {
        Ok(outcome) => outcome,
        Err(_) => Err(MeshError::Timeout {
            after: human_duration(opts.timeout),
            name: target.name.clone(),
            namespace: target.namespace.clone(),
            ready: last.ready,
            want: last.want,
        }),
    }
}

async fn follow(
    client: kube::Client,
    target: &WaitTarget,
    progress: &mut Progress<'_>,
    last: &mut Readiness,
) -> Result<(), MeshError> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let api: Api<DynamicObject> = Api::namespaced_with(client, &target.namespace, &ar);
    let config = watcher::Config::default().labels(&format!("app={0},istio={0}", target.name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut listing: BTreeMap<String, Value> = BTreeMap::new();
    let mut synced = false;
    while let Some(event) = events.next().await {
        let Ok(event) = event else {
            // The watcher retries (with backoff) on its own; a persistent failure ends at
            // the timeout.
            continue;
        };
        let to_value = |d: &DynamicObject| serde_json::to_value(d).unwrap_or(Value::Null);
        match event {
            Event::Init => listing.clear(),
            Event::InitApply(d) => {
                listing.insert(name_of(&d), to_value(&d));
                continue;
            }
            Event::InitDone => {
                seen = std::mem::take(&mut listing);
                synced = true;
            }
            Event::Apply(d) => {
                seen.insert(name_of(&d), to_value(&d));
            }
            Event::Delete(d) => {
                seen.remove(&name_of(&d));
            }
        }
        if !synced {
            continue;
        }
        let r = readiness(target, &seen)?;
        *last = r;
        progress.show_readiness(target, &r)?;
        if r.done {
            return Ok(());
        }
    }
    Err(MeshError::Refused(format!(
        "the watch of egress gateway {} in {} ended before it became ready",
        target.name, target.namespace
    )))
}
