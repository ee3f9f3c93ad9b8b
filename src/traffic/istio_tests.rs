//! Tests of [`apply_virtualservice`]: weights, header routes at the front, what stays as the
//! user wrote it, idempotence, errors, and every result against the real VirtualService CRD.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::traffic::schema_check::{Crd, assert_valid};
use crate::traffic::testing::{any_targets, cond, route, target};

const STABLE: &str = "web-stable";
const CANARY: &str = "web-canary";

/// A schema-valid VirtualService: a foreign route, `primary` and `secondary` (both weighted,
/// the Services named by different host forms), a route naming the Services in another
/// namespace.
fn virtualservice() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "3"},
        "spec": {
            "hosts": ["web.example.com"], "gateways": ["istio-system/gw"],
            "http": [
                {"name": "health", "match": [{"uri": {"exact": "/healthz"}}],
                 "route": [{"destination": {"host": STABLE}}]},
                {"name": "primary",
                 "match": [{"uri": {"prefix": "/"}, "headers": {"x-tenant": {"exact": "a"}}},
                           {"uri": {"prefix": "/api"}, "queryParams": {"v": {"exact": "2"}}}],
                 "rewrite": {"uri": "/"}, "timeout": "10s", "retries": {"attempts": 3},
                 "mirror": {"host": "mirror"},
                 "route": [
                    {"destination": {"host": "web-stable.ns.svc.cluster.local", "port": {"number": 80}}, "weight": 90},
                    {"destination": {"host": CANARY, "port": {"number": 80}}, "weight": 10,
                     "headers": {"response": {"set": {"x-canary": "1"}}}}]},
                {"name": "secondary", "route": [
                    {"destination": {"host": "web-stable.ns"}, "weight": 50},
                    {"destination": {"host": "web-canary.ns.svc"}, "weight": 50}]},
                {"name": "elsewhere", "route": [
                    {"destination": {"host": "web-stable.other"}, "weight": 50},
                    {"destination": {"host": "web-canary.other.svc.cluster.local"}, "weight": 50}]},
            ],
        },
    })
}

/// [`virtualservice`] with fields no schema knows.
fn with_unknown_fields() -> Value {
    let mut vs = virtualservice();
    vs["spec"]["futureSpec"] = json!([1]);
    vs["spec"]["http"][1]["futureRoute"] = json!("kept");
    vs["spec"]["http"][1]["match"][0]["futureMatch"] = json!({"a": 1});
    vs["spec"]["http"][1]["route"][0]["futureDestination"] = json!(true);
    vs
}

fn apply(vs: &mut Value, routes: &[&str], t: &TrafficTarget) -> Result<bool, RouterError> {
    let routes: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
    let changed = apply_virtualservice(vs, "ns", STABLE, CANARY, &routes, t)?;
    assert_valid(Crd::VirtualService, vs);
    Ok(changed)
}

