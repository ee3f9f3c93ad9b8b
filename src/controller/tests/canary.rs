//! Canary scenarios against the mocked API server: the traffic is read from the HTTPRoute and
//! the Services, written Services first and router second (only what changed, keeping every
//! foreign rule), before any pod write; a missing HTTPRoute is a Degraded status; nothing is
//! decided from a status older than the last one written.

use super::*;

fn service(name: &str, rev: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "ns", "resourceVersion": "3"},
           "spec": {"selector": {"app": "web", "zdr.dev/revision": rev}}})
}

fn route(stable_weight: i64, canary_weight: i64) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "41"},
           "spec": {"parentRefs": [{"name": "public"}], "rules": [
               {"backendRefs": [{"name": "other", "port": 80}], "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "1"}]}}]},
               {"backendRefs": [{"name": "web-stable", "port": 80, "weight": stable_weight},
                                {"name": "web-canary", "port": 80, "weight": canary_weight}]}]}})
}

impl Verifier {
    /// Expects the GETs of the stable and canary Services, answering with the revisions they
    /// select.
    async fn expect_services(&mut self, stable: &str, canary: &str) {
        self.expect(Method::GET, STABLE, service("web-stable", stable))
            .await;
        self.expect(Method::GET, CANARY, service("web-canary", canary))
            .await;
    }

    /// Expects one reconcile of a canary at step 0 whose Services both select `old`, with a
    /// Ready canary pod and no canary weight: it reads the Services and the router, moves the
    /// canary Service to `new` and writes status. Returns the Service patch and the status.
    async fn expect_canary_service_moved(&mut self, old: &str, new: &str) -> (Value, Value) {
        // Read what the Services and the router carry now, then again before writing.
        self.expect_services(old, old).await;
        self.expect(Method::GET, ROUTE, route(100, 0)).await;
        self.expect_services(old, old).await;
        let path = format!("{CANARY}?&fieldManager=zdr-controller");
        let patch = self
            .expect(Method::PATCH, &path, service("web-canary", new))
            .await;
        self.expect(Method::GET, ROUTE, route(100, 0)).await;
        (patch, self.expect_status().await)
    }
}

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/web";
const STABLE: &str = "/api/v1/namespaces/ns/services/web-stable";
const CANARY: &str = "/api/v1/namespaces/ns/services/web-canary";

/// A canary at step 0 (`setWeight 50`) of revision web:2 over a stable web:1, two pods each,
/// all Ready and serving; the canary Service still selects `canary_selects`.
fn at_step_zero(h: &mut Harness, canary_selects: &str) -> (ZeroDowntimeRollout, String, String) {
    let old_template = json!({"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "web:1"}]}});
    let old = template_hash(&serde_json::from_value(old_template.clone()).unwrap());
    let mut zdr = rollout(
        json!({"replicas": 2, "strategy": {"canary": {"stableService": "web-stable", "canaryService": "web-canary",
               "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}, "steps": [{"setWeight": 50}, {"pause": {}}],
               "maxSurge": 1, "maxUnavailable": 0}}}),
        json!(null),
    );
    let new = hash_of(&zdr);
    let sel = if canary_selects == "old" {
        old.clone()
    } else {
        new.clone()
    };
    zdr.status = Some(
        serde_json::from_value(
            json!({"stableRevision": old, "updateRevision": new, "currentStepIndex": 0,
            "stepStartedAt": "2026-06-01T11:59:00Z", "canaryWeight": 0,
            "services": {"stable": old, "canary": sel}, "replicas": 3, "updatedReplicas": 1,
            "availableReplicas": 3, "readyReplicas": 3}),
        )
        .unwrap(),
    );
    add(&mut h.revisions, revision(&old, 1, &old_template));
    add(
        &mut h.revisions,
        revision(&new, 2, &serde_json::to_value(&zdr.spec.template).unwrap()),
    );
    add_serving(h, "old-a", &old);
    add_serving(h, "old-b", &old);
    add_serving(h, "new-a", &new);
    (zdr, old, new)
}

#[tokio::test]
async fn the_canary_service_moves_first_then_the_weight_keeping_foreign_rules() {
    let mut h = harness(NOW);
    let (zdr, old, new) = at_step_zero(&mut h, "old");
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    // A ready canary pod and no canary traffic: the canary Service moves to it (merge patch,
    // the user's `app` key untouched); the weight waits for the next observation.
    let (patch, s) = h.api.expect_canary_service_moved(&old, &new).await;
    assert_eq!(patch["contentType"], "application/merge-patch+json");
    assert_eq!(
        patch["body"],
        json!({"spec": {"selector": {"zdr.dev/revision": new}}})
    );
    assert_eq!(s["phase"], "Progressing");
    assert_eq!(s["services"]["canary"], new.as_str());
    assert_eq!(s["canaryWeight"], 0);
    assert_eq!(s["currentStepIndex"], 0);
    task.await.unwrap().unwrap();

    // With the canary Service on the canary pod (50% of 2 replicas is one), the weight is written
    // with a conditional PUT that keeps the other rule, its filter and the parentRefs.
    let mut h = harness(NOW);
    let (zdr, old, new) = at_step_zero(&mut h, "new");
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    for _ in 0..2 {
        h.api.expect_services(&old, &new).await;
        h.api.expect(Method::GET, ROUTE, route(100, 0)).await;
    }
    let put = h
        .api
        .expect(
            Method::PUT,
            &format!("{ROUTE}?&fieldManager=zdr-controller"),
            route(50, 50),
        )
        .await;
    let mut want = route(50, 50);
    want["metadata"]["resourceVersion"] = json!("41");
    assert_eq!(put["body"], want, "only the two weights change");
    let s = h.api.expect_status().await;
    assert_eq!(s["canaryWeight"], 50);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_missing_httproute_is_reported_and_nothing_moves() {
    let mut h = harness(NOW);
    let (zdr, old, _) = at_step_zero(&mut h, "old");
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    h.api.expect_services(&old, &old).await;
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": "httproutes \"web\" not found"});
    h.api
        .expect_status_code(Method::GET, ROUTE, not_found, 404)
        .await;
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "TrafficRouterError");
    let s = h.api.expect_status().await;
    assert_eq!(s["phase"], "Degraded");
    let c = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "TrafficRouting")
        .unwrap()
        .clone();
    assert_eq!(c["reason"], "TrafficRouterError");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("HTTPRoute ns/web not found"),
        "{c}"
    );
    assert!(task.await.unwrap().is_err(), "backs off");
    h.api.expect_nothing().await;
}

#[tokio::test]
async fn a_reconcile_woken_before_the_cache_shows_the_last_status_written_touches_nothing() {
    let mut h = harness(NOW);
    let (zdr, old, new) = at_step_zero(&mut h, "old");
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    let (_, s) = h.api.expect_canary_service_moved(&old, &new).await;
    assert_eq!(s["services"]["canary"], new.as_str());
    task.await.unwrap().unwrap();

    // A pod event wakes a reconcile while the cache still holds the rollout as it was: deciding
    // from that status could move traffic or pods back; it reads and writes nothing.
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    h.api.expect_nothing().await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(1))
    );

    // Once the cache shows it, the next reconcile goes on from there.
    let task = tokio::spawn(reconcile(Arc::new(with_status(&zdr, &s)), h.ctx.clone()));
    h.api.expect_services(&old, &new).await;
    task.abort();
}
