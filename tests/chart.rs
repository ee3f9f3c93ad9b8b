//! Tests of the Helm chart `charts/zdr`: its CRD copy never drifts from the Rust types, and the
//! chart rendered by the real Helm library (`hack/helm-render.py`, helm-python-sdk) with several
//! value sets yields hardened pods, the probes, the controller's flags and every RBAC rule it needs.
//!
//! Without helm-python-sdk installed the rendering tests print a loud SKIP (tests/skip), unless
//! `ZDR_REQUIRE_HELM=1` (set by `.ci/run`), which turns a missing SDK into a failure.

mod skip;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use zdr::controller::rbac::{RULES, Scope};

#[path = "chart/argocd.rs"]
mod argocd;

const RELEASE: &str = "zdr";
const RELEASE_NS: &str = "zdr-system";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn chart_crd_is_byte_identical_to_the_generated_one() {
    let generated = zdr::crd::crd_yaml();
    for rel in [
        "crds/zerodowntimerollouts.yaml",
        "charts/zdr/crds/zerodowntimerollouts.yaml",
    ] {
        let committed = std::fs::read_to_string(root().join(rel)).unwrap_or_default();
        assert!(
            committed == generated,
            "{rel} differs from the CRD generated from src/crd: run `cargo run --bin crdgen -- --write`"
        );
    }
}

/// What a render produced.
enum Render {
    /// Rendered and lint-clean: the documents.
    Docs(Vec<Value>),
    /// Helm refused (a `fail` in a template, bad values): its stderr.
    Refused(String),
    /// helm-python-sdk (or python) is missing and not required: the test is skipped.
    Skipped,
}

