//! Reconcile against a mocked API server (tower-test, the kube-rs "ApiServerVerifier" pattern):
//! the exact requests, bodies and field manager of each scenario are asserted, in order, and each
//! must be allowed by the controller's RBAC rules (`super::rbac`).

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::clock::FixedClock;
use super::context::{Context, Settings};
use super::metrics::Metrics;
use super::reconcile::reconcile;
use crate::crd::ZeroDowntimeRollout;
use crate::revision::template_hash;

const NOW: &str = "2026-06-01T12:00:00Z";
/// The agent image the mocked controller is configured with.
const AGENT_IMAGE: &str = "zdr-agent:test";

struct Verifier(Handle<Request<Body>, Response<Body>>);

/// Fails the test unless the controller's RBAC rules (and so the chart's) allow `req`.
fn allowed(req: &Request<Body>) {
    if let Err(e) = super::rbac::check(req.method().as_str(), &req.uri().to_string()) {
        panic!("{e}");
    }
}

impl Verifier {
    /// Expects the next request to be `method` on `path` (query included), answers `reply`
    /// and returns the request body as JSON (Null when empty).
    async fn expect(&mut self, method: Method, path: &str, reply: Value) -> Value {
        self.expect_status_code(method, path, reply, 200).await
    }

    /// As [`Verifier::expect`], answering with HTTP status `code`.
    async fn expect_status_code(
        &mut self,
        method: Method,
        path: &str,
        reply: Value,
        code: u16,
    ) -> Value {
        self.answer(method, path, |_| reply, code).await
    }

    /// As [`Verifier::expect_status_code`], the answer made from the request body.
    async fn answer(
        &mut self,
        method: Method,
        path: &str,
        reply: impl FnOnce(&Value) -> Value,
        code: u16,
    ) -> Value {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
            .expect("service not called");
        assert_eq!(req.method(), method, "for {}", req.uri());
        assert_eq!(req.uri().to_string(), path);
        allowed(&req);
        let ctype = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply(&body)).unwrap()))
            .unwrap();
        send.send_response(response);
        // Keep the content type next to the body for assertions on the patch kind.
        json!({"contentType": ctype, "body": body})
    }

    /// Expects the server-side apply of ControllerRevision `web-<hash>` and answers it as
    /// revision `number`; returns what `expect` returns.
    async fn expect_revision(&mut self, hash: &str, number: i64) -> Value {
        self.expect(
            Method::PATCH,
            &format!(
                "/apis/apps/v1/namespaces/ns/controllerrevisions/web-{hash}?&force=true&fieldManager=zdr-controller"
            ),
            json!({"metadata": {"name": format!("web-{hash}")}, "revision": number}),
        )
        .await
    }

    /// Expects a pod to be created; returns what `expect` returns.
    async fn expect_pod_create(&mut self) -> Value {
        self.expect(
            Method::POST,
            "/api/v1/namespaces/ns/pods?&fieldManager=zdr-controller",
            pod_reply("p"),
        )
        .await
    }

    /// Expects an event to be published; returns its body.
    async fn expect_event(&mut self) -> Value {
        self.expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ns/events?",
            event_reply(),
        )
        .await["body"]
            .clone()
    }

    /// Expects the status to be applied; returns the applied `status`.
    async fn expect_status(&mut self) -> Value {
        let applied = self
            .answer(Method::PATCH, STATUS_PATH, status_reply, 200)
            .await;
        assert_eq!(applied["contentType"], "application/apply-patch+yaml");
        applied["body"]["status"].clone()
    }

    /// Asserts that no further request arrives.
    async fn expect_nothing(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((req, _))) = next {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

struct Harness {
    ctx: Arc<Context>,
    pods: Writer<Pod>,
    revisions: Writer<ControllerRevision>,
    slices: Writer<EndpointSlice>,
    api: Verifier,
}

fn harness(now: &str) -> Harness {
    harness_with(now, Arc::new(super::analysis::PrometheusFactory::default()))
}

fn harness_with(now: &str, providers: Arc<dyn super::analysis::ProviderFactory>) -> Harness {
    build(now, providers, true)
}

/// A harness whose pod cache has not finished its initial list (a controller just started).
fn harness_before_pod_list(now: &str) -> Harness {
    build(
        now,
        Arc::new(super::analysis::PrometheusFactory::default()),
        false,
    )
}

fn build(
    now: &str,
    providers: Arc<dyn super::analysis::ProviderFactory>,
    pods_listed: bool,
) -> Harness {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let (pod_reader, mut pods) = reflector::store::<Pod>();
    let (rev_reader, mut revisions) = reflector::store::<ControllerRevision>();
    let (slice_reader, mut slices) = reflector::store::<EndpointSlice>();
    // The initial lists have completed (empty); tests add objects as watch events.
    if pods_listed {
        synced(&mut pods, vec![]);
    }
    synced(&mut revisions, vec![]);
    synced(&mut slices, vec![]);
    let ctx = Arc::new(
        Context::new(
            client,
            pod_reader,
            rev_reader,
            slice_reader,
            Arc::new(FixedClock(now.parse().unwrap())),
            Metrics::register(&mut Registry::default()),
            Settings {
                endpoint_propagation: Duration::from_secs(5),
                agent: crate::hotswap::AgentImage::new(AGENT_IMAGE),
            },
        )
        .with_providers(providers),
    );
    Harness {
        ctx,
        pods,
        revisions,
        slices,
        api: Verifier(handle),
    }
}

fn rollout(spec_patch: Value, status: Value) -> ZeroDowntimeRollout {
    let mut spec = json!({
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": "web:2"}]}},
    });
    if let (Some(s), Some(p)) = (spec.as_object_mut(), spec_patch.as_object()) {
        for (k, v) in p {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web", "namespace": "ns", "uid": "zdr-uid", "generation": 2},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn owned_pod(name: &str, rev: &str, ready: bool, serving: Option<&str>, extra: Value) -> Pod {
    let mut conditions = vec![
        json!({"type": "Ready", "status": if ready {"True"} else {"False"},
                                     "lastTransitionTime": "2026-06-01T11:00:00Z"}),
    ];
    if let Some(s) = serving {
        conditions.push(json!({"type": "zdr.dev/serving", "status": s}));
    }
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                     "labels": {"app": "web", "zdr.dev/revision": rev},
                     "creationTimestamp": "2026-06-01T10:00:00Z",
                     "ownerReferences": [{"apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
                                          "name": "web", "uid": "zdr-uid", "controller": true}]},
        "spec": {"containers": [{"name": "app"}], "nodeName": "node-1",
                 "readinessGates": [{"conditionType": "zdr.dev/serving"}]},
        "status": {"phase": "Running", "conditions": conditions},
    });
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            pod["metadata"][k] = v.clone();
        }
    }
    serde_json::from_value(pod).unwrap()
}

