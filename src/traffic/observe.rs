//! What a router object carries now, read back for the controller's decision: the canary's
//! share of the weighted traffic and the names of zdr's header routes. The controller trusts
//! this over its own status, which a crash between a router write and a status write leaves
//! behind.

use serde_json::Value;

use super::gateway::names_backend;
use super::istio::names_host;
use super::object::{ZDR_PREFIX, is_zdr};

/// The traffic a router object carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Percent of the weighted traffic the canary Service gets, rounded up (the larger
    /// exposure is the safe reading); 0 when no entry names both Services.
    pub weight: i32,
    /// Names of zdr's header routes (without the `zdr-` prefix), sorted.
    pub routes: Vec<String>,
}

/// The canary's percent of `stable + canary` weights, rounded up.
fn share(stable: i64, canary: i64) -> i32 {
    let (s, c) = (stable.max(0), canary.max(0));
    if s + c == 0 {
        return 0;
    }
    ((100 * c + s + c - 1) / (s + c)) as i32
}

/// zdr's header route names in `entries` (rules or http routes).
fn zdr_names(entries: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| is_zdr(e))
        .filter_map(|e| {
            e.get("name")?
                .as_str()?
                .strip_prefix(ZDR_PREFIX)
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// An HTTPRoute's traffic: the first rule (not zdr's) whose backendRefs name both Services.
/// A backendRef without a weight has the CRD default of 1.
pub fn observe_httproute(route: &Value, ns: &str, stable: &str, canary: &str) -> Observed {
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let weight_of = |r: &Value| r.get("weight").and_then(Value::as_i64).unwrap_or(1);
    let weight = rules
        .iter()
        .filter(|r| !is_zdr(r))
        .find_map(|r| {
            let refs = r.get("backendRefs")?.as_array()?;
            let s = refs.iter().find(|x| names_backend(x, stable, ns))?;
            let c = refs.iter().find(|x| names_backend(x, canary, ns))?;
            Some(share(weight_of(s), weight_of(c)))
        })
        .unwrap_or(0);
    Observed {
        weight,
        routes: zdr_names(&rules),
    }
}

/// A VirtualService's traffic: the first listed http route (any, when `routes` is empty) whose
/// destinations name both Services. A destination without a weight gets the share Istio gives
/// it: all of it when alone, else 0.
pub fn observe_virtualservice(
    vs: &Value,
    ns: &str,
    stable: &str,
    canary: &str,
    routes: &[String],
) -> Observed {
    let http = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let listed = |e: &Value| {
        routes.is_empty()
            || e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| routes.iter().any(|r| r == n))
    };
    let weight = http
        .iter()
        .filter(|e| !is_zdr(e) && listed(e))
        .find_map(|e| {
            let dests = e.get("route")?.as_array()?;
            let alone = i64::from(dests.len() == 1) * 100;
            let weight_of = |d: &Value| d.get("weight").and_then(Value::as_i64).unwrap_or(alone);
            let s = dests.iter().find(|d| names_host(d, stable, ns))?;
            let c = dests.iter().find(|d| names_host(d, canary, ns))?;
            Some(share(weight_of(s), weight_of(c)))
        })
        .unwrap_or(0);
    Observed {
        weight,
        routes: zdr_names(&http),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::gateway::apply_httproute;
    use crate::traffic::istio::apply_virtualservice;
    use crate::traffic::testing::{cond, route, target};
    use serde_json::json;

    #[test]
    fn what_apply_wrote_is_what_observe_reads() {
        let mut r = json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"rules": [
            {"backendRefs": [{"name": "other", "port": 80}]},
            {"backendRefs": [{"name": "s", "port": 80, "weight": 100}, {"name": "c", "port": 80, "weight": 0}]}
        ]}});
        assert_eq!(observe_httproute(&r, "ns", "s", "c"), Observed::default());
        let t = target(
            30,
            vec![route("beta", vec![cond("X-Canary", "exact", "1")])],
        );
        apply_httproute(&mut r, "ns", "s", "c", &t).unwrap();
        let seen = observe_httproute(&r, "ns", "s", "c");
        assert_eq!(
            seen,
            Observed {
                weight: 30,
                routes: vec!["beta".into()]
            }
        );

        let mut vs = json!({"metadata": {"name": "vs", "namespace": "ns"}, "spec": {"http": [
            {"name": "primary", "route": [{"destination": {"host": "s"}, "weight": 100},
                                          {"destination": {"host": "c.ns.svc.cluster.local"}, "weight": 0}]}
        ]}});
        apply_virtualservice(&mut vs, "ns", "s", "c", &[], &t).unwrap();
        let seen = observe_virtualservice(&vs, "ns", "s", "c", &["primary".into()]);
        assert_eq!(
            seen,
            Observed {
                weight: 30,
                routes: vec!["beta".into()]
            }
        );
    }

    #[test]
    fn defaults_and_uneven_weights_read_as_the_larger_canary_share() {
        let r = json!({"spec": {"rules": [{"backendRefs": [{"name": "s"}, {"name": "c"}]}]}});
        assert_eq!(observe_httproute(&r, "ns", "s", "c").weight, 50);
        let r = json!({"spec": {"rules": [{"backendRefs": [{"name": "s", "weight": 2}, {"name": "c", "weight": 1}]}]}});
        assert_eq!(observe_httproute(&r, "ns", "s", "c").weight, 34);
        assert_eq!(share(0, 0), 0);
        assert_eq!(share(0, 5), 100);
    }
}
