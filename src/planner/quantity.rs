//! Int-or-percent arithmetic, rounded as a Deployment rounds it: surge up, unavailable down.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A maxSurge / maxUnavailable value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    /// Not an integer and not a percentage like `25%`.
    #[error("{field}: {value:?} is neither an integer nor a percentage like 25%")]
    Malformed { field: &'static str, value: String },
    /// Negative, or a percentage over 100%.
    #[error("{field}: {value:?} is out of range (0..=100% or a non-negative integer)")]
    OutOfRange { field: &'static str, value: String },
}

fn scaled(
    field: &'static str,
    v: &IntOrString,
    replicas: i32,
    round_up: bool,
) -> Result<i32, ScaleError> {
    match v {
        IntOrString::Int(i) if *i < 0 => Err(ScaleError::OutOfRange {
            field,
            value: i.to_string(),
        }),
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(num) = s.strip_suffix('%') else {
                return match s.parse::<i32>() {
                    Ok(i) if i >= 0 => Ok(i),
                    Ok(_) => Err(ScaleError::OutOfRange {
                        field,
                        value: s.clone(),
                    }),
                    Err(_) => Err(ScaleError::Malformed {
                        field,
                        value: s.clone(),
                    }),
                };
            };
            let pct: i64 = num.parse().map_err(|_| ScaleError::Malformed {
                field,
                value: s.clone(),
            })?;
            if !(0..=100).contains(&pct) {
                return Err(ScaleError::OutOfRange {
                    field,
                    value: s.clone(),
                });
            }
            let product = pct * i64::from(replicas.max(0));
            let v = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            Ok(v as i32)
        }
    }
}

/// Resolves maxSurge (rounded up) and maxUnavailable (rounded down) against `replicas`.
/// When both come out zero (possible only with percentages of few replicas), unavailable
/// becomes 1, as a Deployment does, so a rollout can always make progress.
pub fn resolve_surge_unavailable(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    replicas: i32,
) -> Result<(i32, i32), ScaleError> {
    let surge = scaled("maxSurge", max_surge, replicas, true)?;
    let mut unavailable = scaled("maxUnavailable", max_unavailable, replicas, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn rounds_like_a_deployment() {
        assert_eq!(
            resolve_surge_unavailable(&s("25%"), &s("25%"), 10),
            Ok((3, 2))
        );
        assert_eq!(
            resolve_surge_unavailable(&s("25%"), &IntOrString::Int(0), 6),
            Ok((2, 0))
        );
        assert_eq!(
            resolve_surge_unavailable(&s("100%"), &s("0%"), 7),
            Ok((7, 0))
        );
        assert_eq!(
            resolve_surge_unavailable(&IntOrString::Int(2), &s("3"), 7),
            Ok((2, 3))
        );
    }

    #[test]
    fn both_zero_becomes_one_unavailable() {
        assert_eq!(
            resolve_surge_unavailable(&s("10%"), &s("10%"), 0),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_surge_unavailable(&s("0%"), &s("30%"), 3),
            Ok((0, 1))
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(
            resolve_surge_unavailable(&s("101%"), &s("0"), 3),
            Err(ScaleError::OutOfRange {
                field: "maxSurge",
                ..
            })
        ));
        assert!(matches!(
            resolve_surge_unavailable(&s("1"), &s("x%"), 3),
            Err(ScaleError::Malformed {
                field: "maxUnavailable",
                ..
            })
        ));
        assert!(matches!(
            resolve_surge_unavailable(&IntOrString::Int(-1), &s("0"), 3),
            Err(ScaleError::OutOfRange { .. })
        ));
    }
}
