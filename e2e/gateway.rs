//! Gateway API for the canary tests: the real upstream CRDs (v1.5.1, standard channel) installed
//! on the test cluster once per run, and the reading of an HTTPRoute the controller changes: the
//! weights of the stable and canary Services' backendRefs in the weighted rule, the `zdr-` rules
//! it adds for header routes, and everything else, which must stay as the test wrote it.
//!
//! The CRD file is third-party test data and is never copied into the repository: it is read
//! from `$ZDR_THIRD_PARTY_CRDS/gateway-api/standard-install.yaml`, by default
//! `<repo>/../shared/crds/...` (see `../shared/crds/README.md`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::{MANAGER, env_flag};

/// API group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The CRD file, relative to the third-party CRD folder.
pub const STANDARD_INSTALL: &str = "gateway-api/standard-install.yaml";
/// Annotation upstream puts on every Gateway API CRD: the release it comes from.
const BUNDLE_VERSION: &str = "gateway.networking.k8s.io/bundle-version";
/// Prefix of the rules the controller adds for header routes.
pub const ZDR_RULE_PREFIX: &str = "zdr-";

/// The folder holding `gateway-api/` and `istio/`: `ZDR_THIRD_PARTY_CRDS`, else
/// `../shared/crds` beside the repository.
pub fn crd_dir() -> PathBuf {
    std::env::var_os("ZDR_THIRD_PARTY_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/crds"))
}

/// HTTPRoute, `gateway.networking.k8s.io/v1`.
pub fn httproute_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// The HTTPRoutes of `ns`.
pub fn routes(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &httproute_resource())
}

/// The outcome of the one install of a run: tests running in parallel share it.
static INSTALLED: tokio::sync::OnceCell<Result<(), String>> = tokio::sync::OnceCell::const_new();

/// Makes sure the Gateway API CRDs are installed and Established. `false` (said loudly on
/// stderr) when the CRD file is missing: the test cleans up, then [`missing_crds`] fails it with
/// `ZDR_REQUIRE_CLUSTER=1`, else it stops. Panics when the install fails.
pub async fn ensure_crds(test: &str, client: &Client) -> bool {
    let path = crd_dir().join(STANDARD_INSTALL);
    if !path.is_file() {
        let msg = format!(
            "the Gateway API CRDs are missing: no file {}; set ZDR_THIRD_PARTY_CRDS to the folder \
             holding gateway-api/standard-install.yaml (see ../shared/crds/README.md)",
            path.display()
        );
        let what = if env_flag("ZDR_REQUIRE_CLUSTER") {
            "FAILED (ZDR_REQUIRE_CLUSTER=1)"
        } else {
            "SKIPPED"
        };
        let _ = writeln!(std::io::stderr(), "\n*** e2e {test}: {what}: {msg} ***\n");
        return false;
    }
    let outcome = INSTALLED
        .get_or_init(|| install(client.clone(), path))
        .await;
    if let Err(e) = outcome {
        panic!("installing the Gateway API CRDs: {e}");
    }
    true
}

/// After [`ensure_crds`] found no CRD file: fails with `ZDR_REQUIRE_CLUSTER=1` (a run meant to
/// test everything), else returns and the test stops.
pub fn missing_crds() {
    assert!(
        !env_flag("ZDR_REQUIRE_CLUSTER"),
        "ZDR_REQUIRE_CLUSTER=1 but the Gateway API CRDs are missing: no file {}; set \
         ZDR_THIRD_PARTY_CRDS to the folder holding gateway-api/standard-install.yaml",
        crd_dir().join(STANDARD_INSTALL).display()
    );
}

/// Server-side applies every CRD of the file (other documents, the upstream
/// ValidatingAdmissionPolicy against mixing channels, are left out: the cluster may be shared
/// with tests of the experimental channel) and waits until each is Established. A CRD already
/// there from the same Gateway API release (either channel: the experimental HTTPRoute is a
/// superset of the standard one) is left as it is.
async fn install(client: Client, path: PathBuf) -> Result<(), String> {
    let release = Some(BUNDLE_VERSION);
    let route_crd = "httproutes.gateway.networking.k8s.io";
    install_crds(client, &path, "Gateway API", route_crd, release).await
}

