//! The checks one by one: each structural rule on a small schema, the kinds of document, the
//! metadata checks, and every shipped example passing (a checker that refuses valid specs would
//! make `plan` useless).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::structural::check;
use super::*;

fn errors(schema: Value, value: Value) -> Vec<String> {
    let mut e = Vec::new();
    check(&schema, &value, "spec", &mut e);
    e
}

#[test]
fn each_structural_rule_names_the_field() {
    let obj = |props: Value| json!({"type": "object", "properties": props});
    assert_eq!(
        errors(obj(json!({"a": {"type": "integer"}})), json!({"a": "x"})),
        ["spec.a: Invalid value: \"string\": must be of type integer"]
    );
    assert_eq!(
        errors(obj(json!({})), json!({"b": 1})),
        ["unknown field \"spec.b\""]
    );
    let preserve = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    assert!(errors(preserve, json!({"b": 1})).is_empty());
    let mut req = obj(json!({"a": {"type": "string"}}));
    req["required"] = json!(["a"]);
    assert_eq!(errors(req, json!({})), ["spec.a: Required value"]);
    assert_eq!(
        errors(json!({"type": "string", "enum": ["x", "y"]}), json!("z")),
        ["spec: Unsupported value: \"z\": supported values: \"x\", \"y\""]
    );
    assert_eq!(
        errors(json!({"type": "array", "minItems": 1}), json!([])),
        ["spec: Invalid value: 0: should have at least 1 items"]
    );
    assert_eq!(
        errors(json!({"type": "integer", "minimum": 0}), json!(-1)),
        ["spec: Invalid value: -1: should be greater than or equal to 0"]
    );
    assert_eq!(
        errors(json!({"type": "string", "pattern": "^[a-z]+$"}), json!("A")),
        ["spec: Invalid value: \"A\": should match '^[a-z]+$'"]
    );
    assert_eq!(
        errors(json!({"type": "string", "maxLength": 2}), json!("abc")),
        ["spec: Too long: may not be more than 2 bytes"]
    );
    let ios = json!({"x-kubernetes-int-or-string": true});
    assert!(errors(ios.clone(), json!("25%")).is_empty());
    assert_eq!(
        errors(ios, json!(true)),
        ["spec: Invalid value: \"boolean\": must be an integer or a string"]
    );
    let map_list = json!({"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                          "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]});
    assert_eq!(
        errors(map_list, json!([{"name": "a"}, {"name": "a"}])),
        ["spec[1]: Duplicate value: [\"a\"]"]
    );
    assert_eq!(
        errors(json!({"type": "widget"}), json!(1)),
        ["spec: schema type \"widget\" is unknown to this checker"]
    );
}

fn rollout() -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "web:1"}]}}}
    })
}

fn lines(doc: &Value) -> Vec<String> {
    match check_document(doc) {
        Checked::Rollout { problems, .. } => problems.into_iter().map(|p| p.line).collect(),
        Checked::Other(what) => vec![what],
    }
}

#[test]
fn documents_that_are_not_rollouts_say_what_they_are() {
    assert!(lines(&rollout()).is_empty(), "{:?}", lines(&rollout()));
    let mut beta = rollout();
    beta["apiVersion"] = json!("zdr.dev/v1beta1");
    assert_eq!(
        lines(&beta),
        [
            "is a zdr.dev/v1beta1 ZeroDowntimeRollout, not a zdr.dev/v1alpha1 ZeroDowntimeRollout; this build knows only v1alpha1"
        ]
    );
    assert_eq!(
        lines(&json!({"spec": {}})),
        [
            "is an object without apiVersion and kind, not a zdr.dev/v1alpha1 ZeroDowntimeRollout; see docs/migrating.md"
        ]
    );
    assert_eq!(
        lines(&json!([1])),
        [
            "is not an object but [1], not a zdr.dev/v1alpha1 ZeroDowntimeRollout; see docs/migrating.md"
        ]
    );
}

#[test]
fn metadata_needs_a_valid_name() {
    let mut doc = rollout();
    doc["metadata"] = json!({});
    assert_eq!(
        lines(&doc),
        ["metadata.name: Required value: name or generateName is required"]
    );
    doc["metadata"] = json!({"generateName": "web-"});
    assert!(lines(&doc).is_empty());
    doc["metadata"] = json!({"name": 3});
    assert_eq!(
        lines(&doc),
        ["metadata.name: Invalid value: \"integer\": must be of type string"]
    );
    doc["metadata"] = json!({"name": "web", "labelz": {}});
    assert_eq!(lines(&doc), ["unknown field \"metadata.labelz\""]);
}

#[test]
fn a_rule_failure_comes_with_its_field_and_the_controller_check_runs_only_on_admitted_specs() {
    let mut doc = rollout();
    doc["spec"]["strategy"] = json!({"rolling": {"maxSurge": 0}});
    let Checked::Rollout { problems, .. } = check_document(&doc) else {
        panic!("a rollout")
    };
    assert_eq!(
        problems,
        [Problem {
            source: Source::Rule,
            line: "spec.strategy.rolling: Invalid value: maxSurge and maxUnavailable cannot both be zero: no pod could ever be replaced".into()
        }]
    );
    doc["spec"]["strategy"] = json!({"canary": {"stableService": "s", "canaryService": "c",
        "steps": [{"analysis": {}}]}});
    let Checked::Rollout { problems, .. } = check_document(&doc) else {
        panic!("a rollout")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].source, Source::Controller);
    assert!(
        problems[0]
            .line
            .starts_with("spec.strategy.canary.steps[0]: an analysis step needs spec.analysis"),
        "{problems:?}"
    );
}

#[test]
fn every_shipped_example_passes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        for doc in docs.iter().filter(|d| d["kind"] == KIND) {
            checked += 1;
            assert_eq!(lines(doc), Vec::<String>::new(), "{}", path.display());
        }
    }
    assert!(checked >= 4, "the examples were read: {checked}");
}

proptest! {
    #[test]
    fn names_follow_rfc_1123_subdomains(name in "[a-z0-9.\\-_A]{0,12}") {
        let label = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
        let re = regex::Regex::new(&format!("^{label}(\\.{label})*$")).unwrap();
        prop_assert_eq!(is_dns_subdomain(&name), re.is_match(&name));
    }
}