fn revision(hash: &str, number: i64, template: &Value) -> ControllerRevision {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{hash}"), "namespace": "ns", "labels": {"zdr.dev/revision": hash},
                     "ownerReferences": [{"apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
                                          "name": "web", "uid": "zdr-uid", "controller": true}]},
        "data": {"template": template},
        "revision": number,
    }))
    .unwrap()
}

fn slice(pod: &str, ready: bool) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "web-svc-abc", "namespace": "ns"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.9"], "targetRef": {"kind": "Pod", "name": pod},
                       "conditions": {"ready": ready}}],
    }))
    .unwrap()
}

/// Completes an initial list of `objs`: the store holds exactly them and is ready.
fn synced<K: kube::Resource + Clone>(w: &mut Writer<K>, objs: Vec<K>)
where
    K::DynamicType: Clone + Eq + std::hash::Hash + Default,
{
    w.apply_watcher_event(&watcher::Event::Init);
    for obj in objs {
        w.apply_watcher_event(&watcher::Event::InitApply(obj));
    }
    w.apply_watcher_event(&watcher::Event::InitDone);
}

fn add<K: kube::Resource + Clone>(w: &mut Writer<K>, obj: K)
where
    K::DynamicType: Clone + Eq + std::hash::Hash + Default,
{
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

fn pod_reply(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"}})
}

fn event_reply() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
           "eventTime": "2026-06-01T12:00:00.000000Z"})
}

/// The API server's answer to a status apply: the rollout with the applied status.
fn status_reply(applied: &Value) -> Value {
    serde_json::to_value(rollout(json!({}), applied["status"].clone())).unwrap()
}

/// `zdr` as the watch cache shows it once it saw the status write `applied`.
fn with_status(zdr: &ZeroDowntimeRollout, applied: &Value) -> ZeroDowntimeRollout {
    let mut z = zdr.clone();
    z.status = serde_json::from_value(applied.clone()).unwrap();
    z
}

/// A Ready pod of `rev`, in traffic (serving gate True).
fn add_serving(h: &mut Harness, name: &str, rev: &str) {
    add(
        &mut h.pods,
        owned_pod(name, rev, true, Some("True"), json!({})),
    );
}

const STATUS_PATH: &str = "/apis/zdr.dev/v1alpha1/namespaces/ns/zerodowntimerollouts/web/status?&force=true&fieldManager=zdr-controller";

fn hash_of(z: &ZeroDowntimeRollout) -> String {
    template_hash(&z.spec.template)
}

/// Old revision `web:1`, update `web:2`; 2 replicas, maxSurge 1, maxUnavailable 0.
fn mid_rollout(h: &mut Harness) -> (ZeroDowntimeRollout, String, String) {
    let old_template = json!({"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "web:1"}]}});
    let old_hash = template_hash(&serde_json::from_value(old_template.clone()).unwrap());
    let zdr = rollout(
        json!({"replicas": 2, "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}}),
        json!({"stableRevision": old_hash, "updateRevision": null, "replicas": 2,
               "updatedReplicas": 0, "availableReplicas": 2, "readyReplicas": 2}),
    );
    let new_hash = hash_of(&zdr);
    let new_template = serde_json::to_value(&zdr.spec.template).unwrap();
    add(&mut h.revisions, revision(&old_hash, 1, &old_template));
    add(&mut h.revisions, revision(&new_hash, 2, &new_template));
    (zdr, old_hash, new_hash)
}

mod analysis;
mod canary;
mod hotswap;
mod hotswap_render;
mod restart;
mod rolling;
mod stuck;
mod swap;
