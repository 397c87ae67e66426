//! SQL92 selector cases: what compiles, what is rejected, and what each expression selects.

use super::*;

fn props<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }
}

fn selects(sql: &str, pairs: &[(&str, &str)]) -> bool {
    let expression = compile(sql).unwrap_or_else(|e| panic!("{sql:?} should compile: {e}"));
    expression.matches(&props(pairs))
}

#[test]
fn comparisons_on_numbers() {
    let m = [("a", "10"), ("b", "x"), ("f", "2.5"), ("neg", "-3")];
    assert!(selects("a > 5", &m));
    assert!(!selects("a > 10", &m));
    assert!(selects("a >= 10", &m));
    assert!(selects("a < 11 AND a <= 10", &m));
    assert!(selects("a = 10", &m));
    assert!(selects("a <> 11", &m));
    assert!(!selects("a <> 10", &m));
    assert!(
        !selects("f > 2", &m),
        "as in Java: Long.valueOf(\"2.5\") fails"
    );
    assert!(selects("f > 2.0", &m));
    assert!(selects("f < 2.6", &m));
    assert!(selects("a > 9.5", &m));
    assert!(selects("neg < 0", &m));
    assert!(selects("neg = -3", &m));
    assert!(selects("a > -5", &m));
    assert!(selects("a = +10", &m));
    assert!(selects("a = 10L", &m));
    assert!(selects("a < 1E2", &m));
    assert!(selects("a < .5e2", &m));
}

#[test]
fn strings_and_booleans() {
    let m = [("b", "x"), ("q", "it's"), ("flag", "true"), ("n", "7")];
    assert!(selects("b = 'x'", &m));
    assert!(!selects("b = 'y'", &m));
    assert!(selects("b <> 'y'", &m));
    assert!(selects("q = 'it''s'", &m));
    assert!(selects("flag = TRUE", &m));
    assert!(!selects("flag = FALSE", &m));
    assert!(selects("TRUE", &m));
    assert!(!selects("FALSE", &m));
    // a string constant cannot be ordered; two string properties are compared as doubles
    assert!(compile("n > '5'").is_err());
    assert!(selects("n > a", &[("n", "7"), ("a", "6.5")]));
    assert!(!selects("n > b", &m), "'x' is not a double");
    assert!(!selects("flag", &m), "a string property is never a boolean");
}

#[test]
fn logic_and_precedence() {
    let m = [("a", "10"), ("b", "x")];
    assert!(selects("a > 5 AND b = 'x'", &m));
    assert!(!selects("a > 5 AND b = 'y'", &m));
    assert!(selects("a > 50 OR b = 'x'", &m));
    assert!(selects("a > 50 OR a < 20 AND b = 'x'", &m));
    assert!(!selects("(a > 50 OR a < 20) AND b = 'y'", &m));
    assert!(selects("NOT (a > 50)", &m));
    assert!(
        compile("NOT a > 50").is_err(),
        "NOT binds tighter than >, as in RocketMQ"
    );
    assert!(
        selects("not(b = 'y') and A is null", &m),
        "keywords in any case"
    );
}

#[test]
fn between_and_in() {
    let m = [("a", "10"), ("b", "x")];
    assert!(selects("a BETWEEN 1 AND 10", &m));
    assert!(!selects("a BETWEEN 11 AND 20", &m));
    assert!(selects("a NOT BETWEEN 11 AND 20", &m));
    assert!(!selects("a NOT BETWEEN 1 AND 20", &m));
    assert!(selects("b IN ('x', 'y')", &m));
    assert!(!selects("b IN ('y', 'z')", &m));
    assert!(selects("b NOT IN ('y', 'z')", &m));
    assert!(!selects("b NOT IN ('x')", &m));
    assert!(!selects("missing IN ('x')", &m));
    assert!(
        !selects("missing NOT IN ('x')", &m),
        "unknown is not a match"
    );
}

#[test]
fn nulls_are_unknown() {
    let m = [("a", "10")];
    assert!(selects("missing IS NULL", &m));
    assert!(!selects("a IS NULL", &m));
    assert!(selects("a IS NOT NULL", &m));
    assert!(!selects("missing IS NOT NULL", &m));
    assert!(!selects("missing > 5", &m));
    assert!(!selects("NOT (missing > 5)", &m));
    assert!(!selects("missing = 'x'", &m));
    assert!(!selects("missing <> 'x'", &m));
    assert!(selects("missing > 5 OR a = 10", &m));
    assert!(!selects("missing > 5 AND a = 10", &m));
    assert!(!selects("missing BETWEEN 1 AND 2", &m));
}

#[test]
fn conversion_failures_do_not_match() {
    let m = [("a", "abc"), ("b", "x"), ("f", "1.5")];
    assert!(!selects("a > 5", &m));
    assert!(
        !selects("a = 5 OR b = 'x'", &m),
        "Java throws, so nothing matches"
    );
    assert!(!selects("f = 1", &m), "Long.valueOf(\"1.5\") fails");
    assert!(selects("f = 1.5", &m));
    assert!(
        selects("b = 'x' OR a = 5", &m),
        "OR stops at the first TRUE"
    );
}

