//! Istio for the canary tests: the real upstream `networking.istio.io` CRDs (v1.30.3,
//! VirtualService and DestinationRule) installed on the test cluster once per run, and the
//! reading of a VirtualService the controller changes, as the same [`RouteView`] an HTTPRoute
//! gives: the weights of the stable and canary destinations in the weighted `http` route, the
//! `zdr-` routes it adds for header routes (which must come first in `spec.http`), and
//! everything else, which must stay as the test wrote it.
//!
//! The CRD file is third-party test data, never copied into the repository: it is read from
//! `$ZDR_THIRD_PARTY_CRDS/istio/networking-crds.yaml` (see `gateway::crd_dir`).

use std::io::Write;
use std::path::PathBuf;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::env_flag;
use crate::gateway::{HeaderRule, RouteView, ZDR_RULE_PREFIX, crd_dir, install_crds};

/// The CRD file, relative to the third-party CRD folder.
pub const NETWORKING_CRDS: &str = "istio/networking-crds.yaml";
const VS_CRD: &str = "virtualservices.networking.istio.io";

/// VirtualService, `networking.istio.io/v1`.
pub fn virtualservice_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

/// The VirtualServices of `ns`.
pub fn virtualservices(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &virtualservice_resource())
}

static INSTALLED: tokio::sync::OnceCell<Result<(), String>> = tokio::sync::OnceCell::const_new();

/// Makes sure the Istio networking CRDs are installed and Established (once per run). `false`,
/// said loudly on stderr, when the file is missing: the test cleans up and calls
/// [`missing_crds`]. Panics when the install fails.
pub async fn ensure_crds(test: &str, client: &Client) -> bool {
    let path = crd_dir().join(NETWORKING_CRDS);
    if !path.is_file() {
        let what = if env_flag("ZDR_REQUIRE_CLUSTER") {
            "FAILED (ZDR_REQUIRE_CLUSTER=1)"
        } else {
            "SKIPPED"
        };
        let _ = writeln!(
            std::io::stderr(),
            "\n*** e2e {test}: {what}: the Istio CRDs are missing: no file {}; set \
             ZDR_THIRD_PARTY_CRDS to the folder holding {NETWORKING_CRDS} (see \
             ../shared/crds/README.md) ***\n",
            path.display()
        );
        return false;
    }
    let outcome = INSTALLED
        .get_or_init(|| install(client.clone(), path))
        .await;
    if let Err(e) = outcome {
        panic!("installing the Istio CRDs: {e}");
    }
    true
}

/// After [`ensure_crds`] found no file: fails with `ZDR_REQUIRE_CLUSTER=1`, else returns.
pub fn missing_crds() {
    assert!(
        !env_flag("ZDR_REQUIRE_CLUSTER"),
        "ZDR_REQUIRE_CLUSTER=1 but the Istio CRDs are missing: no file {}; set \
         ZDR_THIRD_PARTY_CRDS to the folder holding {NETWORKING_CRDS}",
        crd_dir().join(NETWORKING_CRDS).display()
    );
}

/// Server-side applies each CRD of the file (idempotent: same manager, same content) and waits
/// until each is Established.
async fn install(client: Client, path: PathBuf) -> Result<(), String> {
    install_crds(client, &path, "Istio", VS_CRD, None).await
}

/// A VirtualService `name` with the http route `primary` (stable 100, canary 0; the stable
/// destination by its cluster-local name, the canary by its short name) after a foreign http
/// route `foreign` (another host, a header match, a rewrite), plus hosts, gateways, a label and
/// an annotation: everything but the two weights must survive the rollout.
pub fn vs_body(name: &str, ns: &str, stable: &str, canary: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": name,
            "labels": {"team": "e2e"},
            "annotations": {"e2e.zdr.dev/owner": "the test, not zdr"}
        },
        "spec": {
            "hosts": ["web.e2e.zdr.test"],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": "foreign",
                    "match": [{"uri": {"prefix": "/admin"}, "headers": {"x-team": {"exact": "ops"}}}],
                    "rewrite": {"uri": "/"},
                    "route": [{"destination": {"host": "admin-backend", "port": {"number": 9090}}, "weight": 100}]
                },
                {
                    "name": "primary",
                    "match": [{"uri": {"prefix": "/"}}],
                    "timeout": "5s",
                    "route": [
                        {"destination": {"host": format!("{stable}.{ns}.svc.cluster.local"), "port": {"number": 80}}, "weight": 100},
                        {"destination": {"host": canary, "port": {"number": 80}}, "weight": 0}
                    ]
                }
            ]
        }
    })
}

