//! A syntax check of CEL expressions, what Istio's webhook does with `celEnv.Parse` for access-log
//! filters: the expression must parse; names, types and functions are not checked.
//!
//! Grammar (cel-spec): `Expr = Or ["?" Or ":" Expr]`, `Or = And {"||" And}`, `And = Rel {"&&" Rel}`,
//! `Rel = Add {relop Add}`, `Add = Mul {("+"|"-") Mul}`, `Mul = Unary {("*"|"/"|"%") Unary}`,
//! `Unary = {"!"|"-"} Member`, `Member = Primary {"." IDENT ["(" args ")"] | "[" Expr "]"}`,
//! `Primary = ["."] IDENT ["(" args ")" | "{" fields "}"] | "(" Expr ")" | list | map | literal`.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit,
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    line: usize,
    col: usize,
}

const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

const OPS: &[&str] = &[
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "[", "]", "(", ")", "{", "}",
];

fn error(line: usize, col: usize, msg: &str) -> String {
    format!("ERROR: <input>:{line}:{col}: Syntax error: {msg}")
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Lexer {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn tokens(mut self) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        loop {
            while let Some(c) = self.peek(0) {
                if c.is_whitespace() {
                    self.bump();
                } else if c == '/' && self.peek(1) == Some('/') {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                } else {
                    break;
                }
            }
            let (line, col) = (self.line, self.col);
            let start = self.i;
            let Some(c) = self.peek(0) else {
                out.push(Token {
                    tok: Tok::Eof,
                    text: "<EOF>".into(),
                    line,
                    col,
                });
                return Ok(out);
            };
            let tok = if c.is_ascii_alphabetic() || c == '_' {
                while self
                    .peek(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.bump();
                }
                let word: String = self.chars[start..self.i].iter().collect();
                let lower = word.to_ascii_lowercase();
                let is_prefix = matches!(lower.as_str(), "r" | "b" | "rb" | "br");
                if is_prefix && matches!(self.peek(0), Some('\'' | '"')) {
                    self.string(lower.contains('r'))?;
                    Tok::Lit
                } else if matches!(word.as_str(), "true" | "false" | "null") {
                    Tok::Lit
                } else if word == "in" {
                    Tok::Op("in")
                } else {
                    Tok::Ident(word)
                }
            } else if c.is_ascii_digit()
                || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
            {
                self.number()?;
                Tok::Lit
            } else if c == '\'' || c == '"' {
                self.string(false)?;
                Tok::Lit
            } else if let Some(op) = OPS.iter().find(|op| {
                op.chars()
                    .enumerate()
                    .all(|(k, oc)| self.peek(k) == Some(oc))
            }) {
                for _ in 0..op.len() {
                    self.bump();
                }
                Tok::Op(op)
            } else {
                return Err(error(
                    line,
                    col,
                    &format!("token recognition error at: '{c}'"),
                ));
            };
            let text: String = self.chars[start..self.i].iter().collect();
            out.push(Token {
                tok,
                text,
                line,
                col,
            });
        }
    }

    fn digits(&mut self, hex: bool) -> usize {
        let mut n = 0;
        while self.peek(0).is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        }) {
            self.bump();
            n += 1;
        }
        n
    }

    fn number(&mut self) -> Result<(), String> {
        let (line, col) = (self.line, self.col);
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            if self.digits(true) == 0 {
                return Err(error(line, col, "token recognition error at: '0x'"));
            }
            if matches!(self.peek(0), Some('u' | 'U')) {
                self.bump();
            }
            return Ok(());
        }
        self.digits(false);
        let mut float = false;
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.digits(false);
            float = true;
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                for _ in 0..=sign {
                    self.bump();
                }
                self.digits(false);
                float = true;
            }
        }
        if !float && matches!(self.peek(0), Some('u' | 'U')) {
            self.bump();
        }
        Ok(())
    }

    fn string(&mut self, raw: bool) -> Result<(), String> {
        let (line, col) = (self.line, self.col);
        let unterminated = || error(line, col, "token recognition error at: unterminated string");
        let q = self.bump().ok_or_else(unterminated)?;
        let triple = self.peek(0) == Some(q) && self.peek(1) == Some(q);
        if triple {
            self.bump();
            self.bump();
        }
        loop {
            let c = self.bump().ok_or_else(unterminated)?;
            if c == q {
                if !triple {
                    return Ok(());
                }
                if self.peek(0) == Some(q) && self.peek(1) == Some(q) {
                    self.bump();
                    self.bump();
                    return Ok(());
                }
            } else if c == '\n' && !triple {
                return Err(unterminated());
            } else if c == '\\' && !raw {
                self.escape(line, col)?;
            }
        }
    }

    fn escape(&mut self, line: usize, col: usize) -> Result<(), String> {
        let bad = |e: &str| error(line, col, &format!("token recognition error at: '\\{e}'"));
        let c = self.bump().ok_or_else(|| bad(""))?;
        let hex = |lx: &mut Self, n: usize| -> bool {
            (0..n).all(|_| lx.bump().is_some_and(|c| c.is_ascii_hexdigit()))
        };
        let ok = match c {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' | '\'' | '"' | '`' | '?' => true,
            'x' | 'X' => hex(self, 2),
            'u' => hex(self, 4),
            'U' => hex(self, 8),
            '0'..='3' => (0..2).all(|_| self.bump().is_some_and(|c| ('0'..='7').contains(&c))),
            _ => false,
        };
        if ok { Ok(()) } else { Err(bad(&c.to_string())) }
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

type PResult = Result<(), String>;

impl Parser {
    fn peek(&self) -> &Token {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.i.min(last)]
    }

    fn is(&self, op: &str) -> bool {
        matches!(self.peek().tok, Tok::Op(o) if o == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        let hit = self.is(op);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn fail<T>(&self) -> Result<T, String> {
        let t = self.peek();
        if let Tok::Ident(w) = &t.tok
            && RESERVED.contains(&w.as_str())
        {
            return Err(error(t.line, t.col, &format!("reserved identifier: {w}")));
        }
        Err(error(
            t.line,
            t.col,
            &format!("mismatched input '{}'", t.text),
        ))
    }

    fn expect(&mut self, op: &str) -> PResult {
        if self.eat(op) { Ok(()) } else { self.fail() }
    }

    fn ident(&mut self) -> PResult {
        match &self.peek().tok {
            Tok::Ident(w) if !RESERVED.contains(&w.as_str()) => {
                self.i += 1;
                Ok(())
            }
            _ => self.fail(),
        }
    }

    fn expr(&mut self) -> PResult {
        self.binary(0)?;
        if self.eat("?") {
            self.binary(0)?;
            self.expect(":")?;
            self.expr()?;
        }
        Ok(())
    }

    /// Left-associative binary levels: `||`, `&&`, relations, additive, multiplicative.
    fn binary(&mut self, level: usize) -> PResult {
        const LEVELS: &[&[&str]] = &[
            &["||"],
            &["&&"],
            &["<", "<=", ">", ">=", "==", "!=", "in"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        self.binary(level + 1)?;
        while ops.iter().any(|op| self.is(op)) {
            self.i += 1;
            self.binary(level + 1)?;
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult {
        while self.eat("!") || self.eat("-") {}
        self.member()
    }

    fn args(&mut self, close: &str, trailing_comma: bool) -> PResult {
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.expr()?;
            if self.eat(close) {
                return Ok(());
            }
            self.expect(",")?;
            if trailing_comma && self.eat(close) {
                return Ok(());
            }
        }
    }

    fn fields(&mut self) -> PResult {
        if self.eat("}") {
            return Ok(());
        }
        loop {
            self.ident()?;
            self.expect(":")?;
            self.expr()?;
            if self.eat("}") {
                return Ok(());
            }
            self.expect(",")?;
            if self.eat("}") {
                return Ok(());
            }
        }
    }

    fn map(&mut self) -> PResult {
        if self.eat("}") {
            return Ok(());
        }
        loop {
            self.expr()?;
            self.expect(":")?;
            self.expr()?;
            if self.eat("}") {
                return Ok(());
            }
            self.expect(",")?;
            if self.eat("}") {
                return Ok(());
            }
        }
    }

    fn member(&mut self) -> PResult {
        // Whether the chain so far is a (qualified) identifier, which may start a message.
        let mut qualified = self.primary()?;
        loop {
            if self.eat(".") {
                self.ident()?;
                if self.eat("(") {
                    self.args(")", false)?;
                    qualified = false;
                }
            } else if self.eat("[") {
                self.expr()?;
                self.expect("]")?;
                qualified = false;
            } else if qualified && self.eat("{") {
                self.fields()?;
                qualified = false;
            } else {
                return Ok(());
            }
        }
    }

    /// Parse a primary; true when it is a bare identifier.
    fn primary(&mut self) -> Result<bool, String> {
        let leading_dot = self.eat(".");
        if matches!(self.peek().tok, Tok::Ident(_)) {
            self.ident()?;
            if self.eat("(") {
                self.args(")", false)?;
                return Ok(false);
            }
            return Ok(true);
        }
        if leading_dot {
            return self.fail();
        }
        match self.peek().tok.clone() {
            Tok::Lit => {
                self.i += 1;
                Ok(false)
            }
            Tok::Op("(") => {
                self.i += 1;
                self.expr()?;
                self.expect(")")?;
                Ok(false)
            }
            Tok::Op("[") => {
                self.i += 1;
                self.args("]", true)?;
                Ok(false)
            }
            Tok::Op("{") => {
                self.i += 1;
                self.map()?;
                Ok(false)
            }
            _ => self.fail(),
        }
    }
}

/// Parse `expr` as CEL; the error reads like cel-go's (`ERROR: <input>:1:6: Syntax error: ...`).
pub(crate) fn parse(expr: &str) -> Result<(), String> {
    let lexer = Lexer {
        chars: expr.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let toks = lexer.tokens()?;
    let mut p = Parser { toks, i: 0 };
    p.expr()?;
    if p.peek().tok != Tok::Eof {
        return p.fail();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn valid_expressions() {
        for e in [
            "true",
            "response.code >= 400",
            "connection.mtls && request.url_path.contains('v1beta3')",
            "!has(request.useragent) || !(request.useragent.startsWith(\"Amazon-Route53-Health-Check-Service\"))",
            "a ? b : c ? d : e",
            "x in [1, 2, 3,] && {'a': 1, 'b': 2}.size() == 2",
            "google.protobuf.Duration{seconds: 5} == d",
            "-1.5e3 < 0x1F && 3u > 2u && r'\\d' != b\"x\" && '''multi\nline''' != ''",
            ".root.field[0] // comment",
            "'\\x41\\u0041\\101\\n' == 'AA'",
        ] {
            assert!(parse(e).is_ok(), "{e}: {:?}", parse(e));
        }
    }

    #[test]
    fn invalid_expressions() {
        for (e, want) in [
            ("", "1:1: Syntax error: mismatched input '<EOF>'"),
            ("a &&", "1:5: Syntax error: mismatched input '<EOF>'"),
            (
                "a = b",
                "1:3: Syntax error: token recognition error at: '='",
            ),
            ("(a", "1:3: Syntax error: mismatched input '<EOF>'"),
            ("a b", "1:3: Syntax error: mismatched input 'b'"),
            (
                "'abc",
                "Syntax error: token recognition error at: unterminated string",
            ),
            ("'\\q'", "token recognition error at: '\\q'"),
            ("if", "reserved identifier: if"),
            ("f(a,)", "mismatched input ')'"),
        ] {
            let err = parse(e).unwrap_err();
            assert!(err.starts_with("ERROR: <input>:"), "{err}");
            assert!(err.contains(want), "{e}: {err}");
        }
    }
}
