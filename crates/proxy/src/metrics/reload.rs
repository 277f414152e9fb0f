//! The gateway's own configuration figures, in the spirit of Envoy's xDS update statistics
//! (`listener_manager.lds.update_success` / `update_rejected` / `update_time` / `version`)
//! under the `egress_` prefix, so they are never mistaken for Istio's standard metrics:
//!
//! * `egress_config_version` (gauge): version of the configuration snapshot in service;
//! * `egress_config_reload_total{result="ok"|"refused"}` (counter): reloads by result;
//! * `egress_config_last_reload_success` (gauge): 1 when the last reload was accepted, 0 when
//!   it was refused;
//! * `egress_config_last_reload_version` (gauge): the version the last reload offered (the
//!   refused one when it was refused);
//! * `egress_config_last_reload_timestamp_seconds` (gauge): when the last reload was reported
//!   (Unix time);
//! * `egress_config_objects_held{kind,state="last_good"|"refused"}` (gauge): objects that could
//!   not be read or failed validation, whose last good version is in effect (`last_good`) or
//!   which were never applied (`refused`).
//!
//! The last-reload gauges are absent until the first report. Why a reload was refused is not a label
//! (label values must stay few); it is logged and kept in [`ReloadReport::error`].

use std::time::{SystemTime, UNIX_EPOCH};

use super::text;

/// The outcome of a configuration reload, for [`super::Metrics::record_reload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new configuration was accepted and applied.
    Ok,
    /// The new configuration was refused; the previous one keeps serving.
    Refused,
}

/// The last reload reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The version the reload offered, when known.
    pub version: Option<u64>,
    /// Why it was refused; `None` when it was accepted.
    pub error: Option<String>,
    /// When it was reported.
    pub at: SystemTime,
}

impl ReloadReport {
    /// Accepted or refused.
    pub fn result(&self) -> ReloadResult {
        if self.error.is_some() {
            ReloadResult::Refused
        } else {
            ReloadResult::Ok
        }
    }
}

/// Reload counters and the last report.
#[derive(Debug, Default)]
pub(super) struct Reloads {
    ok: u64,
    refused: u64,
    last: Option<ReloadReport>,
    held: std::collections::BTreeMap<(String, String), u64>,
}

impl Reloads {
    /// Counts `report` and keeps it as the last one.
    pub(super) fn record(&mut self, report: ReloadReport) {
        match report.result() {
            ReloadResult::Ok => self.ok += 1,
            ReloadResult::Refused => self.refused += 1,
        }
        self.last = Some(report);
    }

    /// Replaces the counts of bad objects by (kind, state).
    pub(super) fn set_held(&mut self, held: std::collections::BTreeMap<(String, String), u64>) {
        self.held = held;
    }

    /// The last report.
    pub(super) fn last(&self) -> Option<&ReloadReport> {
        self.last.as_ref()
    }

    /// Writes the figures (after `egress_config_version`, written by the caller).
    pub(super) fn render(&self, out: &mut String) {
        text::header(
            out,
            "egress_config_reload_total",
            "counter",
            "Configuration reloads by result.",
        );
        for (result, count) in [("ok", self.ok), ("refused", self.refused)] {
            let values = [result.to_owned()];
            text::sample(
                out,
                "egress_config_reload_total",
                &["result"],
                &values,
                count as f64,
            );
        }
        text::header(
            out,
            "egress_config_objects_held",
            "gauge",
            "Objects that could not be read or failed validation, by kind and state \
             (last_good: their last good version is in effect; refused: never applied).",
        );
        for ((kind, state), count) in &self.held {
            let values = [kind.clone(), state.clone()];
            text::sample(
                out,
                "egress_config_objects_held",
                &["kind", "state"],
                &values,
                *count as f64,
            );
        }
        let Some(last) = &self.last else {
            return;
        };
        let success = if last.error.is_none() { 1.0 } else { 0.0 };
        let gauges = [
            (
                "egress_config_last_reload_success",
                "1 when the last configuration reload was accepted, 0 when it was refused.",
                Some(success),
            ),
            (
                "egress_config_last_reload_version",
                "Version of the configuration the last reload offered.",
                last.version.map(|v| v as f64),
            ),
            (
                "egress_config_last_reload_timestamp_seconds",
                "When the last configuration reload was reported, in seconds since the epoch.",
                last.at
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64()),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                text::header(out, name, "gauge", help);
                text::sample(out, name, &[], &[], value);
            }
        }
    }
}
