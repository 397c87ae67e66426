//! SQL92 selector text → tokens. Whitespace and comments (`-- …` to end of line, `/* … */`)
//! are skipped; keywords are case-insensitive; each token keeps its byte position for
//! error messages.

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    Str(String),
    Long(i64),
    Double(f64),
    True,
    False,
    Null,
    Not,
    And,
    Or,
    Between,
    In,
    Is,
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub position: usize,
}

/// Splits `sql` into tokens.
///
/// # Errors
/// An unknown character, an unterminated string or comment, or a number that does not fit.
pub fn tokenize(sql: &str) -> Result<Vec<Spanned>, FilterError> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if sql[at..].starts_with("--") {
            at = sql[at..]
                .find(['\n', '\r'])
                .map_or(bytes.len(), |end| at + end);
        } else if sql[at..].starts_with("/*") {
            let end = sql[at + 2..].find("*/").ok_or(FilterError::Unterminated {
                what: "comment",
                position: at,
            })?;
            at += 2 + end + 2;
        } else {
            let (token, next) = next_token(sql, at)?;
            tokens.push(Spanned {
                token,
                position: at,
            });
            assert!(next > at, "the lexer always advances");
            at = next;
        }
    }
    Ok(tokens)
}

fn next_token(sql: &str, at: usize) -> Result<(Token, usize), FilterError> {
    let bytes = sql.as_bytes();
    let c = bytes[at];
    let two = bytes.get(at + 1).copied();
    let symbol = match (c, two) {
        (b'<', Some(b'>')) => Some((Token::Ne, 2)),
        (b'<', Some(b'=')) => Some((Token::Le, 2)),
        (b'>', Some(b'=')) => Some((Token::Ge, 2)),
        (b'<', _) => Some((Token::Lt, 1)),
        (b'>', _) => Some((Token::Gt, 1)),
        (b'=', _) => Some((Token::Eq, 1)),
        (b'(', _) => Some((Token::LParen, 1)),
        (b')', _) => Some((Token::RParen, 1)),
        (b',', _) => Some((Token::Comma, 1)),
        (b'+', _) => Some((Token::Plus, 1)),
        (b'-', _) => Some((Token::Minus, 1)),
        _ => None,
    };
    if let Some((token, len)) = symbol {
        return Ok((token, at + len));
    }
    if c == b'\'' {
        return string_literal(sql, at);
    }
    if c.is_ascii_digit() || (c == b'.' && two.is_some_and(|d| d.is_ascii_digit())) {
        return number_literal(sql, at);
    }
    if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
        let end = sql[at..]
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '$'))
            .map_or(sql.len(), |len| at + len);
        return Ok((word(&sql[at..end]), end));
    }
    let found = sql[at..].chars().next().unwrap_or('?');
    Err(FilterError::UnexpectedChar {
        found,
        position: at,
    })
}

fn word(text: &str) -> Token {
    const KEYWORDS: [(&str, Token); 9] = [
        ("NOT", Token::Not),
        ("AND", Token::And),
        ("OR", Token::Or),
        ("BETWEEN", Token::Between),
        ("IN", Token::In),
        ("TRUE", Token::True),
        ("FALSE", Token::False),
        ("NULL", Token::Null),
        ("IS", Token::Is),
    ];
    KEYWORDS
        .iter()
        .find(|(keyword, _)| keyword.eq_ignore_ascii_case(text))
        .map_or_else(|| Token::Ident(text.to_owned()), |(_, token)| token.clone())
}

/// `'…'` with `''` standing for one quote.
fn string_literal(sql: &str, start: usize) -> Result<(Token, usize), FilterError> {
    let mut value = String::new();
    let mut chars = sql[start + 1..].char_indices().peekable();
    while let Some((offset, ch)) = chars.next() {
        if ch != '\'' {
            value.push(ch);
            continue;
        }
        if chars.peek().is_some_and(|&(_, next)| next == '\'') {
            value.push('\'');
            chars.next();
            continue;
        }
        return Ok((Token::Str(value), start + 1 + offset + 1));
    }
    Err(FilterError::Unterminated {
        what: "string literal",
        position: start,
    })
}

/// `123`, `123L` (long); `1.5`, `5.`, `.5`, `5E10`, `1.5e-3` (double).
fn number_literal(sql: &str, start: usize) -> Result<(Token, usize), FilterError> {
    let bytes = sql.as_bytes();
    let digits_from = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    let mut end = digits_from(start);
    let mut floating = false;
    if bytes.get(end) == Some(&b'.') {
        floating = true;
        end = digits_from(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let digits_end = digits_from(exponent);
        if digits_end > exponent {
            floating = true;
            end = digits_end;
        }
    }
    let text = &sql[start..end];
    let bad = || FilterError::BadNumber {
        literal: text.to_owned(),
    };
    if floating {
        let value: f64 = text.parse().map_err(|_| bad())?;
        if !value.is_finite() {
            return Err(bad());
        }
        return Ok((Token::Double(value), end));
    }
    let value: i64 = text.parse().map_err(|_| bad())?;
    let end = if matches!(bytes.get(end), Some(b'l' | b'L')) {
        end + 1
    } else {
        end
    };
    Ok((Token::Long(value), end))
}
