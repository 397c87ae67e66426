//! SQL92 property filters (`MessageSelector.bySql`), evaluated by the broker when
//! `enablePropertyFilter=true`.
//!
//! The language is the subset RocketMQ 4.9.8 accepts (its JavaCC `SelectorParser`):
//! comparisons `= <> < <= > >=`, `AND`/`OR`/`NOT`, `[NOT] BETWEEN a AND b`,
//! `[NOT] IN ('x', 'y')`, `IS [NOT] NULL`, string literals in single quotes (`''` escapes a
//! quote), integer literals (long), floating literals (double), `TRUE`, `FALSE`, `NULL`,
//! unary `+`/`-`, parentheses, `--` and `/* */` comments. Keywords are case-insensitive,
//! property names are case-sensitive and match `[A-Za-z_$][A-Za-z0-9_$]*`.
//!
//! Pipeline: [`lexer`] (text → tokens) → [`parser`] (tokens → [`Expression`] tree, with the
//! compile-time checks RocketMQ makes, e.g. `a > 'x'` is rejected) → [`evaluator`] (tree +
//! message properties → match or not).
//!
//! Semantics follow RocketMQ's, including its quirks, so a subscription selects the same
//! messages on rmq-fast as on an Apache broker:
//! - Property values are strings; comparing one with a number converts it (`Long.valueOf` /
//!   `Double.valueOf`), and a value that does not convert makes the whole evaluation fail,
//!   which means "no match" (even inside an `OR`).
//! - `<`, `<=`, `>`, `>=` between two strings compare them as doubles (or fail).
//! - A missing property is SQL `NULL`: comparisons with it are unknown, and unknown is no match.
//!
//! One deviation: RocketMQ ignores tokens after a complete expression (`a > 1 b` selects like
//! `a > 1`); we reject them as a syntax error, which is what the user meant to learn.

mod evaluator;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

pub use evaluator::{EvalError, Value};
pub use parser::{Expression, MAX_HEIGHT};

/// Longest selector text accepted (64 KiB). RocketMQ sets no limit; real selectors are a few
/// hundred bytes, and this bounds what one compile costs and holds (a compiled tree takes
/// roughly 30 bytes per byte of text).
pub const MAX_EXPRESSION_BYTES: usize = 64 * 1024;

/// Why an expression does not compile. Returned to clients as SUBSCRIPTION_PARSE_FAILED.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("unexpected character {found:?} at {position}")]
    UnexpectedChar { found: char, position: usize },
    #[error("unterminated {what} starting at {position}")]
    Unterminated { what: &'static str, position: usize },
    #[error("bad number literal {literal:?}")]
    BadNumber { literal: String },
    #[error("expected {expected} at {position}, found {found}")]
    UnexpectedToken {
        expected: &'static str,
        found: String,
        position: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Compiles a SQL92 selector.
///
/// # Errors
/// [`FilterError`] for text longer than [`MAX_EXPRESSION_BYTES`], a tree taller than
/// [`MAX_HEIGHT`], a lexical or syntax error, or an expression RocketMQ rejects at
/// compile time (a non-numeric constant in `<`, `NULL` in `=`, a non-boolean top level...).
pub fn compile(sql: &str) -> Result<Expression, FilterError> {
    if sql.len() > MAX_EXPRESSION_BYTES {
        return Err(FilterError::Invalid(format!(
            "expression is {} bytes, longer than the {MAX_EXPRESSION_BYTES} bytes accepted",
            sql.len()
        )));
    }
    let tokens = lexer::tokenize(sql)?;
    parser::parse(&tokens)
}
