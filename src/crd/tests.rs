//! Tests of the generated CRD: drift against `crds/`, and the CEL admission rules evaluated
//! client-side with kube's CEL interpreter.

use super::*;
use kube::core::cel::validate_cel;
use serde_json::json;

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/zerodowntimerollouts.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == crd_yaml(),
        "crds/zerodowntimerollouts.yaml is stale: run `cargo run --bin crdgen > crds/zerodowntimerollouts.yaml`"
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = ZeroDowntimeRollout::crd();
    assert_eq!(crd.spec.group, "zdr.dev");
    assert_eq!(crd.spec.names.kind, "ZeroDowntimeRollout");
    assert_eq!(crd.spec.names.plural, "zerodowntimerollouts");
    assert_eq!(crd.spec.names.short_names, Some(vec!["zdr".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["all".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let cols: Vec<String> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        cols,
        [
            "DESIRED",
            "CURRENT",
            "UP-TO-DATE",
            "AVAILABLE",
            "PHASE",
            "STEP",
            "WEIGHT",
            "AGE"
        ]
    );
    let yaml = crd_yaml();
    assert!(yaml.contains("x-kubernetes-list-map-keys"));
    assert!(!yaml.contains("categories: []"));
}

fn rollout(spec: serde_json::Value) -> ZeroDowntimeRollout {
    serde_json::from_value(json!({
        "apiVersion": "zdr.dev/v1alpha1",
        "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }))
    .expect("test spec deserializes")
}

fn base() -> serde_json::Value {
    json!({
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]}
        }
    })
}

fn with(mut v: serde_json::Value, path: &[&str], value: serde_json::Value) -> serde_json::Value {
    let mut cur = &mut v;
    for p in &path[..path.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert(json!({}));
    }
    cur[path[path.len() - 1]] = value;
    v
}

fn rejected(spec: serde_json::Value, needle: &str) {
    let err = validate_cel(&rollout(spec)).expect_err("spec should be rejected");
    let text = format!("{err:?}");
    assert!(text.contains(needle), "expected {needle:?} in {text}");
}

#[test]
fn a_valid_spec_passes_every_rule() {
    validate_cel(&rollout(base())).expect("base spec is valid");
    let canary = with(
        base(),
        &["strategy", "canary"],
        json!({
            "stableService": "web-stable", "canaryService": "web-canary",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
            "steps": [{"setWeight": 10}, {"pause": {"duration": "2m"}},
                      {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}},
                      {"setHeaderRoute": {"name": "beta"}},
                      {"setCanaryScale": {"replicas": 2}}, {"setCanaryScale": {"matchTrafficWeight": true}}],
            "maxSurge": "100%", "maxUnavailable": 0
        }),
    );
    validate_cel(&rollout(canary)).expect("canary spec is valid");
    let expr = with(
        base(),
        &["selector"],
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]},
                                    {"key": "tier", "operator": "DoesNotExist"}]}),
    );
    validate_cel(&rollout(expr)).expect("expression selector matching the labels is valid");
}

#[test]
fn both_zero_is_rejected() {
    let s = with(
        base(),
        &["strategy", "rolling"],
        json!({"maxSurge": 0, "maxUnavailable": 0}),
    );
    rejected(s, "cannot both be zero");
    let s = with(
        base(),
        &["strategy", "rolling"],
        json!({"maxSurge": "0%", "maxUnavailable": "0%"}),
    );
    rejected(s, "cannot both be zero");
    // maxUnavailable defaults to 0, so maxSurge 0 alone is also both zero.
    let s = with(base(), &["strategy", "rolling"], json!({"maxSurge": 0}));
    rejected(s, "cannot both be zero");
    let ok = with(
        base(),
        &["strategy", "rolling"],
        json!({"maxSurge": 0, "maxUnavailable": 1}),
    );
    validate_cel(&rollout(ok)).expect("surge 0 with unavailable 1 is valid");
}

#[test]
fn percentages_over_100_are_rejected() {
    let s = with(
        base(),
        &["strategy", "rolling"],
        json!({"maxSurge": "101%"}),
    );
    rejected(s, "percentage between 0% and 100%");
    let s = with(
        base(),
        &["strategy", "rolling"],
        json!({"maxUnavailable": "abc"}),
    );
    rejected(s, "percentage between 0% and 100%");
}

#[test]
fn selector_must_match_template() {
    let s = with(
        base(),
        &["template", "metadata", "labels"],
        json!({"app": "other"}),
    );
    rejected(s, "matchLabels must match");
    let s = with(
        base(),
        &["selector"],
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}),
    );
    rejected(s, "matchExpressions must match");
    let s = with(base(), &["selector"], json!({}));
    rejected(s, "must not be empty");
}

#[test]
fn canary_needs_steps_and_single_action_steps() {
    let s = with(
        base(),
        &["strategy", "canary"],
        json!({"stableService": "s", "canaryService": "c", "steps": []}),
    );
    rejected(s, "at least one step");
    let s = with(
        base(),
        &["strategy", "canary"],
        json!({"stableService": "s", "canaryService": "c", "steps": [{"setWeight": 10, "pause": {}}]}),
    );
    rejected(s, "exactly one of setWeight");
    let s = with(
        with(
            base(),
            &["strategy", "canary"],
            json!({"stableService": "s", "canaryService": "c", "steps": [{"setWeight": 5}]}),
        ),
        &["strategy", "rolling"],
        json!({}),
    );
    rejected(s, "at most one of strategy.rolling and strategy.canary");
}

