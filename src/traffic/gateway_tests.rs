//! Tests of [`apply_httproute`]: weights, header rules, what stays as the user wrote it,
//! idempotence, errors, and every result against the real HTTPRoute CRDs.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::traffic::schema_check::{Crd, assert_valid};
use crate::traffic::testing::{any_targets, cond, route, target};

const STABLE: &str = "web-stable";
const CANARY: &str = "web-canary";

/// A schema-valid HTTPRoute: a foreign rule first, the weighted rule `main` (with a third,
/// foreign backendRef, filters and timeouts), a rule naming the Services in another namespace.
fn httproute() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "https"}],
            "hostnames": ["web.example.com"],
            "rules": [
                {"name": "health", "matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
                 "backendRefs": [{"name": STABLE, "port": 80}]},
                {"name": "main",
                 "matches": [
                    {"path": {"type": "PathPrefix", "value": "/"}, "method": "GET",
                     "headers": [{"type": "Exact", "name": "X-Tenant", "value": "a"}]},
                    {"path": {"type": "PathPrefix", "value": "/api"},
                     "queryParams": [{"type": "Exact", "name": "v", "value": "2"}]}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"add": [{"name": "X-Via", "value": "gw"}]}}],
                 "timeouts": {"request": "10s"},
                 "backendRefs": [
                    {"name": STABLE, "port": 80, "weight": 90},
                    {"kind": "Service", "group": "", "name": CANARY, "port": 8080, "weight": 10,
                     "filters": [{"type": "ResponseHeaderModifier",
                                  "responseHeaderModifier": {"set": [{"name": "X-Canary", "value": "1"}]}}]},
                    {"name": "mirror", "port": 80, "weight": 0}]},
                {"name": "elsewhere", "backendRefs": [
                    {"name": STABLE, "namespace": "other", "port": 80},
                    {"name": CANARY, "namespace": "other", "port": 80}]},
            ],
        },
    })
}

/// [`httproute`] with fields no schema knows, at every level zdr edits or copies.
fn with_unknown_fields() -> Value {
    let mut r = httproute();
    r["spec"]["futureSpec"] = json!({"a": [1, 2]});
    let main = &mut r["spec"]["rules"][1];
    main["futureRule"] = json!("kept");
    main["matches"][0]["futureMatch"] = json!(true);
    main["backendRefs"][0]["futureRef"] = json!({"x": 1});
    main["backendRefs"][2]["weight"] = json!(7);
    r
}

/// Applies `t` to `r` and checks the result against both HTTPRoute channels.
fn apply(r: &mut Value, t: &TrafficTarget) -> Result<bool, RouterError> {
    let changed = apply_httproute(r, "ns", STABLE, CANARY, t)?;
    for crd in [Crd::HttpRouteStandard, Crd::HttpRouteExperimental] {
        assert_valid(crd, r);
    }
    Ok(changed)
}

