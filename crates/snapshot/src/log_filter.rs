//! Telemetry access-log filters: the subset of CEL (`filter.expression`) egress evaluates, parsed
//! and type-checked once at compile time into a [`FilterExpr`] the data plane evaluates per entry.
//!
//! Supported: the attributes of [`FilterAttribute`] (`response.code`, `response.flags`,
//! `response.code_details`, `request.host`, `request.method`, `request.path`, `request.url_path`,
//! `request.scheme`, `request.protocol`, `request.headers["x"]`, `response.headers["x"]`,
//! `connection.mtls`, `connection.requested_server_name`, `xds.route_name`, `xds.cluster_name`);
//! int, string and bool literals; `==`, `!=`, `<`, `<=`, `>`, `>=` between an attribute and a
//! literal of its type; `startsWith`, `endsWith`, `contains` on a string attribute with a string
//! literal; `!`, `&&`, `||` and parentheses. CEL's precedence applies (`!` binds tighter than
//! comparisons). Anything else is [`FilterError::Unsupported`].

mod syntax;

use std::fmt;
use std::str::FromStr;

use syntax::{Ast, Parser, lex};

/// Why an expression is not one egress evaluates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not a CEL expression (at character `at`).
    #[error("syntax error at character {at}: {message}")]
    Syntax {
        /// 1-based character position.
        at: usize,
        /// What was wrong.
        message: String,
    },
    /// Valid CEL, but outside the supported subset.
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// A compiled `filter.expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFilter {
    /// The expression as written in the Telemetry.
    pub expression: String,
    /// Its compiled form.
    pub expr: FilterExpr,
}

impl LogFilter {
    /// Parses and type-checks `expression`.
    pub fn parse(expression: &str) -> Result<LogFilter, FilterError> {
        let mut p = Parser {
            toks: lex(expression)?,
            i: 0,
        };
        let ast = p.or()?;
        if let Some(t) = p.toks.get(p.i) {
            return Err(FilterError::Syntax {
                at: t.at,
                message: format!("unexpected {:?}", t.tok),
            });
        }
        Ok(LogFilter {
            expression: expression.to_owned(),
            expr: lower_bool(&ast)?,
        })
    }
}

impl FromStr for LogFilter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogFilter::parse(s)
    }
}

/// A boolean expression over one access-log entry.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterExpr {
    /// A literal `true`/`false`.
    Const(bool),
    /// A bool attribute (`connection.mtls`).
    Attribute(FilterAttribute),
    /// `!e`.
    Not(Box<FilterExpr>),
    /// `a && b` (CEL: false wins over an error).
    And(Box<FilterExpr>, Box<FilterExpr>),
    /// `a || b` (CEL: true wins over an error).
    Or(Box<FilterExpr>, Box<FilterExpr>),
    /// `attribute <op> literal` (a literal on the left is flipped to the right).
    Compare(FilterAttribute, CompareOp, FilterValue),
    /// `attribute.method("literal")`.
    Call(FilterAttribute, StringMethod, String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator with its operands swapped (`3 < x` is `x > 3`).
    fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            same => same,
        }
    }

    /// Applies the operator to an ordering of left against right.
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CompareOp::Eq => ord == Equal,
            CompareOp::Ne => ord != Equal,
            CompareOp::Lt => ord == Less,
            CompareOp::Le => ord != Greater,
            CompareOp::Gt => ord == Greater,
            CompareOp::Ge => ord != Less,
        }
    }
}

/// A string method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMethod {
    /// `startsWith`
    StartsWith,
    /// `endsWith`
    EndsWith,
    /// `contains`
    Contains,
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// An int.
    Int(i64),
    /// A string.
    Str(String),
    /// A bool.
    Bool(bool),
}

/// The type of an attribute or literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Int,
    Str,
    Bool,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Int => "int",
            Type::Str => "string",
            Type::Bool => "bool",
        })
    }
}

impl FilterValue {
    fn ty(&self) -> Type {
        match self {
            FilterValue::Int(_) => Type::Int,
            FilterValue::Str(_) => Type::Str,
            FilterValue::Bool(_) => Type::Bool,
        }
    }
}

/// An Envoy attribute an entry provides. An attribute the entry does not have (a TCP entry's
/// request fields, a response code when none was sent, a missing header) is an evaluation
/// error, as in Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterAttribute {
    /// `response.code` (int).
    ResponseCode,
    /// `response.flags` (int, Envoy's response-flag bits).
    ResponseFlags,
    /// `response.code_details` (string).
    ResponseCodeDetails,
    /// `request.host` (string, the `:authority`).
    RequestHost,
    /// `request.method` (string).
    RequestMethod,
    /// `request.path` (string, with the query).
    RequestPath,
    /// `request.url_path` (string, without the query).
    RequestUrlPath,
    /// `request.scheme` (string).
    RequestScheme,
    /// `request.protocol` (string, `HTTP/1.1`).
    RequestProtocol,
    /// `request.headers["name"]` (string; the name lower-cased).
    RequestHeader(String),
    /// `response.headers["name"]` (string; the name lower-cased).
    ResponseHeader(String),
    /// `connection.mtls` (bool: the downstream presented a mesh certificate).
    ConnectionMtls,
    /// `connection.requested_server_name` (string, the SNI).
    RequestedServerName,
    /// `xds.route_name` (string).
    RouteName,
    /// `xds.cluster_name` (string, the upstream cluster).
    ClusterName,
}