/// Server-side applies every CustomResourceDefinition of the file at `path` and waits until each
/// is Established; the file must hold `required`. With `release` (an annotation key), a CRD
/// already there with the same value of that annotation is left as it is. `what` names the
/// CRDs in messages.
pub(crate) async fn install_crds(
    client: Client,
    path: &std::path::Path,
    what: &str,
    required: &str,
    release: Option<&str>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let mut names = Vec::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let name = doc["metadata"]["name"]
            .as_str()
            .ok_or("a CRD without a name")?
            .to_string();
        if !same_release(&api, &name, doc, release).await? {
            let crd: CustomResourceDefinition = serde_json::from_value(doc.clone())
                .map_err(|e| format!("CRD {name} does not parse: {e}"))?;
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|e| format!("server-side apply of CRD {name}: {e}"))?;
        }
        names.push(name);
    }
    if !names.iter().any(|n| n == required) {
        return Err(format!("{} holds no {required} CRD", path.display()));
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(Duration::from_secs(60), established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("waiting for CRD {name}: {e}")),
            Err(_) => return Err(format!("CRD {name} not Established within 60s")),
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "e2e: {what} CRDs Established ({} from {})",
        names.len(),
        path.display()
    );
    Ok(())
}

/// Whether CRD `name` is already there with the same value of annotation `release` as `doc`.
async fn same_release(
    api: &Api<CustomResourceDefinition>,
    name: &str,
    doc: &Value,
    release: Option<&str>,
) -> Result<bool, String> {
    let Some(key) = release else {
        return Ok(false);
    };
    let wanted = doc["metadata"]["annotations"][key].as_str();
    let existing = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading CRD {name}: {e}"))?;
    Ok(existing.is_some_and(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
            == wanted
    }))
}

/// An HTTPRoute `name` with the weighted rule `primary` (stable 100, canary 0, port 80) and a
/// foreign rule `foreign` (another backend, a header filter) plus hostnames and a parentRef to
/// a Gateway that need not exist: everything but the two weights must survive the rollout.
pub fn route_body(name: &str, stable: &str, canary: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "labels": {"team": "e2e"},
            "annotations": {"e2e.zdr.dev/owner": "the test, not zdr"}
        },
        "spec": {
            "parentRefs": [{"name": "zdr-e2e-gateway", "sectionName": "http"}],
            "hostnames": ["web.e2e.zdr.test", "www.e2e.zdr.test"],
            "rules": [
                {
                    "name": "primary",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": stable, "port": 80, "weight": 100},
                        {"name": canary, "port": 80, "weight": 0}
                    ]
                },
                {
                    "name": "foreign",
                    "matches": [{
                        "path": {"type": "PathPrefix", "value": "/admin"},
                        "headers": [{"name": "X-Team", "value": "ops"}]
                    }],
                    "filters": [{
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "X-Routed-By", "value": "e2e"}]}
                    }],
                    "backendRefs": [{"name": "admin-backend", "port": 9090, "weight": 3}]
                }
            ]
        }
    })
}

/// Creates the HTTPRoute of [`route_body`]; returns it as the API server stored it (with its
/// defaults), the reference for [`foreign_part`].
pub async fn create_route(
    client: &Client,
    ns: &str,
    name: &str,
    stable: &str,
    canary: &str,
) -> DynamicObject {
    let obj: DynamicObject =
        serde_json::from_value(route_body(name, stable, canary)).expect("an HTTPRoute object");
    routes(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating HTTPRoute {ns}/{name}: {e}"))
}

/// A rule the controller added for a header route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRule {
    /// The rule's name, `zdr-<route>`.
    pub name: String,
    /// Header conditions of each of its matches: (type, name, value).
    pub matches: Vec<Vec<(String, String, String)>>,
    /// Names of its backendRefs.
    pub backends: Vec<String>,
}

/// What an HTTPRoute says about the canary's traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteView {
    /// Weight of the stable Service's backendRef in the weighted rule (absent weight: 1).
    pub stable: Option<i64>,
    /// Weight of the canary Service's backendRef in the weighted rule.
    pub canary: Option<i64>,
    /// The `zdr-` rules, in order.
    pub header_rules: Vec<HeaderRule>,
    /// Rules other than `zdr-` ones that name both Services (exactly one is expected).
    pub weighted_rules: usize,
    /// Where the router wants `zdr-` rules in a place they are not (Istio: first in `http`).
    pub order_problems: Vec<String>,
}