#[test]
fn comments_and_whitespace() {
    let m = [("a", "10")];
    assert!(selects("/* c */ a\t>\n5 -- trailing", &m));
    assert!(selects("$x IS NULL AND _y IS NULL", &m));
}

#[test]
fn compile_errors() {
    for bad in [
        "",
        "a >",
        "a > 5 AND",
        "a > 'x'",
        "a < TRUE",
        "a = NULL",
        "TRUE = 'x'",
        "(a > 1) > 2",
        "a BETWEEN 5 AND 1",
        "a BETWEEN 1",
        "a IN ()",
        "a IN (1, 2)",
        "'x' IN ('x')",
        "a IN ('x'",
        "b = 'unterminated",
        "a > 5 b",
        "a # 5",
        "a IS 5",
        "5",
        "'x'",
        "a > 99999999999999999999",
        "/* open",
        "((((a > 1)))",
    ] {
        assert!(compile(bad).is_err(), "{bad:?} should not compile");
    }
    let deep = format!("{}a > 1{}", "(".repeat(500), ")".repeat(500));
    assert!(
        compile(&deep).is_err(),
        "deep nesting is refused, not a stack overflow"
    );
    let nots = format!("{}a", "NOT ".repeat(500));
    assert!(compile(&nots).is_err());
}

/// A long `AND`/`OR` chain used to build a left-deep tree as tall as the chain: the
/// evaluator (and `Drop`) then overflowed a core's stack on 10,000 terms. Chains are one
/// n-ary level now, and every other way of building a tall tree is refused at compile time.
#[test]
fn long_chains_do_not_grow_the_tree() {
    // Run on a small stack so a tree as tall as the chain fails this test, not by luck.
    let small_stack = std::thread::Builder::new().stack_size(256 * 1024);
    small_stack
        .spawn(|| {
            let terms = 6_000;
            let chain = vec!["a = 1"; terms].join(" AND ");
            assert!(chain.len() <= crate::filter::MAX_EXPRESSION_BYTES);
            let expression = compile(&chain).expect("a long AND chain compiles");
            assert!(expression.matches(&props(&[("a", "1")])));
            assert!(!expression.matches(&props(&[("a", "2")])));
            let either = vec!["a = 1"; terms].join(" OR ") + " OR b = 2";
            let expression = compile(&either).expect("a long OR chain compiles");
            assert!(expression.matches(&props(&[("b", "2")])));
            assert!(!expression.matches(&props(&[("a", "3")])));
            drop(expression);
            // Chains of operators that cannot be flattened are refused by height.
            for tall in [
                format!("a{}", " = a".repeat(5_000)),
                format!("a{}", " IS NULL".repeat(5_000)),
                format!("a{}", " <> a".repeat(5_000)),
            ] {
                match compile(&tall) {
                    Err(FilterError::Invalid(text)) => assert!(text.contains("deeply"), "{text}"),
                    other => panic!("expected a height error, got {other:?}"),
                }
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

#[test]
fn chain_semantics_follow_the_left_deep_evaluation() {
    // Unknown then false is false; unknown then true is unknown (no match); an error after
    // a definite FALSE is never evaluated.
    let expression = compile("x = 1 AND a = 2 AND b > 1").unwrap();
    assert_eq!(
        expression
            .evaluate(&props(&[("a", "3"), ("b", "z")]))
            .unwrap(),
        Value::Bool(false)
    );
    assert_eq!(
        expression
            .evaluate(&props(&[("a", "2"), ("b", "2")]))
            .unwrap(),
        Value::Null
    );
    assert!(
        expression
            .evaluate(&props(&[("a", "2"), ("b", "z")]))
            .is_err()
    );
    let expression = compile("x = 1 OR a = 2 OR b > 1").unwrap();
    assert_eq!(
        expression
            .evaluate(&props(&[("a", "2"), ("b", "z")]))
            .unwrap(),
        Value::Bool(true)
    );
    assert_eq!(
        expression
            .evaluate(&props(&[("a", "3"), ("b", "0")]))
            .unwrap(),
        Value::Null
    );
}

#[test]
fn overlong_text_is_refused() {
    let long = format!("a = '{}'", "x".repeat(crate::filter::MAX_EXPRESSION_BYTES));
    match compile(&long) {
        Err(FilterError::Invalid(text)) => assert!(text.contains("longer than"), "{text}"),
        other => panic!("expected a length error, got {other:?}"),
    }
}

#[test]
fn error_positions() {
    match compile("a > 5 AND b ! 1") {
        Err(FilterError::UnexpectedChar { found, position }) => {
            assert_eq!((found, position), ('!', 12));
        }
        other => panic!("unexpected {other:?}"),
    }
    match compile("a > ") {
        Err(FilterError::UnexpectedToken { found, .. }) => {
            assert_eq!(found, "end of expression")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn evaluation_errors_are_reported() {
    let expression = compile("a > 5").unwrap();
    assert!(matches!(
        expression.evaluate(&props(&[("a", "x")])),
        Err(EvalError::NotANumber { .. })
    ));
    assert_eq!(
        expression.evaluate(&props(&[])).unwrap(),
        Value::Null,
        "missing property"
    );
}
