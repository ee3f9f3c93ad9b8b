//! e2e: canaries under stress, checked by the same invariants and step order as `canary.rs`
//! (`canary_checks.rs`, every recorded state replayed in resourceVersion order):
//!
//! - the controller SIGKILLed and started again at random moments (`chaos.rs`' Lcg, 0.3-2.5 s
//!   apart, at most [`MAX_KILLS`]) from the template change to the pause and again through the
//!   promotion, which must end promoted; and once with an abort, which must end Aborted with
//!   traffic and pods back on stable;
//! - the rollout scaled through its scale subresource (as `kubectl scale`) from 5 to 8 and then
//!   to 3 replicas while the canary sits at its pause (weight 20, header route): the invariants
//!   hold with the replicas in force at each state, and promotion ends with 3 new pods. A new
//!   count cannot be in force at the instant it is written (5 → 8 at weight 20 needs a second
//!   canary pod and more stable pods, which take time), so after a change of `spec.replicas`
//!   the states are checked with the smaller of the old and the new count until the first
//!   state that passes with the new one; from there on the new count is in force, and it must
//!   have come in force for 8 and for 3. Scaled down, a surplus canary pod may go while the
//!   route gives the canary traffic, as long as the canary pods left carry it;
//! - the same canary through an Istio VirtualService (the real CRD, `istio.rs`): the weights of
//!   the http route `primary`, a `zdr-beta` route first in `spec.http` while the header route
//!   is active, and the foreign http route byte-identical in every state.

use std::future::Future;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::time::{Instant, sleep_until};
use zdr::crd::{ABORT_ANNOTATION, PROMOTE_ANNOTATION, ZeroDowntimeRollout};

use crate::canary::{
    Canary, NAME, PROMOTION_PAUSE, REPLICAS, SETTINGS, aborted, at_pause, back_on_stable, promoted,
    say,
};
use crate::canary_checks::{Progress, Scenario, invariants};
use crate::chaos::{Kills, Lcg};
use crate::cluster::{
    NETEXEC, TestEnv, app_container, containers_patch, image_v2, status_of, timeout,
};
use crate::timeline::{Router, World};

/// At most this many kills in one test.
const MAX_KILLS: u32 = 14;
const KILLS: Kills = Kills {
    min: Duration::from_millis(300),
    max: Duration::from_millis(2500),
};

/// When to kill the controller next.
struct KillPlan {
    rng: Lcg,
    next: Option<Instant>,
    count: u32,
}

impl KillPlan {
    fn new() -> Self {
        Self {
            rng: Lcg::seeded(),
            next: None,
            count: 0,
        }
    }

    /// The next kill within 0.2-1.5 s, and more after it.
    fn soon(&mut self) {
        let d = self
            .rng
            .between(Duration::from_millis(200), Duration::from_millis(1500));
        self.next = Some(Instant::now() + d);
    }

    /// The first kill right after an update is applied (50-300 ms, well before a canary reaches
    /// its pause at about 1.5 s), then more as [`KillPlan::soon`] says.
    fn first(&mut self) {
        let d = self
            .rng
            .between(Duration::from_millis(50), Duration::from_millis(300));
        self.next = Some(Instant::now() + d);
    }

    fn stop(&mut self) {
        self.next = None;
    }
}

/// Runs `fut` to completion, killing the controller (SIGKILL) and starting it again as `plan`
/// says meanwhile.
async fn with_kills<T>(
    env: &mut TestEnv,
    plan: &mut KillPlan,
    what: &str,
    fut: impl Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    loop {
        let next = plan.next.filter(|_| plan.count < MAX_KILLS);
        tokio::select! {
            v = &mut fut => return v,
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                env.restart_controller().await;
                plan.count += 1;
                say(format!("e2e canary {}: controller killed and restarted ({}, kill {})", env.ns, what, plan.count));
                plan.next = Some(Instant::now() + plan.rng.between(KILLS.min, KILLS.max));
            }
        }
    }
}

