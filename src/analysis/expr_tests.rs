//! Tests of the condition language: examples from the docs, errors with columns, and
//! properties (a condition that does not parse never holds; evaluation never panics).

use proptest::prelude::*;

use super::*;

fn holds(src: &str, result: Value) -> Result<bool, String> {
    Expr::parse(src)
        .map_err(|e| format!("parse: {e}"))?
        .holds(&result)
        .map_err(|e| format!("eval: {e}"))
}

#[test]
fn documented_examples() {
    assert_eq!(holds("result < 0.01", Value::Num(0.004)), Ok(true));
    assert_eq!(holds("result < 0.01", Value::Num(0.2)), Ok(false));
    assert_eq!(holds("result < 0.01", Value::List(vec![0.004])), Ok(true));
    assert_eq!(
        holds("result[0] >= 0.95", Value::List(vec![0.97, 0.1])),
        Ok(true)
    );
    let l = Value::List(vec![0.1, 0.4]);
    assert_eq!(holds("all(result, {# < 0.5})", l.clone()), Ok(true));
    assert_eq!(holds("all(result, {# < 0.3})", l.clone()), Ok(false));
    assert_eq!(holds("any(result, {# < 0.3})", l.clone()), Ok(true));
    assert_eq!(
        holds("len(result) == 2 && max(result) <= 0.4", l.clone()),
        Ok(true)
    );
    assert_eq!(holds("sum(result) * 100 > 49.9", l.clone()), Ok(true));
    assert_eq!(holds("!(result > 1) || false", Value::Num(0.5)), Ok(true));
    assert_eq!(
        holds("not (result > 1) and true", Value::Num(2.0)),
        Ok(false)
    );
    assert_eq!(holds("isNaN(result)", Value::Num(f64::NAN)), Ok(true));
    assert_eq!(holds("-result < -1e-3", Value::Num(0.5)), Ok(true));
    assert_eq!(holds("abs(result - 1) < .1", Value::Num(0.95)), Ok(true));
    assert_eq!(holds("min(result) > 0", l), Ok(true));
}

#[test]
fn parse_errors_carry_the_column() {
    let e = Expr::parse("result < ").unwrap_err();
    assert_eq!(e.column, 10, "{e}");
    let e = Expr::parse("result = 1").unwrap_err();
    assert_eq!(e.column, 8);
    assert!(e.message.contains("=="), "{e}");
    let e = Expr::parse("results < 1").unwrap_err();
    assert_eq!(e.column, 1);
    assert!(e.message.contains("unknown name"), "{e}");
    let e = Expr::parse("# < 1").unwrap_err();
    assert!(e.message.contains("predicate"), "{e}");
    let e = Expr::parse("all(result)").unwrap_err();
    assert!(e.message.contains("2 argument"), "{e}");
    let e = Expr::parse("0 < result < 1").unwrap_err();
    assert!(e.message.contains("chain"), "{e}");
    assert!(Expr::parse("").is_err());
    assert!(Expr::parse("result < 0.01)").is_err());
    assert!(Expr::parse("result[-1] > 0").is_err());
    assert!(Expr::parse("result @ 1").is_err());
    let deep = format!("{}result{}", "(".repeat(100), ")".repeat(100));
    assert!(Expr::parse(&deep).unwrap_err().message.contains("deeply"));
    assert!(Expr::parse(&"!".repeat(5000)).is_err());
}

#[test]
fn evaluation_errors_are_errors_not_true() {
    let several = Value::List(vec![0.1, 0.2]);
    let e = holds("result < 1", several.clone()).unwrap_err();
    assert!(e.contains("2 values"), "{e}");
    assert!(
        holds("result[5] < 1", several)
            .unwrap_err()
            .contains("out of range")
    );
    assert!(
        holds("result + 1", Value::Num(1.0))
            .unwrap_err()
            .contains("not true or false")
    );
    assert!(holds("result && true", Value::Num(1.0)).is_err());
    assert!(holds("max(result) > 0", Value::List(vec![])).is_err());
}

#[test]
fn nan_never_satisfies_a_comparison() {
    for c in ["result < 0.01", "result >= 0.01", "result == NaN"] {
        assert_eq!(holds(c, Value::Num(f64::NAN)), Ok(false), "{c}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the input, parsing and evaluating never panic, and a condition that does not
    /// parse has no truth value at all.
    #[test]
    fn arbitrary_text_never_panics(src in "[ -~]{0,40}", v in proptest::num::f64::ANY) {
        match Expr::parse(&src) {
            Ok(e) => { let _ = e.holds(&Value::Num(v)); let _ = e.holds(&Value::List(vec![v, v])); }
            Err(e) => prop_assert!(e.column >= 1),
        }
    }

    /// Conditions built from the grammar's tokens: the same.
    #[test]
    fn token_soup_never_panics(
        toks in proptest::collection::vec(proptest::sample::select(vec![
            "result", "#", "(", ")", "[", "]", "{", "}", "0", "1", "0.5", "<", "<=", ">", "==",
            "&&", "||", "!", "+", "-", "*", "/", ",", "all", "any", "len", "isNaN", "true",
        ]), 0..16),
        l in proptest::collection::vec(-2.0f64..2.0, 0..4),
    ) {
        let src = toks.join(" ");
        if let Ok(e) = Expr::parse(&src) {
            let _ = e.holds(&Value::List(l));
        }
    }

    /// A threshold condition holds exactly when the comparison does.
    #[test]
    fn thresholds_agree_with_f64(v in -1e6f64..1e6, t in -1e6f64..1e6) {
        prop_assert_eq!(holds(&format!("result < {t}"), Value::Num(v)), Ok(v < t));
        prop_assert_eq!(holds(&format!("all(result, {{# >= {t}}})"), Value::List(vec![v, v + 1.0])), Ok(v >= t));
    }
}