/// Runs `hack/helm-render.py --set …` and parses its YAML stream.
fn render_result(sets: &[&str]) -> Render {
    let python = std::env::var("ZDR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = root().join("hack/helm-render.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .args(["--release", RELEASE, "--namespace", RELEASE_NS]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let unavailable = |why: String| -> Render {
        skip::skip(&skip::HELM, &why);
        Render::Skipped
    };
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => return unavailable(format!("cannot run {python}: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => {}
        Some(3) => return unavailable(stderr.trim().to_string()),
        Some(2) => return Render::Refused(stderr),
        _ => panic!(
            "{} {sets:?} failed ({}):\n{stderr}",
            script.display(),
            out.status
        ),
    }
    let stdout = String::from_utf8(out.stdout).expect("rendered manifests are UTF-8");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout)
        .unwrap_or_else(|e| panic!("rendered chart is not valid YAML: {e}\n{stdout}"));
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "the chart rendered no objects");
    Render::Docs(docs)
}

/// The rendered documents, or `None` when the renderer is unavailable (skip).
fn render(sets: &[&str]) -> Option<Vec<Value>> {
    match render_result(sets) {
        Render::Docs(docs) => Some(docs),
        Render::Refused(stderr) => panic!("helm refused values {sets:?}:\n{stderr}"),
        Render::Skipped => None,
    }
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all_of(docs, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn container_args(docs: &[Value]) -> Vec<String> {
    let deploy = one(docs, "Deployment");
    strs(&deploy["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn chart_app_version() -> String {
    let text = std::fs::read_to_string(root().join("charts/zdr/Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&text).expect("Chart.yaml is YAML");
    chart["appVersion"]
        .as_str()
        .expect("Chart.yaml has an appVersion string")
        .to_string()
}

/// Every container (and init container) runs non-root with the hardened securityContext.
fn assert_hardened(docs: &[Value]) {
    let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        .collect();
    assert!(!containers.is_empty());
    for c in containers {
        let sc = &c["securityContext"];
        let name = &c["name"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}: runAsNonRoot");
        assert!(
            sc["runAsUser"].as_i64().is_some_and(|u| u > 0),
            "{name}: runAsUser must be non-zero"
        );
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_ne!(sc["privileged"], true, "{name}");
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
        assert!(sc["capabilities"]["add"].is_null(), "{name} adds caps");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
    }
}

/// Liveness on /livez and readiness on /readyz, both on the port the controller serves metrics on.
fn assert_probes(docs: &[Value]) {
    let c = &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let ports = c["ports"].as_array().expect("container ports");
    let metrics = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    let port = metrics["containerPort"].as_i64().expect("containerPort");
    let args = strs(&c["args"]);
    assert!(
        args.contains(&format!("--metrics-addr=0.0.0.0:{port}")),
        "metrics addr must match the port: {args:?}"
    );
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == "metrics" || get["port"].as_i64() == Some(port),
            "{probe} port {} is not the metrics port",
            get["port"]
        );
    }
    let env = c["env"].as_array().expect("env");
    let ns = env
        .iter()
        .find(|e| e["name"] == "POD_NAMESPACE")
        .expect("POD_NAMESPACE env");
    assert_eq!(
        ns["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
}

/// One granted permission: (apiGroup, resource, resourceNames, verb).
type Grant = (String, String, Vec<String>, String);

/// What `rules` grant, one [`Grant`] per verb.
fn grants<'a>(rules: impl IntoIterator<Item = &'a Value>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in rules {
        let mut names = strs(&r["resourceNames"]);
        names.sort();
        for g in strs(&r["apiGroups"]) {
            for res in strs(&r["resources"]) {
                for v in strs(&r["verbs"]) {
                    out.insert((g.clone(), res.clone(), names.clone(), v));
                }
            }
        }
    }
    out
}

/// What src/controller/rbac.rs says the controller needs, by namespace ("" for cluster-wide):
/// its Watched rules in each of `watched` (cluster-wide when empty) and, with leader election,
/// its LeaderElection rules in the release namespace.
fn expected_grants(watched: &[&str], leader: bool) -> BTreeMap<String, BTreeSet<Grant>> {
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    let mut add = |ns: &str, scope: Scope| {
        for r in RULES.iter().filter(|r| r.scope == scope) {
            let mut names: Vec<String> = r.resource_names.iter().map(|n| n.to_string()).collect();
            names.sort();
            for v in r.verbs {
                out.entry(ns.to_string()).or_default().insert((
                    r.api_group.to_string(),
                    r.resource.to_string(),
                    names.clone(),
                    v.as_str().to_string(),
                ));
            }
        }
    };
    if watched.is_empty() {
        add("", Scope::Watched);
    }
    for ns in watched {
        add(ns, Scope::Watched);
    }
    if leader {
        add(RELEASE_NS, Scope::LeaderElection);
    }
    out
}

/// The chart grants its ServiceAccount exactly what src/controller/rbac.rs lists: every right the
/// controller uses, nothing more, and each in the right place.
fn assert_rbac_matches_the_controller(docs: &[Value], watched: &[&str], leader: bool) {
    let have: BTreeMap<String, BTreeSet<Grant>> = bound_rules(docs)
        .into_iter()
        .map(|(ns, rules)| (ns, grants(rules)))
        .collect();
    let want = expected_grants(watched, leader);
    let places: BTreeSet<&String> = have.keys().chain(want.keys()).collect();
    for ns in places {
        let where_ = if ns.is_empty() {
            "cluster-wide".to_string()
        } else {
            format!("in namespace {ns}")
        };
        let empty = BTreeSet::new();
        let (h, w) = (
            have.get(ns).unwrap_or(&empty),
            want.get(ns).unwrap_or(&empty),
        );
        let missing: Vec<&Grant> = w.difference(h).collect();
        let extra: Vec<&Grant> = h.difference(w).collect();
        assert!(
            missing.is_empty(),
            "{where_}: the chart lacks {missing:?}, which src/controller/rbac.rs says the \
             controller needs"
        );
        assert!(
            extra.is_empty(),
            "{where_}: the chart grants {extra:?}, which src/controller/rbac.rs does not list \
             (least privilege)"
        );
    }
}

/// Rules of the roles (kind `role_kind`) bound by `binding_kind` to the chart's ServiceAccount,
/// grouped by the namespace they apply in ("" for cluster-wide). Checks every binding on the way.
fn bound_rules(docs: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let sa = one(docs, "ServiceAccount");
    let sa_name = sa["metadata"]["name"].as_str().expect("SA name");
    assert_eq!(sa["metadata"]["namespace"], RELEASE_NS);
    let deploy = one(docs, "Deployment");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["serviceAccountName"], sa_name,
        "the Deployment must run as the chart's ServiceAccount"
    );
    let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (binding_kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        for b in all_of(docs, binding_kind) {
            let subjects = b["subjects"].as_array().expect("binding subjects");
            assert!(
                subjects.iter().any(|s| s["kind"] == "ServiceAccount"
                    && s["name"] == sa_name
                    && s["namespace"] == RELEASE_NS),
                "{binding_kind} {} does not bind the chart's ServiceAccount",
                b["metadata"]["name"]
            );
            assert_eq!(b["roleRef"]["kind"], role_kind);
            assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
            let ns = b["metadata"]["namespace"].as_str().unwrap_or_default();
            let role = all_of(docs, role_kind)
                .into_iter()
                .find(|r| {
                    r["metadata"]["name"] == b["roleRef"]["name"]
                        && r["metadata"]["namespace"].as_str().unwrap_or_default() == ns
                })
                .unwrap_or_else(|| panic!("{binding_kind} refers to a missing {role_kind}"));
            let rules = role["rules"].as_array().expect("rules");
            out.entry(ns.to_string()).or_default().extend(rules.iter());
        }
    }
    out
}

/// Selector labels match the pod template; every object carries the chart's common labels.
fn assert_labels(docs: &[Value]) {
    for d in docs {
        let labels = &d["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(
                labels[key].is_string(),
                "{} {} lacks label {key}",
                d["kind"],
                d["metadata"]["name"]
            );
        }
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    }
    let deploy = one(docs, "Deployment");
    let pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels");
    let selector = deploy["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("Deployment selector");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(pod_labels.get(k), Some(v), "Deployment selector {k}");
    }
    let svc = one(docs, "Service");
    let svc_sel = svc["spec"]["selector"]
        .as_object()
        .expect("Service selector");
    assert_eq!(svc_sel, selector, "Service and Deployment select alike");
    let svc_port = &svc["spec"]["ports"][0];
    assert_eq!(svc_port["name"], "metrics");
    assert_eq!(svc_port["targetPort"], "metrics");
}

fn assert_common(docs: &[Value]) {
    assert_hardened(docs);
    assert_probes(docs);
    assert_labels(docs);
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(kind, "ClusterRole" | "ClusterRoleBinding");
        assert_eq!(
            d["metadata"]["namespace"].is_null(),
            cluster_scoped,
            "{kind} {}: namespace set iff namespaced",
            d["metadata"]["name"]
        );
    }
}

#[test]
fn default_values_render_a_hardened_cluster_wide_controller() {
    let Some(docs) = render(&[]) else { return };
    assert_common(&docs);
    let expect: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds(&docs), expect);

    // Only a cluster-wide role, and no lease rights without leader election.
    assert_rbac_matches_the_controller(&docs, &[], false);

    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "Recreate",
        "one controller at a time"
    );
    let image = format!("ghcr.io/zdr-dev/zdr:{}", chart_app_version());
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], image.as_str());
    let args = container_args(&docs);
    assert_eq!(
        args,
        [
            "--metrics-addr=0.0.0.0:8080".to_string(),
            format!("--agent-image={image}"),
            "--agent-image-pull-policy=IfNotPresent".to_string(),
            "--endpoint-propagation-seconds=5".to_string(),
            "--log-format=json".to_string(),
        ]
    );
}

