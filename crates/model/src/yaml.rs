//! YAML streams to JSON values with source positions, resolved the way Kubernetes does.
//!
//! Kubernetes reads manifests through `sigs.k8s.io/yaml`: YAML 1.1 scalars (as `go-yaml` v2
//! resolves them) converted to JSON. This module does the same and additionally remembers where
//! every field and list item starts, so that later stages can point a user at `file:line:col`
//! for any field path (`spec.ports[1].name`).
//!
//! Guarded against hostile input: nesting depth and alias expansion are bounded, duplicate keys
//! are rejected (as Kubernetes' strict decoder does), and nothing here panics on any bytes.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Maximum nesting of mappings and sequences in one document.
pub const MAX_DEPTH: usize = 128;
/// Maximum number of values an alias may expand to, summed over a document.
pub const MAX_ALIAS_EXPANSION: usize = 100_000;

/// A position in the source text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// Where each field path of a document starts. Paths use kubectl's notation:
/// `spec.ports[1].name`; the empty path is the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    map: HashMap<String, Pos>,
}

impl Positions {
    /// The position of `path`, or of its nearest recorded ancestor.
    pub fn lookup(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = parent_path(p);
        }
    }

    /// Record a position for `path` (used when objects are built programmatically).
    pub fn insert(&mut self, path: String, pos: Pos) {
        self.map.entry(path).or_insert(pos);
    }

    /// The positions under `prefix` (`items[2]`), with paths relative to it.
    pub fn within(&self, prefix: &str) -> Positions {
        let map = self
            .map
            .iter()
            .filter_map(|(path, pos)| {
                let rest = path.strip_prefix(prefix)?;
                let rest = if rest.is_empty() {
                    ""
                } else {
                    rest.strip_prefix('.')
                        .or_else(|| rest.starts_with('[').then_some(rest))?
                };
                Some((rest.to_owned(), *pos))
            })
            .collect();
        Positions { map }
    }
}

/// The documents of a stream with each `kind: List` (apiVersion `v1`) replaced by its items, as
/// kubectl and istioctl read a List: each item is decoded, validated and applied on its own,
/// with its own positions (its document index stays the List's).
pub fn expand_lists(docs: Vec<YamlDocument>) -> Vec<YamlDocument> {
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let is_list = doc.value.get("kind").and_then(Value::as_str) == Some("List")
            && doc.value.get("apiVersion").and_then(Value::as_str) == Some("v1");
        let items = doc.value.get("items").and_then(Value::as_array);
        match items {
            Some(items) if is_list => {
                for (i, item) in items.iter().enumerate() {
                    let prefix = format!("items[{i}]");
                    let positions = doc.positions.within(&prefix);
                    out.push(YamlDocument {
                        index: doc.index,
                        pos: positions.lookup("").unwrap_or(doc.pos),
                        value: item.clone(),
                        positions,
                    });
                }
            }
            _ => out.push(doc),
        }
    }
    out
}

/// The parent of a kubectl-style field path: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``.
pub fn parent_path(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    &path[..cut]
}

/// One document of a YAML stream.
#[derive(Debug, Clone)]
pub struct YamlDocument {
    /// 0-based index of the document in the stream, counting every `---` separated document.
    pub index: usize,
    /// Position of the document's first value.
    pub pos: Pos,
    /// The document as JSON. Empty documents (only comments) are not returned.
    pub value: Value,
    /// Where each field starts.
    pub positions: Positions,
}

/// A YAML syntax or structure error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", pos.line, pos.col)]
pub struct YamlError {
    /// Where the problem is.
    pub pos: Pos,
    /// 0-based index of the document that failed.
    pub document: usize,
    /// What is wrong.
    pub message: String,
}

enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        path: String,
        anchor: usize,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Keys that came from `<<` merges (may be overridden by explicit keys).
        merged: Vec<String>,
        /// Character index just past the last plain key, for the flow-context fix-up below.
        key_end: Option<usize>,
    },
}

