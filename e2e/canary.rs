//! e2e: canary rollouts through a Gateway API HTTPRoute (the real v1.5.1 CRDs, `gateway.rs`).
//!
//! The test creates the stable and canary Services (selector `app: web`) and an HTTPRoute
//! whose rule `primary` weighs them 100/0, beside a foreign rule, hostnames, labels and an
//! annotation that the controller must leave as they are. The first revision has no stable
//! revision before it: its pods are simply created, both Services then select it. An update
//! runs the steps `setHeaderRoute beta` (X-Canary: always), `setWeight 20`, `pause {}`,
//! `setWeight 50`, `pause 1s`, then promotes.
//!
//! Every state is recorded (`timeline.rs`) and checked in the order the API server wrote it:
//! - the route carries one weighted rule, stable + canary = 100, `zdr-` rules route only to
//!   the canary Service by header, and everything else in it is byte-identical to what the
//!   test wrote;
//! - a weight w > 0 to the canary Service only while it selects the canary revision and
//!   ceil(replicas × w / 100) of its pods are Ready (not being deleted); the stable Service's
//!   weight s only while ceil(replicas × (s − 1) / 100), at least 1, pods of its revision are
//!   Ready (maxUnavailable 0, one point of rounding to the stable side as the controller
//!   documents); a `zdr-` rule only while the canary Service has a Ready pod;
//! - a Service switches to a revision only with Ready pods (the stable one: all replicas);
//! - no pod is deleted while Ready; no canary pod is deleted while the route still gives the
//!   canary a weight or a `zdr-` rule;
//! - status records what was applied: `canaryWeight`, `headerRoutes` and `services` equal the
//!   route and the Services at each status write; `Healthy` only once the update is the stable
//!   revision and no pod of another revision is in service;
//! - steps run in order: step k begins only after the route carried step k-1's weight and
//!   header routes with the canary pods that needs; the indefinite pause ends only after
//!   `zdr.dev/promote: <rev>/<step>`; the 1s pause lasts at least 1s.

use std::io::Write;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use zdr::crd::{
    ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, RETRY_ANNOTATION, REVISION_LABEL, condition,
};

use crate::canary_checks::{Progress, Scenario, invariants};
use crate::cluster::{
    NETEXEC, TestEnv, app_container, containers_patch, healthy, image_v1, image_v2, rollout, setup,
    timeout,
};
use crate::gateway;
use crate::timeline::{Names, Recorder, Router, World, revision};

pub(crate) const NAME: &str = "web";
const STABLE: &str = "web-stable";
const CANARY: &str = "web-canary";
const ROUTE: &str = "web";
pub(crate) const REPLICAS: i64 = 5;
/// Weight and whether the header route `beta` is active once each step ran.
pub(crate) const SETTINGS: [(i64, bool); 5] =
    [(0, true), (20, true), (20, true), (50, true), (50, true)];
/// The step `pause {}`, and the step `pause {duration: 1s}`.
pub(crate) const PROMOTION_PAUSE: usize = 2;
const TIMED_PAUSE: usize = 4;
const RETRY_TOKEN: &str = "e2e-retry-1";

