//! Tokens → [`Expression`], by recursive descent over RocketMQ's grammar (lowest binding
//! first): `OR`, `AND`, equality (`=`, `<>`, `IS [NOT] NULL`), comparison (`<`, `<=`, `>`,
//! `>=`, `[NOT] BETWEEN`, `[NOT] IN`), unary (`+`, `-`, `NOT`), primary (literal, property,
//! parenthesised expression).
//!
//! The compile-time checks are RocketMQ's: only numeric constants in `<`-like comparisons,
//! no `NULL` constant in `=`/`<>`, a boolean constant is only compared with a boolean, `IN`
//! takes a property on the left and string literals, a constant `BETWEEN` range must not be
//! empty, and whatever sits under `AND`/`OR`/`NOT` or at the top must be boolean (a bare
//! property is cast: true only if its value were a boolean, which a string never is).
//!
//! Size is bounded so a hostile expression can neither overflow a core's stack nor make the
//! broker hold a huge tree: `AND`/`OR` chains become one n-ary node (a 10,000-term chain is
//! one level deep, parsed by a loop, evaluated by a loop), every node's height is checked
//! against [`MAX_HEIGHT`] when it is built (so `a = a = a = ...` or `a IS NULL IS NULL ...`
//! chains are refused too), the parser's own recursion (parentheses, unary operators) is
//! bounded by [`MAX_DEPTH`], and the text itself by `MAX_EXPRESSION_BYTES` in the module root.

use super::FilterError;
use super::evaluator::{Value, compare_values};
use super::lexer::{Spanned, Token};

/// Deepest nesting of parentheses and unary operators accepted (bounds the parser's
/// recursion: each level costs about six parser frames).
const MAX_DEPTH: usize = 64;

/// Tallest tree accepted: the evaluator and `Drop` recurse once per level, so this bounds
/// their stack use (a few hundred bytes per level) whatever the input. Every level of
/// parentheses adds at most two (an n-ary `AND`/`OR` and an operator), so the limit never
/// cuts in before [`MAX_DEPTH`] does for sensible expressions.
pub const MAX_HEIGHT: usize = 160;

/// A compiled selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Constant(Value),
    Property(String),
    Negate(Box<Expression>),
    Not(Box<Expression>),
    /// A property used as a boolean.
    BoolCast(Box<Expression>),
    /// All operands, evaluated left to right (at least two). A chain `a AND b AND c` is one
    /// node, never a deep tree.
    And(Vec<Expression>),
    /// As [`Expression::And`].
    Or(Vec<Expression>),
    /// `<`, `<=`, `>`, `>=`.
    Compare(CompareOp, Box<Expression>, Box<Expression>),
    /// `=`; `IS NULL` is `Equal(x, Constant(Null))`.
    Equal(Box<Expression>, Box<Expression>),
    In {
        property: String,
        values: Vec<String>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Expression {
    /// Whether this node yields a boolean (Java `BooleanExpression`).
    fn is_boolean(&self) -> bool {
        match self {
            Expression::Constant(value) => matches!(value, Value::Bool(_) | Value::Null),
            Expression::Property(_) | Expression::Negate(_) => false,
            _ => true,
        }
    }

    /// Levels of the tree (a leaf is 1). Recursive: only called on nodes whose children
    /// were already checked against [`MAX_HEIGHT`], so the recursion is bounded.
    fn height(&self) -> usize {
        let children = match self {
            Expression::Constant(_) | Expression::Property(_) | Expression::In { .. } => 0,
            Expression::Negate(operand)
            | Expression::Not(operand)
            | Expression::BoolCast(operand) => operand.height(),
            Expression::And(operands) | Expression::Or(operands) => {
                operands.iter().map(Expression::height).max().unwrap_or(0)
            }
            Expression::Compare(_, left, right) | Expression::Equal(left, right) => {
                left.height().max(right.height())
            }
        };
        children + 1
    }
}

/// `expression` when it is at most [`MAX_HEIGHT`] tall. Called on every node the parser
/// builds, so no taller tree ever exists.
fn bounded(expression: Expression) -> Result<Expression, FilterError> {
    let height = expression.height();
    if height > MAX_HEIGHT {
        return Err(FilterError::Invalid(format!(
            "expression nested too deeply (more than {MAX_HEIGHT} levels)"
        )));
    }
    Ok(expression)
}

/// Parses a whole token list; trailing tokens are an error.
pub fn parse(tokens: &[Spanned]) -> Result<Expression, FilterError> {
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let expression = parser.or_expression()?;
    if let Some(extra) = tokens.get(parser.at) {
        return Err(FilterError::UnexpectedToken {
            expected: "end of expression",
            found: format!("{:?}", extra.token),
            position: extra.position,
        });
    }
    as_boolean(expression)
}

struct Parser<'a> {
    tokens: &'a [Spanned],
    at: usize,
    depth: usize,
}