/// Parse a whole YAML stream into its non-empty documents.
pub fn parse_stream(text: &str) -> Result<Vec<YamlDocument>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut doc_index: usize = 0;
    let mut started = false;
    let mut builder = Builder::default();
    for next in parser.by_ref() {
        let (event, span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                return Err(YamlError {
                    pos: Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    document: doc_index,
                    message: e.info().to_string(),
                });
            }
        };
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if started {
                    doc_index += 1;
                }
                started = true;
                builder = Builder {
                    document: doc_index,
                    ..Builder::default()
                };
            }
            Event::DocumentEnd => {
                let b = std::mem::take(&mut builder);
                if let Some((value, pos)) = b.root
                    && !value.is_null()
                {
                    docs.push(YamlDocument {
                        index: doc_index,
                        pos,
                        value,
                        positions: b.positions,
                    });
                }
            }
            other => builder.event(other, &span, text)?,
        }
    }
    Ok(docs)
}

#[derive(Default)]
struct Builder {
    document: usize,
    stack: Vec<Frame>,
    root: Option<(Value, Pos)>,
    positions: Positions,
    anchors: HashMap<usize, Value>,
    expanded: usize,
}

impl Builder {
    fn err(&self, pos: Pos, message: impl Into<String>) -> YamlError {
        YamlError {
            pos,
            document: self.document,
            message: message.into(),
        }
    }

    /// The path the next value will have.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
            Some(Frame::Map { path, key, .. }) => match key {
                Some((k, _)) if path.is_empty() => k.clone(),
                Some((k, _)) => format!("{path}.{k}"),
                None => path.clone(),
            },
        }
    }

    fn event(&mut self, event: Event<'_>, span: &Span, text: &str) -> Result<(), YamlError> {
        let pos = Pos::from_span(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
                    || tag
                        .as_ref()
                        .is_some_and(|t| t.handle == "!!" && t.suffix == "str");
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key && let Some(Frame::Map { key_end, .. }) = self.stack.last_mut() {
                    // Only plain keys: a quoted "<<" is an ordinary key, not a merge.
                    *key_end = (style == ScalarStyle::Plain).then(|| span.end.index());
                }
                let value = if style != ScalarStyle::Plain || forced_str || is_key {
                    Value::String(text.into_owned())
                } else {
                    resolve_plain(&text).map_err(|m| self.err(pos, m))?
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.push_value(value, pos)
            }
            Event::Alias(id) => {
                let Some(value) = self.anchors.get(&id).cloned() else {
                    return Err(self.err(pos, "unknown anchor"));
                };
                self.expanded += count_nodes(&value);
                if self.expanded > MAX_ALIAS_EXPANSION {
                    return Err(self.err(
                        pos,
                        format!("aliases expand to more than {MAX_ALIAS_EXPANSION} values"),
                    ));
                }
                self.push_value(value, pos)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                let path = self.next_path();
                self.positions.insert(path.clone(), pos);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                let path = self.next_path();
                self.positions.insert(path.clone(), pos);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    path,
                    anchor,
                    key: None,
                    merged: Vec::new(),
                    key_end: None,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(self.err(pos, "unbalanced collection end"));
                };
                let (value, anchor, start) = match frame {
                    Frame::Seq {
                        items,
                        anchor,
                        path,
                        ..
                    } => (
                        Value::Array(items),
                        anchor,
                        self.positions.lookup(&path).unwrap_or(pos),
                    ),
                    Frame::Map {
                        map,
                        anchor,
                        path,
                        key,
                        key_end,
                        ..
                    } => {
                        if let Some((k, kpos)) = key {
                            return Err(self.err(kpos, format!("mapping key {k:?} has no value")));
                        }
                        if let Some(s) = colon_ended_scalar(&map, key_end, text) {
                            let start = self.positions.lookup(&path).unwrap_or(pos);
                            return self.attach(Value::String(s), start);
                        }
                        (
                            Value::Object(map),
                            anchor,
                            self.positions.lookup(&path).unwrap_or(pos),
                        )
                    }
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.attach(value, start)
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => Ok(()),
        }
    }

    fn open(&self, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return Err(self.err(pos, "mapping keys must be scalars"));
        }
        Ok(())
    }

    /// A complete scalar or alias value arrived.
    fn push_value(&mut self, value: Value, pos: Pos) -> Result<(), YamlError> {
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            // This scalar is a mapping key.
            let key = match value {
                Value::String(s) => s,
                Value::Null => String::from("null"),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(self.err(pos, "mapping keys must be scalars"));
                }
            };
            let document = self.document;
            if let Some(Frame::Map {
                map,
                merged,
                key: slot,
                ..
            }) = self.stack.last_mut()
            {
                if map.contains_key(&key) && !merged.contains(&key) && key != "<<" {
                    return Err(YamlError {
                        pos,
                        document,
                        message: format!("key {key:?} already set in map"),
                    });
                }
                *slot = Some((key, pos));
            }
            // Remember where the key itself is: the best place to point at for its field.
            let path = self.next_path();
            self.positions.insert(path, pos);
            return Ok(());
        }
        let path = self.next_path();
        self.positions.insert(path, pos);
        self.attach(value, pos)
    }

    /// Place a finished value into its parent (or as the document root).
    fn attach(&mut self, value: Value, pos: Pos) -> Result<(), YamlError> {
        let document = self.document;
        match self.stack.last_mut() {
            None => {
                self.root = Some((value, pos));
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(())
            }
            Some(Frame::Map {
                map,
                key,
                merged,
                key_end,
                ..
            }) => {
                let Some((k, kpos)) = key.take() else {
                    return Err(YamlError {
                        pos,
                        document,
                        message: "mapping keys must be scalars".into(),
                    });
                };
                if k == "<<" && key_end.is_some() {
                    merge_into(map, merged, value).map_err(|m| YamlError {
                        pos: kpos,
                        document,
                        message: m,
                    })
                } else {
                    if merged.contains(&k) {
                        merged.retain(|m| m != &k);
                    }
                    map.insert(k, value);
                    Ok(())
                }
            }
        }
    }
}