fn steps() -> Value {
    json!([
        {"setHeaderRoute": {"name": "beta", "match": [
            {"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}},
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 50},
        {"pause": {"duration": "1s"}}
    ])
}

fn ceil_pct(w: i64) -> i64 {
    (REPLICAS * w + 99) / 100
}

/// Canary pods step `i` needs: its weight's share, at least one with a header route.
fn need(i: usize) -> i64 {
    let (w, beta) = SETTINGS[i];
    ceil_pct(w).max(i64::from(beta))
}

/// Waits until no pod of canary `rev2` is left, every stable `rev1` pod is Ready, and the route
/// and the canary Service send everything to stable. A free function over the recorder, so that
/// callers can run it while they hold the test environment (e.g. to kill the controller).
pub(crate) async fn back_on_stable(rec: &Recorder, rev1: &str, rev2: &str) -> World {
    rec.wait(
        "no canary pod left, all stable pods Ready, traffic on stable",
        timeout(),
        |w| {
            let v = w.route_view();
            !w.pods.values().any(|p| revision(p) == Some(rev2))
                && w.alive(rev1) == REPLICAS
                && w.ready(rev1) == REPLICAS
                && v.canary == Some(0)
                && v.header_rules.is_empty()
                && w.canary_selects().as_deref() == Some(rev1)
        },
    )
    .await
}

pub(crate) fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One canary scenario on the cluster.
pub(crate) struct Canary {
    pub(crate) env: TestEnv,
    pub(crate) rec: Recorder,
    /// The route's foreign part as created.
    pub(crate) reference: String,
    pub(crate) rev1: String,
    pub(crate) t0: Instant,
}

fn names(ns: &str, router: Router) -> Names {
    Names {
        ns: ns.to_string(),
        rollout: NAME.into(),
        stable: STABLE.into(),
        canary: CANARY.into(),
        route: ROUTE.into(),
        router,
    }
}

/// The rollout is Paused at the indefinite pause awaiting promotion, at a revision other than
/// `rev1`.
pub(crate) fn at_pause(z: &zdr::crd::ZeroDowntimeRollout, rev1: &str) -> bool {
    z.status.as_ref().is_some_and(|s| {
        s.update_revision.as_ref().is_some_and(|r| *r != rev1)
            && s.phase == Some(Phase::Paused)
            && s.current_step_index == Some(PROMOTION_PAUSE as i32)
            && s.conditions.iter().any(|c| {
                c.type_ == condition::PAUSED
                    && c.status == "True"
                    && c.reason == "AwaitingPromotion"
            })
    })
}

/// The rollout is Healthy at `rev2`, promoted after its `steps` steps.
/// The update to `rev2` is recorded as aborted, with `reason` on the Aborted condition.
pub(crate) fn aborted(z: &zdr::crd::ZeroDowntimeRollout, rev2: &str, reason: &str) -> bool {
    z.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Aborted)
            && s.aborted_revision.as_deref() == Some(rev2)
            && s.conditions
                .iter()
                .any(|c| c.type_ == condition::ABORTED && c.status == "True" && c.reason == reason)
    })
}

pub(crate) fn promoted(z: &zdr::crd::ZeroDowntimeRollout, rev2: &str, steps: i32) -> bool {
    healthy(z, 0)
        && z.status.as_ref().is_some_and(|s| {
            s.stable_revision.as_deref() == Some(rev2)
                && s.update_revision.as_deref() == Some(rev2)
                && s.current_step_index == Some(steps)
        })
}

async fn create_service(client: &Client, ns: &str, name: &str) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service");
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap_or_else(|e| panic!("creating Service {ns}/{name}: {e}"));
}

impl Canary {
    /// Namespace, Gateway API CRDs, Services, HTTPRoute, and the rollout Healthy at its first
    /// revision, checked; `None` when the test is skipped.
    async fn start(test: &str) -> Option<Canary> {
        Self::start_with(test, Router::HttpRoute).await
    }

    /// As [`start`](Self::start), through `router`: an HTTPRoute, or a VirtualService whose
    /// http route `primary` carries the split (`istio.rs`).
    pub(crate) async fn start_with(test: &str, router: Router) -> Option<Canary> {
        Self::start_custom(test, router, steps(), None).await
    }

