//! Template evaluation, following client-go's `jsonpath.go` (results, ranges, filters).

use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{JsonPathError, Node, Param};
use crate::gofmt;

type Result<T> = std::result::Result<T, JsonPathError>;
type Vals<'a> = Vec<Cow<'a, Value>>;

/// Ranges may nest at most this deep.
const MAX_RANGE_DEPTH: usize = 64;

/// How many values one evaluation may select plus how many bytes it may print, together: room
/// for a listing of a hundred thousand objects with a few fields each, and reached in a fraction
/// of a second by a template built to multiply its work.
const BUDGET: u64 = 4 << 20;

/// What an identifier inside a list asked for.
#[derive(Default)]
struct Flags {
    range: bool,
    end: bool,
}

/// Where the results of top-level actions go.
enum Sink<'o> {
    Text(&'o mut String),
    Results(&'o mut Vec<Vec<Value>>),
}

pub(super) struct Executor {
    allow_missing_keys: bool,
    /// What is left of [`BUDGET`].
    left: Cell<u64>,
}

/// kubectl's text for one result value.
pub(super) fn result_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) | Value::Array(_) => gofmt::json_compact(v),
        Value::Number(n) => gofmt::number_text(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".into(),
    }
}

/// Go's type name for a decoded JSON value, as used in error messages.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Null => "<nil>",
    }
}

/// The index of the `{end}` closing the range opened at `start`.
fn matching_end(nodes: &[Node], start: usize) -> Option<usize> {
    let has = |n: &Node, name: &str| match n {
        Node::List(list) => list
            .iter()
            .any(|x| matches!(x, Node::Identifier(i) if i == name)),
        _ => false,
    };
    let mut depth = 1usize;
    for (j, node) in nodes.iter().enumerate().skip(start + 1) {
        if has(node, "range") {
            depth += 1;
        }
        if has(node, "end") {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

fn get<'a>(v: &Cow<'a, Value>, key: &str) -> Option<Cow<'a, Value>> {
    match v {
        Cow::Borrowed(r) => {
            let r: &'a Value = r;
            r.as_object()?.get(key).map(Cow::Borrowed)
        }
        Cow::Owned(o) => o.as_object()?.get(key).cloned().map(Cow::Owned),
    }
}

fn children<'a>(v: &Cow<'a, Value>) -> Vals<'a> {
    match v {
        Cow::Borrowed(r) => {
            let r: &'a Value = r;
            match r {
                Value::Object(m) => m.values().map(Cow::Borrowed).collect(),
                Value::Array(a) => a.iter().map(Cow::Borrowed).collect(),
                Value::String(s) => s.bytes().map(|b| Cow::Owned(Value::from(b))).collect(),
                _ => Vec::new(),
            }
        }
        Cow::Owned(o) => match o {
            Value::Object(m) => m.values().cloned().map(Cow::Owned).collect(),
            Value::Array(a) => a.iter().cloned().map(Cow::Owned).collect(),
            Value::String(s) => s.bytes().map(|b| Cow::Owned(Value::from(b))).collect(),
            _ => Vec::new(),
        },
    }
}

fn items<'a>(v: &Cow<'a, Value>) -> Option<Vals<'a>> {
    match &**v {
        Value::Array(_) => Some(children(v)),
        _ => None,
    }
}

impl Executor {
    pub(super) fn new(allow_missing_keys: bool) -> Self {
        Executor {
            allow_missing_keys,
            left: Cell::new(BUDGET),
        }
    }

