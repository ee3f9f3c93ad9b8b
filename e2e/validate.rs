//! e2e: `kubectl zdr validate` agrees with the real API server. Every case of tests/validate/ is
//! created with server-side dry run and strict field validation (`kubectl create
//! --dry-run=server --validate=strict`); the API server must refuse exactly the cases that
//! `validate` reports a schema or rule problem for, and its message must name the same field.
//! Problems only the controller reports must pass admission. Also: the in-cluster subcommands
//! take `-n/--namespace` after the subcommand, and a rollout not found names the namespace.

use kube::Error;
use serde_json::Value;
use zdr::schema::{Checked, Problem, check_document};

use crate::cluster::setup_api_only;
use crate::validate_cases::cases;

/// The field a problem line names: `spec.x` of `spec.x: …`, or the quoted path of `unknown
/// field "spec.x"`.
fn field(p: &Problem) -> &str {
    match p.line.strip_prefix("unknown field \"") {
        Some(rest) => rest.split('"').next().unwrap_or(rest),
        None => p.line.split(": ").next().unwrap_or(&p.line),
    }
}

/// What the API server says to a dry-run create of `doc` in `ns`: `None` accepted, or its
/// message.
async fn admission(client: &kube::Client, ns: &str, doc: &Value) -> Option<String> {
    let uri = format!(
        "/apis/zdr.dev/v1alpha1/namespaces/{ns}/zerodowntimerollouts?dryRun=All&fieldValidation=Strict"
    );
    let body = serde_json::to_vec(doc).expect("JSON");
    let req = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(body)
        .expect("a request");
    match client.request::<Value>(req).await {
        Ok(_) => None,
        Err(Error::Api(status)) => Some(status.message),
        Err(e) => panic!("the API server did not answer the dry run: {e}"),
    }
}

pub async fn the_api_server_and_validate_agree_on_every_case() {
    let Some(env) = setup_api_only("validate").await else {
        return;
    };
    let mut disagree = Vec::new();
    let mut sent = 0;
    let mut refused = 0;
    for case in cases() {
        let Checked::Rollout { problems, .. } = check_document(&case.doc) else {
            continue;
        };
        sent += 1;
        let refusing: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.source.refused_at_admission())
            .collect();
        let answer = admission(&env.client, &env.ns, &case.doc).await;
        refused += usize::from(answer.is_some());
        match (&answer, refusing.is_empty()) {
            (None, true) => {}
            (None, false) => disagree.push(format!(
                "{}: the API server accepts it, validate says {refusing:?}",
                case.name
            )),
            (Some(msg), true) => disagree.push(format!(
                "{}: the API server refuses it ({msg}), validate finds no admission problem ({problems:?})",
                case.name
            )),
            (Some(msg), false) => {
                for p in refusing.iter().filter(|p| !msg.contains(field(p))) {
                    disagree.push(format!(
                        "{}: the API server's message does not name {:?}: {msg}",
                        case.name,
                        field(p)
                    ));
                }
            }
        }
    }
    assert!(sent >= 10, "the cases were read: {sent}");
    // Both verdicts occur, so agreement is not one side saying the same thing to everything.
    assert!(
        (6..sent - 2).contains(&refused),
        "{refused} of {sent} refused: the table needs both kinds"
    );
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
    env.teardown().await;
}

/// Runs the real `kubectl-zdr` with `args` against the suite's cluster (`KUBECONFIG`).
fn plugin(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-zdr"))
        .args(args)
        .output()
        .expect("kubectl-zdr runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub async fn the_plugin_takes_the_namespace_after_the_subcommand() {
    let Some(env) = setup_api_only("plugin-ns").await else {
        return;
    };
    let case = cases()
        .into_iter()
        .find(|c| c.name == "valid-rolling")
        .expect("the valid-rolling case");
    let ar = kube::api::ApiResource::erase::<zdr::crd::ZeroDowntimeRollout>(&());
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(env.client.clone(), &env.ns, &ar);
    let obj = serde_json::from_value(case.doc).expect("an object");
    api.create(&Default::default(), &obj)
        .await
        .expect("the valid case is created");
    let (code, out, err) = plugin(&["status", "web", "-n", &env.ns]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Name:        web\n"), "{out}");
    let (code, out, err) = plugin(&["history", "web", "--namespace", "zdr-e2e-nowhere"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(
            "\"web\" not found in namespace zdr-e2e-nowhere (-n/--namespace names another)"
        ),
        "{err}"
    );
    env.teardown().await;
}
