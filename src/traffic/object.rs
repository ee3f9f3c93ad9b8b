//! What the router builders share: naming the object in errors, typed access to its JSON that
//! turns a wrong shape into [`RouterError::Unusable`], and the header routes a target asks for.

use serde_json::{Map, Value, json};

use super::{RouterError, TrafficTarget};
use crate::crd::HeaderRoute;

/// Prefix of the names of the rules (HTTPRoute) and routes (VirtualService) zdr owns.
pub const ZDR_PREFIX: &str = "zdr-";

/// The router object being edited, for error messages: `HTTPRoute ns/web`.
pub(crate) struct Subject<'a> {
    kind: &'static str,
    namespace: &'a str,
    name: String,
}

impl<'a> Subject<'a> {
    /// Names `object` (its `metadata.name`, or `<unnamed>`).
    pub(crate) fn of(kind: &'static str, namespace: &'a str, object: &Value) -> Self {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        Self {
            kind,
            namespace,
            name,
        }
    }

    /// `<kind> <ns>/<name>`.
    pub(crate) fn label(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// `Unusable("<kind> <ns>/<name>: <message>")`.
    pub(crate) fn unusable(&self, message: impl std::fmt::Display) -> RouterError {
        RouterError::Unusable(format!("{}: {message}", self.label()))
    }

    /// The error for `field` (a path such as `spec.rules[2].backendRefs`) of the wrong type.
    pub(crate) fn not_a(&self, field: &str, what: &str) -> RouterError {
        self.unusable(format!("{field} is not {what}"))
    }

    /// `object[key]` as a list: `None` when absent, an error when not a list.
    pub(crate) fn list_mut<'v>(
        &self,
        object: &'v mut Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<Option<&'v mut Vec<Value>>, RouterError> {
        match object.get_mut(key) {
            None => Ok(None),
            Some(Value::Array(list)) => Ok(Some(list)),
            Some(_) => Err(self.not_a(field, "a list")),
        }
    }

    /// `spec.<key>` of the object as a list: `None` when absent, an error when the object,
    /// its `spec` or the field has the wrong type.
    pub(crate) fn spec_list_mut<'v>(
        &self,
        object: &'v mut Value,
        key: &str,
    ) -> Result<Option<&'v mut Vec<Value>>, RouterError> {
        let object = object
            .as_object_mut()
            .ok_or_else(|| self.unusable("the object is not a JSON object"))?;
        let spec = match object.get_mut("spec") {
            None => return Ok(None),
            Some(Value::Object(spec)) => spec,
            Some(_) => return Err(self.not_a("spec", "an object")),
        };
        self.list_mut(spec, key, &format!("spec.{key}"))
    }

    /// `value` as an object, or an error naming `field`.
    pub(crate) fn object<'v>(
        &self,
        value: &'v Value,
        field: &str,
    ) -> Result<&'v Map<String, Value>, RouterError> {
        value
            .as_object()
            .ok_or_else(|| self.not_a(field, "an object"))
    }

    /// `value` as a mutable object, or an error naming `field`.
    pub(crate) fn object_mut<'v>(
        &self,
        value: &'v mut Value,
        field: &str,
    ) -> Result<&'v mut Map<String, Value>, RouterError> {
        value
            .as_object_mut()
            .ok_or_else(|| self.not_a(field, "an object"))
    }

    /// The matches of a rule or route to copy into header routes: the list under `key` (each an
    /// object), or one empty match when absent or empty.
    pub(crate) fn matches_of(
        &self,
        rule: &Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<Vec<Map<String, Value>>, RouterError> {
        let list = match rule.get(key) {
            None => return Ok(vec![Map::new()]),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(self.not_a(&format!("{field}.{key}"), "a list")),
        };
        if list.is_empty() {
            return Ok(vec![Map::new()]);
        }
        list.iter()
            .enumerate()
            .map(|(j, m)| Ok(self.object(m, &format!("{field}.{key}[{j}]"))?.clone()))
            .collect()
    }
}

/// Whether a rule or route is one zdr owns (its `name` starts with `zdr-`).
pub(crate) fn is_zdr(rule: &Value) -> bool {
    rule.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(ZDR_PREFIX))
}

