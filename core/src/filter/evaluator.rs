//! Evaluates an [`Expression`] against one message's properties, with RocketMQ's
//! three-valued logic: a comparison involving a missing property is unknown (`Null`), `AND`
//! and `OR` short-circuit on a definite answer, and only a definite `TRUE` is a match.
//!
//! Type conversions mirror Java's `ComparisonExpression.__compare` with string conversion on
//! (what the broker uses): a property string compared with a long is parsed as a long, with a
//! double as a double; a string that does not parse makes the evaluation fail
//! ([`EvalError`]), and a failed evaluation is "no match". Comparing a number with a boolean
//! is "less than" (never equal), as in Java.

use std::cmp::Ordering;
use std::fmt;

use super::parser::{CompareOp, Expression};

/// A value during evaluation. Message properties are always `Str`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(value) => write!(f, "{value}"),
            Value::Long(value) => write!(f, "{value}"),
            Value::Double(value) => write!(f, "{value}"),
            Value::Str(value) => write!(f, "'{value}'"),
        }
    }
}

/// Why an evaluation failed (Java throws; the broker then treats the message as unmatched).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{text:?} is not a {wanted}")]
    NotANumber { text: String, wanted: &'static str },
    #[error("cannot compare {left} with {right}")]
    Incomparable { left: String, right: String },
}

impl Expression {
    /// Whether a message with these properties is selected: only a definite `TRUE` is; an
    /// unknown result or an evaluation error is not.
    pub fn matches<'a>(&self, property: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        matches!(self.evaluate(property), Ok(Value::Bool(true)))
    }

    /// Evaluates against properties looked up by name.
    ///
    /// # Errors
    /// [`EvalError`] when a conversion fails, as Java would throw.
    pub fn evaluate<'a>(
        &self,
        property: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<Value, EvalError> {
        Ok(match self {
            Expression::Constant(value) => value.clone(),
            Expression::Property(name) => {
                property(name).map_or(Value::Null, |text| Value::Str(text.to_owned()))
            }
            Expression::Negate(operand) => match operand.evaluate(property)? {
                Value::Long(value) => Value::Long(value.wrapping_neg()),
                Value::Double(value) => Value::Double(-value),
                _ => Value::Null,
            },
            Expression::Not(operand) => match truth(operand.evaluate(property)?)? {
                Some(value) => Value::Bool(!value),
                None => Value::Null,
            },
            Expression::BoolCast(operand) => match operand.evaluate(property)? {
                Value::Null => Value::Null,
                Value::Bool(value) => Value::Bool(value),
                _ => Value::Bool(false),
            },
            Expression::And(operands) => and(operands, property)?,
            Expression::Or(operands) => or(operands, property)?,
            Expression::Compare(op, left, right) => {
                let left = left.evaluate(property)?;
                let right = right.evaluate(property)?;
                compare(*op, &left, &right)?
            }
            Expression::Equal(left, right) => {
                equal(&left.evaluate(property)?, &right.evaluate(property)?)?
            }
            Expression::In {
                property: name,
                values,
                negated,
            } => match property(name) {
                None => Value::Null,
                Some(text) => Value::Bool(values.iter().any(|value| value == text) ^ negated),
            },
        })
    }
}

/// A boolean operand: `Some(b)`, or `None` for unknown.
fn truth(value: Value) -> Result<Option<bool>, EvalError> {
    match value {
        Value::Bool(value) => Ok(Some(value)),
        Value::Null => Ok(None),
        other => Err(EvalError::Incomparable {
            left: other.to_string(),
            right: "a boolean".to_owned(),
        }),
    }
}

