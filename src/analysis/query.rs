//! Placeholder rendering of PromQL templates: `{{revision}}`, `{{stableRevision}}`,
//! `{{namespace}}`, `{{name}}` (and `{{window}}` in SLO queries). An unknown or unclosed
//! placeholder is an error, so a typo never silently queries the wrong series.

use std::collections::BTreeMap;

/// Values of the placeholders of one rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    /// Update (canary) revision hash.
    pub revision: String,
    /// Stable revision hash (empty on a first rollout).
    pub stable_revision: String,
    /// Rollout namespace.
    pub namespace: String,
    /// Rollout name.
    pub name: String,
}

impl Vars {
    /// The placeholder table, plus `extra` (e.g. `window`).
    pub fn table<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        let mut m = BTreeMap::from([
            ("revision", self.revision.as_str()),
            ("stableRevision", self.stable_revision.as_str()),
            ("namespace", self.namespace.as_str()),
            ("name", self.name.as_str()),
        ]);
        m.extend(extra.iter().copied());
        m
    }
}

/// A template that cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{x}}` with no value for `x`.
    #[error("unknown placeholder {{{{{0}}}}} (known: {1})")]
    Unknown(String, String),
    /// `{{` without `}}`.
    #[error("unclosed placeholder at byte {0}")]
    Unclosed(usize),
}

/// Replaces every `{{ key }}` of `template` (spaces inside the braces allowed).
pub fn render(template: &str, vars: &BTreeMap<&str, &str>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed(offset + start))?;
        let key = after[..end].trim();
        let value = vars.get(key).ok_or_else(|| {
            TemplateError::Unknown(
                key.to_string(),
                vars.keys().copied().collect::<Vec<_>>().join(", "),
            )
        })?;
        out.push_str(value);
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            revision: "abc123".into(),
            stable_revision: "def456".into(),
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let v = vars();
        let q = render(
            r#"sum(rate(x{ns="{{namespace}}",r="{{ revision }}",s="{{stableRevision}}",n="{{name}}"}[{{window}}]))"#,
            &v.table(&[("window", "5m")]),
        );
        assert_eq!(
            q.unwrap(),
            r#"sum(rate(x{ns="shop",r="abc123",s="def456",n="web"}[5m]))"#
        );
        assert_eq!(render("up", &v.table(&[])).unwrap(), "up");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        let v = vars();
        let e = render("x{r=\"{{revison}}\"}", &v.table(&[])).unwrap_err();
        assert!(e.to_string().contains("{{revison}}"), "{e}");
        assert!(e.to_string().contains("revision"), "{e}");
        assert_eq!(
            render("x{{revision", &v.table(&[])).unwrap_err(),
            TemplateError::Unclosed(1)
        );
        assert!(render("[{{window}}]", &v.table(&[])).is_err());
    }
}