/// Waits (a watch, bounded by the e2e timeout) until `cond` holds for the rollout. Needs no
/// `TestEnv`, so the controller can be killed meanwhile.
async fn rollout_reaches(
    client: Client,
    ns: String,
    what: &str,
    cond: impl Fn(&ZeroDowntimeRollout) -> bool,
) -> ZeroDowntimeRollout {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, &ns);
    let wait = kube::runtime::wait::await_condition(
        api.clone(),
        NAME,
        move |z: Option<&ZeroDowntimeRollout>| z.is_some_and(&cond),
    );
    let failure = match tokio::time::timeout(timeout(), wait).await {
        Ok(Ok(Some(z))) => return z,
        Ok(Ok(None)) => "the rollout was deleted".to_string(),
        Ok(Err(e)) => format!("watch failed: {e}"),
        Err(_) => format!("timed out after {:?}", timeout()),
    };
    let last = api.get_opt(NAME).await.ok().flatten();
    panic!(
        "{ns}/{NAME}: waiting for {what}: {failure}\nlast status: {}",
        status_of(last.as_ref())
    );
}

/// Patches the template to v2 and, killing the controller meanwhile, waits for the pause, then
/// checks it (`Canary::wait_pause`); returns the new revision.
async fn update_to_pause_with_kills(c: &mut Canary, plan: &mut KillPlan) -> String {
    let t = Instant::now();
    (c.env)
        .patch(NAME, &containers_patch(app_container(&image_v2(), NETEXEC)))
        .await;
    plan.first();
    let (client, ns, rev1) = (c.env.client.clone(), c.env.ns.clone(), c.rev1.clone());
    let reach = rollout_reaches(
        client,
        ns,
        "Paused at step 2, awaiting promotion",
        move |z| at_pause(z, &rev1),
    );
    with_kills(&mut c.env, plan, "to the pause", reach).await;
    plan.stop();
    let rev2 = c.wait_pause().await;
    say(format!(
        "e2e canary {}: at the pause after {:?}, {} kill(s)",
        c.ns(),
        t.elapsed(),
        plan.count
    ));
    rev2
}

pub async fn canary_survives_controller_kills_at_random_moments() {
    let Some(mut c) = Canary::start_with("canary-kills", Router::HttpRoute).await else {
        return;
    };
    let mut plan = KillPlan::new();
    let rev2 = update_to_pause_with_kills(&mut c, &mut plan).await;
    let before = plan.count;
    c.replay("up to the pause, with kills", &rev2);

    let t = Instant::now();
    c.annotate(json!({PROMOTE_ANNOTATION: format!("{rev2}/{PROMOTION_PAUSE}")}))
        .await;
    plan.soon();
    let (client, ns, r2) = (c.env.client.clone(), c.env.ns.clone(), rev2.clone());
    let n = SETTINGS.len() as i32;
    let reach = rollout_reaches(client, ns, "promoted and Healthy", move |z| {
        promoted(z, &r2, n)
    });
    let z = with_kills(&mut c.env, &mut plan, "promotion", reach).await;
    plan.stop();
    let during = plan.count - before;
    c.check_promoted(z, &rev2, REPLICAS, t.into_std()).await;
    c.replay("the whole canary, with kills", &rev2);
    say(format!(
        "e2e canary {}: {} kill(s) before the pause, {during} during promotion; {} states checked, {:?} in all",
        c.ns(),
        before,
        c.rec.entries().len(),
        c.t0.elapsed()
    ));
    assert!(
        before > 0 && during > 0,
        "kills before the pause {before}, during promotion {during}: both must be > 0"
    );
    c.env.teardown().await;
}