/// Apply a YAML merge key (`<<: *base` or `<<: [*a, *b]`): keys already present win.
fn merge_into(
    map: &mut Map<String, Value>,
    merged: &mut Vec<String>,
    value: Value,
) -> Result<(), String> {
    let sources = match value {
        Value::Object(m) => vec![m],
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::Object(m) => out.push(m),
                    _ => {
                        return Err(
                            "map merge requires map or sequence of maps as the value".into()
                        );
                    }
                }
            }
            out
        }
        _ => return Err("map merge requires map or sequence of maps as the value".into()),
    };
    for src in sources {
        for (k, v) in src {
            if !map.contains_key(&k) {
                merged.push(k.clone());
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

/// Kubernetes' YAML parser (go-yaml v2) ends a plain scalar at `:` only when a blank follows,
/// so `[1.2.3.4, 001:db8::]` holds the string `001:db8::`. A YAML 1.2 parser reads the final
/// `:` before `]` or `,` as a value indicator and yields `{"001:db8:": null}`. Undo that: a
/// one-entry mapping with a null value whose plain key is followed directly by `:` and a flow
/// indicator was a scalar ending in `:`.
fn colon_ended_scalar(
    map: &Map<String, Value>,
    key_end: Option<usize>,
    text: &str,
) -> Option<String> {
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    if !v.is_null() {
        return None;
    }
    let mut rest = text.chars().skip(key_end?);
    if rest.next() != Some(':') {
        return None;
    }
    match rest.next() {
        Some(',' | ']' | '}') => Some(format!("{k}:")),
        _ => None,
    }
}

fn count_nodes(v: &Value) -> usize {
    let mut n = 0;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        match v {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    n
}

/// Resolve a plain (unquoted) scalar as go-yaml v2 does for Kubernetes manifests.
pub fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false));
        }
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => {
            return Err(format!("the float {s} cannot be represented in JSON"));
        }
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Ok(Value::String(s.to_owned()));
    }
    if let Some(n) = parse_int(s) {
        return Ok(Value::Number(n));
    }
    if looks_like_float(s)
        && let Ok(f) = s.replace('_', "").parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Ok(Value::Number(n));
    }
    Ok(Value::String(s.to_owned()))
}

