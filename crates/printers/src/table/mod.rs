//! `kubectl get` tables: per-kind columns and cells, AGE, and the tabwriter layout.
//!
//! Built-in kinds follow `pkg/printers/internalversion/printers.go`; Istio kinds follow the
//! `additionalPrinterColumns` of Istio's CRDs; unknown kinds get `NAME AGE`. Layout follows
//! kubectl's tabwriter (minimum width 6, padding 3, no padding after the last column).

mod age;
mod event;
mod kinds;
mod pod;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod workload_tests;

use std::time::SystemTime;

use serde_json::Value;

pub use age::{age, human_duration, parse_rfc3339};

/// One table column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header text, upper case as kubectl prints it.
    pub name: String,
    /// Shown only with `-o wide` (priority > 0 in a server-side table).
    pub wide_only: bool,
}

/// kubectl's NAME cell content for `-o name`: `kind[.group]/name`, kind in lower case
/// (`service/curl`, `deployment.apps/curl`, `serviceentry.networking.istio.io/cnn`).
pub fn resource_name(group: &str, kind: &str, name: &str) -> String {
    let kind = kind.to_lowercase();
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

/// The columns of `kubectl get <kind>` (`wide` adds the `-o wide` ones).
pub fn columns(kind: &str, wide: bool) -> Vec<Column> {
    kinds::spec(kind)
        .columns
        .iter()
        .filter(|(_, wide_only)| wide || !wide_only)
        .map(|(name, wide_only)| Column {
            name: (*name).to_string(),
            wide_only: *wide_only,
        })
        .collect()
}

/// Just the header texts of [`columns`].
pub fn headers(kind: &str, wide: bool) -> Vec<String> {
    columns(kind, wide).into_iter().map(|c| c.name).collect()
}

/// The cells of one object's row, matching [`columns`] for the same `kind` and `wide`.
pub fn row(kind: &str, obj: &Value, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = kinds::spec(kind);
    let cells = (spec.row)(obj, wide, now);
    spec.columns
        .iter()
        .zip(cells)
        .filter(|((_, wide_only), _)| wide || !wide_only)
        .map(|(_, cell)| cell)
        .collect()
}

/// Options of a whole `kubectl get` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`.
    pub wide: bool,
    /// `-A`/`--all-namespaces`: a leading NAMESPACE column.
    pub show_namespace: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-labels`: a trailing LABELS column.
    pub show_labels: bool,
    /// `-L key,...`: one column per label key (header is the key's last `/` segment, upper case).
    pub label_columns: Vec<String>,
    /// Print names as `<prefix>/<name>` (kubectl does this when listing several kinds, e.g.
    /// `deployment.apps`). Applies to the NAME column; kinds without one shown are unchanged.
    pub name_prefix: Option<String>,
}

fn labels_of(obj: &Value) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels
}

/// apimachinery's `labels.FormatLabels`: `k=v,...` sorted by key, `<none>` when empty.
pub fn format_labels(obj_labels: Option<&serde_json::Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = obj_labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A complete `kubectl get` table for objects of one kind.
pub fn print_table(kind: &str, objects: &[Value], opts: &TableOptions, now: SystemTime) -> String {
    let mut head = Vec::new();
    if opts.show_namespace {
        head.push("NAMESPACE".to_string());
    }
    head.extend(headers(kind, opts.wide));
    for key in &opts.label_columns {
        head.push(key.rsplit('/').next().unwrap_or(key).to_uppercase());
    }
    if opts.show_labels {
        head.push("LABELS".into());
    }
    // kubectl prefixes the column formatted as a name, wherever it is (an Event's NAME is last
    // and only shown with `-o wide`).
    let name_column = headers(kind, opts.wide).iter().position(|h| h == "NAME");
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|obj| {
            let mut cells = Vec::new();
            if opts.show_namespace {
                cells.push(kinds::text(obj, "/metadata/namespace"));
            }
            let mut own = row(kind, obj, opts.wide, now);
            if let (Some(prefix), Some(name)) =
                (&opts.name_prefix, name_column.and_then(|i| own.get_mut(i)))
            {
                *name = format!("{prefix}/{name}");
            }
            cells.extend(own);
            let labels = labels_of(obj);
            for key in &opts.label_columns {
                cells.push(
                    labels
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                );
            }
            if opts.show_labels {
                cells.push(format_labels(
                    obj.pointer("/metadata/labels").and_then(Value::as_object),
                ));
            }
            cells
        })
        .collect();
    render(&head, &rows, opts.no_headers)
}

/// A cell as kubectl prints it: cut at the first line break (marked with `...`), terminal
/// escapes defused (`ESC` as `^[`).
fn clean_cell(cell: &str) -> String {
    let cut = match cell.find(['\n', '\r', '\u{c}']) {
        Some(i) => format!("{}...", &cell[..i]),
        None => cell.to_string(),
    };
    cut.replace('\u{1b}', "^[")
}

/// Lay out a table like kubectl's tabwriter: every column but the last padded to its widest
/// cell plus 3 spaces (at least 6), no padding after the last column. Like kubectl, nothing at
/// all (not even headers) is printed when there are no rows.
pub fn render(headers: &[String], rows: &[Vec<String>], no_headers: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    if !no_headers {
        lines.push(headers.iter().map(|h| clean_cell(h)).collect());
    }
    lines.extend(
        rows.iter()
            .map(|r| r.iter().map(|c| clean_cell(c)).collect()),
    );
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for line in &lines {
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(6));
        }
    }
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                for _ in cell.chars().count()..widths[i] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
    out
}
