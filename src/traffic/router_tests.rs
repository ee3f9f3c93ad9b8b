//! The routers and `select_revision` against a mocked API server (tower-test): the exact
//! requests, paths with the field manager, and the whole PUT and PATCH bodies.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::Api;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;
use crate::traffic::gateway::apply_httproute;
use crate::traffic::istio::apply_virtualservice;
use crate::traffic::services::select_revision;
use crate::traffic::testing::{cond, route, target};

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/web";
const PUT_ROUTE: &str =
    "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/web?&fieldManager=zdr-controller";
const VS: &str = "/apis/networking.istio.io/v1/namespaces/ns/virtualservices/web";
const SVC: &str = "/api/v1/namespaces/ns/services/web-canary";

struct Server(Handle<Request<Body>, Response<Body>>);

/// Fails the test unless the controller's RBAC rules (and so the chart's) allow `req`.
fn allowed(req: &Request<Body>) {
    if let Err(e) = crate::controller::rbac::check(req.method().as_str(), &req.uri().to_string()) {
        panic!("{e}");
    }
}

impl Server {
    /// Expects `method` on `path` (query included), answers `status` with `reply`, and returns
    /// the request's content type and JSON body (Null when empty).
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        status: u16,
        reply: &Value,
    ) -> (Option<String>, Value) {
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
            .status(StatusCode::from_u16(status).unwrap())
            .body(Body::from(serde_json::to_vec(reply).unwrap()))
            .unwrap();
        send.send_response(response);
        (ctype, body)
    }

    /// Expects a PUT on `path`; answers it with its own body; returns the body.
    async fn expect_put(&mut self, path: &str) -> Value {
        let next = self.0.next_request();
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("timed out waiting for the PUT")
            .expect("service not called");
        assert_eq!(
            (req.method(), req.uri().to_string()),
            (&Method::PUT, path.to_string())
        );
        allowed(&req);
        let body: Value =
            serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&body).unwrap(),
        )));
        body
    }

    async fn expect_nothing(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((req, _))) = next {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

fn server() -> (Client, Server) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), Server(handle))
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
           "code": code, "message": format!("{reason} (test)")})
}

fn stored_route(resource_version: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": resource_version},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [
            {"name": "health", "backendRefs": [{"name": "health", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100},
                             {"name": "web-canary", "port": 80, "weight": 0}]}]},
    })
}

fn gateway(client: Client) -> GatewayRouter {
    GatewayRouter::new(client, "ns", "web", "web-stable", "web-canary")
}

/// Runs `router.apply(t)` on a task.
fn spawn_apply(
    router: impl TrafficRouter + 'static,
    t: TrafficTarget,
) -> tokio::task::JoinHandle<Result<(), RouterError>> {
    tokio::spawn(async move { router.apply(&t).await })
}

#[tokio::test]
async fn gateway_puts_the_whole_route_with_its_resource_version() {
    let (client, mut api) = server();
    let t = target(
        10,
        vec![route("beta", vec![cond("X-Canary", "exact", "1")])],
    );
    let task = spawn_apply(gateway(client), t.clone());
    api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
        .await;
    let put = api.expect_put(PUT_ROUTE).await;
    api.expect_nothing().await;
    task.await.unwrap().expect("applied");
    let rules = &put["spec"]["rules"];
    assert_eq!(put["metadata"]["resourceVersion"], "7");
    assert_eq!(
        rules[0],
        stored_route("7")["spec"]["rules"][0],
        "a foreign rule is kept"
    );
    assert_eq!(rules[1]["name"], "zdr-beta");
    assert_eq!(rules[2]["backendRefs"][0]["weight"], 90);
    assert_eq!(rules[2]["backendRefs"][1]["weight"], 10);
    let mut want = stored_route("7");
    assert!(apply_httproute(&mut want, "ns", "web-stable", "web-canary", &t).unwrap());
    assert_eq!(put, want);
}