    /// As [`start_with`](Self::start_with), with these canary `steps` and, when given, this
    /// `spec.analysis` (`canary_analysis.rs`).
    pub(crate) async fn start_custom(
        test: &str,
        router: Router,
        steps: Value,
        analysis: Option<Value>,
    ) -> Option<Canary> {
        let mut env = setup(test).await?;
        let installed = match router {
            Router::HttpRoute => gateway::ensure_crds(test, &env.client).await,
            Router::VirtualService => crate::istio::ensure_crds(test, &env.client).await,
        };
        if !installed {
            env.teardown().await;
            match router {
                Router::HttpRoute => gateway::missing_crds(),
                Router::VirtualService => crate::istio::missing_crds(),
            }
            return None;
        }
        let t0 = Instant::now();
        let (client, ns) = (env.client.clone(), env.ns.clone());
        create_service(&client, &ns, STABLE).await;
        create_service(&client, &ns, CANARY).await;
        let created = match router {
            Router::HttpRoute => gateway::create_route(&client, &ns, ROUTE, STABLE, CANARY).await,
            Router::VirtualService => {
                crate::istio::create_vs(&client, &ns, ROUTE, STABLE, CANARY).await
            }
        };
        let reference = router.foreign_part(&created, &names(&ns, router));
        let routing = match router {
            Router::HttpRoute => json!({"gatewayAPI": {"httpRoute": ROUTE}}),
            Router::VirtualService => {
                json!({"istio": {"virtualService": {"name": ROUTE, "routes": ["primary"]}}})
            }
        };
        let mut spec = json!({"strategy": {"canary": {
            "stableService": STABLE, "canaryService": CANARY,
            "trafficRouting": routing,
            "maxSurge": "25%", "maxUnavailable": 0,
            "steps": steps
        }}});
        if let Some(analysis) = analysis {
            spec["analysis"] = analysis;
        }
        let z = rollout(
            NAME,
            REPLICAS as i32,
            app_container(&image_v1(), NETEXEC),
            spec,
        );
        let generation = env.create(&z).await;
        let first = env
            .wait_until(NAME, "Healthy at the first revision", |z| {
                healthy(z, generation)
                    && z.status
                        .as_ref()
                        .is_some_and(|s| s.stable_revision.is_some())
            })
            .await;
        let s = first.status.clone().expect("status");
        let rev1 = s.update_revision.clone().expect("updateRevision");
        assert_eq!(
            s.stable_revision.as_deref(),
            Some(rev1.as_str()),
            "stableRevision: {s:?}"
        );
        // Both Services select the first revision once it is Healthy (the controller may write
        // them just after the status): waited for on the recorded world.
        let rec = Recorder::start(&client, names(&ns, router)).await;
        let w = rec
            .wait(
                "both Services selecting the first revision",
                timeout(),
                |w| {
                    w.stable_selects().as_ref() == Some(&rev1)
                        && w.canary_selects().as_ref() == Some(&rev1)
                },
            )
            .await;
        for svc in [STABLE, CANARY] {
            let sel = (w.services[svc].spec.as_ref()).and_then(|s| s.selector.clone());
            let want = [("app", NAME), (REVISION_LABEL, rev1.as_str())]
                .map(|(k, v)| (k.to_string(), v.to_string()));
            assert_eq!(
                sel,
                Some(want.into()),
                "Service {svc}'s selector keeps app and adds the revision"
            );
        }
        let c = Canary {
            env,
            rec,
            reference,
            rev1,
            t0,
        };
        c.check_route(&w, 0, &[]);
        c.check_pods(&w, &[(c.rev1.as_str(), REPLICAS, REPLICAS)]);
        say(format!(
            "e2e canary {ns}: Healthy at {} after {:?}",
            c.rev1,
            c.t0.elapsed()
        ));
        Some(c)
    }

    pub(crate) fn ns(&self) -> &str {
        &self.env.ns
    }

    /// The route carries `weight` to the canary (stable the rest) and exactly `routes` header
    /// routes (X-Canary: always, to the canary Service); its foreign part is untouched.
    pub(crate) fn check_route(&self, w: &World, weight: i64, routes: &[&str]) {
        let (names, router) = (&self.rec.names, self.rec.names.router);
        let route = w.route.as_ref().expect("the router object");
        let v = router.view(route, names);
        let ctx = format!("{}: {} {ROUTE}: {}", self.ns(), router.kind(), v.describe());
        assert!(
            v.problems(CANARY).is_empty(),
            "{ctx}: {:?}",
            v.problems(CANARY)
        );
        assert_eq!(
            (v.stable, v.canary),
            (Some(100 - weight), Some(weight)),
            "{ctx}"
        );
        assert_eq!(v.header_names(), routes, "{ctx}");
        // Istio wants header names lower-cased (docs/canary.md).
        let header = match router {
            Router::HttpRoute => "X-Canary",
            Router::VirtualService => "x-canary",
        };
        for r in &v.header_rules {
            let beta = (
                "Exact".to_string(),
                header.to_string(),
                "always".to_string(),
            );
            assert!(
                r.matches.iter().all(|m| m.contains(&beta)),
                "{ctx}: {} lacks X-Canary Exact always",
                r.name
            );
        }
        assert_eq!(
            router.foreign_part(route, names),
            self.reference,
            "{ctx}: the foreign part changed"
        );
    }