    /// Take `n` units from the budget, or fail once it is spent.
    fn charge(&self, n: usize) -> Result<()> {
        let n = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => Err(JsonPathError::TooExpensive(BUDGET)),
        }
    }

    pub(super) fn run(&self, nodes: &[Node], data: &Value, out: &mut String) -> Result<()> {
        self.run_block(nodes, Cow::Borrowed(data), &mut Sink::Text(out), 0)
    }

    pub(super) fn find_results(&self, nodes: &[Node], data: &Value) -> Result<Vec<Vec<Value>>> {
        let mut results = Vec::new();
        self.run_block(
            nodes,
            Cow::Borrowed(data),
            &mut Sink::Results(&mut results),
            0,
        )?;
        Ok(results)
    }

    fn run_block<'a>(
        &self,
        nodes: &[Node],
        cur: Cow<'a, Value>,
        sink: &mut Sink<'_>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_RANGE_DEPTH {
            return Err(JsonPathError::TooDeep);
        }
        let mut i = 0;
        while i < nodes.len() {
            let mut flags = Flags::default();
            let results = self.walk(vec![cur.clone()], &nodes[i], &mut flags)?;
            if flags.end {
                return Err(JsonPathError::EndWithoutRange);
            }
            if flags.range {
                let end = matching_end(nodes, i);
                let body = &nodes[i + 1..end.unwrap_or(nodes.len())];
                for item in results {
                    self.run_block(body, item, sink, depth + 1)?;
                }
                // Without an `{end}`, client-go goes on with the nodes after the range.
                i = end.map_or(i + 1, |e| e + 1);
                continue;
            }
            match sink {
                Sink::Text(out) => {
                    let texts: Vec<String> = results.iter().map(|r| result_text(r)).collect();
                    let text = texts.join(" ");
                    self.charge(text.len())?;
                    out.push_str(&text);
                }
                Sink::Results(all) => all.push(results.into_iter().map(Cow::into_owned).collect()),
            }
            i += 1;
        }
        Ok(())
    }

    fn walk<'a>(&self, input: Vals<'a>, node: &Node, flags: &mut Flags) -> Result<Vals<'a>> {
        let out = self.walk_node(input, node, flags)?;
        self.charge(out.len())?;
        Ok(out)
    }

    fn walk_node<'a>(&self, input: Vals<'a>, node: &Node, flags: &mut Flags) -> Result<Vals<'a>> {
        let repeat = |v: Value, n: usize| vec![Cow::Owned(v); n];
        match node {
            Node::List(nodes) => self.eval_list(input, nodes, flags),
            Node::Text(t) => Ok(vec![Cow::Owned(Value::String(t.clone()))]),
            Node::Field(name) => self.eval_field(input, name),
            Node::Array(params) => eval_array(input, params),
            Node::Filter { left, right, op } => self.eval_filter(input, left, right, op),
            Node::Int(i) => Ok(repeat(Value::from(*i), input.len())),
            Node::Float(f) => Ok(repeat(
                Number::from_f64(*f).map_or(Value::Null, Value::Number),
                input.len(),
            )),
            Node::Bool(b) => Ok(repeat(Value::Bool(*b), input.len())),
            Node::Wildcard => Ok(input
                .iter()
                .filter(|v| !v.is_null())
                .flat_map(children)
                .collect()),
            Node::Recursive => {
                let mut out = Vec::new();
                recurse(&input, &mut out);
                Ok(out)
            }
            Node::Union(lists) => {
                let mut out = Vec::new();
                for list in lists {
                    out.extend(self.eval_list(input.clone(), list, flags)?);
                }
                Ok(out)
            }
            Node::Identifier(name) => match name.as_str() {
                "range" => {
                    flags.range = true;
                    Ok(input)
                }
                "end" => {
                    flags.end = true;
                    Ok(Vec::new())
                }
                _ => Err(JsonPathError::UnknownIdentifier(name.clone())),
            },
        }
    }

    fn eval_list<'a>(
        &self,
        input: Vals<'a>,
        nodes: &[Node],
        flags: &mut Flags,
    ) -> Result<Vals<'a>> {
        let mut cur = input;
        for node in nodes {
            cur = self.walk(cur, node, flags)?;
        }
        Ok(cur)
    }

    fn eval_field<'a>(&self, input: Vals<'a>, name: &str) -> Result<Vals<'a>> {
        if input.is_empty() {
            return Ok(input);
        }
        // `{.}`: an empty field name selects the current value itself.
        if name.is_empty() {
            return Ok(input.into_iter().filter(|v| !v.is_null()).collect());
        }
        let results: Vals<'a> = input.iter().filter_map(|v| get(v, name)).collect();
        if results.is_empty() && !self.allow_missing_keys {
            return Err(JsonPathError::NotFound(name.to_string()));
        }
        Ok(results)
    }

    fn eval_filter<'a>(
        &self,
        input: Vals<'a>,
        left: &[Node],
        right: &[Node],
        op: &str,
    ) -> Result<Vals<'a>> {
        let mut results = Vec::new();
        for value in &input {
            let Some(list) = items(value) else {
                return Err(JsonPathError::NotFilterable(gofmt::go_value(value)));
            };
            for item in list {
                let mut flags = Flags::default();
                let lefts = self.eval_list(vec![item.clone()], left, &mut flags);
                if op == "exists" {
                    if lefts.is_ok_and(|l| !l.is_empty()) {
                        results.push(item);
                    }
                    continue;
                }
                let lefts = lefts?;
                let l = match lefts.as_slice() {
                    [] => continue,
                    [one] => one.clone(),
                    _ => return Err(JsonPathError::CompareMany),
                };
                let rights = self.eval_list(vec![item.clone()], right, &mut flags)?;
                let r = match rights.as_slice() {
                    [] => continue,
                    [one] => one.clone(),
                    _ => return Err(JsonPathError::CompareMany),
                };
                if compare(op, &l, &r)? {
                    results.push(item);
                }
            }
        }
        Ok(results)
    }
}

