//! `-o yaml` and `-o json` output the way kubectl writes it.
//!
//! kubectl turns objects into YAML with `sigs.k8s.io/yaml`, i.e. go-yaml v2: keys sorted (go-yaml's
//! natural order), 2-space indentation, sequences inside mappings not indented, strings quoted only
//! when a YAML 1.1 reader would otherwise see something else, multi-line strings as literal blocks,
//! and long strings folded after column 80. This emitter reproduces go-yaml's emitter state machine
//! (indentation, `whitespace`/`indention` flags, scalar analysis), so the layout matches byte for byte.

mod scalar;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::gofmt::{self, JsonStyle};
use scalar::{Analysis, Style};

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;
const MAX_SIMPLE_KEY: usize = 128;

/// Render a value as kubectl's `-o yaml` does (one document, trailing newline).
pub fn to_yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent: -1,
        whitespace: true,
        indention: true,
    };
    e.node(v, false);
    // Document end: finish the last line.
    e.indent = -1;
    e.write_indent();
    e.out
}

/// Render a value as kubectl's `-o json` does: Go's `json.MarshalIndent` with four spaces
/// (HTML-safe escapes such as `\u003c`), plus a trailing newline. Keys keep the value's order.
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    gofmt::write_json(
        &mut out,
        v,
        JsonStyle {
            indent: Some("    "),
            sort_keys: false,
        },
        0,
    );
    out.push('\n');
    out
}

/// Wrap objects the way kubectl prints several of them with `-o yaml|json`.
pub fn list(items: Vec<Value>) -> Value {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), Value::String(String::new()));
    let mut m = Map::new();
    m.insert("apiVersion".into(), Value::String("v1".into()));
    m.insert("items".into(), Value::Array(items));
    m.insert("kind".into(), Value::String("List".into()));
    m.insert("metadata".into(), Value::Object(metadata));
    Value::Object(m)
}

/// The text of a JSON number after kubectl's JSON -> YAML conversion: integral values print as
/// integers (as Go's JSON encoder writes them), other floats in Go's `%g` shortest form.
fn number_text(n: &serde_json::Number) -> String {
    if !n.is_f64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return (f as i64).to_string();
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return (f as u64).to_string();
        }
    }
    gofmt::float_g(f)
}

/// Stable merge sort that tolerates a comparator that is not a strict total order
/// (go-yaml's key order is not guaranteed to be one).
fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = map.iter().collect();
    let mut buf = v.clone();
    let n = v.len();
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if scalar::key_order(v[j].0, v[i].0) == std::cmp::Ordering::Less {
                    buf[k] = v[j];
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            while i < mid {
                buf[k] = v[i];
                i += 1;
                k += 1;
            }
            while j < end {
                buf[k] = v[j];
                j += 1;
                k += 1;
            }
            start = end;
        }
        std::mem::swap(&mut v, &mut buf);
        width *= 2;
    }
    v
}

struct Emitter {
    out: String,
    /// Characters written on the current line.
    column: usize,
    indent: i64,
    /// The last character written was whitespace (or nothing yet on the line).
    whitespace: bool,
    /// Only indentation has been written on the current line so far.
    indention: bool,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        text: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in text.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    /// Emit any node; `mapping_context` is set for mapping values (and keys).
    fn node(&mut self, v: &Value, mapping_context: bool) {
        match v {
            Value::Null => self.plain_scalar("null"),
            Value::Bool(b) => self.plain_scalar(if *b { "true" } else { "false" }),
            Value::Number(n) => self.plain_scalar(&number_text(n)),
            Value::String(s) => self.string_scalar(s, false),
            Value::Array(items) if items.is_empty() => self.empty_flow("[", "]"),
            Value::Object(map) if map.is_empty() => self.empty_flow("{", "}"),
            Value::Array(items) => {
                let saved = self.indent;
                self.increase_indent(false, mapping_context && !self.indention);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, false);
                }
                self.indent = saved;
            }
            Value::Object(map) => {
                let saved = self.indent;
                self.increase_indent(false, false);
                for (k, item) in sorted_entries(map) {
                    self.write_indent();
                    let simple = k.len() <= MAX_SIMPLE_KEY && !k.chars().any(scalar::is_break);
                    if simple {
                        self.string_scalar(k, true);
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.string_scalar(k, false);
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(item, true);
                }
                self.indent = saved;
            }
        }
    }

    fn empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    /// Numbers, booleans and null: always plain, never folded.
    fn plain_scalar(&mut self, text: &str) {
        let saved = self.indent;
        self.increase_indent(true, false);
        self.write_plain(text, false);
        self.indent = saved;
    }

    fn string_scalar(&mut self, s: &str, simple_key: bool) {
        let analysis: Analysis = scalar::analyze(s);
        let style = scalar::select_style(s, &analysis, simple_key);
        let saved = self.indent;
        self.increase_indent(true, false);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.write_plain(s, allow_breaks),
            Style::Single => self.write_single(s, allow_breaks),
            Style::Double => self.write_double(s, allow_breaks),
            Style::Literal => self.write_literal(s),
        }
        self.indent = saved;
    }

    fn write_plain(&mut self, s: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_is_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let last = chars.len().saturating_sub(1);
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < last
                    && !next_is_space
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double(&mut self, s: &str, allow_breaks: bool) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.write_indicator("\"", true, false, false);
        let mut spaces = false;
        let len = s.len();
        let mut iter = s.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if !scalar::is_printable(c) || scalar::is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let simple = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                if let Some(e) = simple {
                    self.put(e);
                } else {
                    let n = c as u32;
                    let (tag, width) = if n <= 0xFF {
                        ('x', 2)
                    } else if n <= 0xFFFF {
                        ('u', 4)
                    } else {
                        ('U', 8)
                    };
                    self.put(tag);
                    for k in (0..width).rev() {
                        self.put(HEX[((n >> (4 * k)) & 0xF) as usize] as char);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i < len - 1 {
                    self.write_indent();
                    if iter.peek().is_some_and(|&(_, n)| n == ' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, s: &str) {
        self.write_indicator("|", true, false, false);
        if s.starts_with([' ', '\n']) {
            self.write_indicator("2", false, false, false);
        }
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s == "\n" || s[..s.len() - 1].ends_with('\n') {
            "+"
        } else {
            ""
        };
        if !chomp.is_empty() {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in s.chars() {
            if c == '\n' {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                    self.indention = true;
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}
