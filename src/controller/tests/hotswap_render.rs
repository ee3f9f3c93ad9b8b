//! Pods of a `hotSwap` rollout against the mocked API server: every pod the controller creates
//! is the rendered hot-swap pod (docs/hotswap.md, "The rendered pod"), with the revision label,
//! owner reference and readiness gate added as for any pod; the agent image is the setting's.

use super::*;

/// The exact pod the controller creates for the rollout's template `app` container.
fn expected_pod(hash: &str) -> Value {
    let slot_env = |slot: &str| {
        json!([
            {"name": "PORT", "value": "8080"},
            {"name": "ZDR_SLOT", "value": slot},
            {"name": "ZDR_VERSION", "valueFrom": {"fieldRef": {
                "fieldPath": format!("metadata.annotations['zdr.dev/slot-{slot}-revision']")}}},
            {"name": "ZDR_ACTIVE_SLOT", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['zdr.dev/active-slot']"}}},
            {"name": "ZDR_SWAP_GENERATION", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['zdr.dev/swap-generation']"}}},
        ])
    };
    let command = json!([
        "/zdr/bin/zdr-agent",
        "exec",
        "--dir",
        "/zdr/run",
        "--",
        "/bin/web",
        "--port",
        "8080"
    ]);
    let mount = json!([{"mountPath": "/zdr", "name": "zdr-agent"}]);
    let ready = |slot: &str| {
        json!({"httpGet": {"path": format!("/slots/{slot}/ready"), "port": 9901},
               "periodSeconds": 1, "failureThreshold": 1})
    };
    let liveness = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 10});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": "ns",
            "labels": {"app": "web", "zdr.dev/revision": hash},
            "annotations": {"zdr.dev/active-slot": "a", "zdr.dev/swap-generation": "0",
                            "zdr.dev/slot-a-revision": hash, "zdr.dev/slot-b-revision": ""},
            "ownerReferences": [{"apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
                                 "name": "web", "uid": "zdr-uid", "controller": true}],
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "web:2", "command": command, "env": slot_env("a"),
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": ready("a"), "livenessProbe": liveness,
                 "volumeMounts": mount},
                {"name": "zdr-slot-b", "image": "registry.example/zdr:7",
                 "command": command, "env": slot_env("b"),
                 "readinessProbe": ready("b"), "livenessProbe": liveness,
                 "volumeMounts": mount},
            ],
            "initContainers": [{
                "name": "zdr-agent",
                "image": "registry.example/zdr:7",
                "imagePullPolicy": "Always",
                "restartPolicy": "Always",
                "command": ["/usr/local/bin/zdr-agent", "sidecar", "--dir", "/zdr/run",
                            "--install", "/zdr/bin/zdr-agent", "--listen", "http=0.0.0.0:8080",
                            "--http-addr", "0.0.0.0:9901", "--drain-timeout-seconds", "45"],
                "startupProbe": {"httpGet": {"path": "/livez", "port": 9901},
                                 "periodSeconds": 1, "failureThreshold": 60},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                   "periodSeconds": 2},
                "volumeMounts": mount,
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"memory": "64Mi"}},
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                    "allowPrivilegeEscalation": false,
                                    "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}},
            }],
            "volumes": [{"name": "zdr-agent", "emptyDir": {"sizeLimit": "128Mi"}}],
            "terminationGracePeriodSeconds": 55,
            "readinessGates": [{"conditionType": "zdr.dev/serving"}],
        },
    })
}

#[tokio::test]
async fn every_pod_of_a_hot_swap_rollout_is_created_with_the_layout() {
    let mut h = harness(NOW);
    let ctx = Arc::get_mut(&mut h.ctx).expect("the harness holds the only context");
    ctx.settings.agent = crate::hotswap::AgentImage {
        image: "registry.example/zdr:7".into(),
        pull_policy: Some("Always".into()),
    };
    let zdr = rollout(
        json!({"replicas": 2,
               "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 1},
                            "hotSwap": {"container": "app", "drainTimeoutSeconds": 45}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{
                                "name": "app", "image": "web:2",
                                "command": ["/bin/web"], "args": ["--port", "8080"],
                                "env": [{"name": "PORT", "value": "8080"}],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                                   "periodSeconds": 2},
                                "livenessProbe": {"tcpSocket": {"port": "http"},
                                                  "periodSeconds": 10}}]}}}),
        json!(null),
    );
    let hash = hash_of(&zdr);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    h.api.expect_revision(&hash, 1).await;
    for _ in 0..2 {
        let mut pod = h.api.expect_pod_create().await["body"].clone();
        let name = pod["metadata"]
            .as_object_mut()
            .and_then(|m| m.remove("name"))
            .expect("a pod name");
        assert!(
            name.as_str()
                .is_some_and(|n| n.starts_with(&format!("web-{hash}-"))),
            "{name}"
        );
        assert_eq!(
            pod,
            expected_pod(&hash),
            "created pod:\n{}",
            serde_json::to_string_pretty(&pod).unwrap()
        );
    }
    h.api.expect_status().await;
    task.await.unwrap().unwrap();
}
