//! Regular expressions checked as Istio checks them: Go's `regexp.Compile` (RE2 syntax), with
//! Go's error wording (`error parsing regexp: <code>: `<expr>``). The pattern is parsed with
//! `regex-syntax` and its typed error (kind and span) is mapped to Go's error code and the
//! fragment Go names; two rules Go enforces and `regex-syntax` does not are checked on the
//! parsed pattern: a repetition operator applied directly to another (`a**`, Go's "invalid
//! nested repetition operator") and counted repetitions above 1000 ("invalid repeat count").
//!
//! Stricter than Go, knowingly: a `{` that does not start a valid count (`a{`, `x{a}`) is a
//! literal to Go, and `\Q...\E` quotes a literal in Go; both are errors here, because the data
//! plane matches with the `regex` crate, which would not compile such a pattern (the route would
//! then match nothing).

use regex_syntax::ast::{self, Ast, RepetitionKind, RepetitionRange};
use regex_syntax::hir;

/// Go's `regexp/syntax.ErrorCode`s that a pattern can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `invalid character class`.
    InvalidCharClass,
    /// `invalid character class range`.
    InvalidCharRange,
    /// `invalid escape sequence`.
    InvalidEscape,
    /// `invalid named capture`.
    InvalidNamedCapture,
    /// `invalid or unsupported Perl syntax`.
    InvalidPerlOp,
    /// `invalid nested repetition operator`.
    InvalidRepeatOp,
    /// `invalid repeat count`.
    InvalidRepeatSize,
    /// `missing closing ]`.
    MissingBracket,
    /// `missing closing )`.
    MissingParen,
    /// `missing argument to repetition operator`.
    MissingRepeatArgument,
    /// `trailing backslash at end of expression`.
    TrailingBackslash,
    /// `unexpected )`.
    UnexpectedParen,
    /// `expression nests too deeply`.
    NestingDepth,
    /// `expression too large`.
    Large,
}

impl Code {
    /// Go's text for the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidCharClass => "invalid character class",
            Code::InvalidCharRange => "invalid character class range",
            Code::InvalidEscape => "invalid escape sequence",
            Code::InvalidNamedCapture => "invalid named capture",
            Code::InvalidPerlOp => "invalid or unsupported Perl syntax",
            Code::InvalidRepeatOp => "invalid nested repetition operator",
            Code::InvalidRepeatSize => "invalid repeat count",
            Code::MissingBracket => "missing closing ]",
            Code::MissingParen => "missing closing )",
            Code::MissingRepeatArgument => "missing argument to repetition operator",
            Code::TrailingBackslash => "trailing backslash at end of expression",
            Code::UnexpectedParen => "unexpected )",
            Code::NestingDepth => "expression nests too deeply",
            Code::Large => "expression too large",
        }
    }
}

/// A pattern Go would refuse: the code and the fragment Go names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {}: `{expr}`", code.as_str())]
pub struct Re2Error {
    /// What is wrong.
    pub code: Code,
    /// The offending part of the pattern (the whole pattern for unbalanced parentheses).
    pub expr: String,
}

/// Go's largest count in `{n,m}`.
const MAX_REPEAT: u32 = 1000;

/// Checks `re` as Go's `regexp.Compile` does.
pub fn check(re: &str) -> Result<(), Re2Error> {
    let fail = |code: Code, expr: &str| Re2Error {
        code,
        expr: expr.to_owned(),
    };
    let text = |span: &ast::Span| re.get(span.start.offset..span.end.offset).unwrap_or(re);
    let parsed = ast::parse::Parser::new().parse(re).map_err(|e| {
        let span = e.span();
        let (code, expr) = match e.kind() {
            ast::ErrorKind::GroupUnclosed => (Code::MissingParen, re),
            ast::ErrorKind::GroupUnopened => (Code::UnexpectedParen, re),
            ast::ErrorKind::ClassUnclosed => (
                Code::MissingBracket,
                re.get(span.start.offset..).unwrap_or(re),
            ),
            ast::ErrorKind::RepetitionMissing => {
                (Code::MissingRepeatArgument, operator_at(re, span))
            }
            ast::ErrorKind::RepetitionCountInvalid
            | ast::ErrorKind::RepetitionCountUnclosed
            | ast::ErrorKind::RepetitionCountDecimalEmpty
            | ast::ErrorKind::DecimalEmpty
            | ast::ErrorKind::DecimalInvalid => (Code::InvalidRepeatSize, text(span)),
            ast::ErrorKind::EscapeUnexpectedEof => (Code::TrailingBackslash, ""),
            ast::ErrorKind::ClassRangeInvalid | ast::ErrorKind::ClassRangeLiteral => {
                (Code::InvalidCharRange, text(span))
            }
            ast::ErrorKind::UnicodeClassInvalid => (Code::InvalidCharRange, text(span)),
            ast::ErrorKind::EscapeUnrecognized
            | ast::ErrorKind::EscapeHexEmpty
            | ast::ErrorKind::EscapeHexInvalid
            | ast::ErrorKind::EscapeHexInvalidDigit
            | ast::ErrorKind::ClassEscapeInvalid
            | ast::ErrorKind::UnsupportedBackreference => (Code::InvalidEscape, text(span)),
            ast::ErrorKind::GroupNameDuplicate { .. }
            | ast::ErrorKind::GroupNameEmpty
            | ast::ErrorKind::GroupNameInvalid
            | ast::ErrorKind::GroupNameUnexpectedEof => (Code::InvalidNamedCapture, text(span)),
            ast::ErrorKind::NestLimitExceeded(_) => (Code::NestingDepth, re),
            ast::ErrorKind::CaptureLimitExceeded => (Code::Large, re),
            // Lookaround, unknown or repeated flags, `\b{...}` forms Go does not have.
            _ => (Code::InvalidPerlOp, text(span)),
        };
        fail(code, expr)
    })?;
    walk(&parsed, re)?;
    hir::translate::Translator::new()
        .translate(re, &parsed)
        .map_err(|e| {
            let span = e.span();
            let code = match e.kind() {
                hir::ErrorKind::UnicodePropertyNotFound
                | hir::ErrorKind::UnicodePropertyValueNotFound
                | hir::ErrorKind::UnicodePerlClassNotFound => Code::InvalidCharRange,
                _ => Code::InvalidPerlOp,
            };
            fail(code, text(span))
        })?;
    Ok(())
}