pub async fn canary_aborted_while_the_controller_is_killed_returns_to_stable() {
    let Some(mut c) = Canary::start_with("canary-kills-abort", Router::HttpRoute).await else {
        return;
    };
    let mut plan = KillPlan::new();
    let rev2 = update_to_pause_with_kills(&mut c, &mut plan).await;
    let before = plan.count;
    let rev1 = c.rev1.clone();

    let t = Instant::now();
    c.annotate(json!({ABORT_ANNOTATION: rev2})).await;
    plan.soon();
    let (client, ns, r2) = (c.env.client.clone(), c.env.ns.clone(), rev2.clone());
    let reach = rollout_reaches(client, ns, "Aborted by the user", move |z| {
        aborted(z, &r2, "AbortedByUser")
    });
    with_kills(&mut c.env, &mut plan, "abort", reach).await;
    let back = back_on_stable(&c.rec, &rev1, &rev2);
    with_kills(&mut c.env, &mut plan, "abort", back).await;
    plan.stop();
    let during = plan.count - before;
    c.check_aborted(&rev1).await;
    c.replay("the canary and its abort, with kills", &rev2);
    say(format!(
        "e2e canary {}: aborted, back on stable after {:?}; {before} kill(s) before the pause, {during} during the abort",
        c.ns(),
        t.elapsed()
    ));
    assert!(
        before > 0 && during > 0,
        "kills before the pause {before}, during the abort {during}: both must be > 0"
    );
    c.env.teardown().await;
}