fn boxed(e: Expression) -> Box<Expression> {
    Box::new(e)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|spanned| &spanned.token)
    }

    fn peek_second(&self) -> Option<&Token> {
        self.tokens.get(self.at + 1).map(|spanned| &spanned.token)
    }

    /// Consumes the next token when it is `token`.
    fn eat(&mut self, token: &Token) -> bool {
        let found = self.peek() == Some(token);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, token: &Token, expected: &'static str) -> Result<(), FilterError> {
        if self.eat(token) {
            return Ok(());
        }
        Err(self.unexpected(expected))
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        match self.tokens.get(self.at) {
            Some(spanned) => FilterError::UnexpectedToken {
                expected,
                found: format!("{:?}", spanned.token),
                position: spanned.position,
            },
            None => FilterError::UnexpectedToken {
                expected,
                found: "end of expression".to_owned(),
                position: self.tokens.last().map_or(0, |last| last.position + 1),
            },
        }
    }

    /// `a OR b OR ...` as one n-ary node, read by a loop.
    fn or_expression(&mut self) -> Result<Expression, FilterError> {
        let first = self.and_expression()?;
        if self.peek() != Some(&Token::Or) {
            return Ok(first);
        }
        let mut operands = vec![as_boolean(first)?];
        while self.eat(&Token::Or) {
            operands.push(as_boolean(self.and_expression()?)?);
        }
        bounded(Expression::Or(operands))
    }

    /// `a AND b AND ...` as one n-ary node, read by a loop.
    fn and_expression(&mut self) -> Result<Expression, FilterError> {
        let first = self.equality_expression()?;
        if self.peek() != Some(&Token::And) {
            return Ok(first);
        }
        let mut operands = vec![as_boolean(first)?];
        while self.eat(&Token::And) {
            operands.push(as_boolean(self.equality_expression()?)?);
        }
        bounded(Expression::And(operands))
    }

    fn equality_expression(&mut self) -> Result<Expression, FilterError> {
        let mut left = self.comparison_expression()?;
        loop {
            if self.eat(&Token::Eq) {
                let right = self.comparison_expression()?;
                left = equal(left, right)?;
            } else if self.eat(&Token::Ne) {
                let right = self.comparison_expression()?;
                left = bounded(Expression::Not(boxed(equal(left, right)?)))?;
            } else if self.eat(&Token::Is) {
                let negated = self.eat(&Token::Not);
                self.expect(&Token::Null, "NULL")?;
                let is_null =
                    Expression::Equal(boxed(left), boxed(Expression::Constant(Value::Null)));
                let is_null = bounded(is_null)?;
                left = if negated {
                    bounded(Expression::Not(boxed(is_null)))?
                } else {
                    is_null
                };
            } else {
                return Ok(left);
            }
        }
    }

    fn comparison_expression(&mut self) -> Result<Expression, FilterError> {
        let mut left = self.unary_expression()?;
        loop {
            let op = match self.peek() {
                Some(Token::Lt) => Some(CompareOp::Lt),
                Some(Token::Le) => Some(CompareOp::Le),
                Some(Token::Gt) => Some(CompareOp::Gt),
                Some(Token::Ge) => Some(CompareOp::Ge),
                _ => None,
            };
            if let Some(op) = op {
                self.at += 1;
                let right = self.unary_expression()?;
                left = compare(op, left, right)?;
                continue;
            }
            let negated = self.peek() == Some(&Token::Not)
                && matches!(self.peek_second(), Some(Token::Between | Token::In));
            if negated {
                self.at += 1;
            }
            if self.eat(&Token::Between) {
                left = self.between(left, negated)?;
            } else if self.eat(&Token::In) {
                left = self.in_list(left, negated)?;
            } else {
                return Ok(left);
            }
        }
    }

    fn between(&mut self, value: Expression, negated: bool) -> Result<Expression, FilterError> {
        let low = self.unary_expression()?;
        self.expect(&Token::And, "AND")?;
        let high = self.unary_expression()?;
        if negated {
            let below = compare(CompareOp::Lt, value.clone(), low)?;
            let above = compare(CompareOp::Gt, value, high)?;
            return bounded(Expression::Or(vec![below, above]));
        }
        if let (Expression::Constant(low), Expression::Constant(high)) = (&low, &high) {
            if matches!(low, Value::Null) || matches!(high, Value::Null) {
                return Err(invalid(
                    "Illegal values of between, values can not be null!",
                ));
            }
            let order = compare_values(high, low)
                .map_err(|error| FilterError::Invalid(error.to_string()))?;
            if order.is_lt() {
                return Err(FilterError::Invalid(format!(
                    "Illegal values of between, left value({low}) must less than or equal to right value({high})"
                )));
            }
        }
        let from = compare(CompareOp::Ge, value.clone(), low)?;
        let to = compare(CompareOp::Le, value, high)?;
        bounded(Expression::And(vec![from, to]))
    }

    fn in_list(&mut self, value: Expression, negated: bool) -> Result<Expression, FilterError> {
        let Expression::Property(property) = value else {
            return Err(invalid("Expected a property for In expression"));
        };
        self.expect(&Token::LParen, "(")?;
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Str(text)) => {
                    values.push(text.clone());
                    self.at += 1;
                }
                _ => return Err(self.unexpected("a string literal")),
            }
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(&Token::RParen, ")")?;
        Ok(Expression::In {
            property,
            values,
            negated,
        })
    }

    fn unary_expression(&mut self) -> Result<Expression, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid("expression nested too deeply"));
        }
        let result = if self.eat(&Token::Plus) {
            self.unary_expression()
        } else if self.eat(&Token::Minus) {
            self.unary_expression()
                .and_then(|operand| bounded(Expression::Negate(boxed(operand))))
        } else if self.eat(&Token::Not) {
            self.unary_expression()
                .and_then(as_boolean)
                .and_then(|operand| bounded(Expression::Not(boxed(operand))))
        } else {
            self.primary_expression()
        };
        self.depth -= 1;
        result
    }

    fn primary_expression(&mut self) -> Result<Expression, FilterError> {
        let constant = match self.peek() {
            Some(Token::Str(text)) => Value::Str(text.clone()),
            Some(Token::Long(value)) => Value::Long(*value),
            Some(Token::Double(value)) => Value::Double(*value),
            Some(Token::True) => Value::Bool(true),
            Some(Token::False) => Value::Bool(false),
            Some(Token::Null) => Value::Null,
            Some(Token::Ident(name)) => {
                let property = Expression::Property(name.clone());
                self.at += 1;
                return Ok(property);
            }
            Some(Token::LParen) => {
                self.at += 1;
                let inner = self.or_expression()?;
                self.expect(&Token::RParen, ")")?;
                return Ok(inner);
            }
            _ => return Err(self.unexpected("a literal, a property or (")),
        };
        self.at += 1;
        Ok(Expression::Constant(constant))
    }
}

