//! The controller of every test runs with the permissions the Helm chart grants, not as cluster
//! admin: once per run the suite renders `charts/zdr` with the real Helm library
//! (`hack/helm-render.py`, helm-python-sdk), server-side applies the rendered ServiceAccount,
//! ClusterRole and ClusterRoleBinding into [`NAMESPACE`], and writes a kubeconfig whose user
//! impersonates that ServiceAccount (`as: system:serviceaccount:<ns>:<name>`). A verb missing
//! from the chart makes the controller's request fail, hence the test.
//!
//! [`install_namespaced`] does the same with the chart's namespaced mode (`watchNamespaces`):
//! another release's ServiceAccount, bound only by a Role in each watched namespace.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig, NamedContext};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zdr::crd::ZeroDowntimeRollout;

use crate::cluster::MANAGER;

/// Namespace of the chart's ServiceAccount (the Helm release namespace). Created by the suite
/// and kept, with the ClusterRole and ClusterRoleBinding, for the next run (applying them again
/// is idempotent): `kubectl delete namespace zdr-e2e-system; kubectl delete
/// clusterrole,clusterrolebinding zdr-e2e` removes them.
pub const NAMESPACE: &str = "zdr-e2e-system";
/// The Helm release name: the objects are named `zdr-e2e`.
const RELEASE: &str = "zdr-e2e";
/// The release rendered in namespaced mode: its ServiceAccount `zdr-e2e-ns` (kept in
/// [`NAMESPACE`] like the other) has no cluster-wide binding.
const NAMESPACED_RELEASE: &str = "zdr-e2e-ns";
/// The helm-python-sdk version `.ci/run` installs.
const SDK: &str = "helm-python-sdk==0.2.2";

/// Renders the chart for `release` in [`NAMESPACE`], with `--set` values `sets`.
fn render(release: &str, sets: &[String]) -> Result<Vec<Value>, String> {
    let python = std::env::var("ZDR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/helm-render.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .args(["--release", release, "--namespace", NAMESPACE, "--no-lint"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {python} {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(format!(
                "the suite renders charts/zdr with the Helm library to run the controller with \
                 the chart's RBAC, and it is missing ({}): pip install {SDK}",
                stderr.trim()
            ));
        }
        _ => {
            return Err(format!(
                "{} failed ({}):\n{stderr}",
                script.display(),
                out.status
            ));
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| format!("the rendered chart is not YAML: {e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Every rendered object of `kind`.
fn all<K: DeserializeOwned>(docs: &[Value], kind: &str) -> Result<Vec<K>, String> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| {
            serde_json::from_value(d.clone())
                .map_err(|e| format!("the chart's {kind} does not parse: {e}"))
        })
        .collect()
}

/// The one rendered object of `kind`.
fn one<K: DeserializeOwned>(docs: &[Value], kind: &str) -> Result<K, String> {
    let mut found = all(docs, kind)?;
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!(
            "the chart renders {n} {kind} objects, expected one"
        )),
    }
}

/// Server-side applies `obj` (force: the suite owns these objects).
async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), String>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("server-side apply of the chart's {kind} {name}: {e}"))
}

/// Applies the chart's RBAC and writes the controllers' kubeconfig to `path`; returns the user
/// it impersonates.
pub async fn install(client: &Client, path: &Path) -> Result<String, String> {
    let docs = render(RELEASE, &[])?;
    let role: ClusterRole = one(&docs, "ClusterRole")?;
    let binding: ClusterRoleBinding = one(&docs, "ClusterRoleBinding")?;
    let sa = apply_service_account(client, &docs).await?;
    apply(&Api::all(client.clone()), &role).await?;
    apply(&Api::all(client.clone()), &binding).await?;

    let user = format!("system:serviceaccount:{NAMESPACE}:{}", sa.name_any());
    write_kubeconfig(&user, path)?;
    check(path, &user, None).await?;
    Ok(user)
}