/// Every value below (and including) each input that has children, in document order.
fn recurse<'a>(input: &[Cow<'a, Value>], out: &mut Vals<'a>) {
    for value in input {
        if value.is_null() {
            continue;
        }
        let kids = children(value);
        if !kids.is_empty() {
            out.push(value.clone());
            if !value.is_string() {
                recurse(&kids, out);
            }
        }
    }
}

fn eval_array<'a>(input: Vals<'a>, params: &[Param; 3]) -> Result<Vals<'a>> {
    let mut result = Vec::new();
    for value in &input {
        if value.is_null() {
            continue;
        }
        let Some(list) = items(value) else {
            return Err(JsonPathError::NotArray(go_type(value).into()));
        };
        let len = list.len() as i64;
        let mut p = *params;
        if !p[0].known {
            p[0].value = 0;
        }
        if p[0].value < 0 {
            p[0].value = p[0].value.wrapping_add(len);
        }
        if !p[1].known {
            p[1].value = len;
        }
        if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
            p[1].value = p[1].value.wrapping_add(len);
        }
        if p[1].value == p[0].value {
            return Ok(result);
        }
        if p[0].value >= len || p[0].value < 0 {
            return Err(JsonPathError::IndexOutOfBounds {
                index: p[0].value,
                length: list.len(),
            });
        }
        if p[1].value > len || p[1].value < 0 {
            return Err(JsonPathError::IndexOutOfBounds {
                index: p[1].value.wrapping_sub(1),
                length: list.len(),
            });
        }
        if p[0].value > p[1].value {
            return Err(JsonPathError::StartAfterEnd {
                start: p[0].value,
                end: p[1].value,
            });
        }
        let step = if p[2].known {
            if p[2].value <= 0 {
                return Err(JsonPathError::BadStep);
            }
            usize::try_from(p[2].value).unwrap_or(usize::MAX)
        } else {
            1
        };
        let (start, end) = (p[0].value as usize, p[1].value as usize);
        result.extend(list.into_iter().skip(start).take(end - start).step_by(step));
    }
    Ok(result)
}

/// A comparable reading of a value (text/template's basic kinds).
enum Basic<'v> {
    Str(&'v str),
    Int(i128),
    Float(f64),
    Bool(bool),
}

fn basic(v: &Value) -> Result<Basic<'_>> {
    match v {
        Value::String(s) => Ok(Basic::Str(s)),
        Value::Bool(b) => Ok(Basic::Bool(*b)),
        Value::Number(n) => Ok(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Basic::Int(i128::from(i)),
            (_, Some(u)) => Basic::Int(i128::from(u)),
            _ => Basic::Float(n.as_f64().unwrap_or(0.0)),
        }),
        _ => Err(JsonPathError::InvalidComparisonType),
    }
}

fn as_f64(b: &Basic<'_>) -> Option<f64> {
    match b {
        Basic::Int(i) => Some(*i as f64),
        Basic::Float(f) => Some(*f),
        _ => None,
    }
}

/// text/template's `eq`/`lt` family; integers and floats compare numerically (client-go
/// refuses to mix them, which only ever produces an error).
fn compare(op: &str, left: &Value, right: &Value) -> Result<bool> {
    if !matches!(op, "==" | "!=" | "<" | "<=" | ">" | ">=") {
        return Err(JsonPathError::UnknownOperator(op.to_string()));
    }
    let (l, r) = (basic(left)?, basic(right)?);
    let numbers = as_f64(&l).zip(as_f64(&r));
    let equal = match (&l, &r) {
        (Basic::Str(a), Basic::Str(b)) => a == b,
        (Basic::Bool(a), Basic::Bool(b)) => a == b,
        (Basic::Int(a), Basic::Int(b)) => a == b,
        _ => match numbers {
            Some((a, b)) => a == b,
            None => return Err(JsonPathError::IncompatibleTypes),
        },
    };
    if op == "==" || op == "!=" {
        return Ok((op == "==") == equal);
    }
    let less = match (&l, &r) {
        (Basic::Bool(_), Basic::Bool(_)) => return Err(JsonPathError::InvalidComparisonType),
        (Basic::Str(a), Basic::Str(b)) => a < b,
        (Basic::Int(a), Basic::Int(b)) => a < b,
        _ => match numbers {
            Some((a, b)) => a.partial_cmp(&b) == Some(Ordering::Less),
            None => return Err(JsonPathError::IncompatibleTypes),
        },
    };
    Ok(match op {
        "<" => less,
        "<=" => less || equal,
        ">" => !(less || equal),
        _ => !less,
    })
}
