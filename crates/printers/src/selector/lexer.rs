//! The selector lexer of apimachinery (`labels/selector.go`): identifiers, operators, parens.

/// Token kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    Error,
    End,
    CloseParen,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenParen,
}

pub(super) struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn special_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::CloseParen,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenParen,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a str) -> Lexer<'a> {
        Lexer { s, pos: 0 }
    }

    /// The byte at the cursor; NUL doubles as end of input, as in apimachinery.
    fn peek(&self) -> u8 {
        self.s.as_bytes().get(self.pos).copied().unwrap_or(0)
    }

    pub(super) fn lex(&mut self) -> (Token, String) {
        while is_whitespace(self.peek()) {
            self.pos += 1;
        }
        let b = self.peek();
        if b == 0 {
            return (Token::End, String::new());
        }
        if is_special(b) {
            return self.scan_special();
        }
        let start = self.pos;
        while !matches!(self.peek(), 0) && !is_whitespace(self.peek()) && !is_special(self.peek()) {
            self.pos += 1;
        }
        let word = &self.s[start..self.pos];
        let tok = match word {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        (tok, word.to_string())
    }

    /// The longest operator made of special characters at the cursor.
    fn scan_special(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        while is_special(self.peek()) {
            self.pos += 1;
            let buffer = &self.s[start..self.pos];
            if let Some(tok) = special_token(buffer) {
                last = Some((tok, self.pos));
            } else if last.is_some() {
                self.pos -= 1;
                break;
            }
        }
        match last {
            Some((tok, end)) => {
                self.pos = end;
                (tok, self.s[start..end].to_string())
            }
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    &self.s[start..self.pos]
                ),
            ),
        }
    }
}