/// Applies the chart's RBAC in namespaced mode, watching `namespaces` (which must exist), and
/// writes a kubeconfig impersonating its ServiceAccount to `path`; returns that user. Fails if the
/// chart grants anything cluster-wide in that mode.
pub async fn install_namespaced(
    client: &Client,
    namespaces: &[&str],
    path: &Path,
) -> Result<String, String> {
    let set = format!("watchNamespaces={{{}}}", namespaces.join(","));
    let docs = render(NAMESPACED_RELEASE, &[set])?;
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        let n = all::<Value>(&docs, kind)?.len();
        if n > 0 {
            return Err(format!(
                "with watchNamespaces the chart still renders {n} {kind}"
            ));
        }
    }
    let sa = apply_service_account(client, &docs).await?;
    let roles: Vec<Role> = all(&docs, "Role")?;
    let bindings: Vec<RoleBinding> = all(&docs, "RoleBinding")?;
    for ns in namespaces {
        let here = |o: &Option<String>| o.as_deref() == Some(*ns);
        if !roles.iter().any(|r| here(&r.metadata.namespace))
            || !bindings.iter().any(|b| here(&b.metadata.namespace))
        {
            return Err(format!("the chart renders no Role and RoleBinding in {ns}"));
        }
    }
    for role in &roles {
        let ns = role.namespace().unwrap_or_default();
        apply(&Api::namespaced(client.clone(), &ns), role).await?;
    }
    for binding in &bindings {
        let ns = binding.namespace().unwrap_or_default();
        apply(&Api::namespaced(client.clone(), &ns), binding).await?;
    }
    let user = format!("system:serviceaccount:{NAMESPACE}:{}", sa.name_any());
    write_kubeconfig(&user, path)?;
    for ns in namespaces {
        check(path, &user, Some(*ns)).await?;
    }
    Ok(user)
}

/// Applies [`NAMESPACE`] and the chart's ServiceAccount there; returns the ServiceAccount.
async fn apply_service_account(client: &Client, docs: &[Value]) -> Result<ServiceAccount, String> {
    let sa: ServiceAccount = one(docs, "ServiceAccount")?;
    if sa.namespace().as_deref() != Some(NAMESPACE) {
        return Err(format!(
            "the chart's ServiceAccount is in {:?}, not the release namespace {NAMESPACE}",
            sa.namespace()
        ));
    }
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"zdr.dev/e2e-system": "true"}}
    }))
    .map_err(|e| e.to_string())?;
    apply(&Api::all(client.clone()), &ns).await?;
    apply(&Api::namespaced(client.clone(), NAMESPACE), &sa).await?;
    Ok(sa)
}

/// Writes a kubeconfig holding only the current context of `KUBECONFIG`, its user impersonating
/// `user` (readable by the owner only: it holds the user's credentials).
fn write_kubeconfig(user: &str, path: &Path) -> Result<(), String> {
    let kc = Kubeconfig::from_env()
        .map_err(|e| format!("cannot read KUBECONFIG: {e}"))?
        .ok_or("KUBECONFIG is not set")?;
    let context_name = kc
        .current_context
        .clone()
        .ok_or("KUBECONFIG has no current-context")?;
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| format!("KUBECONFIG has no context {context_name}"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .cloned()
        .ok_or_else(|| format!("KUBECONFIG has no cluster {}", context.cluster))?;
    let mut auth = kc
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == context.user.as_ref())
        .cloned()
        .ok_or_else(|| format!("KUBECONFIG has no user {:?}", context.user))?;
    let info = auth.auth_info.get_or_insert_with(Default::default);
    info.impersonate = Some(user.to_string());
    info.impersonate_uid = None;
    info.impersonate_groups = None;
    info.impersonate_user_extra = None;
    let out = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        current_context: Some(context_name.clone()),
        contexts: vec![NamedContext {
            name: context_name,
            context: Some(context),
            ..NamedContext::default()
        }],
        clusters: vec![cluster],
        auth_infos: vec![auth],
        ..Kubeconfig::default()
    };
    let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Checks the written kubeconfig: the API server sees `user` (not the admin), and the chart's
/// rules are in force for it in namespace `ns` (all namespaces when `None`): RBAC changes reach
/// the authorizer shortly after they are written, so poll, bounded, until a request the rules
/// allow succeeds.
async fn check(path: &Path, user: &str, ns: Option<&str>) -> Result<(), String> {
    let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;

    let review: SelfSubjectReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {}
    }))
    .map_err(|e| e.to_string())?;
    let seen = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("SelfSubjectReview with {}: {e}", path.display()))?
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    if seen.as_deref() != Some(user) {
        return Err(format!(
            "with {} the API server sees the user {seen:?}, not {user}",
            path.display()
        ));
    }

    let zdrs: Api<ZeroDowntimeRollout> = match ns {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let place = ns.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match zdrs.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 403 => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{user} still may not list ZeroDowntimeRollouts in {place} 30s after \
                         the chart's RBAC was applied: {}",
                        s.message
                    ));
                }
            }
            Err(e) => {
                return Err(format!(
                    "listing ZeroDowntimeRollouts in {place} as {user}: {e}"
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
