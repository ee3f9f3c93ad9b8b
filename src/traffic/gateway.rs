//! Gateway API HTTPRoute (gateway.networking.k8s.io/v1) as a canary router: a pure function over
//! the object's JSON that sets the weights of the stable and canary backendRefs and keeps zdr's
//! header rules (named `zdr-<route name>`) in step with a [`TrafficTarget`]. Every other rule,
//! backendRef, filter and field the user wrote, those zdr does not model included, stays as
//! written.
//!
//! Gateway API has no prefix match for header values: a `prefix` header match becomes a
//! `RegularExpression` match on `^` and the prefix escaped for RE2 ([`escape_re2`];
//! RegularExpression header matching is "implementation-specific" support in Gateway API).
//! Values are held to the experimental channel's header value pattern, the stricter of the
//! two channels ([`valid_header_value`]), so that one object suits both.

use serde_json::{Map, Value, json};

use super::object::{Split, Subject, ZDR_PREFIX, header_routes, is_zdr, percent, store_if_changed};
use super::{RouterError, TrafficTarget};
use crate::crd::{HeaderMatch, HeaderRoute};

/// At most this many rules in an HTTPRoute (`spec.rules` maxItems).
pub const MAX_RULES: usize = 16;
/// At most this many matches in one rule (`spec.rules[].matches` maxItems).
pub const MAX_MATCHES: usize = 64;
/// At most this many matches over all rules (the CEL rule on `spec.rules`).
pub const MAX_TOTAL_MATCHES: usize = 128;
/// At most this many header matches in one match (`matches[].headers` maxItems).
pub const MAX_HEADERS: usize = 16;
/// The longest header value to match (`headers[].value` maxLength).
pub const MAX_VALUE_LEN: usize = 4096;

/// Makes the HTTPRoute `route` (in namespace `ns`) send `target.weight` percent of the traffic of
/// every rule whose backendRefs name both Services to Service `canary` and the rest to `stable`,
/// and requests matching `target.routes` to `canary`. Returns whether it changed anything; on an
/// error `route` is left as it was.
///
/// Weighted rules are those whose backendRefs name both Services (`kind` absent or `Service`,
/// `group` absent or empty, `namespace` absent or `ns`); only the two weights change in them.
/// Each header route becomes a rule named `zdr-<name>`, inserted before the first weighted rule
/// in name order (Gateway API picks among matching rules by specificity, not position, so the
/// place only keeps the output readable and deterministic). Its matches are those of the first
/// weighted rule (or one empty match) with the route's header matches added; its only
/// backendRef is that rule's canary backendRef with weight 1 (the CRD default, written out so
/// that a read-back compares equal; the split's weight, possibly 0, must not apply here); it
/// carries that rule's `filters` and `timeouts`. Every other `zdr-` rule is removed.
pub fn apply_httproute(
    route: &mut Value,
    ns: &str,
    stable: &str,
    canary: &str,
    target: &TrafficTarget,
) -> Result<bool, RouterError> {
    let subject = Subject::of("HTTPRoute", ns, route);
    let weight = percent(target)?;
    let wanted = header_routes(target)?;
    let no_rule = || {
        RouterError::Unusable(format!(
            "{} has no rule whose backendRefs name both Service {stable} and Service {canary}",
            subject.label()
        ))
    };
    let split = Split {
        ns,
        stable,
        canary,
        names: names_backend,
    };
    let mut edited = route.clone();
    let rules = subject
        .spec_list_mut(&mut edited, "rules")?
        .ok_or_else(no_rule)?;
    // (index in `rules`, index among the rules that stay, the canary backendRef)
    let mut first = None;
    let mut kept = 0;
    for (i, rule) in rules.iter_mut().enumerate() {
        if is_zdr(rule) {
            continue;
        }
        let field = format!("spec.rules[{i}]");
        if let Some(backend) = split.set_weights(&subject, rule, &field, "backendRefs", weight)? {
            first.get_or_insert((i, kept, backend));
        }
        kept += 1;
    }
    let (index, at, backend) = first.ok_or_else(no_rule)?;
    let template = Template::of(&subject, &rules[index], index, backend)?;
    let added = wanted
        .iter()
        .map(|r| template.rule(&subject, r))
        .collect::<Result<Vec<_>, _>>()?;
    rules.retain(|r| !is_zdr(r));
    rules.splice(at..at, added);
    check_totals(&subject, rules, wanted.len())?;
    Ok(store_if_changed(route, edited))
}

/// Whether backendRef `r` names Service `service` of namespace `ns` (`kind` absent or
/// `Service`, `group` absent or empty, `namespace` absent or `ns`).
pub(crate) fn names_backend(r: &Value, service: &str, ns: &str) -> bool {
    let is = |key: &str, want: &str| r.get(key).is_none_or(|v| v == want);
    r.get("name").and_then(Value::as_str) == Some(service)
        && is("kind", "Service")
        && is("group", "")
        && is("namespace", ns)
}

/// What the header rules copy from the first weighted rule.
struct Template {
    /// `spec.rules[i]` of that rule, for errors.
    field: String,
    matches: Vec<Map<String, Value>>,
    backend: Value,
    /// Its `filters` and `timeouts`, when present.
    copied: Map<String, Value>,
}