fn unusable(r: &Value, t: &TrafficTarget) -> String {
    let mut edited = r.clone();
    match apply_httproute(&mut edited, "ns", STABLE, CANARY, t) {
        Err(RouterError::Unusable(m)) => {
            assert_eq!(&edited, r, "an error leaves the route as it was");
            m
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
}

/// `r` without zdr's rules and without the weights of backendRefs naming the two Services in
/// the route's namespace: what must equal the user's object whatever zdr applied.
fn user_part(r: &Value) -> Value {
    let mut r = r.clone();
    let rules = r["spec"]["rules"].as_array_mut().unwrap();
    rules.retain(|rule| !rule["name"].as_str().unwrap_or("").starts_with("zdr-"));
    for rule in rules {
        for b in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if (b["name"] == STABLE || b["name"] == CANARY) && b.get("namespace").is_none() {
                b.as_object_mut().unwrap().remove("weight");
            }
        }
    }
    r
}

fn rule_names(r: &Value) -> Vec<String> {
    let rules = r["spec"]["rules"].as_array().unwrap();
    rules
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn sets_the_two_weights_and_nothing_else() {
    let mut r = with_unknown_fields();
    assert!(apply_httproute(&mut r, "ns", STABLE, CANARY, &target(30, vec![])).unwrap());
    let refs = &r["spec"]["rules"][1]["backendRefs"];
    assert_eq!(
        (refs[0]["weight"].clone(), refs[1]["weight"].clone()),
        (json!(70), json!(30))
    );
    assert_eq!(
        refs[2]["weight"], 7,
        "a foreign backendRef keeps its weight"
    );
    assert_eq!(
        r["spec"]["rules"][2]["backendRefs"][0].get("weight"),
        None,
        "other namespace"
    );
    assert_eq!(user_part(&r), user_part(&with_unknown_fields()));
    let mut valid = httproute();
    assert!(apply(&mut valid, &target(30, vec![])).unwrap());
}

#[test]
fn a_header_rule_copies_the_weighted_rule_and_adds_the_headers() {
    let mut r = httproute();
    let beta = route(
        "beta",
        vec![
            cond("X-Canary", "exact", "always"),
            cond("x-user", "prefix", "a.b"),
        ],
    );
    assert!(apply(&mut r, &target(10, vec![beta])).unwrap());
    assert_eq!(rule_names(&r), ["health", "zdr-beta", "main", "elsewhere"]);
    let added = json!([
        {"type": "Exact", "name": "X-Canary", "value": "always"},
        {"type": "RegularExpression", "name": "x-user", "value": "^a\\.b"}]);
    let main = &httproute()["spec"]["rules"][1];
    let mut m0 = main["matches"][0].clone();
    m0["headers"]
        .as_array_mut()
        .unwrap()
        .extend(added.as_array().unwrap().clone());
    let mut m1 = main["matches"][1].clone();
    m1["headers"] = added;
    let mut backend = main["backendRefs"][1].clone();
    backend["weight"] = json!(1);
    assert_eq!(
        r["spec"]["rules"][1],
        json!({"name": "zdr-beta", "matches": [m0, m1], "backendRefs": [backend],
               "filters": main["filters"], "timeouts": main["timeouts"]})
    );
}

#[test]
fn a_weighted_rule_without_matches_gives_one_match_of_headers() {
    let mut r = httproute();
    let main = &mut r["spec"]["rules"][1];
    for k in ["matches", "filters", "timeouts"] {
        main.as_object_mut().unwrap().remove(k);
    }
    let t = target(
        0,
        vec![route("r", vec![cond("X-Canary", "regex", "^(a|b)$")])],
    );
    apply(&mut r, &t).unwrap();
    let zdr = &r["spec"]["rules"][1];
    assert_eq!(
        zdr["matches"],
        json!([{"headers": [{"type": "RegularExpression", "name": "X-Canary", "value": "^(a|b)$"}]}])
    );
    assert_eq!(
        zdr.as_object().unwrap().len(),
        3,
        "name, matches, backendRefs only: {zdr}"
    );
}

#[test]
fn several_routes_are_sorted_and_a_later_target_removes_one() {
    let mut r = httproute();
    let z = route("z", vec![cond("X-Z", "exact", "1")]);
    let a = route("a", vec![cond("X-A", "exact", "1")]);
    apply(&mut r, &target(20, vec![z.clone(), a])).unwrap();
    assert_eq!(
        rule_names(&r),
        ["health", "zdr-a", "zdr-z", "main", "elsewhere"]
    );
    // A route without matches is a removal, like a missing one.
    apply(&mut r, &target(20, vec![z, route("a", vec![])])).unwrap();
    assert_eq!(rule_names(&r), ["health", "zdr-z", "main", "elsewhere"]);
    apply(&mut r, &target(0, vec![])).unwrap();
    let mut restored = httproute();
    restored["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(100);
    restored["spec"]["rules"][1]["backendRefs"][1]["weight"] = json!(0);
    assert_eq!(r, restored);
}

#[test]
fn a_prefix_becomes_an_anchored_escaped_regex() {
    let mut r = httproute();
    apply(
        &mut r,
        &target(
            10,
            vec![route(
                "p",
                vec![cond("Authorization", "prefix", "Bearer a.b é")],
            )],
        ),
    )
    .unwrap();
    let value = &r["spec"]["rules"][1]["matches"][1]["headers"][0];
    assert_eq!(
        value,
        &json!({"type": "RegularExpression", "name": "Authorization", "value": "^Bearer\\x{20}a\\.b\\x{20}\\x{e9}"})
    );
}

#[test]
fn applying_the_same_target_again_changes_nothing() {
    let mut r = httproute();
    let t = target(50, vec![route("b", vec![cond("X-B", "prefix", "x")])]);
    assert!(apply(&mut r, &t).unwrap());
    let once = r.clone();
    assert!(!apply(&mut r, &t).unwrap());
    assert_eq!(r, once);
}

#[test]
fn a_stale_zdr_rule_is_replaced_and_a_user_rule_elsewhere_is_not_moved() {
    let mut r = httproute();
    let rules = r["spec"]["rules"].as_array_mut().unwrap();
    rules.push(json!({"name": "zdr-old", "backendRefs": [{"name": CANARY, "port": 80}]}));
    apply(
        &mut r,
        &target(5, vec![route("new", vec![cond("X-N", "exact", "1")])]),
    )
    .unwrap();
    assert_eq!(rule_names(&r), ["health", "zdr-new", "main", "elsewhere"]);
}

#[test]
fn output_is_a_fixed_point_of_the_crd_defaults() {
    // The API server fills in defaults; a read-back must compare equal to what zdr wrote, or
    // every reconcile would write again.
    if !crate::traffic::schema_check::available() {
        return;
    }
    let schema = crate::traffic::schema_check::schema(Crd::HttpRouteStandard);
    let mut r = kube::core::cel::apply_defaults(schema, &httproute());
    let t = target(40, vec![route("d", vec![cond("X-D", "exact", "1")])]);
    apply(&mut r, &t).unwrap();
    let stored = kube::core::cel::apply_defaults(schema, &r);
    assert_eq!(stored, r);
    assert!(!apply(&mut r, &t).unwrap());
}

#[test]
fn errors_name_the_object_and_field() {
    let r = httproute();
    let none = "HTTPRoute ns/web has no rule whose backendRefs name both Service web-stable and Service nope";
    let mut only_stable = r.clone();
    assert_eq!(
        apply_httproute(&mut only_stable, "ns", STABLE, "nope", &target(1, vec![]))
            .unwrap_err()
            .to_string(),
        none
    );
    let cases = [
        (
            json!({"metadata": {"name": "web"}}),
            "HTTPRoute ns/web has no rule whose backendRefs name both Service web-stable and Service web-canary",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": []}),
            "HTTPRoute ns/web: spec is not an object",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": {}}}),
            "HTTPRoute ns/web: spec.rules is not a list",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": [7]}}),
            "HTTPRoute ns/web: spec.rules[0] is not an object",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": "x"}]}}),
            "HTTPRoute ns/web: spec.rules[0].backendRefs is not a list",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": [1]}]}}),
            "HTTPRoute ns/web: spec.rules[0].backendRefs[0] is not an object",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": [{"name": STABLE}, {"name": STABLE}, {"name": CANARY}]}]}}),
            "HTTPRoute ns/web: spec.rules[0].backendRefs[0] and spec.rules[0].backendRefs[1] both name Service web-stable: zdr sets one weight per Service",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"matches": {}, "backendRefs": [{"name": STABLE}, {"name": CANARY}]}]}}),
            "HTTPRoute ns/web: spec.rules[0].matches is not a list",
        ),
    ];
    let t = target(10, vec![route("x", vec![cond("X", "exact", "1")])]);
    for (object, want) in cases {
        assert_eq!(unusable(&object, &t), want);
    }
}

