//! The lexer and recursive-descent parser of filter expressions: CEL's grammar for the subset
//! egress evaluates, producing an untyped tree that the parent module type-checks.

use super::{FilterError, FilterValue};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Int(i64),
    Str(String),
    Op(&'static str),
}

pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) at: usize,
}

const OPS: &[&str] = &[
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", ",", "+", "-", "*",
    "/", "%", "?", ":", "{", "}",
];

fn syntax(at: usize, message: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        at,
        message: message.into(),
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                at,
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i < chars.len() && (chars[i] == '.' || chars[i] == 'u' || chars[i] == 'e') {
                return Err(FilterError::Unsupported(
                    "only int literals are supported".into(),
                ));
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse::<i64>()
                .map_err(|_| syntax(at, format!("int literal {text} out of range")))?;
            out.push(Token {
                tok: Tok::Int(n),
                at,
            });
        } else if c == '"' || c == '\'' {
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(syntax(at, "unterminated string literal"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' {
                    let Some(&e) = chars.get(i) else {
                        return Err(syntax(at, "unterminated string literal"));
                    };
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '\\' | '"' | '\'' => e,
                        other => {
                            return Err(FilterError::Unsupported(format!(
                                "the escape \\{other} in a string literal"
                            )));
                        }
                    });
                } else {
                    s.push(d);
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                at,
            });
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(syntax(at, format!("unexpected character {c:?}")));
            };
            i += op.len();
            out.push(Token {
                tok: Tok::Op(op),
                at,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ast {
    Ident(String),
    Select(Box<Ast>, String),
    Index(Box<Ast>, Box<Ast>),
    Call(Box<Ast>, String, Vec<Ast>),
    Lit(FilterValue),
    Not(Box<Ast>),
    Binary(&'static str, Box<Ast>, Box<Ast>),
}

pub(super) struct Parser {
    pub(super) toks: Vec<Token>,
    pub(super) i: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.i) {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => Some(op),
            _ => None,
        }
    }

    fn at(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(1, |t| t.at)
    }

    fn expect(&mut self, op: &str) -> Result<(), FilterError> {
        if self.peek_op() == Some(op) {
            self.i += 1;
            Ok(())
        } else {
            Err(syntax(self.at(), format!("expected {op:?}")))
        }
    }

    pub(super) fn or(&mut self) -> Result<Ast, FilterError> {
        let mut left = self.and()?;
        while self.peek_op() == Some("||") {
            self.i += 1;
            left = Ast::Binary("||", Box::new(left), Box::new(self.and()?));
        }
        if self.peek_op() == Some("?") {
            return Err(FilterError::Unsupported("the conditional operator".into()));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, FilterError> {
        let mut left = self.rel()?;
        while self.peek_op() == Some("&&") {
            self.i += 1;
            left = Ast::Binary("&&", Box::new(left), Box::new(self.rel()?));
        }
        Ok(left)
    }

    fn rel(&mut self) -> Result<Ast, FilterError> {
        let mut left = self.unary()?;
        while let Some(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) = self.peek_op() {
            self.i += 1;
            left = Ast::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
        if let Some(op @ ("+" | "-" | "*" | "/" | "%")) = self.peek_op() {
            return Err(FilterError::Unsupported(format!("the operator {op}")));
        }
        if matches!(self.toks.get(self.i), Some(Token { tok: Tok::Ident(w), .. }) if w == "in") {
            return Err(FilterError::Unsupported("the operator in".into()));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, FilterError> {
        match self.peek_op() {
            Some("!") => {
                self.i += 1;
                Ok(Ast::Not(Box::new(self.unary()?)))
            }
            Some("-") => {
                self.i += 1;
                match self.member()? {
                    Ast::Lit(FilterValue::Int(n)) => Ok(Ast::Lit(FilterValue::Int(-n))),
                    _ => Err(FilterError::Unsupported("negation of a non-literal".into())),
                }
            }
            _ => self.member(),
        }
    }

    fn member(&mut self) -> Result<Ast, FilterError> {
        let mut e = self.primary()?;
        loop {
            match self.peek_op() {
                Some(".") => {
                    self.i += 1;
                    let name = match self.toks.get(self.i) {
                        Some(Token {
                            tok: Tok::Ident(n), ..
                        }) => n.clone(),
                        _ => return Err(syntax(self.at(), "expected a field name after '.'")),
                    };
                    self.i += 1;
                    if self.peek_op() == Some("(") {
                        self.i += 1;
                        let args = self.args(")")?;
                        e = Ast::Call(Box::new(e), name, args);
                    } else {
                        e = Ast::Select(Box::new(e), name);
                    }
                }
                Some("[") => {
                    self.i += 1;
                    let idx = self.or()?;
                    self.expect("]")?;
                    e = Ast::Index(Box::new(e), Box::new(idx));
                }
                _ => return Ok(e),
            }
        }
    }

    fn args(&mut self, close: &str) -> Result<Vec<Ast>, FilterError> {
        let mut args = Vec::new();
        if self.peek_op() == Some(close) {
            self.i += 1;
            return Ok(args);
        }
        loop {
            args.push(self.or()?);
            match self.peek_op() {
                Some(",") => self.i += 1,
                Some(op) if op == close => {
                    self.i += 1;
                    return Ok(args);
                }
                _ => return Err(syntax(self.at(), format!("expected ',' or {close:?}"))),
            }
        }
    }

    fn primary(&mut self) -> Result<Ast, FilterError> {
        let at = self.at();
        let Some(t) = self.toks.get(self.i) else {
            return Err(syntax(at, "unexpected end of expression"));
        };
        let tok = t.tok.clone();
        self.i += 1;
        match tok {
            Tok::Int(n) => Ok(Ast::Lit(FilterValue::Int(n))),
            Tok::Str(s) => Ok(Ast::Lit(FilterValue::Str(s))),
            Tok::Ident(w) if w == "true" => Ok(Ast::Lit(FilterValue::Bool(true))),
            Tok::Ident(w) if w == "false" => Ok(Ast::Lit(FilterValue::Bool(false))),
            Tok::Ident(w) => {
                if self.peek_op() == Some("(") {
                    return Err(FilterError::Unsupported(format!("the function {w}()")));
                }
                Ok(Ast::Ident(w))
            }
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op(op @ ("[" | "{")) => Err(FilterError::Unsupported(format!(
                "{} literals",
                if op == "[" { "list" } else { "map" }
            ))),
            Tok::Op(op) => Err(syntax(at, format!("unexpected {op:?}"))),
        }
    }
}