impl Template {
    fn of(
        subject: &Subject<'_>,
        rule: &Value,
        i: usize,
        mut backend: Value,
    ) -> Result<Self, RouterError> {
        let field = format!("spec.rules[{i}]");
        let rule = subject.object(rule, &field)?;
        let matches = subject.matches_of(rule, "matches", &field)?;
        backend["weight"] = json!(1);
        let copied = ["filters", "timeouts"]
            .into_iter()
            .filter_map(|k| rule.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(Self {
            field,
            matches,
            backend,
            copied,
        })
    }

    /// The rule `zdr-<name>` for header route `route`.
    fn rule(&self, subject: &Subject<'_>, route: &HeaderRoute) -> Result<Value, RouterError> {
        let added = route
            .matches
            .iter()
            .map(|m| header(subject, route, m))
            .collect::<Result<Vec<_>, _>>()?;
        if self.matches.len() > MAX_MATCHES {
            return Err(subject.unusable(format!(
                "header route {}: {} has {} matches; a rule has at most {MAX_MATCHES} (matches maxItems)",
                route.name,
                self.field,
                self.matches.len()
            )));
        }
        let mut matches = Vec::with_capacity(self.matches.len());
        for (j, m) in self.matches.iter().enumerate() {
            let field = format!("{}.matches[{j}]", self.field);
            let mut m = m.clone();
            let headers = match m.entry("headers").or_insert_with(|| json!([])) {
                Value::Array(h) => h,
                _ => return Err(subject.not_a(&format!("{field}.headers"), "a list")),
            };
            for (h, hm) in added.iter().zip(&route.matches) {
                if headers.iter().any(|o| same_header(o, &hm.header_name)) {
                    return Err(subject.unusable(format!(
                        "header route {}: {field} already matches header {}; a header route can only add headers the rule does not match",
                        route.name, hm.header_name
                    )));
                }
                headers.push(h.clone());
            }
            if headers.len() > MAX_HEADERS {
                return Err(subject.unusable(format!(
                    "header route {}: {field} would match {} headers; a match has at most {MAX_HEADERS} (headers maxItems)",
                    route.name,
                    headers.len()
                )));
            }
            matches.push(Value::Object(m));
        }
        let mut rule = self.copied.clone();
        rule.insert("name".into(), json!(format!("{ZDR_PREFIX}{}", route.name)));
        rule.insert("matches".into(), Value::Array(matches));
        rule.insert("backendRefs".into(), json!([self.backend]));
        Ok(Value::Object(rule))
    }
}

/// Whether header match `h` is on header `name` (names are case-insensitive).
fn same_header(h: &Value, name: &str) -> bool {
    h.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
}

/// The HTTPHeaderMatch for `m`.
fn header(
    subject: &Subject<'_>,
    route: &HeaderRoute,
    m: &HeaderMatch,
) -> Result<Value, RouterError> {
    let v = &m.header_value;
    let (kind, value) = match (&v.exact, &v.prefix, &v.regex) {
        (Some(exact), None, None) => ("Exact", exact.clone()),
        (None, Some(prefix), None) => ("RegularExpression", format!("^{}", escape_re2(prefix))),
        (None, None, Some(regex)) => ("RegularExpression", regex.clone()),
        _ => {
            return Err(subject.unusable(format!(
                "header route {}: header {} must set exactly one of exact, prefix, regex",
                route.name, m.header_name
            )));
        }
    };
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(subject.unusable(format!(
            "header route {}: header {}: the value to match is {} characters long; Gateway API needs 1 to {MAX_VALUE_LEN} (headers[].value)",
            route.name,
            m.header_name,
            value.len()
        )));
    }
    if !valid_header_value(&value) {
        return Err(subject.unusable(format!(
            "header route {}: header {}: value {value:?} is not a header value Gateway API accepts: printable ASCII, words separated by one space or tab, none at either end",
            route.name, m.header_name
        )));
    }
    Ok(json!({"name": m.header_name, "type": kind, "value": value}))
}

/// `text` as an RE2 expression that matches it literally: metacharacters backslash-escaped, and
/// every character outside printable ASCII (space and tab too) written `\x{..}`, so that the
/// result is a valid Gateway API header value (see [`valid_header_value`]).
pub fn escape_re2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// Whether `value` is a header value the experimental channel accepts (`^[!-~]+([\t ]?[!-~]+)*$`:
/// printable ASCII, words separated by one space or tab, none at either end). The standard
/// channel accepts more, but such values cannot be matched reliably anyway (proxies trim the
/// white space around header values).
pub fn valid_header_value(value: &str) -> bool {
    let blank = |c: char| c == ' ' || c == '\t';
    !value.is_empty()
        && value.chars().all(|c| c.is_ascii_graphic() || blank(c))
        && !value.starts_with(blank)
        && !value.ends_with(blank)
        && !value.contains("  ")
        && !value.contains("\t\t")
        && !value.contains(" \t")
        && !value.contains("\t ")
}

/// The limits over the whole route: the number of rules and of matches.
fn check_totals(subject: &Subject<'_>, rules: &[Value], added: usize) -> Result<(), RouterError> {
    if rules.len() > MAX_RULES {
        return Err(subject.unusable(format!(
            "{added} header routes would make {} rules; an HTTPRoute has at most {MAX_RULES} (spec.rules maxItems)",
            rules.len()
        )));
    }
    // An absent `matches` defaults to one match.
    let total: usize = rules
        .iter()
        .map(|r| {
            r.get("matches")
                .and_then(Value::as_array)
                .map_or(1, Vec::len)
        })
        .sum();
    if total > MAX_TOTAL_MATCHES {
        return Err(subject.unusable(format!(
            "{added} header routes would make {total} matches over all rules; an HTTPRoute has at most {MAX_TOTAL_MATCHES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