#[test]
fn watch_namespaces_grant_roles_there_and_nothing_cluster_wide() {
    for (set, watched) in [
        ("watchNamespaces={apps}", &["apps"][..]),
        ("watchNamespaces={apps,shop}", &["apps", "shop"][..]),
        // The release namespace may be watched too: its Role is the controller's, not the lease's.
        (
            "watchNamespaces={shop,zdr-system}",
            &["shop", RELEASE_NS][..],
        ),
    ] {
        let Some(docs) = render(&[set]) else { return };
        assert_common(&docs);
        let k = kinds(&docs);
        assert!(
            !k.contains("ClusterRole") && !k.contains("ClusterRoleBinding"),
            "{set}: {k:?}"
        );
        assert_eq!(
            all_of(&docs, "Role").len(),
            watched.len(),
            "{set}: a Role per namespace"
        );
        assert_rbac_matches_the_controller(&docs, watched, false);
        let flag = format!("--namespace={}", watched.join(","));
        assert!(container_args(&docs).contains(&flag), "{set}: {flag}");
    }
    // The single-namespace value of earlier charts is refused with the way to say it now.
    match render_result(&["watchNamespace=apps"]) {
        Render::Refused(err) => assert!(err.contains("watchNamespaces"), "{err}"),
        Render::Docs(_) => panic!("the removed watchNamespace must not be ignored"),
        Render::Skipped => {}
    }
}

