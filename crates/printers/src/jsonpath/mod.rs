//! kubectl's JSONPath templates (`-o jsonpath=...`), as `k8s.io/client-go/util/jsonpath` reads them.
//!
//! Supported: literal text outside `{}`, fields (`.a.b`, with `\` escapes such as
//! `kubernetes\.io/hostname`), quoted field segments (`."a.b"`, an extension), `..` recursive
//! descent, `*`, indices and slices (`[0]`, `[-1]`, `[0:2]`, `[::2]`), `['key']`, unions
//! (`[0,1]`, `['a','b']`, and `{.a,.b}` as an extension), filters `[?(@.x=="y")]` with
//! `== != < > <= >=` and existence `[?(@.x)]`, string/number/bool literals, and
//! `{range ...}...{end}`. Output follows kubectl: results of one `{}` are joined by a space,
//! strings are printed raw, maps and lists as compact JSON.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::Value;

/// Errors while parsing or executing a template; messages use kubectl's words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonPathError {
    /// `{` without a matching `}` on the same line.
    #[error("unclosed action")]
    UnclosedAction,
    /// `[` without `]`.
    #[error("unterminated array")]
    UnterminatedArray,
    /// A quote without its closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// `[?(` without its closing `)`.
    #[error("unterminated filter")]
    UnterminatedFilter,
    /// A filter's `)` not followed by `]`.
    #[error("unclosed array expect ]")]
    UnclosedFilter,
    /// A character that cannot start anything inside `{}`.
    #[error("unrecognized character in action: {0}")]
    UnrecognizedCharacter(String),
    /// Text inside `[]` that is no index, slice or key.
    #[error("invalid array index {0}")]
    InvalidArrayIndex(String),
    /// A slice bound that is not a number.
    #[error("array index {0} is not a number")]
    IndexNotNumber(String),
    /// `....`
    #[error("invalid multiple recursive descent")]
    MultipleRecursiveDescent,
    /// A quoted literal with a bad escape.
    #[error("unquote string {0} error invalid syntax")]
    BadQuotedString(String),
    /// A malformed number literal.
    #[error("cannot parse number {0}")]
    BadNumber(String),
    /// Brackets or filters nested too deeply to be a real template.
    #[error("template nested too deeply")]
    TooDeep,
    /// A field is missing and missing keys are not allowed.
    #[error("{0} is not found")]
    NotFound(String),
    /// An index outside the list.
    #[error("array index out of bounds: index {index}, length {length}")]
    IndexOutOfBounds {
        /// The offending index.
        index: i64,
        /// The list's length.
        length: usize,
    },
    /// A slice whose start is after its end.
    #[error("starting index {start} is greater than ending index {end}")]
    StartAfterEnd {
        /// Slice start.
        start: i64,
        /// Slice end.
        end: i64,
    },
    /// A slice step of zero or less.
    #[error("step must be > 0")]
    BadStep,
    /// Indexing something that is not a list (Go type name).
    #[error("{0} is not array or slice")]
    NotArray(String),
    /// Filtering something that is not a list.
    #[error("{0} is not array or slice and cannot be filtered")]
    NotFilterable(String),
    /// A filter operand yielding several values.
    #[error("can only compare one element at a time")]
    CompareMany,
    /// Comparing values of different kinds.
    #[error("incompatible types for comparison")]
    IncompatibleTypes,
    /// Comparing maps, lists, null, or ordering booleans.
    #[error("invalid type for comparison")]
    InvalidComparisonType,
    /// An operator other than `== != < > <= >=`.
    #[error("unrecognized filter operator {0}")]
    UnknownOperator(String),
    /// An identifier other than `range`, `end`, `true`, `false`.
    #[error("unrecognized identifier {0}")]
    UnknownIdentifier(String),
    /// `{end}` outside a range.
    #[error("not in range, nothing to end")]
    EndWithoutRange,
    /// Evaluation would select or print more than a bounded amount (for example unclosed ranges
    /// nested inside each other, each running the rest of the template twice). client-go has no
    /// such bound and runs until memory is exhausted; egress stops and says so.
    #[error("template evaluation exceeds its limit of {0} selected values or output bytes")]
    TooExpensive(u64),
}

/// One bound of `[start:end:step]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Param {
    pub value: i64,
    pub known: bool,
    pub derived: bool,
}

/// A node of a parsed template (client-go's node kinds).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    List(Vec<Node>),
    Field(String),
    Array([Param; 3]),
    Filter {
        left: Vec<Node>,
        right: Vec<Node>,
        op: String,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Identifier(String),
}

/// A parsed JSONPath template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Parse a kubectl JSONPath template such as `{.items[*].metadata.name}`.
pub fn parse(template: &str) -> Result<Template, JsonPathError> {
    Ok(Template {
        nodes: parse::parse_template(template, 0)?,
    })
}

impl Template {
    /// Run the template over `data`. With `allow_missing_keys` (kubectl get's default), missing
    /// fields print nothing instead of failing with `<key> is not found`.
    pub fn execute(&self, data: &Value, allow_missing_keys: bool) -> Result<String, JsonPathError> {
        let mut out = String::new();
        eval::Executor::new(allow_missing_keys).run(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// The values each `{}` of the template selects, as separate lists (used for custom columns
    /// and CRD printer columns).
    pub fn find_results(
        &self,
        data: &Value,
        allow_missing_keys: bool,
    ) -> Result<Vec<Vec<Value>>, JsonPathError> {
        eval::Executor::new(allow_missing_keys).find_results(&self.nodes, data)
    }
}

/// How kubectl prints one JSONPath result: strings raw, maps and lists as compact JSON
/// (sorted keys), numbers and booleans as text, null as `<nil>`.
pub fn result_text(v: &Value) -> String {
    eval::result_text(v)
}
