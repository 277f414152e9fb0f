//! The Event row of `kubectl get events` (core `v1` Events): LAST SEEN and FIRST SEEN from the
//! legacy timestamps, `eventTime` or the series, OBJECT as `kind/name`, SOURCE from `source` or
//! the reporting controller and instance, COUNT defaulting to 1 for singleton events.

use std::time::SystemTime;

use serde_json::Value;

use super::age::age;
use super::kinds::{int, name, non_empty, text};

/// The columns of `kubectl get events`; `-o wide` adds SUBOBJECT, SOURCE, FIRST SEEN, COUNT and
/// NAME (so MESSAGE is no longer last).
pub(super) const COLUMNS: &[(&str, bool)] = &[
    ("LAST SEEN", false),
    ("TYPE", false),
    ("REASON", false),
    ("OBJECT", false),
    ("SUBOBJECT", true),
    ("SOURCE", true),
    ("MESSAGE", false),
    ("FIRST SEEN", true),
    ("COUNT", true),
    ("NAME", true),
];

/// The age of the timestamp at `ptr`, or `None` when it is absent (a zero time in Go).
fn since(o: &Value, ptr: &str, now: SystemTime) -> Option<String> {
    non_empty(o, ptr).map(|t| age(t, now))
}

fn first_non_empty<'a>(a: Option<&'a str>, b: Option<&'a str>) -> &'a str {
    a.or(b).unwrap_or_default()
}

/// `formatEventSource`: component (or reporting controller), then `, host` (or reporting
/// instance) when there is one.
fn source(o: &Value) -> String {
    let component = first_non_empty(
        non_empty(o, "/source/component"),
        non_empty(o, "/reportingComponent"),
    );
    let instance = first_non_empty(
        non_empty(o, "/source/host"),
        non_empty(o, "/reportingInstance"),
    );
    if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    }
}

/// OBJECT: `kind/name` with the kind in lower case (`pod/curl-5b5d8f9b7-abcde`), or just the
/// kind when the involved object has no name.
fn target(o: &Value) -> String {
    let kind = text(o, "/involvedObject/kind").to_lowercase();
    match non_empty(o, "/involvedObject/name") {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    }
}

/// All cells of an Event row, in [`COLUMNS`] order.
pub(super) fn row(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let unknown = || "<unknown>".to_string();
    let first = since(o, "/firstTimestamp", now)
        .or_else(|| since(o, "/eventTime", now))
        .unwrap_or_else(unknown);
    let mut last = since(o, "/lastTimestamp", now).unwrap_or_else(|| first.clone());
    let series = o.get("series").filter(|s| !s.is_null());
    let count = match series {
        Some(s) => {
            last = since(s, "/lastObservedTime", now).unwrap_or_else(unknown);
            int(s, "/count").unwrap_or(0)
        }
        None => match int(o, "/count").unwrap_or(0) {
            // Singleton events of the newer API carry no count.
            0 => 1,
            n => n,
        },
    };
    vec![
        last,
        text(o, "/type"),
        text(o, "/reason"),
        target(o),
        text(o, "/involvedObject/fieldPath"),
        source(o),
        text(o, "/message").trim().to_string(),
        first,
        count.to_string(),
        name(o),
    ]
}
