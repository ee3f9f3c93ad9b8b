//! Tests of `examples/*.yaml`: every document deserializes into its Rust type without unknown
//! fields, every ZeroDowntimeRollout passes the CRD's CEL rules client-side, and each example
//! shows what its comments promise (waves, canary steps and routing, the hot-swap pod the
//! controller renders).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::cel::validate_cel;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zdr::crd::ZeroDowntimeRollout;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The documents of one example file, as JSON values.
fn docs(file: &str) -> Vec<Value> {
    let path = examples_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every key of `original` must survive a round trip through the typed value: serde ignores
/// unknown fields, so a misspelt or misplaced field would otherwise be silently dropped.
fn assert_no_unknown_fields(original: &Value, typed: &Value, path: &str) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                let child = format!("{path}.{k}");
                match t.get(k) {
                    Some(tv) => assert_no_unknown_fields(v, tv, &child),
                    None => panic!("unknown field {child}: it is not part of the type"),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            assert_eq!(o.len(), t.len(), "{path}: list length changed");
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                assert_no_unknown_fields(ov, tv, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(_) | Value::Array(_), _) => panic!("{path}: shape changed to {typed}"),
        _ => {}
    }
}

fn typed<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let obj: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} does not deserialize: {e}"));
    let back = serde_json::to_value(&obj).expect("serializes back");
    assert_no_unknown_fields(doc, &back, what);
    obj
}

/// The ZeroDowntimeRollouts of a file, each checked: typed, no unknown field, CEL rules pass.
fn rollouts(file: &str) -> Vec<ZeroDowntimeRollout> {
    let mut out = Vec::new();
    for (i, doc) in docs(file).iter().enumerate() {
        let what = format!("{file} document {i} ({})", doc["kind"]);
        match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
            (Some("zdr.dev/v1alpha1"), Some("ZeroDowntimeRollout")) => {
                let zdr: ZeroDowntimeRollout = typed(doc, &what);
                if let Err(e) = validate_cel(&zdr) {
                    panic!("{what} is rejected by the CRD's CEL rules: {e:?}");
                }
                out.push(zdr);
            }
            (Some("v1"), Some("Service")) => {
                let _: Service = typed(doc, &what);
            }
            (Some("gateway.networking.k8s.io/v1"), Some("HTTPRoute")) => {
                assert!(doc["metadata"]["name"].is_string(), "{what} has a name");
            }
            other => panic!("{what}: unexpected object {other:?}"),
        }
    }
    assert!(!out.is_empty(), "{file} holds no ZeroDowntimeRollout");
    out
}

fn single(file: &str) -> ZeroDowntimeRollout {
    let mut all = rollouts(file);
    assert_eq!(all.len(), 1, "{file}: one ZeroDowntimeRollout");
    all.remove(0)
}

fn app_image(zdr: &ZeroDowntimeRollout) -> String {
    let pod = zdr.spec.template.spec.as_ref().expect("pod spec");
    pod.containers[0].image.clone().expect("image")
}

#[test]
fn every_example_is_valid() {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    for expected in [
        "canary.yaml",
        "hotswap.yaml",
        "rolling-analysis.yaml",
        "rolling-v2.yaml",
        "rolling.yaml",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "examples/{expected} is missing"
        );
    }
    for f in &files {
        for zdr in rollouts(f) {
            let pod = zdr.spec.template.spec.as_ref().expect("pod spec");
            for c in &pod.containers {
                assert!(c.image.is_some(), "{f}: container {} has an image", c.name);
            }
        }
    }
}

#[test]
fn rolling_example_waves_and_its_v2_differ_only_by_image() {
    let v1 = single("rolling.yaml");
    assert_eq!(v1.spec.replicas, 6);
    assert!(v1.spec.min_ready_seconds > 0, "minReadySeconds is set");
    let rolling = v1.spec.strategy.rolling.as_ref().expect("strategy.rolling");
    assert_eq!(rolling.max_surge, IntOrString::String("25%".into()));
    assert_eq!(rolling.max_unavailable, IntOrString::Int(0));
    let pod = v1.spec.template.spec.as_ref().expect("pod spec");
    for c in &pod.containers {
        assert!(
            c.readiness_probe.is_some(),
            "{} needs a readiness probe",
            c.name
        );
    }

    let v2 = single("rolling-v2.yaml");
    assert_ne!(app_image(&v1), app_image(&v2), "v2 changes the image");
    assert_eq!(v1.metadata.name, v2.metadata.name, "same object");
    let mut v2_with_v1_image = v2.clone();
    if let Some(pod) = v2_with_v1_image.spec.template.spec.as_mut() {
        pod.containers[0].image = Some(app_image(&v1));
    }
    assert_eq!(v1.spec, v2_with_v1_image.spec, "only the image differs");
}