#[test]
fn leader_election_follows_replicas_and_can_be_forced() {
    for sets in [&["replicas=2"][..], &["leaderElection.enabled=true"][..]] {
        let Some(docs) = render(sets) else { return };
        assert_common(&docs);
        let args = container_args(&docs);
        assert!(
            args.contains(&"--leader-elect".to_string()),
            "{sets:?}: {args:?}"
        );
        assert!(
            args.contains(&format!("--leader-election-namespace={RELEASE_NS}")),
            "{args:?}"
        );
        // The cluster-wide rules, plus the lease Role in the release namespace.
        assert_rbac_matches_the_controller(&docs, &[], true);
        let deploy = one(&docs, "Deployment");
        assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
        let replicas = deploy["spec"]["replicas"].as_i64().unwrap_or_default();
        let pdbs = all_of(&docs, "PodDisruptionBudget");
        if replicas > 1 {
            assert_eq!(pdbs.len(), 1, "a PDB with {replicas} replicas");
            assert_eq!(
                pdbs[0]["spec"]["selector"]["matchLabels"],
                deploy["spec"]["selector"]["matchLabels"],
                "the PDB covers the controller's pods"
            );
            assert_eq!(pdbs[0]["spec"]["maxUnavailable"], 1);
        } else {
            assert!(pdbs.is_empty(), "no PDB for a single replica");
        }
    }
    let Some(docs) = render(&["replicas=3", "watchNamespaces={apps}"]) else {
        return;
    };
    // The watched namespace's rules plus the lease Role.
    assert_rbac_matches_the_controller(&docs, &["apps"], true);
    assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 3);

    // Two replicas without a leader would fight: Helm must refuse.
    match render_result(&["replicas=2", "leaderElection.enabled=false"]) {
        Render::Refused(err) => assert!(err.contains("leaderElection"), "{err}"),
        Render::Docs(_) => panic!("replicas=2 without leader election must not render"),
        Render::Skipped => {}
    }
    match render_result(&["replicas=1", "leaderElection.enabled=false"]) {
        Render::Docs(docs) => {
            assert!(!container_args(&docs).contains(&"--leader-elect".to_string()))
        }
        Render::Refused(err) => panic!("{err}"),
        Render::Skipped => {}
    }
}