#[test]
fn targets_zdr_cannot_express_are_errors() {
    let r = httproute();
    let x = |kind: &str, v: &str| route("x", vec![cond("X-Tenant", kind, v)]);
    assert!(
        unusable(&r, &target(10, vec![x("exact", "b")]))
            .contains("spec.rules[1].matches[0] already matches header X-Tenant")
    );
    assert!(unusable(&r, &target(101, vec![])).contains("outside 0-100"));
    let dup = route(
        "x",
        vec![cond("X-A", "exact", "1"), cond("x-a", "exact", "2")],
    );
    assert!(
        unusable(&r, &target(10, vec![dup])).contains("header route x matches header x-a twice")
    );
    let twice = vec![
        route("x", vec![cond("X-A", "exact", "1")]),
        route("x", vec![cond("X-B", "exact", "1")]),
    ];
    assert!(unusable(&r, &target(10, twice)).contains("header route x is given twice"));
    let empty = route("x", vec![cond("X-A", "exact", "")]);
    assert!(unusable(&r, &target(10, vec![empty])).contains("Gateway API needs 1 to 4096"));
    let long = route("x", vec![cond("X-A", "prefix", &".".repeat(2049))]);
    assert!(unusable(&r, &target(10, vec![long])).contains("4099 characters long"));
    let spaced = route("x", vec![cond("X-A", "exact", "a  b")]);
    assert!(
        unusable(&r, &target(10, vec![spaced]))
            .contains(r#"value "a  b" is not a header value Gateway API accepts"#)
    );
    let mut neither = route("x", vec![cond("X-A", "exact", "1")]);
    neither.matches[0].header_value.regex = Some("2".into());
    assert!(
        unusable(&r, &target(10, vec![neither]))
            .contains("must set exactly one of exact, prefix, regex")
    );
}

#[test]
fn limits_of_the_crd_are_errors() {
    let one = |n: &str| route(n, vec![cond("X-A", "exact", "1")]);
    // 16 rules at most: 3 + 13 fit, 3 + 14 do not.
    let names: Vec<String> = (0..14).map(|i| format!("r{i:02}")).collect();
    let routes: Vec<_> = names.iter().map(|n| one(n)).collect();
    let mut r = httproute();
    apply(&mut r, &target(10, routes[..13].to_vec())).unwrap();
    assert!(
        unusable(&httproute(), &target(10, routes))
            .contains("17 rules; an HTTPRoute has at most 16")
    );
    // 16 headers per match at most.
    let mut r = httproute();
    let h = (0..15)
        .map(|i| cond(&format!("X-{i}"), "exact", "1"))
        .collect();
    apply(&mut r, &target(10, vec![route("h", h)])).unwrap();
    let h = (0..16)
        .map(|i| cond(&format!("X-{i}"), "exact", "1"))
        .collect();
    assert!(
        unusable(&httproute(), &target(10, vec![route("h", h)]))
            .contains("would match 17 headers; a match has at most 16")
    );
    // 128 matches over all rules, 64 in one rule.
    let mut r = httproute();
    let path = |i: usize| json!({"path": {"type": "Exact", "value": format!("/p{i}")}});
    r["spec"]["rules"][1]["matches"] = (0..60).map(path).collect();
    r["spec"]["rules"][0]["matches"] = (0..4).map(path).collect();
    apply(&mut r, &target(10, vec![one("a")])).unwrap();
    assert!(
        unusable(&r, &target(10, vec![one("a"), one("b")]))
            .contains("would make 185 matches over all rules; an HTTPRoute has at most 128")
    );
    let mut r = httproute();
    r["spec"]["rules"][1]["matches"] = (0..65).map(path).collect();
    assert!(
        unusable(&r, &target(10, vec![one("a")])).contains("has 65 matches; a rule has at most 64")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any sequence of targets: weights set, zdr rules as asked (sorted, before the weighted
    /// rule), the user's part unchanged, every result valid, a repeat writes nothing, and a
    /// final `{0, []}` restores the user's object but for the two weights.
    #[test]
    fn any_sequence_keeps_the_users_object(targets in any_targets()) {
        let mut r = with_unknown_fields();
        let mut valid = httproute();
        for t in &targets {
            apply_httproute(&mut r, "ns", STABLE, CANARY, t).unwrap();
            apply(&mut valid, t).unwrap();
            prop_assert!(!apply_httproute(&mut r, "ns", STABLE, CANARY, t).unwrap());
            prop_assert_eq!(user_part(&r), user_part(&with_unknown_fields()));
            let mut names: Vec<String> = t.routes.iter().map(|r| format!("zdr-{}", r.name)).collect();
            names.sort();
            let at = 1 + names.len();
            let refs = &r["spec"]["rules"][at]["backendRefs"];
            prop_assert_eq!(&refs[0]["weight"], &json!(100 - t.weight));
            prop_assert_eq!(&refs[1]["weight"], &json!(t.weight));
            let mut want = vec!["health".to_string()];
            want.extend(names);
            want.extend(["main".to_string(), "elsewhere".to_string()]);
            prop_assert_eq!(rule_names(&r), want);
        }
        apply_httproute(&mut r, "ns", STABLE, CANARY, &target(0, vec![])).unwrap();
        let mut restored = with_unknown_fields();
        restored["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(100);
        restored["spec"]["rules"][1]["backendRefs"][1]["weight"] = json!(0);
        prop_assert_eq!(r, restored);
    }

    /// `^` + the escaped prefix matches exactly the strings that start with the prefix.
    #[test]
    fn an_escaped_prefix_matches_itself_literally(prefix in "\\PC{0,12}", rest in "\\PC{0,4}", other in "\\PC{0,16}") {
        let re = regex::Regex::new(&format!("^{}", escape_re2(&prefix))).unwrap();
        let longer = format!("{prefix}{rest}");
        prop_assert!(re.is_match(&longer));
        let value = format!("^{}", escape_re2(&prefix));
        prop_assert!(valid_header_value(&value), "{:?}", value);
        prop_assert_eq!(re.is_match(&other), other.starts_with(&prefix));
    }
}
