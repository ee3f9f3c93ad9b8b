//! Istio VirtualService (networking.istio.io/v1) as a canary router: a pure function over the
//! object's JSON that sets the weights of the stable and canary destinations of the weighted
//! `http` routes and keeps zdr's header routes (named `zdr-<route name>`, at the front of
//! `spec.http`, since Istio takes the first route that matches) in step with a
//! [`TrafficTarget`]. Every other route, destination and field the user wrote stays as written.

use serde_json::{Map, Value, json};

use super::object::{Split, Subject, ZDR_PREFIX, header_routes, is_zdr, percent, store_if_changed};
use super::{RouterError, TrafficTarget};
use crate::crd::{HeaderMatch, HeaderRoute};

/// Fields of the first weighted route that header routes copy, so that a request sent to the
/// canary by header is rewritten, timed and retried as the weighted route would.
const COPIED: [&str; 5] = ["headers", "rewrite", "timeout", "retries", "corsPolicy"];

/// Makes the VirtualService `vs` (in namespace `ns`) send `target.weight` percent of the traffic
/// of its weighted `http` routes to Service `canary` and the rest to `stable`, and requests
/// matching `target.routes` to `canary`. Returns whether it changed anything; on an error `vs`
/// is left as it was.
///
/// The weighted routes are the `http` routes named in `routes` (each must exist and name both
/// Services), or, when `routes` is empty, every `http` route whose destinations name both. A
/// destination names Service `svc` when its `host` is `svc`, `svc.<ns>`, `svc.<ns>.svc` or
/// `svc.<ns>.svc.cluster.local`. Each header route becomes an `http` route named `zdr-<name>`
/// at the front of `spec.http` (ordered by name): its `match` is that of the first weighted
/// route (or one empty match) with the header conditions added (header names lower-cased, as
/// Istio wants them), its only destination that route's canary destination with weight 100,
/// and it carries that route's `headers`, `rewrite`, `timeout`, `retries` and `corsPolicy`.
/// Every other `zdr-` route is removed.
pub fn apply_virtualservice(
    vs: &mut Value,
    ns: &str,
    stable: &str,
    canary: &str,
    routes: &[String],
    target: &TrafficTarget,
) -> Result<bool, RouterError> {
    let subject = Subject::of("VirtualService", ns, vs);
    let weight = percent(target)?;
    let wanted = header_routes(target)?;
    let no_route = || {
        RouterError::Unusable(format!(
            "{} has no http route whose destinations name both Service {stable} and Service {canary}",
            subject.label()
        ))
    };
    let split = Split {
        ns,
        stable,
        canary,
        names: names_host,
    };
    let mut edited = vs.clone();
    let http = subject
        .spec_list_mut(&mut edited, "http")?
        .ok_or_else(no_route)?;
    let mut first = None;
    let mut seen = Vec::new();
    for (i, entry) in http.iter_mut().enumerate() {
        if is_zdr(entry) {
            continue;
        }
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let listed = name.as_ref().is_some_and(|n| routes.contains(n));
        if !routes.is_empty() && !listed {
            continue;
        }
        let field = format!("spec.http[{i}]");
        let destination = split.set_weights(&subject, entry, &field, "route", weight)?;
        match (destination, listed) {
            (Some(d), _) => {
                first.get_or_insert((i, d));
            }
            (None, true) => {
                return Err(subject.unusable(format!(
                    "http route {} (spec.http[{i}]) has no destinations naming both Service {stable} and Service {canary}",
                    name.unwrap_or_default()
                )));
            }
            (None, false) => {}
        }
        seen.extend(name);
    }
    if let Some(missing) = routes.iter().find(|r| !seen.contains(r)) {
        return Err(subject.unusable(format!(
            "has no http route named {missing} (listed in trafficRouting.istio.virtualService.routes)"
        )));
    }
    let (index, destination) = first.ok_or_else(no_route)?;
    let template = Template::of(&subject, &http[index], index, destination)?;
    let added = wanted
        .iter()
        .map(|r| template.route(&subject, r))
        .collect::<Result<Vec<_>, _>>()?;
    http.retain(|r| !is_zdr(r));
    http.splice(0..0, added);
    Ok(store_if_changed(vs, edited))
}

