//! The template parser, following client-go's `jsonpath/parser.go` rule by rule.

use super::{JsonPathError, Node, Param};

type Result<T> = std::result::Result<T, JsonPathError>;

/// Sub-templates (unions, filters, bracket keys) may nest at most this deep.
const MAX_DEPTH: usize = 32;

struct Parser {
    input: Vec<char>,
    pos: usize,
    start: usize,
    width: usize,
    depth: usize,
}

/// Parse a whole template: text with `{...}` actions.
pub(super) fn parse_template(text: &str, depth: usize) -> Result<Vec<Node>> {
    if depth > MAX_DEPTH {
        return Err(JsonPathError::TooDeep);
    }
    let mut p = Parser {
        input: text.chars().collect(),
        pos: 0,
        start: 0,
        width: 0,
        depth,
    };
    let mut root = Vec::new();
    loop {
        if p.rest_starts_with("{") {
            if p.pos > p.start {
                root.push(Node::Text(p.consume()));
            }
            p.pos += 1;
            p.consume();
            root.push(Node::List(p.parse_inside_action()?));
            continue;
        }
        if p.next().is_none() {
            break;
        }
    }
    if p.pos > p.start {
        root.push(Node::Text(p.consume()));
    }
    Ok(root)
}

/// client-go's `parseAction`: the nodes of `{text}`.
fn parse_action(text: &str, depth: usize) -> Result<Vec<Node>> {
    let nodes = parse_template(&format!("{{{text}}}"), depth + 1)?;
    Ok(match nodes.into_iter().next() {
        Some(Node::List(list)) => list,
        _ => Vec::new(),
    })
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
    )
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Go's `%#U`.
fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

