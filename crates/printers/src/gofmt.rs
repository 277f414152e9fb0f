//! Go formatting rules kubectl's output inherits: `encoding/json`, `strconv` floats, `%q`.

use serde_json::{Map, Number, Value};

/// Shortest decimal digits of a finite, non-zero `f` and its decimal exponent: `f = 0.d1d2.. * 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` yields the shortest round-tripping digits, as Go's shortest mode does.
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let trimmed = digits.trim_end_matches('0');
    let digits = if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    };
    (digits, exp + 1)
}

fn fmt_e(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    let rest: String = chars.collect();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(&rest);
    }
    let exp = dp - 1;
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    out.push_str(&abs.to_string());
    out
}

fn fmt_f(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let nd = digits.len() as i32;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(digits);
    } else if dp >= nd {
        out.push_str(digits);
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        let (int, frac) = digits.split_at(dp as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is also what `fmt.Print` shows for a float64.
pub(crate) fn float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return if neg { "-0".into() } else { "0".into() };
    }
    let (digits, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        fmt_e(neg, &digits, dp)
    } else {
        fmt_f(neg, &digits, dp)
    }
}

/// How Go's `encoding/json` writes a float64.
pub(crate) fn float_json(f: f64) -> String {
    if !f.is_finite() {
        return float_g(f);
    }
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return if neg { "-0".into() } else { "0".into() };
    }
    let (digits, dp) = shortest_digits(f);
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        // Go writes e-07 as e-7 here.
        let s = fmt_e(neg, &digits, dp);
        match s.rfind("e-0") {
            Some(i) if i + 4 == s.len() => format!("{}e-{}", &s[..i], &s[i + 3..]),
            _ => s,
        }
    } else {
        fmt_f(neg, &digits, dp)
    }
}

/// A JSON number as Go prints it after decoding into `interface{}` via unstructured (int64 or float64).
pub(crate) fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        float_g(n.as_f64().unwrap_or(0.0))
    }
}

/// Options for [`write_json`].
#[derive(Clone, Copy)]
pub(crate) struct JsonStyle<'a> {
    /// Indentation per level; `None` for compact output.
    pub indent: Option<&'a str>,
    /// Sort object keys bytewise, as Go does for maps.
    pub sort_keys: bool,
}

/// Go's `encoding/json` encoding (HTML-safe escaping), compact or indented.
pub(crate) fn write_json(out: &mut String, v: &Value, style: JsonStyle<'_>, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&float_json(n.as_f64().unwrap_or(0.0)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_json(out, item, style, depth + 1);
            }
            newline(out, style, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in entries(map, style.sort_keys).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_json_string(out, k);
                out.push(':');
                if style.indent.is_some() {
                    out.push(' ');
                }
                write_json(out, item, style, depth + 1);
            }
            newline(out, style, depth);
            out.push('}');
        }
    }
}

fn entries(map: &Map<String, Value>, sort: bool) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = map.iter().collect();
    if sort {
        v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
    v
}

fn newline(out: &mut String, style: JsonStyle<'_>, depth: usize) {
    if let Some(indent) = style.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize & 0xf] as char);
                out.push(HEX[b as usize & 0xf] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Compact JSON with sorted keys, as `json.Marshal` prints a decoded map.
pub(crate) fn json_compact(v: &Value) -> String {
    let mut out = String::new();
    write_json(
        &mut out,
        v,
        JsonStyle {
            indent: None,
            sort_keys: true,
        },
        0,
    );
    out
}

/// Go's `%q` (`strconv.Quote`).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a decoded JSON value (`map[a:1]`, `[x y]`, `<nil>`).
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = entries(map, true)
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_like_go() {
        assert_eq!(float_g(1.5), "1.5");
        assert_eq!(float_g(1234567.0), "1.234567e+06");
        assert_eq!(float_g(123456.0), "123456");
        assert_eq!(float_g(0.0001), "0.0001");
        assert_eq!(float_g(0.00001), "1e-05");
        assert_eq!(float_g(-2.5e-300), "-2.5e-300");
        assert_eq!(float_g(1e21), "1e+21");
        assert_eq!(float_json(1e21), "1e+21");
        assert_eq!(float_json(1e20), "100000000000000000000");
        assert_eq!(float_json(1e-7), "1e-7");
        assert_eq!(float_json(0.5), "0.5");
    }

    #[test]
    fn json_escaping_like_go() {
        assert_eq!(
            json_compact(&json!({"b": "<none>&", "a": [1, 2.5]})),
            r#"{"a":[1,2.5],"b":"\u003cnone\u003e\u0026"}"#
        );
        assert_eq!(
            json_compact(&json!("\u{1}\u{8}\u{2028}")),
            r#""\u0001\b\u2028""#
        );
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(quote("a \"b\"\n\u{1}é"), "\"a \\\"b\\\"\\n\\x01é\"");
        assert_eq!(
            go_value(&json!({"b": [1, "x"], "a": null})),
            "map[a:<nil> b:[1 x]]"
        );
    }
}
