//! The Pod row of `kubectl get pods`: READY, STATUS (reason logic), RESTARTS with last restart age.

use std::time::SystemTime;

use serde_json::Value;

use super::age::{human_duration, parse_rfc3339, seconds_since};
use super::kinds::{age_of, int, list, name, non_empty, text};

fn condition_true(o: &Value, kind: &str) -> bool {
    list(o, "/status/conditions")
        .iter()
        .any(|c| non_empty(c, "/type") == Some(kind) && non_empty(c, "/status") == Some("True"))
}

fn finished_at(status: &Value) -> Option<SystemTime> {
    non_empty(status, "/lastState/terminated/finishedAt").and_then(parse_rfc3339)
}

fn later(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn terminated_reason(status: &Value, prefix: &str) -> String {
    match non_empty(status, "/state/terminated/reason") {
        Some(r) => format!("{prefix}{r}"),
        None => match int(status, "/state/terminated/signal").filter(|s| *s != 0) {
            Some(sig) => format!("{prefix}Signal:{sig}"),
            None => format!(
                "{prefix}ExitCode:{}",
                int(status, "/state/terminated/exitCode").unwrap_or(0)
            ),
        },
    }
}

fn has(status: &Value, ptr: &str) -> bool {
    status.pointer(ptr).is_some_and(|v| !v.is_null())
}

/// All cells of a Pod row (the last four are `-o wide` only).
pub(super) fn row(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let init_specs = list(o, "/spec/initContainers");
    let restartable = |container: &str| {
        init_specs.iter().any(|c| {
            non_empty(c, "/name") == Some(container)
                && non_empty(c, "/restartPolicy") == Some("Always")
        })
    };
    let mut total = list(o, "/spec/containers").len();
    total += init_specs
        .iter()
        .filter(|c| non_empty(c, "/restartPolicy") == Some("Always"))
        .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<SystemTime> = None;
    let mut last_sidecar_restart: Option<SystemTime> = None;

    let phase = non_empty(o, "/status/phase").unwrap_or("Pending");
    let mut reason = non_empty(o, "/status/reason").unwrap_or(phase).to_string();
    if list(o, "/status/conditions").iter().any(|c| {
        non_empty(c, "/type") == Some("PodScheduled")
            && non_empty(c, "/reason") == Some("SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, status) in list(o, "/status/initContainerStatuses").iter().enumerate() {
        let count = int(status, "/restartCount").unwrap_or(0);
        restarts += count;
        last_restart = later(last_restart, finished_at(status));
        let is_sidecar = restartable(&text(status, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished_at(status));
        }
        let terminated = has(status, "/state/terminated");
        if terminated && int(status, "/state/terminated/exitCode").unwrap_or(0) == 0 {
            continue;
        }
        if is_sidecar && status.pointer("/started").and_then(Value::as_bool) == Some(true) {
            if status.pointer("/ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if terminated {
            reason = terminated_reason(status, "Init:");
        } else if let Some(w) =
            non_empty(status, "/state/waiting/reason").filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(o, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in list(o, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount").unwrap_or(0);
            last_restart = later(last_restart, finished_at(status));
            if let Some(w) = non_empty(status, "/state/waiting/reason") {
                reason = w.to_string();
            } else if has(status, "/state/terminated") {
                reason = terminated_reason(status, "");
            } else if status.pointer("/ready").and_then(Value::as_bool) == Some(true)
                && has(status, "/state/running")
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(o, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if has(o, "/metadata/deletionTimestamp") {
        if non_empty(o, "/status/reason") == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(seconds_since(t, now)))
        }
        _ => restarts.to_string(),
    };

    let ip = list(o, "/status/podIPs")
        .first()
        .and_then(|p| non_empty(p, "/ip"))
        .or_else(|| non_empty(o, "/status/podIP"))
        .unwrap_or("<none>");
    let node = non_empty(o, "/spec/nodeName").unwrap_or("<none>");
    let nominated = non_empty(o, "/status/nominatedNodeName").unwrap_or("<none>");
    let gates = list(o, "/spec/readinessGates");
    let readiness = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = list(o, "/status/conditions");
        let passing = gates
            .iter()
            .filter(|g| {
                let wanted = non_empty(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| non_empty(c, "/type") == wanted)
                    .is_some_and(|c| non_empty(c, "/status") == Some("True"))
            })
            .count();
        format!("{passing}/{}", gates.len())
    };

    vec![
        name(o),
        format!("{ready}/{total}"),
        reason,
        restarts_text,
        age_of(o, now),
        ip.to_string(),
        node.to_string(),
        nominated.to_string(),
        readiness,
    ]
}