/// Whether route destination `d` (an element of `route[]`) names Service `service` of
/// namespace `ns`: its host is `service`, `service.ns`, `service.ns.svc` or
/// `service.ns.svc.cluster.local`.
pub(crate) fn names_host(d: &Value, service: &str, ns: &str) -> bool {
    let Some(host) = d.pointer("/destination/host").and_then(Value::as_str) else {
        return false;
    };
    let Some(rest) = host.strip_prefix(service) else {
        return false;
    };
    rest.is_empty()
        || rest == format!(".{ns}")
        || rest == format!(".{ns}.svc")
        || rest == format!(".{ns}.svc.cluster.local")
}

/// What the header routes copy from the first weighted route.
struct Template {
    /// `spec.http[i]` of that route, for errors.
    field: String,
    matches: Vec<Map<String, Value>>,
    destination: Value,
    copied: Map<String, Value>,
}

impl Template {
    fn of(
        subject: &Subject<'_>,
        entry: &Value,
        i: usize,
        mut destination: Value,
    ) -> Result<Self, RouterError> {
        let field = format!("spec.http[{i}]");
        let entry = subject.object(entry, &field)?;
        let matches = subject.matches_of(entry, "match", &field)?;
        destination["weight"] = json!(100);
        let copied = COPIED
            .into_iter()
            .filter_map(|k| entry.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(Self {
            field,
            matches,
            destination,
            copied,
        })
    }

    /// The http route `zdr-<name>` for header route `route`.
    fn route(&self, subject: &Subject<'_>, route: &HeaderRoute) -> Result<Value, RouterError> {
        let added = route
            .matches
            .iter()
            .map(|m| condition(subject, route, m))
            .collect::<Result<Vec<_>, _>>()?;
        let mut matches = Vec::with_capacity(self.matches.len());
        for (j, m) in self.matches.iter().enumerate() {
            let field = format!("{}.match[{j}]", self.field);
            let mut m = m.clone();
            let headers = match m.entry("headers").or_insert_with(|| json!({})) {
                Value::Object(h) => h,
                _ => return Err(subject.not_a(&format!("{field}.headers"), "an object")),
            };
            for (key, value) in &added {
                if headers.keys().any(|k| k.eq_ignore_ascii_case(key)) {
                    return Err(subject.unusable(format!(
                        "header route {}: {field} already matches header {key}; a header route can only add headers the route does not match",
                        route.name
                    )));
                }
                headers.insert(key.clone(), value.clone());
            }
            matches.push(Value::Object(m));
        }
        let mut entry = self.copied.clone();
        entry.insert("name".into(), json!(format!("{ZDR_PREFIX}{}", route.name)));
        entry.insert("match".into(), Value::Array(matches));
        entry.insert("route".into(), json!([self.destination]));
        Ok(Value::Object(entry))
    }
}

/// The lower-cased header name and StringMatch for `m`.
fn condition(
    subject: &Subject<'_>,
    route: &HeaderRoute,
    m: &HeaderMatch,
) -> Result<(String, Value), RouterError> {
    let v = &m.header_value;
    let string_match = match (&v.exact, &v.prefix, &v.regex) {
        (Some(exact), None, None) => json!({"exact": exact}),
        (None, Some(prefix), None) => json!({"prefix": prefix}),
        (None, None, Some(regex)) => json!({"regex": regex}),
        _ => {
            return Err(subject.unusable(format!(
                "header route {}: header {} must set exactly one of exact, prefix, regex",
                route.name, m.header_name
            )));
        }
    };
    Ok((m.header_name.to_ascii_lowercase(), string_match))
}

#[cfg(test)]
#[path = "istio_tests.rs"]
mod tests;
