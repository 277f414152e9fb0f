//! Prometheus text exposition format 0.0.4 (what Envoy's `/stats/prometheus` and the Istio
//! agent's merged endpoint serve): `# HELP`/`# TYPE` headers, one sample per line, label
//! values escaped, histograms as cumulative `_bucket{le=…}` series plus `_sum` and `_count`.

use std::fmt::Write;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Istio's default buckets of `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's default buckets of `istio_request_bytes` and `istio_response_bytes`.
pub const BYTES_BUCKETS: &[f64] = &[
    1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0,
];

/// A histogram with fixed upper bounds (an implicit `+Inf` bucket follows the last).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; one more than `bounds` for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, value: f64) {
        let index = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(index) {
            *c += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Adds `other`'s observations (same bounds) to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Writes `# HELP` and `# TYPE` for `name`.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends `{n1="v1",…}` (nothing when there are no labels); `extra` is appended last.
fn labels(out: &mut String, names: &[&str], values: &[String], extra: Option<(&str, &str)>) {
    if names.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let pairs = names
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .chain(extra);
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Label-value escaping: backslash, double quote and newline.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A number as Prometheus reads it (`+Inf`, integers without a fraction).
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value}")
    }
}

/// Writes one sample line.
pub fn sample(out: &mut String, name: &str, names: &[&str], values: &[String], value: f64) {
    out.push_str(name);
    labels(out, names, values, None);
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series.
pub fn histogram(out: &mut String, name: &str, names: &[&str], values: &[String], h: &Histogram) {
    let mut cumulative = 0;
    let bounds = h.bounds.iter().copied().chain([f64::INFINITY]);
    for (bound, count) in bounds.zip(&h.counts) {
        cumulative += count;
        let le = number(bound);
        out.push_str(name);
        out.push_str("_bucket");
        labels(out, names, values, Some(("le", &le)));
        let _ = writeln!(out, " {cumulative}");
    }
    out.push_str(name);
    out.push_str("_sum");
    labels(out, names, values, None);
    let _ = writeln!(out, " {}", number(h.sum));
    out.push_str(name);
    out.push_str("_count");
    labels(out, names, values, None);
    let _ = writeln!(out, " {}", h.count);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn histogram_lines_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let mut out = String::new();
        histogram(&mut out, "x", &["a"], &["q\"\\\n".to_owned()], &h);
        assert_eq!(
            out,
            "x_bucket{a=\"q\\\"\\\\\\n\",le=\"1\"} 1\n\
             x_bucket{a=\"q\\\"\\\\\\n\",le=\"10\"} 2\n\
             x_bucket{a=\"q\\\"\\\\\\n\",le=\"+Inf\"} 3\n\
             x_sum{a=\"q\\\"\\\\\\n\"} 55.5\n\
             x_count{a=\"q\\\"\\\\\\n\"} 3\n"
        );
    }

    #[test]
    fn samples_without_labels() {
        let mut out = String::new();
        sample(&mut out, "y", &[], &[], 3.0);
        assert_eq!(out, "y 3\n");
    }
}