fn unusable(vs: &Value, routes: &[&str], t: &TrafficTarget) -> String {
    let routes: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
    let mut edited = vs.clone();
    match apply_virtualservice(&mut edited, "ns", STABLE, CANARY, &routes, t) {
        Err(RouterError::Unusable(m)) => {
            assert_eq!(&edited, vs, "an error leaves the VirtualService as it was");
            m
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
}

/// `vs` without zdr's routes and without the weights of `primary` and `secondary`.
fn user_part(vs: &Value) -> Value {
    let mut vs = vs.clone();
    let http = vs["spec"]["http"].as_array_mut().unwrap();
    http.retain(|h| !h["name"].as_str().unwrap_or("").starts_with("zdr-"));
    for h in http
        .iter_mut()
        .filter(|h| h["name"] == "primary" || h["name"] == "secondary")
    {
        for d in h["route"].as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("weight");
        }
    }
    vs
}

fn names(vs: &Value) -> Vec<String> {
    let http = vs["spec"]["http"].as_array().unwrap();
    http.iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

fn weights(vs: &Value, name: &str) -> Vec<Value> {
    let http = vs["spec"]["http"].as_array().unwrap();
    let h = http.iter().find(|h| h["name"] == name).unwrap();
    h["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["weight"].clone())
        .collect()
}

#[test]
fn without_listed_routes_every_route_naming_both_is_weighted() {
    let mut vs = with_unknown_fields();
    let t = target(30, vec![]);
    assert!(apply_virtualservice(&mut vs, "ns", STABLE, CANARY, &[], &t).unwrap());
    assert_eq!(weights(&vs, "primary"), [json!(70), json!(30)]);
    assert_eq!(weights(&vs, "secondary"), [json!(70), json!(30)]);
    assert_eq!(
        weights(&vs, "elsewhere"),
        [json!(50), json!(50)],
        "another namespace"
    );
    assert_eq!(user_part(&vs), user_part(&with_unknown_fields()));
    assert!(apply(&mut virtualservice(), &[], &t).unwrap());
}

#[test]
fn listed_routes_alone_are_weighted() {
    let mut vs = virtualservice();
    apply(&mut vs, &["secondary"], &target(25, vec![])).unwrap();
    assert_eq!(weights(&vs, "secondary"), [json!(75), json!(25)]);
    assert_eq!(weights(&vs, "primary"), [json!(90), json!(10)]);
}

#[test]
fn a_host_names_a_service_in_four_forms_only() {
    let d = |host: &str| json!({"destination": {"host": host}});
    for host in [
        "web-stable",
        "web-stable.ns",
        "web-stable.ns.svc",
        "web-stable.ns.svc.cluster.local",
    ] {
        assert!(names_host(&d(host), STABLE, "ns"), "{host}");
    }
    for host in [
        "web-stable.other",
        "web-stable.ns.svc.cluster",
        "web-stable-2",
        "web",
        "web-stable.ns.cluster.local",
    ] {
        assert!(!names_host(&d(host), STABLE, "ns"), "{host}");
    }
    assert!(!names_host(&json!({"destination": {}}), STABLE, "ns"));
}

#[test]
fn a_header_route_goes_first_and_copies_the_weighted_route() {
    let mut vs = virtualservice();
    let beta = route(
        "beta",
        vec![
            cond("X-Canary", "exact", "always"),
            cond("X-User", "prefix", "a.b"),
        ],
    );
    assert!(apply(&mut vs, &[], &target(10, vec![beta])).unwrap());
    assert_eq!(
        names(&vs),
        ["zdr-beta", "health", "primary", "secondary", "elsewhere"]
    );
    let primary = &virtualservice()["spec"]["http"][1];
    let added = json!({"x-canary": {"exact": "always"}, "x-user": {"prefix": "a.b"}});
    let mut m0 = primary["match"][0].clone();
    m0["headers"]
        .as_object_mut()
        .unwrap()
        .extend(added.as_object().unwrap().clone());
    let mut m1 = primary["match"][1].clone();
    m1["headers"] = added;
    let mut canary = primary["route"][1].clone();
    canary["weight"] = json!(100);
    assert_eq!(
        vs["spec"]["http"][0],
        json!({"name": "zdr-beta", "match": [m0, m1], "route": [canary],
               "rewrite": primary["rewrite"], "timeout": "10s", "retries": primary["retries"]})
    );
}

#[test]
fn a_weighted_route_without_match_gives_one_match_of_headers() {
    let mut vs = virtualservice();
    let t = target(0, vec![route("r", vec![cond("X-R", "regex", "^(a|b)$")])]);
    apply(&mut vs, &["secondary"], &t).unwrap();
    assert_eq!(
        vs["spec"]["http"][0],
        json!({"name": "zdr-r", "match": [{"headers": {"x-r": {"regex": "^(a|b)$"}}}],
               "route": [{"destination": {"host": "web-canary.ns.svc"}, "weight": 100}]})
    );
}

#[test]
fn several_routes_sorted_removed_and_restored() {
    let mut vs = virtualservice();
    let z = route("z", vec![cond("X-Z", "exact", "1")]);
    let a = route("a", vec![cond("X-A", "exact", "1")]);
    apply(&mut vs, &[], &target(20, vec![z.clone(), a])).unwrap();
    assert_eq!(names(&vs)[..3], ["zdr-a", "zdr-z", "health"]);
    apply(&mut vs, &[], &target(20, vec![z, route("a", vec![])])).unwrap();
    assert_eq!(names(&vs)[..2], ["zdr-z", "health"]);
    let once = vs.clone();
    assert!(
        !apply(
            &mut vs,
            &[],
            &target(20, vec![route("z", vec![cond("X-Z", "exact", "1")])])
        )
        .unwrap()
    );
    assert_eq!(vs, once);
    apply(&mut vs, &[], &target(0, vec![])).unwrap();
    let mut restored = virtualservice();
    for h in [1, 2] {
        restored["spec"]["http"][h]["route"][0]["weight"] = json!(100);
        restored["spec"]["http"][h]["route"][1]["weight"] = json!(0);
    }
    assert_eq!(vs, restored);
}

#[test]
fn errors_name_the_object_and_field() {
    let vs = virtualservice();
    let t = target(10, vec![route("x", vec![cond("X-Tenant", "exact", "b")])]);
    assert_eq!(
        unusable(&vs, &["primary", "nope"], &t),
        "VirtualService ns/web: has no http route named nope (listed in trafficRouting.istio.virtualService.routes)"
    );
    assert_eq!(
        unusable(&vs, &["health"], &t),
        "VirtualService ns/web: http route health (spec.http[0]) has no destinations naming both Service web-stable and Service web-canary"
    );
    assert!(
        unusable(&vs, &[], &t).contains("spec.http[1].match[0] already matches header x-tenant")
    );
    let meta = json!({"name": "web"});
    let cases = [
        (
            json!({"metadata": meta}),
            "VirtualService ns/web has no http route whose destinations name both Service web-stable and Service web-canary",
        ),
        (
            json!({"metadata": meta, "spec": {"http": {}}}),
            "VirtualService ns/web: spec.http is not a list",
        ),
        (
            json!({"metadata": meta, "spec": {"http": [[]]}}),
            "VirtualService ns/web: spec.http[0] is not an object",
        ),
        (
            json!({"metadata": meta, "spec": {"http": [{"route": {}}]}}),
            "VirtualService ns/web: spec.http[0].route is not a list",
        ),
        (
            json!({"metadata": meta, "spec": {"http": [{"route": [{"destination": {"host": STABLE}}, {"destination": {"host": "web-canary.ns"}}, {"destination": {"host": CANARY}}]}]}}),
            "VirtualService ns/web: spec.http[0].route[1] and spec.http[0].route[2] both name Service web-canary: zdr sets one weight per Service",
        ),
        (
            json!({"metadata": meta, "spec": {"http": [{"match": [{"headers": []}], "route": [{"destination": {"host": STABLE}}, {"destination": {"host": CANARY}}]}]}}),
            "VirtualService ns/web: spec.http[0].match[0].headers is not an object",
        ),
    ];
    let t = target(10, vec![route("x", vec![cond("X", "exact", "1")])]);
    for (object, want) in cases {
        assert_eq!(unusable(&object, &[], &t), want);
    }
    let mut neither = route("x", vec![cond("X-A", "exact", "1")]);
    neither.matches[0].header_value.prefix = Some("2".into());
    assert!(
        unusable(&vs, &[], &target(1, vec![neither]))
            .contains("must set exactly one of exact, prefix, regex")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any sequence of targets: weights set, zdr routes as asked (sorted, at the front), the
    /// user's part unchanged, every result valid, a repeat writes nothing, and `{0, []}`
    /// restores the user's object but for the weights.
    #[test]
    fn any_sequence_keeps_the_users_object(targets in any_targets(), listed in any::<bool>()) {
        let routes: Vec<String> = if listed { vec!["secondary".into()] } else { vec![] };
        let mut vs = with_unknown_fields();
        let mut valid = virtualservice();
        for t in &targets {
            apply_virtualservice(&mut vs, "ns", STABLE, CANARY, &routes, t).unwrap();
            let as_str: Vec<&str> = routes.iter().map(String::as_str).collect();
            apply(&mut valid, &as_str, t).unwrap();
            prop_assert!(!apply_virtualservice(&mut vs, "ns", STABLE, CANARY, &routes, t).unwrap());
            let original = user_part(&with_unknown_fields());
            prop_assert_eq!(user_part(&vs), original);
            prop_assert_eq!(weights(&vs, "secondary"), [json!(100 - t.weight), json!(t.weight)]);
            let mut want: Vec<String> = t.routes.iter().map(|r| format!("zdr-{}", r.name)).collect();
            want.sort();
            prop_assert_eq!(&names(&vs)[..want.len()], &want[..]);
            prop_assert_eq!(&names(&vs)[want.len()], "health");
        }
        apply_virtualservice(&mut vs, "ns", STABLE, CANARY, &routes, &target(0, vec![])).unwrap();
        let mut restored = with_unknown_fields();
        let weighted: &[usize] = if listed { &[2] } else { &[1, 2] };
        for &h in weighted {
            restored["spec"]["http"][h]["route"][0]["weight"] = json!(100);
            restored["spec"]["http"][h]["route"][1]["weight"] = json!(0);
        }
        prop_assert_eq!(vs, restored);
    }
}