#[test]
fn canary_routing_rules() {
    let canary = |extra: serde_json::Value| {
        let mut c =
            json!({"stableService": "s", "canaryService": "c", "steps": [{"setWeight": 5}]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        with(base(), &["strategy", "canary"], c)
    };
    let header = json!([{"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "1"}}]}}]);
    rejected(
        canary(json!({"steps": header})),
        "setHeaderRoute needs strategy.canary.trafficRouting",
    );
    validate_cel(&rollout(canary(json!({"steps": header, "trafficRouting": {"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}}}))))
        .expect("a header route with Istio is valid");
    rejected(
        canary(json!({"trafficRouting": {}})),
        "exactly one of gatewayAPI, istio",
    );
    rejected(
        canary(
            json!({"trafficRouting": {"gatewayAPI": {"httpRoute": "r"}, "istio": {"virtualService": {"name": "vs"}}}}),
        ),
        "exactly one of gatewayAPI, istio",
    );
    rejected(
        canary(json!({"canaryService": "s"})),
        "two different Services",
    );
    rejected(
        canary(json!({"steps": [{"setCanaryScale": {}}]})),
        "exactly one of replicas, percent",
    );
    rejected(
        canary(json!({"steps": [{"setCanaryScale": {"replicas": 1, "percent": 10}}]})),
        "exactly one of replicas, percent",
    );
    rejected(
        canary(json!({"steps": [{"setCanaryScale": {"replicas": 1}, "setWeight": 3}]})),
        "exactly one of setWeight",
    );
}

#[test]
fn negative_replicas_are_rejected_by_the_schema() {
    let crd = serde_json::to_value(ZeroDowntimeRollout::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["minimum"], json!(0.0));
    assert_eq!(spec["properties"]["replicas"]["default"], json!(1));
    let sel = &spec["properties"]["selector"]["properties"];
    assert_eq!(sel["matchLabels"]["maxProperties"], json!(64));
    assert_eq!(sel["matchExpressions"]["maxItems"], json!(32));
}

/// The property names a CEL rule mentions (`self.a.b`, `e.key`, `has(self.x)`): what it may walk.
fn mentioned(rule: &str) -> std::collections::BTreeSet<String> {
    rule.split('.')
        .skip(1)
        .filter_map(|part| {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Collects the lists, maps and strings reachable from `node` through `names` that have no
/// maxItems / maxProperties / maxLength (or enum): what makes the API server's cost estimate of a
/// rule assume a 3 MiB request.
fn unbounded(
    node: &serde_json::Value,
    path: &str,
    names: &std::collections::BTreeSet<String>,
    out: &mut Vec<String>,
) {
    if node.get("x-kubernetes-int-or-string").is_some() {
        return; // an int or a short string; the rules only match it against an anchored regex
    }
    match node["type"].as_str() {
        Some("array") if node.get("maxItems").is_none() => out.push(format!("{path}: maxItems")),
        Some("string") if node.get("maxLength").is_none() && node.get("enum").is_none() => {
            out.push(format!("{path}: maxLength"))
        }
        Some("object")
            if node.get("additionalProperties").is_some()
                && node.get("maxProperties").is_none() =>
        {
            out.push(format!("{path}: maxProperties"))
        }
        _ => {}
    }
    if let Some(items) = node.get("items") {
        unbounded(items, &format!("{path}[]"), names, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        unbounded(values, &format!("{path}{{}}"), names, out);
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props.iter().filter(|(n, _)| names.contains(*n)) {
            unbounded(child, &format!("{path}.{name}"), names, out);
        }
    }
}

/// Every node that carries CEL rules, with its path.
fn rule_sites<'a>(
    node: &'a serde_json::Value,
    path: String,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    if node.get("x-kubernetes-validations").is_some() {
        out.push((path.clone(), node));
    }
    if let Some(items) = node.get("items") {
        rule_sites(items, format!("{path}[]"), out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        rule_sites(values, format!("{path}{{}}"), out);
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            rule_sites(child, format!("{path}.{name}"), out);
        }
    }
}

/// The API server estimates each rule's worst-case cost from the schema and refuses the CRD when
/// a rule walks a list, map or string without a bound (kube's client-side interpreter does not
/// estimate cost, so the rule tests above cannot see it). This checks the schema itself: whatever
/// a rule can reach through the property names it mentions must be bounded.
#[test]
fn every_cel_rule_walks_only_bounded_lists_maps_and_strings() {
    let crd = serde_json::to_value(ZeroDowntimeRollout::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut sites = Vec::new();
    rule_sites(root, String::new(), &mut sites);
    assert!(sites.len() >= 6, "the rules were found: {sites:?}");
    let mut problems = Vec::new();
    for (path, node) in sites {
        for rule in node["x-kubernetes-validations"].as_array().unwrap() {
            let rule = rule["rule"].as_str().unwrap();
            let mut missing = Vec::new();
            unbounded(node, &path, &mentioned(rule), &mut missing);
            if !missing.is_empty() {
                problems.push(format!(
                    "rule at {path} `{rule}` walks unbounded {missing:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_bound_check_sees_an_unbounded_label_map() {
    let mut crd = serde_json::to_value(ZeroDowntimeRollout::crd()).unwrap();
    let labels = crd.pointer_mut(
        "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/template/properties/metadata/properties/labels",
    ).expect("template labels in the schema");
    assert_eq!(labels["maxProperties"], json!(64));
    assert_eq!(labels["additionalProperties"]["maxLength"], json!(63));
    labels["additionalProperties"]
        .as_object_mut()
        .unwrap()
        .remove("maxLength");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut missing = Vec::new();
    unbounded(spec, ".spec", &mentioned(SELECTOR_RULE_PROBE), &mut missing);
    assert_eq!(missing, [".spec.template.metadata.labels{}: maxLength"]);
}

/// The property names of the selector/labels rule.
const SELECTOR_RULE_PROBE: &str =
    "self.selector.matchLabels.all(k, k in self.template.metadata.labels)";