#[tokio::test]
async fn an_unchanged_target_only_reads() {
    let (client, mut api) = server();
    let task = spawn_apply(gateway(client), target(0, vec![]));
    api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
        .await;
    api.expect_nothing().await;
    task.await.unwrap().expect("nothing to do");
}

#[tokio::test]
async fn a_conflict_reads_again_and_keeps_the_other_writers_change() {
    let (client, mut api) = server();
    let task = spawn_apply(gateway(client), target(30, vec![]));
    api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
        .await;
    let (_, first) = api
        .expect(Method::PUT, PUT_ROUTE, 409, &status(409, "Conflict"))
        .await;
    assert_eq!(first["metadata"]["resourceVersion"], "7");
    let mut changed = stored_route("8");
    changed["spec"]["hostnames"] = json!(["added.example.com"]);
    api.expect(Method::GET, ROUTE, 200, &changed).await;
    let put = api.expect_put(PUT_ROUTE).await;
    api.expect_nothing().await;
    task.await.unwrap().expect("applied on the second attempt");
    assert_eq!(put["metadata"]["resourceVersion"], "8");
    assert_eq!(put["spec"]["hostnames"], json!(["added.example.com"]));
    assert_eq!(put["spec"]["rules"][1]["backendRefs"][1]["weight"], 30);
}

#[tokio::test]
async fn five_conflicts_give_up() {
    let (client, mut api) = server();
    let task = spawn_apply(gateway(client), target(30, vec![]));
    for _ in 0..MAX_ATTEMPTS {
        api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
            .await;
        api.expect(Method::PUT, PUT_ROUTE, 409, &status(409, "Conflict"))
            .await;
    }
    api.expect_nothing().await;
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RouterError::Conflict { kind: "HTTPRoute", name, attempts: 5 } if name == "web"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_route_is_not_found_and_other_failures_are_api_errors() {
    let (client, mut api) = server();
    let task = spawn_apply(gateway(client.clone()), target(30, vec![]));
    api.expect(Method::GET, ROUTE, 404, &status(404, "NotFound"))
        .await;
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTPRoute ns/web not found: create it before the canary starts"
    );
    let task = spawn_apply(gateway(client), target(30, vec![]));
    api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
        .await;
    api.expect(Method::PUT, PUT_ROUTE, 422, &status(422, "Invalid"))
        .await;
    api.expect_nothing().await;
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RouterError::Api(kube::Error::Api(s)) if s.code == 422),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unusable_route_is_read_and_never_written() {
    let (client, mut api) = server();
    let router = GatewayRouter::new(client, "ns", "web", "web-stable", "other");
    let task = spawn_apply(router, target(30, vec![]));
    api.expect(Method::GET, ROUTE, 200, &stored_route("7"))
        .await;
    api.expect_nothing().await;
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, RouterError::Unusable(m) if m.contains("has no rule whose backendRefs")));
}

#[tokio::test]
async fn istio_puts_the_whole_virtualservice() {
    let stored = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "3"},
        "spec": {"hosts": ["web"], "http": [
            {"name": "other", "route": [{"destination": {"host": "other"}}]},
            {"name": "primary", "route": [{"destination": {"host": "web-stable"}, "weight": 100},
                                          {"destination": {"host": "web-canary"}, "weight": 0}]}]},
    });
    let (client, mut api) = server();
    let routes = vec!["primary".to_string()];
    let router = IstioRouter::new(client, "ns", "web", &routes, "web-stable", "web-canary");
    let t = target(20, vec![route("b", vec![cond("X-B", "prefix", "x")])]);
    let task = spawn_apply(router, t.clone());
    api.expect(Method::GET, VS, 200, &stored).await;
    let put = api
        .expect_put(&format!("{VS}?&fieldManager=zdr-controller"))
        .await;
    api.expect_nothing().await;
    task.await.unwrap().expect("applied");
    assert_eq!(put["metadata"]["resourceVersion"], "3");
    assert_eq!(
        put["spec"]["http"][1], stored["spec"]["http"][0],
        "a foreign route is kept"
    );
    assert_eq!(put["spec"]["http"][0]["name"], "zdr-b");
    let mut want = stored.clone();
    assert!(
        apply_virtualservice(&mut want, "ns", "web-stable", "web-canary", &routes, &t).unwrap()
    );
    assert_eq!(put, want);
}