/// n-ary `AND`, left to right as Java's left-deep chain evaluates: the first definite
/// `FALSE` decides (later operands are not evaluated, so their errors do not count),
/// otherwise any unknown makes the result unknown.
fn and<'a>(
    operands: &[Expression],
    property: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<Value, EvalError> {
    let mut unknown = false;
    for operand in operands {
        match truth(operand.evaluate(property)?)? {
            Some(false) => return Ok(Value::Bool(false)),
            Some(true) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown {
        Value::Null
    } else {
        Value::Bool(true)
    })
}

/// n-ary `OR`: the first definite `TRUE` decides, otherwise any unknown is unknown.
fn or<'a>(
    operands: &[Expression],
    property: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<Value, EvalError> {
    let mut unknown = false;
    for operand in operands {
        match truth(operand.evaluate(property)?)? {
            Some(true) => return Ok(Value::Bool(true)),
            Some(false) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown {
        Value::Null
    } else {
        Value::Bool(false)
    })
}

fn compare(op: CompareOp, left: &Value, right: &Value) -> Result<Value, EvalError> {
    if matches!(left, Value::Null) || matches!(right, Value::Null) {
        return Ok(Value::Null);
    }
    let order = match (left, right) {
        // Java refuses to order strings; it tries them as doubles first.
        (Value::Str(l), Value::Str(r)) => java_double(l)?.total_cmp(&java_double(r)?),
        _ => compare_values(left, right)?,
    };
    Ok(Value::Bool(match op {
        CompareOp::Lt => order.is_lt(),
        CompareOp::Le => order.is_le(),
        CompareOp::Gt => order.is_gt(),
        CompareOp::Ge => order.is_ge(),
    }))
}

fn equal(left: &Value, right: &Value) -> Result<Value, EvalError> {
    match (left, right) {
        (Value::Null, Value::Null) => Ok(Value::Bool(true)),
        (Value::Null, _) => Ok(Value::Null),
        (_, Value::Null) => Ok(Value::Bool(false)),
        _ if left == right => Ok(Value::Bool(true)),
        _ => Ok(Value::Bool(compare_values(left, right)?.is_eq())),
    }
}

/// Java `__compare(lv, rv, true)`: same types compare naturally; different types are
/// converted towards the other side, and pairs Java cannot convert are "less".
pub(crate) fn compare_values(left: &Value, right: &Value) -> Result<Ordering, EvalError> {
    use Value::{Bool, Double, Long, Str};
    Ok(match (left, right) {
        (Long(l), Long(r)) => l.cmp(r),
        (Double(l), Double(r)) => l.total_cmp(r),
        (Str(l), Str(r)) => l.cmp(r),
        (Bool(l), Bool(r)) => l.cmp(r),
        (Long(l), Double(r)) => (*l as f64).total_cmp(r),
        (Double(l), Long(r)) => l.total_cmp(&(*r as f64)),
        (Long(l), Str(r)) => l.cmp(&java_long(r)?),
        (Double(l), Str(r)) => l.total_cmp(&java_double(r)?),
        (Str(l), Long(r)) => java_long(l)?.cmp(r),
        (Str(l), Double(r)) => java_double(l)?.total_cmp(r),
        (Str(l), Bool(r)) => l.eq_ignore_ascii_case("true").cmp(r),
        // Java casts the Boolean to String here and throws ClassCastException.
        (Bool(_), Str(_)) => {
            return Err(EvalError::Incomparable {
                left: left.to_string(),
                right: right.to_string(),
            });
        }
        _ => Ordering::Less,
    })
}

/// Java `Long.valueOf(String)`: optional sign and decimal digits, nothing else.
fn java_long(text: &str) -> Result<i64, EvalError> {
    text.parse().map_err(|_| EvalError::NotANumber {
        text: text.to_owned(),
        wanted: "long",
    })
}

/// Java `Double.valueOf(String)`: surrounding whitespace allowed, an optional `f`/`d` suffix,
/// `NaN` and `Infinity` spelled as Java spells them.
fn java_double(text: &str) -> Result<f64, EvalError> {
    let error = || EvalError::NotANumber {
        text: text.to_owned(),
        wanted: "double",
    };
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let unsigned = trimmed.trim_start_matches(['+', '-']);
    match unsigned {
        "NaN" => return Ok(f64::NAN),
        "Infinity" if trimmed.starts_with('-') => return Ok(f64::NEG_INFINITY),
        "Infinity" => return Ok(f64::INFINITY),
        _ => {}
    }
    let number = trimmed
        .strip_suffix(['f', 'F', 'd', 'D'])
        .unwrap_or(trimmed);
    let plain = number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !plain || !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    number.parse().map_err(|_| error())
}