    /// Exactly these (revision, alive, ready) pods, and no other revision.
    pub(crate) fn check_pods(&self, w: &World, want: &[(&str, i64, i64)]) {
        let got: Vec<(String, i64, i64)> = want
            .iter()
            .map(|(r, _, _)| (r.to_string(), w.alive(r), w.ready(r)))
            .collect();
        let expected: Vec<(String, i64, i64)> = want
            .iter()
            .map(|(r, a, rd)| (r.to_string(), *a, *rd))
            .collect();
        let others: Vec<&str> = (w.pods.values())
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| revision(p).filter(|r| !want.iter().any(|(x, _, _)| x == r)))
            .collect();
        assert!(
            got == expected && others.is_empty(),
            "{}: pods (rev, alive, ready) {got:?}, expected {expected:?}, other revisions {others:?}\n{}",
            self.ns(),
            w.summary()
        );
    }

    /// Patches the template to v2 and waits for the indefinite pause; returns the new revision.
    pub(crate) async fn update_to_pause(&mut self) -> String {
        let t = Instant::now();
        self.env
            .patch(NAME, &containers_patch(app_container(&image_v2(), NETEXEC)))
            .await;
        let rev2 = self.wait_pause().await;
        say(format!(
            "e2e canary {}: at the pause (step {PROMOTION_PAUSE}) after {:?}",
            self.ns(),
            t.elapsed()
        ));
        rev2
    }

    /// Waits until Paused at the indefinite pause awaiting promotion, then checks the route,
    /// Services, pods and status there.
    pub(crate) async fn wait_pause(&mut self) -> String {
        let rev1 = self.rev1.clone();
        let z = self
            .env
            .wait_until(NAME, "Paused at step 2, awaiting promotion", |z| {
                at_pause(z, &rev1)
            })
            .await;
        let s = z.status.expect("status");
        let rev2 = s.update_revision.clone().expect("updateRevision");
        assert_eq!(
            s.stable_revision.as_deref(),
            Some(rev1.as_str()),
            "stableRevision during the canary"
        );
        self.rec.sync().await;
        let w = self.rec.world();
        self.check_route(&w, SETTINGS[PROMOTION_PAUSE].0, &["beta"]);
        assert_eq!(
            (w.stable_selects(), w.canary_selects()),
            (Some(rev1.clone()), Some(rev2.clone())),
            "Services (stable, canary) at the pause"
        );
        // The canary runs exactly what the step needs; the stable side at least its share of
        // the traffic (it may keep more), at most every replica.
        let (n, share) = (
            need(PROMOTION_PAUSE),
            ceil_pct(100 - SETTINGS[PROMOTION_PAUSE].0),
        );
        let counts = [
            (w.alive(&rev2), w.ready(&rev2)),
            (w.alive(&rev1), w.ready(&rev1)),
        ];
        assert!(
            counts[0] == (n, n)
                && counts[1].1 >= share
                && counts[1].0 <= REPLICAS
                && w.pods.len() as i64 == counts[0].0 + counts[1].0,
            "{}: pods at the pause (alive, ready): canary {:?} (want {n} Ready), stable {:?} (want >= {share} Ready, <= {REPLICAS}), {} pods in all\n{}",
            self.ns(),
            counts[0],
            counts[1],
            w.pods.len(),
            w.summary()
        );
        assert_eq!(
            s.canary_weight.map(i64::from),
            Some(SETTINGS[PROMOTION_PAUSE].0),
            "status.canaryWeight"
        );
        assert_eq!(s.header_routes, ["beta"], "status.headerRoutes");
        let services = s.services.clone().unwrap_or_default();
        assert_eq!(
            (services.stable, services.canary),
            (Some(rev1), Some(rev2.clone())),
            "status.services"
        );
        rev2
    }

    /// After promotion to `rev2` (`z` the Healthy rollout): `replicas` pods, all new, and Ready;
    /// weights 100/0, no header route, both Services on `rev2`, status saying so.
    pub(crate) async fn check_promoted(
        &mut self,
        z: zdr::crd::ZeroDowntimeRollout,
        rev2: &str,
        replicas: i64,
        t: Instant,
    ) {
        (self.rec)
            .wait("only the new revision's pods left", timeout(), |w| {
                w.pods.len() == replicas as usize && w.ready(rev2) == replicas
            })
            .await;
        self.rec.sync().await;
        let w = self.rec.world();
        say(format!(
            "e2e canary {}: promoted and Healthy after {:?}",
            self.ns(),
            t.elapsed()
        ));
        self.check_route(&w, 0, &[]);
        assert_eq!(
            (w.stable_selects(), w.canary_selects()),
            (Some(rev2.to_string()), Some(rev2.to_string())),
            "Services after promotion"
        );
        self.check_pods(&w, &[(rev2, replicas, replicas)]);
        let s = z.status.expect("status");
        assert_eq!(
            s.canary_weight.unwrap_or(0),
            0,
            "status.canaryWeight after promotion"
        );
        assert!(
            s.header_routes.is_empty(),
            "status.headerRoutes after promotion: {:?}",
            s.header_routes
        );
    }

    /// Merge-patches the rollout's annotations.
    /// After an abort has brought everything back (see [`back_on_stable`]): the route, the
    /// Services and the pods are on stable `rev1`, and the status says so once settled.
    pub(crate) async fn check_aborted(&mut self, rev1: &str) {
        self.rec.sync().await;
        let w = self.rec.world();
        self.check_route(&w, 0, &[]);
        let stable = Some(rev1.to_string());
        assert_eq!(
            (w.stable_selects(), w.canary_selects()),
            (stable.clone(), stable.clone()),
            "Services after the abort"
        );
        self.check_pods(&w, &[(rev1, REPLICAS, REPLICAS)]);
        let z = (self.env)
            .wait_until(NAME, "the abort's status settled", |z| {
                z.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Aborted)
                        && s.canary_weight.unwrap_or(0) == 0
                        && s.header_routes.is_empty()
                })
            })
            .await;
        if let Some(sv) = z.status.and_then(|s| s.services) {
            assert_eq!(
                (sv.stable, sv.canary),
                (stable.clone(), stable),
                "status.services after the abort"
            );
        }
    }

    pub(crate) async fn annotate(&self, annotations: Value) {
        self.env
            .patch(NAME, &json!({"metadata": {"annotations": annotations}}))
            .await;
    }

    /// The scenario the invariants check.
    pub(crate) fn scenario(&self) -> Scenario {
        Scenario {
            names: self.rec.names.clone(),
            replicas: REPLICAS,
            header: "beta",
            settings: SETTINGS.to_vec(),
            promotion_pause: Some(PROMOTION_PAUSE),
            timed_pause: Some(TIMED_PAUSE),
            scaled_down: false,
        }
    }

    /// Replays every recorded state through the invariants and the step order.
    pub(crate) fn replay(&self, what: &str, rev2: &str) {
        let sc = self.scenario();
        let mut progress = Progress::new(&sc, rev2);
        self.rec.replay(what, |w, before, e| {
            invariants(&sc, w, before, e, rev2, &self.reference)?;
            progress.observe(w, e)
        });
    }
}