#[tokio::test]
async fn router_for_picks_the_router_of_the_strategy() {
    let strategy = |routing: Value| -> crate::crd::CanaryStrategy {
        let mut s = json!({"stableService": "web-stable", "canaryService": "web-canary",
                           "steps": [{"setWeight": 10}]});
        if !routing.is_null() {
            s["trafficRouting"] = routing;
        }
        serde_json::from_value(s).unwrap()
    };
    let (client, mut api) = server();
    assert!(router_for(client.clone(), "ns", &strategy(Value::Null)).is_none());
    let cases = [
        (json!({"gatewayAPI": {"httpRoute": "web"}}), ROUTE),
        (json!({"istio": {"virtualService": {"name": "web"}}}), VS),
    ];
    for (routing, path) in cases {
        let router = router_for(client.clone(), "ns", &strategy(routing)).expect("a router");
        let task = tokio::spawn(async move { router.apply(&target(0, vec![])).await });
        api.expect(Method::GET, path, 404, &status(404, "NotFound"))
            .await;
        assert!(matches!(
            task.await.unwrap(),
            Err(RouterError::NotFound { .. })
        ));
    }
}

fn service(selector: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web-canary", "namespace": "ns", "resourceVersion": "4"},
           "spec": {"selector": selector, "ports": [{"port": 80}]}})
}

#[tokio::test]
async fn select_revision_merge_patches_one_selector_key() {
    let (client, mut api) = server();
    let services: Api<Service> = Api::namespaced(client, "ns");
    let task =
        tokio::spawn(async move { select_revision(&services, "web-canary", "8b21e4").await });
    let stored = service(json!({"app": "web", "zdr.dev/revision": "5f7c9d"}));
    api.expect(Method::GET, SVC, 200, &stored).await;
    let path = format!("{SVC}?&fieldManager=zdr-controller");
    let (ctype, body) = api.expect(Method::PATCH, &path, 200, &stored).await;
    api.expect_nothing().await;
    assert!(task.await.unwrap().expect("patched"));
    assert_eq!(ctype.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(
        body,
        json!({"spec": {"selector": {"zdr.dev/revision": "8b21e4"}}})
    );
}

#[tokio::test]
async fn select_revision_reads_only_when_already_selected_and_refuses_no_selector() {
    let (client, mut api) = server();
    let services: Api<Service> = Api::namespaced(client, "ns");
    let s = services.clone();
    let task = tokio::spawn(async move { select_revision(&s, "web-canary", "8b21e4").await });
    let stored = service(json!({"app": "web", "zdr.dev/revision": "8b21e4"}));
    api.expect(Method::GET, SVC, 200, &stored).await;
    api.expect_nothing().await;
    assert!(!task.await.unwrap().expect("nothing to do"));

    let s = services.clone();
    let task = tokio::spawn(async move { select_revision(&s, "web-canary", "8b21e4").await });
    let mut bare = service(Value::Null);
    bare["spec"].as_object_mut().unwrap().remove("selector");
    api.expect(Method::GET, SVC, 200, &bare).await;
    api.expect_nothing().await;
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(
        err.starts_with("Service ns/web-canary has no spec.selector"),
        "{err}"
    );

    let task =
        tokio::spawn(async move { select_revision(&services, "web-canary", "8b21e4").await });
    api.expect(Method::GET, SVC, 404, &status(404, "NotFound"))
        .await;
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RouterError::NotFound { kind: "Service", namespace, name } if namespace == "ns" && name == "web-canary")
    );
}
