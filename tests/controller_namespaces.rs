//! `zdr-controller --namespace`, against the real binary: a malformed namespace is refused before
//! anything starts, and a namespace its ServiceAccount may not read (a loopback fake API server
//! answering 403 there) stops it at start with a message naming that namespace and the RBAC to
//! grant, instead of a controller that runs and fails every request.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zdr-ns-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the controller with `args`, a kubeconfig for `server` and a clean environment; returns
/// its exit code and stderr.
fn run_controller(server: &str, args: &[&str], tag: &str) -> (i32, String) {
    let home = tempdir(tag);
    let kubeconfig = home.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zdr-controller"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("KUBECONFIG", &kubeconfig)
        .env("ZDR_METRICS_ADDR", "127.0.0.1:0")
        .output()
        .expect("controller binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_malformed_namespace_is_refused_before_anything_starts() {
    // Nothing listens on port 9: the flag is checked before any connection.
    let (code, err) = run_controller("http://127.0.0.1:9", &["--namespace", "apps,Shop"], "bad");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"Shop\" is not a namespace name"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_it_may_not_read_stops_it_with_the_namespace_named() {
    let list = |Path(ns): Path<String>| async move {
        if ns == "apps" {
            (
                StatusCode::OK,
                axum::Json(
                    json!({"apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRolloutList",
                                  "metadata": {"resourceVersion": "1"}, "items": []}),
                ),
            )
        } else {
            (
                StatusCode::FORBIDDEN,
                axum::Json(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("zerodowntimerollouts.zdr.dev is forbidden: User \"u\" cannot list resource \"zerodowntimerollouts\" in API group \"zdr.dev\" in the namespace \"{ns}\""),
                    "reason": "Forbidden", "code": 403}),
                ),
            )
        }
    };
    let app = Router::new()
        .route(
            "/version",
            get(|| async {
                axum::Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                    "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}))
            }),
        )
        .route(
            "/apis/zdr.dev/v1alpha1/namespaces/{ns}/zerodowntimerollouts",
            get(list),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (code, err) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            run_controller(
                &format!("http://{addr}"),
                &["--namespace=apps,shop"],
                "forbidden",
            )
        }),
    )
    .await
    .expect("controller exits by itself")
    .unwrap();
    server.abort();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("may not list ZeroDowntimeRollouts in namespace shop"),
        "{err}"
    );
    assert!(err.contains("watchNamespaces"), "{err}");
    assert!(!err.contains("namespace apps"), "apps was allowed: {err}");
}