/// The weight checked to be a percentage.
pub(crate) fn percent(target: &TrafficTarget) -> Result<i32, RouterError> {
    if (0..=100).contains(&target.weight) {
        Ok(target.weight)
    } else {
        Err(RouterError::Unusable(format!(
            "canary weight {} is outside 0-100",
            target.weight
        )))
    }
}

/// The header routes to install, sorted by name: those with at least one match (a route with
/// none is a removal). Two routes of one name, or a route matching one header name twice
/// (header names are case-insensitive), are errors.
pub(crate) fn header_routes(target: &TrafficTarget) -> Result<Vec<&HeaderRoute>, RouterError> {
    let mut routes: Vec<&HeaderRoute> = target
        .routes
        .iter()
        .filter(|r| !r.matches.is_empty())
        .collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = routes.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(RouterError::Unusable(format!(
            "header route {} is given twice",
            w[0].name
        )));
    }
    for route in &routes {
        for (i, m) in route.matches.iter().enumerate() {
            let again = route.matches[..i]
                .iter()
                .any(|o| o.header_name.eq_ignore_ascii_case(&m.header_name));
            if again {
                return Err(RouterError::Unusable(format!(
                    "header route {} matches header {} twice",
                    route.name, m.header_name
                )));
            }
        }
    }
    Ok(routes)
}

/// Index of the single entry of `list` that `names` accepts: `None` when no entry does, an
/// error when several do (zdr sets one weight per Service) or an entry is not an object.
fn single(
    subject: &Subject<'_>,
    list: &[Value],
    field: &str,
    service: &str,
    names: impl Fn(&Value) -> bool,
) -> Result<Option<usize>, RouterError> {
    if let Some(j) = list.iter().position(|v| !v.is_object()) {
        return Err(subject.not_a(&format!("{field}[{j}]"), "an object"));
    }
    let mut found = list.iter().enumerate().filter(|(_, v)| names(v));
    let first = found.next().map(|(i, _)| i);
    if let Some((j, _)) = found.next() {
        return Err(subject.unusable(format!(
            "{field}[{}] and {field}[{j}] both name Service {service}: zdr sets one weight per Service",
            first.unwrap_or_default()
        )));
    }
    Ok(first)
}

/// The two Services of a split, and how an entry of the router's lists (a backendRef, a route
/// destination) names a Service.
pub(crate) struct Split<'a> {
    /// The router object's namespace.
    pub ns: &'a str,
    /// The stable Service.
    pub stable: &'a str,
    /// The canary Service.
    pub canary: &'a str,
    /// Whether `entry` names Service `service` of namespace `ns`: `(entry, service, ns)`.
    pub names: fn(&Value, &str, &str) -> bool,
}

impl Split<'_> {
    /// In `entry` (at `field`, e.g. `spec.rules[2]`): when its list `key` names both Services,
    /// sets their weights (`100 - weight` and `weight`) and returns the canary's entry.
    pub(crate) fn set_weights(
        &self,
        subject: &Subject<'_>,
        entry: &mut Value,
        field: &str,
        key: &str,
        weight: i32,
    ) -> Result<Option<Value>, RouterError> {
        let entry = subject.object_mut(entry, field)?;
        let field = format!("{field}.{key}");
        let Some(list) = subject.list_mut(entry, key, &field)? else {
            return Ok(None);
        };
        let (names, ns) = (self.names, self.ns);
        let s = single(subject, list, &field, self.stable, |v| {
            names(v, self.stable, ns)
        })?;
        let c = single(subject, list, &field, self.canary, |v| {
            names(v, self.canary, ns)
        })?;
        let (Some(s), Some(c)) = (s, c) else {
            return Ok(None);
        };
        list[s]["weight"] = json!(100 - weight);
        list[c]["weight"] = json!(weight);
        Ok(Some(list[c].clone()))
    }
}

/// Stores `edited` in `object` when it differs; whether it did.
pub(crate) fn store_if_changed(object: &mut Value, edited: Value) -> bool {
    if *object == edited {
        return false;
    }
    *object = edited;
    true
}
