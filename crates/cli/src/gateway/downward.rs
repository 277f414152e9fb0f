//! The downward API's volume file format for labels and annotations: one `key="value"` line
//! per entry, the value quoted as Go's `strconv.Quote` writes it.

use std::collections::BTreeMap;

/// A malformed line of a downward API file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message} (want key=\"value\")")]
pub struct DownwardError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Parses a labels (or annotations) file of the downward API.
pub fn parse_labels_file(text: &str) -> Result<BTreeMap<String, String>, DownwardError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| DownwardError {
            line: i + 1,
            message,
        };
        let (key, quoted) = line
            .split_once('=')
            .ok_or_else(|| err("no '='".to_owned()))?;
        if key.is_empty() {
            return Err(err("empty key".to_owned()));
        }
        let value = unquote(quoted).map_err(err)?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Result<u32, String> {
    let digits: String = chars.by_ref().take(n).collect();
    if digits.len() != n {
        return Err(format!("short \\x/\\u escape {digits:?}"));
    }
    u32::from_str_radix(&digits, 16).map_err(|_| format!("bad hex escape {digits:?}"))
}

/// Go's `strconv.Unquote` for double-quoted strings.
fn unquote(s: &str) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("value {s:?} is not double-quoted"))?;
    let mut bytes: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    let push = |bytes: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    while let Some(c) = chars.next() {
        if c == '"' {
            return Err("unescaped '\"' inside the value".to_owned());
        }
        if c != '\\' {
            push(&mut bytes, c);
            continue;
        }
        let e = chars.next().ok_or("trailing backslash")?;
        let simple = match e {
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{0b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(c) = simple {
            push(&mut bytes, c);
            continue;
        }
        match e {
            'x' => bytes.push(u8::try_from(hex(&mut chars, 2)?).map_err(|e| e.to_string())?),
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let code = hex(&mut chars, n)?;
                let c = char::from_u32(code).ok_or(format!("invalid code point {code:#x}"))?;
                push(&mut bytes, c);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let digits = format!("{e}{rest}");
                let v = u8::from_str_radix(&digits, 8)
                    .map_err(|_| format!("bad octal escape \\{digits}"))?;
                bytes.push(v);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    String::from_utf8(bytes).map_err(|_| "value is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_downward_api_labels_format() {
        let text = "app=\"aks-istio-egressgateway-asm-1-24\"\nistio=\"asm-egress-egress1\"\n\
                    pod-template-hash=\"5d9c8f7b6\"\n";
        let l = parse_labels_file(text).unwrap();
        assert_eq!(l["istio"], "asm-egress-egress1");
        assert_eq!(l["app"], "aks-istio-egressgateway-asm-1-24");
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn unquotes_go_escapes() {
        let l = parse_labels_file("a=\"x\\\"y\\\\z\\n\\t\\u00e9\\x41\\101\"\nb=\"\"\n").unwrap();
        assert_eq!(l["a"], "x\"y\\z\n\téAA");
        assert_eq!(l["b"], "");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_labels_file("a=\"ok\"\nbroken\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_labels_file("a=unquoted").unwrap_err();
        assert!(e.to_string().contains("not double-quoted"), "{e}");
        assert!(parse_labels_file("a=\"\\q\"").is_err());
        assert!(parse_labels_file("=\"v\"").is_err());
    }
}