impl Parser {
    fn next(&mut self) -> Option<char> {
        match self.input.get(self.pos) {
            Some(&c) => {
                self.pos += 1;
                self.width = 1;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn peek(&self) -> Option<char> {
        self.input.get(self.pos).copied()
    }

    fn consume(&mut self) -> String {
        let s: String = self.input[self.start..self.pos].iter().collect();
        self.start = self.pos;
        s
    }

    fn rest_starts_with(&self, prefix: &str) -> bool {
        prefix
            .chars()
            .enumerate()
            .all(|(k, c)| self.input.get(self.pos + k) == Some(&c))
    }

    fn char_before_last(&self) -> Option<char> {
        self.pos
            .checked_sub(2)
            .and_then(|i| self.input.get(i).copied())
    }

    /// The inside of `{...}` up to and including the closing `}`.
    fn parse_inside_action(&mut self) -> Result<Vec<Node>> {
        let mut alternatives: Vec<Vec<Node>> = Vec::new();
        let mut cur = Vec::new();
        loop {
            if self.rest_starts_with("}") {
                self.pos += 1;
                self.consume();
                if alternatives.is_empty() {
                    return Ok(cur);
                }
                alternatives.push(cur);
                return Ok(vec![Node::Union(alternatives)]);
            }
            if self.rest_starts_with("[?(") {
                self.parse_filter(&mut cur)?;
                continue;
            }
            if self.rest_starts_with("..") {
                self.parse_recursive(&mut cur)?;
                continue;
            }
            match self.next() {
                None | Some('\r' | '\n') => return Err(JsonPathError::UnclosedAction),
                Some(' ' | '@' | '$') => {
                    self.consume();
                }
                Some('[') => self.parse_array(&mut cur)?,
                Some(q @ ('"' | '\'')) => self.parse_quote(&mut cur, q)?,
                Some('.') => self.parse_field(&mut cur)?,
                Some(c) if c == '+' || c == '-' || c.is_numeric() => {
                    self.backup();
                    self.parse_number(&mut cur)?;
                }
                Some(c) if is_alphanumeric(c) => {
                    self.backup();
                    self.parse_identifier(&mut cur);
                }
                // Extension: `{.a,.b}` is a union of whole paths.
                Some(',') => {
                    self.consume();
                    alternatives.push(std::mem::take(&mut cur));
                }
                Some(c) => return Err(JsonPathError::UnrecognizedCharacter(describe_char(c))),
            }
        }
    }

    fn parse_identifier(&mut self, cur: &mut Vec<Node>) {
        loop {
            match self.next() {
                None => break,
                Some(c) if is_terminator(c) => {
                    self.backup();
                    break;
                }
                Some(_) => {}
            }
        }
        let value = self.consume();
        cur.push(match value.as_str() {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            _ => Node::Identifier(value),
        });
    }

    fn parse_recursive(&mut self, cur: &mut Vec<Node>) -> Result<()> {
        if cur.last() == Some(&Node::Recursive) {
            return Err(JsonPathError::MultipleRecursiveDescent);
        }
        self.pos += 2;
        self.consume();
        cur.push(Node::Recursive);
        if self.peek().is_some_and(is_alphanumeric) {
            self.parse_field(cur)?;
        }
        Ok(())
    }

    /// A field name after `.`; `\` escapes the next character (`kubernetes\.io/hostname`).
    /// Extension: a segment in quotes (`."a.b"`) is taken literally, escapes still honoured.
    fn parse_field(&mut self, cur: &mut Vec<Node>) -> Result<()> {
        self.consume();
        if let Some(q @ ('"' | '\'')) = self.peek() {
            self.next();
            let mut name = String::new();
            loop {
                match self.next() {
                    None | Some('\n') => return Err(JsonPathError::UnterminatedQuote),
                    Some('\\') => name.extend(self.next()),
                    Some(c) if c == q => break,
                    Some(c) => name.push(c),
                }
            }
            loop {
                match self.next() {
                    Some('\\') => name.extend(self.next()),
                    Some(c) if !is_terminator(c) => name.push(c),
                    _ => {
                        self.backup();
                        break;
                    }
                }
            }
            self.consume();
            cur.push(Node::Field(name));
            return Ok(());
        }
        loop {
            match self.next() {
                Some('\\') => {
                    self.next();
                }
                Some(c) if !is_terminator(c) => {}
                _ => {
                    self.backup();
                    break;
                }
            }
        }
        let value = self.consume();
        cur.push(if value == "*" {
            Node::Wildcard
        } else {
            Node::Field(value.replace('\\', ""))
        });
        Ok(())
    }

    fn parse_quote(&mut self, cur: &mut Vec<Node>, quote: char) -> Result<()> {
        loop {
            match self.next() {
                None | Some('\n') => return Err(JsonPathError::UnterminatedQuote),
                Some(c) if c == quote && self.char_before_last() != Some('\\') => break,
                Some(_) => {}
            }
        }
        let value = self.consume();
        let text = unquote(&value).ok_or_else(|| JsonPathError::BadQuotedString(value.clone()))?;
        cur.push(Node::Text(text));
        Ok(())
    }

    fn parse_number(&mut self, cur: &mut Vec<Node>) -> Result<()> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        loop {
            match self.next() {
                Some(c) if c == '.' || c.is_numeric() => {}
                _ => {
                    self.backup();
                    break;
                }
            }
        }
        let value = self.consume();
        if let Ok(i) = value.parse::<i64>() {
            cur.push(Node::Int(i));
        } else if let Ok(f) = value.parse::<f64>() {
            cur.push(Node::Float(f));
        } else {
            return Err(JsonPathError::BadNumber(value));
        }
        Ok(())
    }

    /// `[...]` after the `[` was read: index, slice, union, or `'key'`.
    fn parse_array(&mut self, cur: &mut Vec<Node>) -> Result<()> {
        loop {
            match self.next() {
                None | Some('\n') => return Err(JsonPathError::UnterminatedArray),
                Some(']') => break,
                Some(_) => {}
            }
        }
        let text = self.consume();
        let inner: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[1..chars.len() - 1].iter().collect()
        };
        let inner = if inner == "*" { ":".to_string() } else { inner };
        let parts: Vec<&str> = inner.split(',').collect();
        if parts.len() > 1 {
            let mut union = Vec::new();
            for part in parts {
                union.push(parse_action(
                    &format!("[{}]", part.trim_matches(' ')),
                    self.depth,
                )?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }
        if let Some(key) = dict_key(&inner, '\'') {
            cur.extend(parse_action(&format!(".{key}"), self.depth)?);
            return Ok(());
        }
        // Extension: `["key"]` names one key literally (client-go only knows `['key']`).
        if dict_key(&inner, '"').is_some() {
            cur.extend(parse_action(&format!(".{inner}"), self.depth)?);
            return Ok(());
        }
        cur.push(Node::Array(slice_params(&inner)?));
        Ok(())
    }

    fn parse_filter(&mut self, cur: &mut Vec<Node>) -> Result<()> {
        self.pos += 3;
        self.consume();
        let (mut begin, mut end) = (false, false);
        let mut pair = '"';
        loop {
            match self.next() {
                None | Some('\n') => return Err(JsonPathError::UnterminatedFilter),
                Some(q @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = q;
                        continue;
                    }
                    if self.char_before_last() != Some('\\') && q == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                Some(_) => {}
            }
        }
        if self.next() != Some(']') {
            return Err(JsonPathError::UnclosedFilter);
        }
        let text = self.consume();
        let text: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[..chars.len() - 2].iter().collect()
        };
        match split_comparison(&text) {
            None => cur.push(Node::Filter {
                left: parse_action(&text, self.depth)?,
                right: Vec::new(),
                op: "exists".into(),
            }),
            Some((left, op, right)) => cur.push(Node::Filter {
                left: parse_action(left, self.depth)?,
                right: parse_action(right, self.depth)?,
                op: op.into(),
            }),
        }
        Ok(())
    }
}

/// `^'([^']*)'$` with the given quote.
fn dict_key(text: &str, quote: char) -> Option<&str> {
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then_some(inner)
}

/// `^([^!<>=]+)([!<>=]+)(.+?)$`
fn split_comparison(text: &str) -> Option<(&str, &str, &str)> {
    let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
    let op_start = text.find(is_op)?;
    if op_start == 0 {
        return None;
    }
    let after = &text[op_start..];
    let mut op_len = after.find(|c: char| !is_op(c)).unwrap_or(after.len());
    if op_len == after.len() {
        // The operand needs one character: the regex gives it the last operator character.
        if op_len < 2 {
            return None;
        }
        op_len -= 1;
    }
    let (op, right) = after.split_at(op_len);
    if right.contains('\n') {
        return None;
    }
    Some((&text[..op_start], op, right))
}

/// `^(-?\d*)(:-?\d*)?(:-?\d*)?$` turned into the three slice parameters.
fn slice_params(text: &str) -> Result<[Param; 3]> {
    let parts: Vec<&str> = text.split(':').collect();
    let valid = |s: &str| {
        s.strip_prefix('-')
            .unwrap_or(s)
            .chars()
            .all(|c| c.is_ascii_digit())
    };
    if parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
        return Err(JsonPathError::InvalidArrayIndex(text.to_string()));
    }
    let unknown = Param {
        value: 0,
        known: false,
        derived: false,
    };
    let mut params = [unknown; 3];
    for i in 0..3 {
        match parts.get(i) {
            Some(s) if i == 0 && s.is_empty() => {}
            Some(s) if i > 0 && s.is_empty() => {}
            Some(s) => {
                let value = s
                    .parse::<i64>()
                    .map_err(|_| JsonPathError::IndexNotNumber((*s).to_string()))?;
                params[i] = Param {
                    value,
                    known: true,
                    derived: false,
                };
            }
            None if i == 1 => {
                params[1] = Param {
                    value: params[0].value.wrapping_add(1),
                    known: true,
                    derived: true,
                };
            }
            None => {}
        }
    }
    Ok(params)
}

fn hex_value(chars: &mut std::str::Chars<'_>, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..n {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

/// client-go's `UnquoteExtend`: a single- or double-quoted string with Go escapes.
fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.chars().count() < 2 || !matches!(quote, '"' | '\'') || !s.ends_with(quote) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let decoded = match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            '\'' | '"' if e == quote => e,
            'x' => char::from(u8::try_from(hex_value(&mut chars, 2)?).ok()?),
            'u' => char::from_u32(hex_value(&mut chars, 4)?)?,
            'U' => char::from_u32(hex_value(&mut chars, 8)?)?,
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                for _ in 0..2 {
                    v = v * 8 + chars.next()?.to_digit(8)?;
                }
                char::from(u8::try_from(v).ok()?)
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}