fn invalid(text: &str) -> FilterError {
    FilterError::Invalid(text.to_owned())
}

/// Java `asBooleanExpression`.
fn as_boolean(expression: Expression) -> Result<Expression, FilterError> {
    if expression.is_boolean() {
        return Ok(expression);
    }
    if let Expression::Property(_) = expression {
        return bounded(Expression::BoolCast(boxed(expression)));
    }
    Err(FilterError::Invalid(format!(
        "Expression will not result in a boolean value: {expression:?}"
    )))
}

fn compare(op: CompareOp, left: Expression, right: Expression) -> Result<Expression, FilterError> {
    for operand in [&left, &right] {
        let numeric_constant = matches!(
            operand,
            Expression::Constant(Value::Long(_) | Value::Double(_))
        );
        let constant = matches!(operand, Expression::Constant(_));
        if (constant && !numeric_constant) || operand.is_boolean() {
            return Err(FilterError::Invalid(format!(
                "Value '{operand:?}' cannot be compared."
            )));
        }
    }
    bounded(Expression::Compare(op, boxed(left), boxed(right)))
}

fn equal(left: Expression, right: Expression) -> Result<Expression, FilterError> {
    for operand in [&left, &right] {
        if matches!(operand, Expression::Constant(Value::Null)) {
            return Err(invalid("'NULL' cannot be compared."));
        }
    }
    if let (Expression::Constant(l), Expression::Constant(r)) = (&left, &right)
        && matches!(l, Value::Bool(_))
        && !matches!(r, Value::Bool(_))
    {
        return Err(FilterError::Invalid(format!(
            "'{l}' cannot be compared with '{r}'"
        )));
    }
    bounded(Expression::Equal(boxed(left), boxed(right)))
}