/// Creates the VirtualService of [`vs_body`]; returns it as the API server stored it.
pub async fn create_vs(
    client: &Client,
    ns: &str,
    name: &str,
    stable: &str,
    canary: &str,
) -> DynamicObject {
    let obj: DynamicObject =
        serde_json::from_value(vs_body(name, ns, stable, canary)).expect("a VirtualService object");
    virtualservices(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating VirtualService {ns}/{name}: {e}"))
}

/// Whether route destination `d` names Service `svc` of `ns` (as the controller documents:
/// `svc`, `svc.<ns>`, `svc.<ns>.svc`, `svc.<ns>.svc.cluster.local`).
fn names_service(d: &Value, svc: &str, ns: &str) -> bool {
    let host = d["destination"]["host"].as_str().unwrap_or_default();
    [
        svc.to_string(),
        format!("{svc}.{ns}"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}.svc.cluster.local"),
    ]
    .contains(&host.to_string())
}

fn is_zdr(r: &Value) -> bool {
    r["name"]
        .as_str()
        .is_some_and(|n| n.starts_with(ZDR_RULE_PREFIX))
}

/// Reads `vs` as a [`RouteView`]: header conditions as (Exact|Prefix|RegularExpression, header
/// name as written, value), destinations by Service name (the host's first label when it names
/// one of the two Services, else the host), an absent weight as 0; a `zdr-` route after a
/// non-`zdr-` one is an order problem.
pub fn view(vs: &DynamicObject, ns: &str, stable: &str, canary: &str) -> RouteView {
    let mut v = RouteView::default();
    let http = vs.data["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut other_seen = false;
    for route in &http {
        let name = route["name"].as_str().unwrap_or_default();
        let dests = route["route"].as_array().cloned().unwrap_or_default();
        if is_zdr(route) {
            if other_seen {
                v.order_problems
                    .push(format!("http route {name} is not before every other route"));
            }
            let matches = route["match"].as_array().cloned().unwrap_or_default();
            v.header_rules.push(HeaderRule {
                name: name.to_string(),
                matches: matches
                    .iter()
                    .map(|m| {
                        let hs = m["headers"].as_object().cloned().unwrap_or_default();
                        hs.iter()
                            .map(|(h, sm)| {
                                let (t, val) = if let Some(x) = sm["exact"].as_str() {
                                    ("Exact", x)
                                } else if let Some(x) = sm["prefix"].as_str() {
                                    ("Prefix", x)
                                } else {
                                    ("RegularExpression", sm["regex"].as_str().unwrap_or(""))
                                };
                                (t.to_string(), h.clone(), val.to_string())
                            })
                            .collect()
                    })
                    .collect(),
                backends: dests
                    .iter()
                    .map(|d| {
                        [stable, canary]
                            .into_iter()
                            .find(|s| names_service(d, s, ns))
                            .map_or_else(
                                || d["destination"]["host"].as_str().unwrap_or("").to_string(),
                                str::to_string,
                            )
                    })
                    .collect(),
            });
            continue;
        }
        other_seen = true;
        let weight_of = |svc: &str| {
            dests
                .iter()
                .find(|d| names_service(d, svc, ns))
                .map(|d| d["weight"].as_i64().unwrap_or(0))
        };
        if let (Some(s), Some(c)) = (weight_of(stable), weight_of(canary)) {
            v.weighted_rules += 1;
            v.stable = Some(s);
            v.canary = Some(c);
        }
    }
    v
}

/// Everything in the VirtualService that is not the controller's: labels, the test's
/// annotations and the spec without the `zdr-` routes and without the `weight` of the stable
/// and canary destinations of the weighted routes. Canonical JSON.
pub fn foreign_part(vs: &DynamicObject, ns: &str, stable: &str, canary: &str) -> String {
    let mut spec = vs.data["spec"].clone();
    if let Some(http) = spec["http"].as_array_mut() {
        http.retain(|r| !is_zdr(r));
        for route in http.iter_mut() {
            let Some(dests) = route["route"].as_array_mut() else {
                continue;
            };
            let names = |s: &str| dests.iter().any(|d| names_service(d, s, ns));
            if !(names(stable) && names(canary)) {
                continue;
            }
            for d in dests.iter_mut() {
                if (names_service(d, stable, ns) || names_service(d, canary, ns))
                    && let Some(o) = d.as_object_mut()
                {
                    o.remove("weight");
                }
            }
        }
    }
    let labels = serde_json::to_value(&vs.metadata.labels).unwrap_or_default();
    let mut annotations = serde_json::to_value(&vs.metadata.annotations).unwrap_or_default();
    if let Some(o) = annotations.as_object_mut() {
        o.retain(|k, _| k.starts_with("e2e.zdr.dev/"));
    }
    serde_json::to_string(&json!({"labels": labels, "annotations": annotations, "spec": spec}))
        .unwrap_or_default()
}

/// The `http` route named `name`, as canonical JSON (for byte-identity checks).
pub fn http_route(vs: &DynamicObject, name: &str) -> Option<String> {
    (vs.data["spec"]["http"].as_array()?)
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| serde_json::to_string(r).unwrap_or_default())
}