fn parse_int(s: &str) -> Option<Number> {
    let plain = s.replace('_', "");
    let (neg, body) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain.as_str()),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i64::try_from(mag)
            .ok()
            .map(|m| -m)
            .or(if mag == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                None
            })?;
        Some(Number::from(v))
    } else {
        Some(Number::from(mag))
    }
}

fn looks_like_float(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+' | '_'))
        && t.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_with_positions() {
        let text = "a: 1\n---\n# only a comment\n---\nkind: X\nspec:\n  ports:\n  - name: a\n    number: 80\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].index, 0);
        assert_eq!(docs[1].index, 2);
        assert_eq!(
            docs[1].value,
            json!({"kind": "X", "spec": {"ports": [{"name": "a", "number": 80}]}})
        );
        let p = docs[1].positions.lookup("spec.ports[0].number").unwrap();
        assert_eq!((p.line, p.col), (9, 5), "the key of the field");
        let k = docs[1].positions.lookup("spec.ports[0].missing").unwrap();
        assert_eq!(k.line, 8, "falls back to the item");
    }

    #[test]
    fn scalars_resolve_like_go_yaml_v2() {
        assert_eq!(resolve_plain("80").unwrap(), json!(80));
        assert_eq!(resolve_plain("0x1F").unwrap(), json!(31));
        assert_eq!(resolve_plain("0777").unwrap(), json!(511));
        assert_eq!(resolve_plain("-3").unwrap(), json!(-3));
        assert_eq!(resolve_plain("1.5").unwrap(), json!(1.5));
        assert_eq!(resolve_plain("yes").unwrap(), json!(true));
        assert_eq!(resolve_plain("Off").unwrap(), json!(false));
        assert_eq!(resolve_plain("~").unwrap(), json!(null));
        assert_eq!(resolve_plain("asm-1-24").unwrap(), json!("asm-1-24"));
        assert_eq!(resolve_plain("1.2.3.4").unwrap(), json!("1.2.3.4"));
        assert_eq!(resolve_plain("10s").unwrap(), json!("10s"));
        assert_eq!(resolve_plain("001:db8::").unwrap(), json!("001:db8::"));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let docs = parse_stream("a: \"80\"\nb: '1.0'\nc: !!str 7\n").unwrap();
        assert_eq!(docs[0].value, json!({"a": "80", "b": "1.0", "c": "7"}));
    }

    #[test]
    fn colon_ended_scalars_in_flow_sequences_read_as_kubernetes_does() {
        let docs =
            parse_stream("addresses: [1.2.3.4, 001:db8::]\nb: [a:, c]\nm: [k: v]\n").unwrap();
        assert_eq!(docs[0].value["addresses"], json!(["1.2.3.4", "001:db8::"]));
        assert_eq!(docs[0].value["b"], json!(["a:", "c"]));
        assert_eq!(docs[0].value["m"], json!([{"k": "v"}]));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_stream("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert_eq!(err.message, "key \"a\" already set in map", "{err}");
    }

    #[test]
    fn anchors_and_merge_keys() {
        let docs = parse_stream("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(docs[0].value["d"], json!({"x": 1, "y": 3}));
        let quoted = parse_stream("d:\n  \"<<\": {x: 1}\n").unwrap();
        assert_eq!(
            quoted[0].value["d"],
            json!({"<<": {"x": 1}}),
            "a quoted << is a plain key"
        );
    }

    #[test]
    fn billion_laughs_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let text = "[".repeat(10_000);
        assert!(parse_stream(&text).is_err());
    }

    #[test]
    fn syntax_error_names_line_and_document() {
        let err = parse_stream("a: 1\n---\nb: [1, 2\n").unwrap_err();
        assert_eq!(err.document, 1);
    }
}