pub async fn canary_through_a_header_route_two_weights_and_promotion() {
    let Some(mut c) = Canary::start("canary").await else {
        return;
    };
    let rev2 = c.update_to_pause().await;
    c.replay("up to the pause", &rev2);

    let t = Instant::now();
    c.annotate(json!({PROMOTE_ANNOTATION: format!("{rev2}/{PROMOTION_PAUSE}")}))
        .await;
    let (r2, n) = (rev2.clone(), SETTINGS.len() as i32);
    let z = c
        .env
        .wait_until(
            NAME,
            "Healthy at the new revision after the last step",
            |z| promoted(z, &r2, n),
        )
        .await;
    c.check_promoted(z, &rev2, REPLICAS, t).await;
    c.replay("the whole canary", &rev2);
    say(format!(
        "e2e canary {}: {} recorded states checked, {:?} in all",
        c.ns(),
        c.rec.entries().len(),
        c.t0.elapsed()
    ));
    c.env.teardown().await;
}

pub async fn canary_aborted_in_the_middle_returns_the_weight_before_removing_pods() {
    let Some(mut c) = Canary::start("canary-abort").await else {
        return;
    };
    let rev2 = c.update_to_pause().await;
    let rev1 = c.rev1.clone();

    let t = Instant::now();
    c.annotate(json!({ABORT_ANNOTATION: rev2})).await;
    let r2 = rev2.clone();
    c.env
        .wait_until(NAME, "Aborted by the user", |z| {
            aborted(z, &r2, "AbortedByUser")
        })
        .await;
    back_on_stable(&c.rec, &rev1, &rev2).await;
    say(format!(
        "e2e canary {}: aborted, back on stable after {:?}",
        c.ns(),
        t.elapsed()
    ));
    c.check_aborted(&rev1).await;
    c.replay("the canary and its abort", &rev2);

    // Retry: the canary starts again at step 0 (its header route first), up to the pause.
    let t = Instant::now();
    c.annotate(json!({ABORT_ANNOTATION: null, RETRY_ANNOTATION: RETRY_TOKEN}))
        .await;
    let again = c.wait_pause().await;
    assert_eq!(again, rev2, "the retry canaries the same revision");
    let s = c
        .env
        .wait_until(NAME, "status.retryToken", |z| {
            z.status.as_ref().is_some_and(|s| s.retry_token.is_some())
        })
        .await;
    assert_eq!(
        s.status.and_then(|s| s.retry_token).as_deref(),
        Some(RETRY_TOKEN),
        "status.retryToken"
    );
    say(format!(
        "e2e canary {}: retried, at the pause again after {:?}",
        c.ns(),
        t.elapsed()
    ));
    c.replay("the canary, its abort and the retry", &rev2);
    c.env.teardown().await;
}