#[test]
fn canary_example_steps_routing_and_analysis() {
    let all = docs("canary.yaml");
    let zdr = single("canary.yaml");
    let canary = zdr.spec.strategy.canary.as_ref().expect("strategy.canary");
    assert_eq!(canary.steps.len(), 6);
    // The steps as written (the typed Duration would print `2m` back as `120s`).
    let zdr_doc = all
        .iter()
        .find(|d| d["kind"] == "ZeroDowntimeRollout")
        .expect("the rollout document");
    let steps = &zdr_doc["spec"]["strategy"]["canary"]["steps"];
    let shape: Vec<String> = steps
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            let (k, v) = s.as_object().and_then(|o| o.iter().next()).expect("a step");
            match k.as_str() {
                "setWeight" => format!("setWeight {v}"),
                "pause" => format!("pause {}", v["duration"].as_str().unwrap_or("-")),
                other => other.to_string(),
            }
        })
        .collect();
    assert_eq!(
        shape,
        [
            "setWeight 10",
            "setHeaderRoute",
            "analysis",
            "pause 2m",
            "setWeight 50",
            "pause -"
        ]
    );

    // The Services and HTTPRoute the rollout names are in the file, and the route splits
    // between exactly those two Services.
    let named = |kind: &str, name: &str| {
        all.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("canary.yaml has no {kind} {name}"))
    };
    named("Service", &canary.stable_service);
    named("Service", &canary.canary_service);
    let route_name = &canary
        .traffic_routing
        .as_ref()
        .and_then(|t| t.gateway_api.as_ref())
        .expect("gatewayAPI routing")
        .http_route;
    let route = named("HTTPRoute", route_name);
    let mut backends: Vec<String> = route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .expect("backendRefs")
        .iter()
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect();
    backends.sort();
    let mut services = vec![canary.stable_service.clone(), canary.canary_service.clone()];
    services.sort();
    assert_eq!(backends, services);

    let analysis = zdr.spec.analysis.as_ref().expect("spec.analysis");
    assert!(analysis.prometheus.address.starts_with("http"));
    let metric = analysis
        .metrics
        .iter()
        .find(|m| m.name == "error-rate")
        .expect("an error-rate metric");
    let query = metric.query.as_deref().expect("a query metric");
    assert!(query.contains("{{revision}}"), "{query}");
    zdr::analysis::validate(analysis).expect("the analysis validates");
    assert!(metric.success_condition.is_some() || metric.failure_condition.is_some());
}

#[test]
fn rolling_analysis_example_is_a_valid_analysis() {
    let zdr = single("rolling-analysis.yaml");
    assert!(zdr.spec.strategy.rolling.is_some());
    let analysis = zdr.spec.analysis.as_ref().expect("spec.analysis");
    zdr::analysis::validate(analysis).expect("the analysis validates");
    let names: Vec<&str> = analysis.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["error-rate", "availability"]);
    let slo = analysis.metrics[1].slo.as_ref().expect("an slo metric");
    assert!(slo.bad_query.contains("{{window}}") && slo.total_query.contains("{{window}}"));
    assert_eq!(analysis.consecutive_error_limit, 4);
}

#[test]
fn hotswap_example_renders_the_agent_sidecar() {
    use zdr::contract::pod::{AGENT_BIN, AGENT_CONTAINER, MOUNT_PATH, SLOT_B_CONTAINER};
    let zdr = single("hotswap.yaml");
    let hot = zdr
        .spec
        .strategy
        .hot_swap
        .as_ref()
        .expect("strategy.hotSwap");
    zdr::validate::validate(&zdr.spec).expect("the controller accepts the example");
    let agent = zdr::hotswap::AgentImage::new("ghcr.io/zdr-dev/zdr:0.1.0");
    let rendered = zdr::hotswap::render(&zdr.spec.template, hot, &agent, "r1")
        .expect("the example renders as a hot-swap pod");
    let pod = rendered.spec.as_ref().expect("pod spec");
    let app = pod
        .containers
        .iter()
        .find(|c| c.name == hot.container)
        .expect("hotSwap.container names an app container");
    let app_cmd = app.command.clone().unwrap_or_default();
    assert!(
        app_cmd.first().map(String::as_str) == Some(AGENT_BIN)
            && app_cmd.get(1).map(String::as_str) == Some("exec")
            && app_cmd.iter().any(|a| a == "--"),
        "the app starts through `zdr-agent exec … --`: {app_cmd:?}"
    );
    assert!(pod.containers.iter().any(|c| c.name == SLOT_B_CONTAINER));
    let sidecar = pod
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == AGENT_CONTAINER)
        .expect("a zdr-agent sidecar init container");
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    // The sidecar holds the port the app serves on.
    let args = sidecar.command.clone().unwrap_or_default();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .expect("sidecar --listen NAME=ADDR");
    let port: i32 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in --listen");
    assert!(
        app.ports.iter().flatten().any(|p| p.container_port == port),
        "the app declares the port the sidecar listens on ({port})"
    );
    // The agent's directory is shared by both.
    let mounts = |c: &k8s_openapi::api::core::v1::Container| -> Vec<String> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect()
    };
    assert!(mounts(sidecar).contains(&MOUNT_PATH.to_string()));
    assert!(mounts(app).contains(&MOUNT_PATH.to_string()));
}

#[test]
fn an_invalid_example_would_be_caught() {
    // The checks above bite: the rolling example with both bounds zero is rejected, and a
    // misspelt field is reported.
    let mut doc = docs("rolling.yaml").remove(0);
    doc["spec"]["strategy"]["rolling"]["maxSurge"] = Value::from(0);
    let zdr: ZeroDowntimeRollout = serde_json::from_value(doc.clone()).expect("still typed");
    assert!(validate_cel(&zdr).is_err(), "maxSurge 0 + maxUnavailable 0");

    doc["spec"]["strategy"]["rolling"]["maxSurge"] = Value::from("25%");
    doc["spec"]["minReadySecond"] = Value::from(5);
    let result = std::panic::catch_unwind(|| {
        let _: ZeroDowntimeRollout = typed(&doc, "misspelt");
    });
    assert!(result.is_err(), "an unknown field must be reported");
}
