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
            "steps": [{"setWeight": 10}, {"pause": {"duration": "2m"}},
                      {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}}],
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
fn negative_replicas_are_rejected_by_the_schema() {
    let crd = serde_json::to_value(ZeroDowntimeRollout::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["minimum"], json!(0.0));
    assert_eq!(spec["properties"]["replicas"]["default"], json!(1));
    let sel = &spec["properties"]["selector"]["properties"];
    assert_eq!(sel["matchLabels"]["maxProperties"], json!(64));
    assert_eq!(sel["matchExpressions"]["maxItems"], json!(32));
}