/// Sets `spec.replicas` through the scale subresource, as `kubectl scale` does.
async fn scale(c: &Canary, replicas: i64) {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(c.env.client.clone(), &c.env.ns);
    api.patch_scale(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: scaling {NAME} to {replicas}: {e}", c.ns()));
}

/// Waits, on the recorded world, until the canary sits at its pause with the pods `replicas`
/// need there: ceil(replicas × 20%) canary pods, the stable side its share (79%, the documented
/// rounding) Ready and at most `replicas`, weights still 80/20 with the header route.
async fn settled_at_pause(c: &Canary, rev2: &str, replicas: i64) -> World {
    let sc = Scenario {
        replicas,
        ..c.scenario()
    };
    let (weight, _) = SETTINGS[PROMOTION_PAUSE];
    let (canary, stable) = (sc.need(PROMOTION_PAUSE), sc.stable_need(100 - weight));
    let rev1 = c.rev1.clone();
    let w = c
        .rec
        .wait(
            &format!(
                "{replicas} replicas at the pause: {canary} canary pods Ready, {stable}..={replicas} stable pods Ready"
            ),
            timeout(),
            |w| {
                let v = w.route_view();
                w.alive(rev2) == canary
                    && w.ready(rev2) == canary
                    && w.ready(&rev1) >= stable
                    && w.alive(&rev1) <= replicas
                    && v.canary == Some(weight)
                    && v.header_names() == ["beta"]
            },
        )
        .await;
    say(format!(
        "e2e canary {}: settled at {replicas} replicas: {}",
        c.ns(),
        w.summary()
    ));
    w
}

pub async fn canary_scaled_mid_way_keeps_the_rules() {
    let Some(mut c) = Canary::start_with("canary-scale", Router::HttpRoute).await else {
        return;
    };
    let rev2 = c.update_to_pause().await;
    for replicas in [8, 3] {
        scale(&c, replicas).await;
        settled_at_pause(&c, &rev2, replicas).await;
        let z = c
            .env
            .wait_until(NAME, "still at the pause", |z| at_pause(z, &c.rev1))
            .await;
        assert_eq!(i64::from(z.spec.replicas), replicas, "spec.replicas");
    }
    let t = Instant::now();
    c.annotate(json!({PROMOTE_ANNOTATION: format!("{rev2}/{PROMOTION_PAUSE}")}))
        .await;
    let (r2, n) = (rev2.clone(), SETTINGS.len() as i32);
    let z = c
        .env
        .wait_until(NAME, "promoted and Healthy at 3 replicas", |z| {
            promoted(z, &r2, n)
        })
        .await;
    c.check_promoted(z, &rev2, 3, t.into_std()).await;

    // The replay, with the replicas in force at each state (see the module's doc).
    let sc = Scenario {
        scaled_down: true,
        ..c.scenario()
    };
    let mut progress = Progress::new(&sc, &rev2);
    let mut in_force = sc.replicas;
    let mut counts = vec![in_force];
    c.rec.replay("the scaled canary", |w, before, e| {
        let spec = (w.rollout.as_ref()).map_or(in_force, |z| i64::from(z.spec.replicas));
        let with = |r: i64| Scenario {
            replicas: r,
            ..sc.clone()
        };
        if spec != in_force {
            if invariants(&with(spec), w, before, e, &rev2, &c.reference).is_ok() {
                in_force = spec;
                counts.push(spec);
            } else {
                let r = spec.min(in_force);
                invariants(&with(r), w, before, e, &rev2, &c.reference).map_err(|p| {
                    format!("(spec.replicas {spec}, {in_force} in force, checked with {r}) {p}")
                })?;
                progress.set_replicas(r);
                return progress.observe(w, e);
            }
        }
        invariants(&with(in_force), w, before, e, &rev2, &c.reference)
            .map_err(|p| format!("({in_force} replicas in force) {p}"))?;
        progress.set_replicas(in_force);
        progress.observe(w, e)
    });
    assert_eq!(
        counts,
        [5, 8, 3],
        "{}: the replica counts that came in force, in order",
        c.ns()
    );
    say(format!(
        "e2e canary {}: scaled 5 -> 8 -> 3 at the pause and promoted; {} states checked, {:?} in all",
        c.ns(),
        c.rec.entries().len(),
        c.t0.elapsed()
    ));
    c.env.teardown().await;
}

pub async fn canary_through_an_istio_virtualservice() {
    let Some(mut c) = Canary::start_with("canary-istio", Router::VirtualService).await else {
        return;
    };
    let foreign = {
        let w = c.rec.world();
        crate::istio::http_route(w.route.as_ref().expect("the VirtualService"), "foreign")
            .expect("the foreign http route")
    };
    let rev2 = c.update_to_pause().await;
    let w = c.rec.world();
    let http = &w.route.as_ref().expect("the VirtualService").data["spec"]["http"];
    assert_eq!(
        http[0]["name"],
        "zdr-beta",
        "{}: the header route first in spec.http at the pause: {http}",
        c.ns()
    );

    let t = Instant::now();
    c.annotate(json!({PROMOTE_ANNOTATION: format!("{rev2}/{PROMOTION_PAUSE}")}))
        .await;
    let (r2, n) = (rev2.clone(), SETTINGS.len() as i32);
    let z = c
        .env
        .wait_until(NAME, "promoted and Healthy", |z| promoted(z, &r2, n))
        .await;
    c.check_promoted(z, &rev2, REPLICAS, t.into_std()).await;

    let sc = c.scenario();
    let mut progress = Progress::new(&sc, &rev2);
    let mut header_seen = false;
    c.rec
        .replay("the canary through a VirtualService", |w, before, e| {
            invariants(&sc, w, before, e, &rev2, &c.reference)?;
            if let Some(vs) = w.route.as_ref() {
                let now = crate::istio::http_route(vs, "foreign");
                if now.as_ref() != Some(&foreign) {
                    return Err(format!(
                        "the foreign http route changed:\n  now: {now:?}\n  was: {foreign}"
                    ));
                }
                let http = &vs.data["spec"]["http"];
                if !w.route_view().header_rules.is_empty() {
                    header_seen = true;
                    if http[0]["name"] != "zdr-beta" {
                        return Err(format!(
                            "a header route is active but spec.http[0] is not zdr-beta: {http}"
                        ));
                    }
                }
            }
            progress.observe(w, e)
        });
    assert!(header_seen, "{}: the header route was never seen", c.ns());
    say(format!(
        "e2e canary {}: through a VirtualService, promoted; {} states checked, {:?} in all",
        c.ns(),
        c.rec.entries().len(),
        c.t0.elapsed()
    ));
    c.env.teardown().await;
}