impl RouteView {
    /// Reads `route`.
    pub fn of(route: &DynamicObject, stable: &str, canary: &str) -> Self {
        let mut v = RouteView::default();
        let rules = route.data["spec"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for rule in &rules {
            let name = rule["name"].as_str().unwrap_or_default();
            let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
            if name.starts_with(ZDR_RULE_PREFIX) {
                let matches = rule["matches"].as_array().cloned().unwrap_or_default();
                v.header_rules.push(HeaderRule {
                    name: name.to_string(),
                    matches: matches
                        .iter()
                        .map(|m| {
                            let hs = m["headers"].as_array().cloned().unwrap_or_default();
                            hs.iter()
                                .map(|h| {
                                    let s = |k: &str| h[k].as_str().unwrap_or_default().to_string();
                                    // Exact is the schema's default type.
                                    let t = h["type"].as_str().unwrap_or("Exact").to_string();
                                    (t, s("name"), s("value"))
                                })
                                .collect()
                        })
                        .collect(),
                    backends: refs
                        .iter()
                        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                        .collect(),
                });
                continue;
            }
            let weight_of = |svc: &str| {
                refs.iter()
                    .find(|r| r["name"] == svc && is_service(r))
                    .map(|r| r["weight"].as_i64().unwrap_or(1))
            };
            if let (Some(s), Some(c)) = (weight_of(stable), weight_of(canary)) {
                v.weighted_rules += 1;
                v.stable = Some(s);
                v.canary = Some(c);
            }
        }
        v
    }

    /// Names of the header routes, without the `zdr-` prefix, sorted.
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (self.header_rules.iter())
            .map(|r| r.name.trim_start_matches(ZDR_RULE_PREFIX).to_string())
            .collect();
        names.sort();
        names
    }

    /// The canary's weight as a number (0 when the rule is missing: then checks fail elsewhere).
    pub fn canary_weight(&self) -> i64 {
        self.canary.unwrap_or(0)
    }

    /// One line for failure messages.
    pub fn describe(&self) -> String {
        let rules: Vec<String> = (self.header_rules.iter())
            .map(|r| format!("{}{:?}->{:?}", r.name, r.matches, r.backends))
            .collect();
        format!(
            "weights stable={:?} canary={:?} (weighted rules: {}), zdr rules: [{}]",
            self.stable,
            self.canary,
            self.weighted_rules,
            rules.join(", ")
        )
    }

    /// Problems with the route as a whole: one weighted rule whose weights add up to 100, and
    /// every `zdr-` rule routes only to the canary Service, by header conditions only.
    pub fn problems(&self, canary: &str) -> Vec<String> {
        let mut out = self.order_problems.clone();
        if self.weighted_rules != 1 {
            out.push(format!(
                "{} rules name both Services (expected exactly one weighted rule)",
                self.weighted_rules
            ));
        }
        if let (Some(s), Some(c)) = (self.stable, self.canary)
            && s + c != 100
        {
            out.push(format!("weights stable {s} + canary {c} != 100"));
        }
        for r in &self.header_rules {
            if r.backends != [canary] {
                out.push(format!(
                    "rule {} routes to {:?}, not only to the canary Service {canary}",
                    r.name, r.backends
                ));
            }
            if r.matches.is_empty() || r.matches.iter().any(Vec::is_empty) {
                out.push(format!(
                    "rule {} has a match without header conditions",
                    r.name
                ));
            }
        }
        out
    }
}

/// A backendRef to a core Service (group "" and kind Service, the defaults).
fn is_service(r: &Value) -> bool {
    r["group"].as_str().unwrap_or("").is_empty()
        && r["kind"].as_str().unwrap_or("Service") == "Service"
}

/// Everything in the route that is not the controller's to change: metadata labels and
/// annotations and the spec, without the `zdr-` rules and without the `weight` of the stable
/// and canary backendRefs of the weighted rule. Compared as canonical JSON (sorted keys).
pub fn foreign_part(route: &DynamicObject, stable: &str, canary: &str) -> String {
    let mut spec = route.data["spec"].clone();
    if let Some(rules) = spec["rules"].as_array_mut() {
        rules.retain(|r| {
            !r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(ZDR_RULE_PREFIX))
        });
        for rule in rules.iter_mut() {
            let Some(refs) = rule["backendRefs"].as_array_mut() else {
                continue;
            };
            let names = |n: &str| refs.iter().any(|r| r["name"] == n && is_service(r));
            if !(names(stable) && names(canary)) {
                continue;
            }
            for r in refs.iter_mut() {
                if (r["name"] == stable || r["name"] == canary)
                    && let Some(o) = r.as_object_mut()
                {
                    o.remove("weight");
                }
            }
        }
    }
    let labels = serde_json::to_value(&route.metadata.labels).unwrap_or_default();
    let annotations = serde_json::to_value(&route.metadata.annotations).unwrap_or_default();
    // Annotations written by kubectl or the controller itself are not the test's.
    let ours = |a: &Value| {
        let mut a = a.clone();
        if let Some(o) = a.as_object_mut() {
            o.retain(|k, _| k.starts_with("e2e.zdr.dev/"));
        }
        a
    };
    serde_json::to_string(
        &json!({"labels": labels, "annotations": ours(&annotations), "spec": spec}),
    )
    .unwrap_or_default()
}