#[test]
fn service_monitor_scrapes_the_metrics_service() {
    let Some(docs) = render(&[
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
    ]) else {
        return;
    };
    assert_common(&docs);
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let svc = one(&docs, "Service");
    let svc_labels = svc["metadata"]["labels"].as_object().expect("labels");
    let sel = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("ServiceMonitor selector");
    assert!(!sel.is_empty());
    for (k, v) in sel {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selector {k}");
    }
    assert_eq!(
        strs(&sm["spec"]["namespaceSelector"]["matchNames"]),
        [RELEASE_NS]
    );
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(ep["path"], "/metrics");
}

#[test]
fn grafana_dashboard_renders_only_when_enabled_and_carries_the_file_verbatim() {
    let Some(off) = render(&[]) else {
        return;
    };
    assert!(
        all_of(&off, "ConfigMap").is_empty(),
        "no dashboard ConfigMap by default"
    );
    let Some(docs) = render(&[
        "grafana.dashboard.enabled=true",
        "grafana.dashboard.namespace=monitoring",
    ]) else {
        return;
    };
    assert_common(&docs);
    let cm = one(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let file = std::fs::read_to_string(root().join("charts/zdr/dashboards/zdr.json"))
        .expect("charts/zdr/dashboards/zdr.json");
    assert_eq!(
        cm["data"]["zdr.json"].as_str().map(str::trim_end),
        Some(file.trim_end()),
        "the ConfigMap must carry dashboards/zdr.json verbatim"
    );
}

#[test]
fn images_flags_and_scheduling_values_reach_the_pod() {
    let Some(docs) = render(&[
        "image.repository=registry.example/zdr",
        "image.tag=v9",
        "endpointPropagationSeconds=12",
        "logFormat=text",
        "nodeSelector.pool=system",
    ]) else {
        return;
    };
    assert_common(&docs);
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "registry.example/zdr:v9");
    assert_eq!(pod["nodeSelector"]["pool"], "system");
    let args = container_args(&docs);
    for want in [
        "--agent-image=registry.example/zdr:v9",
        "--endpoint-propagation-seconds=12",
        "--log-format=text",
    ] {
        assert!(args.contains(&want.to_string()), "{want} not in {args:?}");
    }
    let Some(docs) = render(&[
        "agent.image.repository=registry.example/agent",
        "agent.image.tag=v1",
        "agent.image.pullPolicy=Always",
    ]) else {
        return;
    };
    let args = container_args(&docs);
    for want in [
        "--agent-image=registry.example/agent:v1",
        "--agent-image-pull-policy=Always",
    ] {
        assert!(args.contains(&want.to_string()), "{want} not in {args:?}");
    }
    // An empty field takes the controller's value.
    let Some(docs) = render(&[
        "image.tag=v9",
        "agent.image.repository=registry.example/agent",
    ]) else {
        return;
    };
    let args = container_args(&docs);
    assert!(
        args.contains(&"--agent-image=registry.example/agent:v9".to_string()),
        "{args:?}"
    );
}

#[test]
fn invalid_values_are_refused() {
    for (set, needle) in [
        ("logFormat=xml", "logFormat"),
        ("replicas=-1", "replicas"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("agent.image.pullPolicy=Sometimes", "pullPolicy"),
        ("metrics.port=70000", "port"),
        ("leaderElection.enabled=maybe", "enabled"),
        ("watchNamespaces={Apps}", "watchNamespaces"),
        ("watchNamespaces={apps,apps}", "watchNamespaces"),
    ] {
        match render_result(&[set]) {
            Render::Refused(err) => assert!(err.contains(needle), "{set}: {err}"),
            Render::Docs(_) => panic!("{set} must not render"),
            Render::Skipped => return,
        }
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    assert_eq!(
        chart_app_version(),
        env!("CARGO_PKG_VERSION"),
        "charts/zdr/Chart.yaml appVersion must follow Cargo.toml's version (the image tag)"
    );
}

#[test]
fn render_script_exists_and_is_executable() {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/helm-render.py"))
        .expect("hack/helm-render.py exists");
    assert!(
        meta.permissions().mode() & 0o111 != 0,
        "hack/helm-render.py is executable"
    );
}