/// The repetition operator starting at `span` (`*`, `+`, `?` or `{...}`), which Go names when
/// it has nothing to repeat.
fn operator_at<'a>(re: &'a str, span: &ast::Span) -> &'a str {
    let rest = re.get(span.start.offset..).unwrap_or("");
    let len = if rest.starts_with('{') {
        rest.find('}').map_or(rest.len(), |end| end + 1)
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    };
    rest.get(..len).unwrap_or(rest)
}

/// The rules Go enforces on a parsed pattern: no repetition of a repetition, counts at most
/// 1000. Recursion is bounded by the parser's nesting limit.
fn walk(node: &Ast, re: &str) -> Result<(), Re2Error> {
    let text = |start: usize, end: usize| re.get(start..end).unwrap_or(re).to_owned();
    match node {
        Ast::Repetition(rep) => {
            if let Ast::Repetition(inner) = rep.ast.as_ref() {
                return Err(Re2Error {
                    code: Code::InvalidRepeatOp,
                    expr: text(inner.op.span.start.offset, rep.op.span.end.offset),
                });
            }
            if let RepetitionKind::Range(range) = &rep.op.kind {
                let too_big = match *range {
                    RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => n > MAX_REPEAT,
                    RepetitionRange::Bounded(n, m) => n > MAX_REPEAT || m > MAX_REPEAT,
                };
                if too_big {
                    return Err(Re2Error {
                        code: Code::InvalidRepeatSize,
                        expr: text(rep.op.span.start.offset, rep.op.span.end.offset),
                    });
                }
            }
            walk(&rep.ast, re)
        }
        Ast::Group(group) => walk(&group.ast, re),
        Ast::Alternation(alt) => alt.asts.iter().try_for_each(|a| walk(a, re)),
        Ast::Concat(concat) => concat.asts.iter().try_for_each(|a| walk(a, re)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn go_accepts_these() {
        for re in [
            "a*?",
            "(a*)*",
            "(?:a+)+",
            "a{2,1000}",
            "(?i)abc",
            "(?P<name>a)",
            "(?<name>a)",
            "[[:alpha:]]+",
            r"\pL\p{Greek}",
            r"^/api/v[0-9]+/.*$",
            "",
        ] {
            assert_eq!(check(re), Ok(()), "{re:?}");
        }
    }

    #[test]
    fn go_refuses_these_with_its_words() {
        for (re, want) in [
            ("a(", "error parsing regexp: missing closing ): `a(`"),
            ("a)", "error parsing regexp: unexpected ): `a)`"),
            (
                "*a",
                "error parsing regexp: missing argument to repetition operator: `*`",
            ),
            (
                "a**",
                "error parsing regexp: invalid nested repetition operator: `**`",
            ),
            (
                "x+*",
                "error parsing regexp: invalid nested repetition operator: `+*`",
            ),
            (
                "a{2,1}",
                "error parsing regexp: invalid repeat count: `{2,1}`",
            ),
            (
                "a{1001}",
                "error parsing regexp: invalid repeat count: `{1001}`",
            ),
            ("[a", "error parsing regexp: missing closing ]: `[a`"),
            (
                "[z-a]",
                "error parsing regexp: invalid character class range: `z-a`",
            ),
            (
                r"\q",
                r"error parsing regexp: invalid escape sequence: `\q`",
            ),
            (
                r"\1",
                r"error parsing regexp: invalid escape sequence: `\1`",
            ),
            (
                "a\\",
                "error parsing regexp: trailing backslash at end of expression: ``",
            ),
            (
                r"\pX",
                r"error parsing regexp: invalid character class range: `\pX`",
            ),
        ] {
            let got = check(re).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_owned()), "{re:?}");
        }
        // Lookaround is not RE2.
        assert_eq!(check("(?=a)").unwrap_err().code, Code::InvalidPerlOp);
    }
}
