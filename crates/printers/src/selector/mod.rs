//! Label selectors (`-l`, `--selector`) as `k8s.io/apimachinery/pkg/labels` parses and matches them.
//!
//! Syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, joined by
//! commas (AND). Keys must be qualified names and values valid label values; errors use
//! apimachinery's words (`unable to parse requirement: ...`).

mod lexer;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use lexer::{Lexer, Token};

/// A selector that cannot be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One requirement is malformed or invalid.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// The selector's structure is wrong (`found ',', expected: ...`).
    #[error("{0}")]
    Syntax(String),
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// A `matchLabels`/`matchExpressions` entry that is not what the API defines.
    #[error("invalid label selector: {0}")]
    Malformed(String),
}

/// A requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1`
    GreaterThan,
    /// `key<1`
    LessThan,
}

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Label access for [`Selector::matches`].
pub trait Labels {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON map such as `metadata.labels`; non-string values are not labels.
impl Labels for serde_json::Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Requirement {
    /// Build a requirement, validating like apimachinery's `NewRequirement`.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        let mut errors = Vec::new();
        if let Err(e) = validate::label_key(key, "key") {
            errors.push(e);
        }
        let count_ok = match operator {
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => values.len() == 1,
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
            Operator::GreaterThan | Operator::LessThan => values.len() == 1,
        };
        if !count_ok {
            let detail = match operator {
                Operator::In | Operator::NotIn => {
                    "for 'in', 'notin' operators, values set can't be empty"
                }
                Operator::Exists | Operator::DoesNotExist => {
                    "values set must be empty for exists and does not exist"
                }
                Operator::GreaterThan | Operator::LessThan => {
                    "for 'Gt', 'Lt' operators, exactly one value is required"
                }
                _ => "exact-match compatibility requires one single value",
            };
            errors.push(format!(
                "values: Invalid value: {}: {detail}",
                go_string_list(&values)
            ));
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        crate::gofmt::quote(v)
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Err(e) = validate::label_value(v, &format!("values[{i}][{key}]")) {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => {
                let mut values = values;
                values.sort();
                values.dedup();
                Ok(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                })
            }
            1 => Err(SelectorError::Requirement(errors.remove(0))),
            _ => Err(SelectorError::Requirement(format!(
                "[{}]",
                errors.join(", ")
            ))),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and without duplicates.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        let contains = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(contains),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(contains),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// Go's `%v` of a `[]string`, as `field.Invalid` shows it.
fn go_string_list(values: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        values
            .iter()
            .map(|v| crate::gofmt::quote(v))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Parse a selector string such as `app=curl,tier notin (db)`.
pub fn parse(s: &str) -> Result<Selector, SelectorError> {
    let mut requirements = Parser::new(s).parse()?;
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Selector { requirements })
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Whether this selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy the selector (no labels = empty set).
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = serde_json::Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }

    /// Convert a `metav1.LabelSelector` (`{matchLabels, matchExpressions}`) as
    /// `LabelSelectorAsSelector` does. An empty selector matches everything.
    pub fn from_label_selector(v: &Value) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(ml) = v.get("matchLabels").filter(|m| !m.is_null()) {
            let map = ml
                .as_object()
                .ok_or_else(|| SelectorError::Malformed("matchLabels must be a map".into()))?;
            for (k, val) in map {
                let val = val.as_str().ok_or_else(|| {
                    SelectorError::Malformed(format!("matchLabels[{k}] must be a string"))
                })?;
                requirements.push(Requirement::new(
                    k,
                    Operator::Equals,
                    vec![val.to_string()],
                )?);
            }
        }
        if let Some(me) = v.get("matchExpressions").filter(|m| !m.is_null()) {
            let list = me.as_array().ok_or_else(|| {
                SelectorError::Malformed("matchExpressions must be a list".into())
            })?;
            for expr in list {
                let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
                let op = expr
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let operator = match op {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    other => return Err(SelectorError::InvalidOperator(other.to_string())),
                };
                let values: Vec<String> = expr
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                requirements.push(Requirement::new(key, operator, values)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// apimachinery's recursive-descent selector parser over the lexer's tokens.
struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(s: &str) -> Parser {
        let mut lexer = Lexer::new(s);
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            let done = tok == Token::End;
            items.push((tok, lit));
            if done {
                break;
            }
        }
        Parser { items, pos: 0 }
    }

    /// The next token, with `in`/`notin` read as identifiers when `values` is set.
    fn lookahead(&self, values: bool) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Token::End, String::new()));
        if values && matches!(tok, Token::In | Token::NotIn) {
            return (Token::Identifier, lit);
        }
        (tok, lit)
    }

    fn consume(&mut self, values: bool) -> (Token, String) {
        let item = self.lookahead(values);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(true);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(
                        self.parse_requirement()
                            .map_err(SelectorError::Requirement)?,
                    );
                    let (t, l) = self.consume(true);
                    match t {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(true);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError::Syntax(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (mut tok, mut key) = self.consume(true);
        let mut operator = None;
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, key) = self.consume(true);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        validate::label_key(&key, "<nil>")?;
        if matches!(self.lookahead(true).0, Token::End | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        let build = |op, values| Requirement::new(&key, op, values).map_err(strip_prefix);
        if let Some(op) = operator {
            return build(op, Vec::new());
        }
        let (tok, lit) = self.consume(false);
        let operator = match tok {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        build(operator, values)
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(true);
        if tok != Token::OpenParen {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(true);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(true).0 != Token::CloseParen {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::CloseParen => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(true);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    let (t2, l2) = self.lookahead(true);
                    match t2 {
                        Token::Comma => continue,
                        Token::CloseParen => return Ok(values),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (t2, _) = self.lookahead(true);
                    if t2 == Token::CloseParen {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if t2 == Token::Comma {
                        self.consume(true);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(true);
        if matches!(tok, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(true);
        if tok == Token::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// The bare message of a requirement error (the parser adds its own prefix once).
fn strip_prefix(e: SelectorError) -> String {
    match e {
        SelectorError::Requirement(m) | SelectorError::Syntax(m) | SelectorError::Malformed(m) => m,
        other => other.to_string(),
    }
}
