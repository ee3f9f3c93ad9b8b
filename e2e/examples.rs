//! e2e: the API server itself accepts every example (OpenAPI schema, defaults and CEL rules,
//! within the CEL cost budget, which only a real API server enforces) and rejects an invalid
//! rollout with the CRD's message. Server-side dry run: nothing is persisted.

use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Error};
use serde_json::Value;
use zdr::crd::ZeroDowntimeRollout;

use crate::cluster::setup_api_only;

fn example_docs() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable example");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML example");
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        for d in docs
            .into_iter()
            .filter(|d| d["kind"] == "ZeroDowntimeRollout")
        {
            out.push((name.clone().unwrap_or_default(), d));
        }
    }
    assert!(out.len() >= 4, "the examples hold at least 4 rollouts");
    out
}

pub async fn the_api_server_accepts_every_example_and_rejects_both_zero() {
    let Some(env) = setup_api_only("examples").await else {
        return;
    };
    let ar = ApiResource::erase::<ZeroDowntimeRollout>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, &ar);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for (file, doc) in example_docs() {
        let obj: DynamicObject = serde_json::from_value(doc).expect("an object");
        if let Err(e) = api.create(&dry, &obj).await {
            panic!("the API server rejects examples/{file}: {e}");
        }
    }

    let (_, mut bad) = example_docs()
        .into_iter()
        .find(|(f, _)| f == "rolling.yaml")
        .expect("rolling.yaml");
    bad["spec"]["strategy"]["rolling"]["maxSurge"] = Value::from(0);
    bad["spec"]["strategy"]["rolling"]["maxUnavailable"] = Value::from("0%");
    let obj: DynamicObject = serde_json::from_value(bad).expect("an object");
    match api.create(&dry, &obj).await {
        Err(Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("cannot both be zero"),
                "the CRD's CEL message: {status:?}"
            );
        }
        other => panic!("maxSurge 0 with maxUnavailable 0% must be rejected, got {other:?}"),
    }
    env.teardown().await;
}