impl FilterAttribute {
    fn named(path: &str) -> Option<FilterAttribute> {
        Some(match path {
            "response.code" => FilterAttribute::ResponseCode,
            "response.flags" => FilterAttribute::ResponseFlags,
            "response.code_details" => FilterAttribute::ResponseCodeDetails,
            "request.host" => FilterAttribute::RequestHost,
            "request.method" => FilterAttribute::RequestMethod,
            "request.path" => FilterAttribute::RequestPath,
            "request.url_path" => FilterAttribute::RequestUrlPath,
            "request.scheme" => FilterAttribute::RequestScheme,
            "request.protocol" => FilterAttribute::RequestProtocol,
            "connection.mtls" => FilterAttribute::ConnectionMtls,
            "connection.requested_server_name" => FilterAttribute::RequestedServerName,
            "xds.route_name" => FilterAttribute::RouteName,
            "xds.cluster_name" => FilterAttribute::ClusterName,
            _ => return None,
        })
    }

    fn ty(&self) -> Type {
        match self {
            FilterAttribute::ResponseCode | FilterAttribute::ResponseFlags => Type::Int,
            FilterAttribute::ConnectionMtls => Type::Bool,
            _ => Type::Str,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lowering to the typed form.

/// The dotted name of an identifier/select chain (`request.url_path`).
fn dotted(ast: &Ast) -> Option<String> {
    match ast {
        Ast::Ident(n) => Some(n.clone()),
        Ast::Select(base, field) => Some(format!("{}.{field}", dotted(base)?)),
        _ => None,
    }
}

fn attribute(ast: &Ast) -> Result<FilterAttribute, FilterError> {
    if let Ast::Index(base, key) = ast {
        let name = dotted(base).unwrap_or_default();
        let Ast::Lit(FilterValue::Str(key)) = key.as_ref() else {
            return Err(FilterError::Unsupported(format!(
                "indexing {name} with anything but a string literal"
            )));
        };
        let key = key.to_ascii_lowercase();
        return match name.as_str() {
            "request.headers" => Ok(FilterAttribute::RequestHeader(key)),
            "response.headers" => Ok(FilterAttribute::ResponseHeader(key)),
            other => Err(FilterError::Unsupported(format!("the map {other}"))),
        };
    }
    let Some(name) = dotted(ast) else {
        return Err(FilterError::Unsupported(
            "an operand that is not an attribute or a literal".into(),
        ));
    };
    FilterAttribute::named(&name)
        .ok_or_else(|| FilterError::Unsupported(format!("the attribute {name}")))
}

fn lower_bool(ast: &Ast) -> Result<FilterExpr, FilterError> {
    match ast {
        Ast::Lit(FilterValue::Bool(b)) => Ok(FilterExpr::Const(*b)),
        Ast::Lit(v) => Err(FilterError::Unsupported(format!(
            "a {} literal where a bool is expected",
            v.ty()
        ))),
        Ast::Not(e) => Ok(FilterExpr::Not(Box::new(lower_bool(e)?))),
        Ast::Binary("&&", l, r) => Ok(FilterExpr::And(
            Box::new(lower_bool(l)?),
            Box::new(lower_bool(r)?),
        )),
        Ast::Binary("||", l, r) => Ok(FilterExpr::Or(
            Box::new(lower_bool(l)?),
            Box::new(lower_bool(r)?),
        )),
        Ast::Binary(op, l, r) => compare(op, l, r),
        Ast::Call(target, method, args) => {
            let m = match method.as_str() {
                "startsWith" => StringMethod::StartsWith,
                "endsWith" => StringMethod::EndsWith,
                "contains" => StringMethod::Contains,
                other => return Err(FilterError::Unsupported(format!("the method {other}()"))),
            };
            let attr = attribute(target)?;
            if attr.ty() != Type::Str {
                return Err(FilterError::Unsupported(format!(
                    "{method}() on a {} attribute",
                    attr.ty()
                )));
            }
            match args.as_slice() {
                [Ast::Lit(FilterValue::Str(s))] => Ok(FilterExpr::Call(attr, m, s.clone())),
                _ => Err(FilterError::Unsupported(format!(
                    "{method}() with anything but one string literal"
                ))),
            }
        }
        other => {
            let attr = attribute(other)?;
            if attr.ty() == Type::Bool {
                Ok(FilterExpr::Attribute(attr))
            } else {
                Err(FilterError::Unsupported(format!(
                    "a {} attribute where a bool is expected",
                    attr.ty()
                )))
            }
        }
    }
}

fn compare(op: &str, l: &Ast, r: &Ast) -> Result<FilterExpr, FilterError> {
    let op = match op {
        "==" => CompareOp::Eq,
        "!=" => CompareOp::Ne,
        "<" => CompareOp::Lt,
        "<=" => CompareOp::Le,
        ">" => CompareOp::Gt,
        ">=" => CompareOp::Ge,
        other => return Err(FilterError::Unsupported(format!("the operator {other}"))),
    };
    let (attr, op, value) = match (l, r) {
        (Ast::Lit(_), Ast::Lit(_)) => {
            return Err(FilterError::Unsupported(
                "a comparison between two literals".into(),
            ));
        }
        (Ast::Lit(v), other) => (attribute(other)?, op.flipped(), v.clone()),
        (other, Ast::Lit(v)) => (attribute(other)?, op, v.clone()),
        _ => {
            return Err(FilterError::Unsupported(
                "a comparison that is not between an attribute and a literal".into(),
            ));
        }
    };
    if attr.ty() != value.ty() {
        return Err(FilterError::Unsupported(format!(
            "comparing a {} attribute with a {} literal",
            attr.ty(),
            value.ty()
        )));
    }
    if attr.ty() == Type::Bool && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return Err(FilterError::Unsupported("ordering bools".into()));
    }
    Ok(FilterExpr::Compare(attr, op, value))
}
