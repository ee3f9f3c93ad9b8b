//! The controller binary's start-up checks, against real processes: no cluster configured, an
//! API server that does not answer, and a reachable API server (a tiny loopback fake) without
//! the CRD each end with a clear message and exit code 1. The message comes once (a line, or
//! one JSON record with `--log-format json`), names the URL it tried, and has no colour codes
//! when stderr is not a terminal.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    path
}

fn run_controller(kubeconfig: Option<&std::path::Path>, home: &std::path::Path) -> (i32, String) {
    run_controller_with(kubeconfig, home, &[])
}

fn run_controller_with(
    kubeconfig: Option<&std::path::Path>,
    home: &std::path::Path,
    envs: &[(&str, &str)],
) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdr-controller"));
    cmd.env_clear()
        .env("HOME", home)
        .env("ZDR_METRICS_ADDR", "127.0.0.1:0")
        .envs(envs.iter().copied());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("controller binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zdr-start-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn without_any_cluster_it_says_so() {
    let home = tempdir("none");
    let (code, err) = run_controller(None, &home);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no Kubernetes cluster configured"), "{err}");
}

#[test]
fn with_an_unreachable_api_server_it_says_so() {
    let home = tempdir("down");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = kubeconfig(&home, &format!("http://127.0.0.1:{port}"));
    let (code, err) = run_controller(Some(&kc), &home);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "API server at http://127.0.0.1:{port}/ is not reachable"
        )),
        "the message names the URL it tried: {err}"
    );
    assert_eq!(err.matches("not reachable").count(), 1, "said once: {err}");
    assert!(
        !err.contains('\x1b'),
        "no colour codes into a pipe: {err:?}"
    );

    // As JSON: the one error is one record, and every line is a JSON object.
    let (code, err) = run_controller_with(Some(&kc), &home, &[("ZDR_LOG_FORMAT", "json")]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("not reachable").count(), 1, "said once: {err}");
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON record ({e}): {line}"));
        if line.contains("not reachable") {
            assert_eq!(record["level"], "ERROR", "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_it_names_the_install_command() {
    let app = Router::new()
        .route(
            "/version",
            get(|| async {
                axum::Json(serde_json::json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                    "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}))
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404})),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let home = tempdir("nocrd");
    let kc = kubeconfig(&home, &format!("http://{addr}"));
    let (code, err) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || run_controller(Some(&kc), &home)),
    )
    .await
    .expect("controller exits by itself")
    .unwrap();
    server.abort();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CRD is not installed"), "{err}");
    assert!(err.contains("crds/zerodowntimerollouts.yaml"), "{err}");
}
