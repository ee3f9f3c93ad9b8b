//! The reconcile pipeline of one rollout: validate -> fetch (from the watch caches) -> measure
//! (the analysis I/O) -> decide (pure, `decide.rs`) -> execute (traffic before pods, then pods,
//! pruning) -> status. Errors requeue with per-rollout backoff; an invalid spec waits for the
//! next change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::SelectorExt;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::analysis;
use super::apply::Writer;
use super::context::Context;
use super::decide::{self, AnalysisRun, Measurements, Note, Severity, Snapshot};
use super::error::{Error, Result};
use super::pods::{self, RetireStep};
use super::status;
use crate::crd::{REVISION_LABEL, ZeroDowntimeRollout, ZeroDowntimeRolloutStatus};
use crate::planner;
use crate::revision as revisions;
use crate::validate::{self, Valid};

/// Entry point for `kube::runtime::Controller`. Nothing is decided before every watch cache has
/// finished its initial list.
pub async fn reconcile(zdr: Arc<ZeroDowntimeRollout>, ctx: Arc<Context>) -> Result<Action> {
    ctx.caches_synced().await;
    let start = Instant::now();
    let result = reconcile_one(&zdr, &ctx).await;
    ctx.metrics.observe(
        result.as_ref().err().map(Error::category),
        start.elapsed().as_secs_f64(),
    );
    if result.is_ok() {
        ctx.backoff.succeeded(&key_of(&zdr));
    }
    result
}

/// `namespace/name` of a rollout.
pub(super) fn key_of(zdr: &ZeroDowntimeRollout) -> String {
    format!("{}/{}", zdr.namespace().unwrap_or_default(), zdr.name_any())
}

/// Requeue policy on error: per-rollout exponential backoff (1 s doubling to 5 min). A rollout
/// whose namespace is being deleted creates nothing more and waits for its own deletion.
pub fn error_policy(zdr: Arc<ZeroDowntimeRollout>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_namespace_terminating() {
        ctx.backoff
            .namespace_terminating(&zdr.uid().unwrap_or_default());
        tracing::info!(rollout = %key_of(&zdr), "namespace is being deleted: creating nothing more");
        return Action::await_change();
    }
    let delay = ctx.backoff.failed(&key_of(&zdr));
    tracing::warn!(rollout = %key_of(&zdr), category = err.category(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// What the caches hold for one rollout.
struct Observed {
    /// Pods this rollout controls.
    owned: Vec<Arc<Pod>>,
    /// Pods matching the selector that no controller owns.
    orphans: Vec<Arc<Pod>>,
    /// ControllerRevisions this rollout controls.
    revisions: Vec<Arc<ControllerRevision>>,
    /// EndpointSlices of the namespace.
    slices: Vec<Arc<EndpointSlice>>,
}

fn fetch(zdr: &ZeroDowntimeRollout, ctx: &Context, valid: &Valid) -> Observed {
    let ns = zdr.namespace();
    let uid = zdr.uid();
    let controlled = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter()
            .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref())
    };
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.namespace == ns;
    let owned = ctx
        .pods
        .state_filter(|p| in_ns(&p.metadata) && controlled(p.owner_references()));
    let orphans = ctx.pods.state_filter(|p| {
        in_ns(&p.metadata)
            && p.metadata.deletion_timestamp.is_none()
            && !p
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true))
            && valid.selector.matches(p.labels())
    });
    let revisions = ctx
        .revisions
        .state_filter(|r| in_ns(&r.metadata) && controlled(r.owner_references()));
    let slices = ctx.slices.state_filter(|s| in_ns(&s.metadata));
    Observed {
        owned,
        orphans,
        revisions,
        slices,
    }
}

/// Why a rollout is not reconciled now, if it is not: it is being deleted, its namespace is, or
/// the cache does not show the controller's last status write yet.
fn hold(zdr: &ZeroDowntimeRollout, ctx: &Context, key: &str) -> Option<Action> {
    let uid = zdr.uid().unwrap_or_default();
    if zdr.meta().deletion_timestamp.is_some() {
        // Owner references hand the pods and revisions to the garbage collector.
        ctx.expectations.forget(key);
        return Some(Action::await_change());
    }
    if ctx.backoff.in_terminating_namespace(&uid) {
        // Creations are refused there; the namespace's deletion removes this rollout too.
        return Some(Action::await_change());
    }
    if !ctx.expectations.status_seen(key, &uid, zdr.status.as_ref()) {
        // The cache still holds a status older than our last write: deciding from it would
        // take a canary back a step (and its pods and traffic with it). Its watch event wakes us.
        tracing::debug!(rollout = %key, "the cache does not show the last status written yet: waiting for it");
        return Some(Action::requeue(Duration::from_secs(1)));
    }
    None
}

impl Observed {
    /// Whether the caches show every pod this process created or deleted for rollout `key`.
    fn shows_pod_writes(&self, ctx: &Context, key: &str) -> bool {
        let visible = |pod: &str| {
            self.owned
                .iter()
                .any(|p| p.name_any() == pod && p.metadata.deletion_timestamp.is_none())
        };
        ctx.expectations.satisfied(key, visible)
    }
}

async fn reconcile_one(zdr: &ZeroDowntimeRollout, ctx: &Context) -> Result<Action> {
    let name = zdr.name_any();
    let ns = zdr
        .namespace()
        .ok_or_else(|| Error::MissingField(name.clone(), "metadata.namespace"))?;
    let key = key_of(zdr);
    if let Some(action) = hold(zdr, ctx, &key) {
        return Ok(action);
    }
    let now = ctx.clock.now();
    let prev = zdr.status.clone().unwrap_or_default();
    let writer = Writer::new(ctx, zdr, &ns);

    // Validate (pure).
    let valid = match validate::validate(&zdr.spec) {
        Ok(v) => v,
        Err(invalid) => return report_invalid(&writer, zdr, &prev, &invalid, now).await,
    };

    // Fetch from the caches; wait while our own writes are not visible yet.
    let obs = fetch(zdr, ctx, &valid);
    if !obs.shows_pod_writes(ctx, &key) {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let update_hash = revisions::template_hash(&zdr.spec.template);
    let revs: Vec<&ControllerRevision> = obs.revisions.iter().map(AsRef::as_ref).collect();
    writer
        .ensure_revision(&revs, &update_hash, &zdr.spec.template)
        .await?;
    let templates = templates(&revs, &update_hash, &zdr.spec.template);
    for orphan in &obs.orphans {
        writer.adopt(orphan).await?;
    }
    let views: Vec<_> = obs
        .owned
        .iter()
        .map(|p| pods::pod_view(p, &obs.slices))
        .collect();
    // A canary decides from what the router and Services carry now.
    let traffic = match (&zdr.spec.strategy.canary, &prev.stable_revision) {
        (Some(canary), Some(_)) => {
            let read = super::traffic::read(ctx, &ns, canary).await;
            Some(report_traffic(&writer, zdr, &prev, read, now).await?)
        }
        _ => None,
    };
    let snapshot = Snapshot {
        name: &name,
        spec: &zdr.spec,
        annotations: zdr.annotations(),
        status: &prev,
        generation: zdr.meta().generation,
        valid: &valid,
        update: &update_hash,
        pods: &views,
        objects: &obs.owned,
        slices: &obs.slices,
        crash: analysis::crash_looping(&obs.owned, &update_hash),
        traffic,
        templates: &templates,
    };

    // Analysis I/O, then the decision (pure).
    let measured = measure(zdr, ctx, &snapshot, &ns, now).await;
    let analysis_wake = measured.analysis.as_ref().and_then(|a| a.wake);
    // Decided after the measurements: a step starting now starts after them, so a pause after
    // an analysis step is not shortened by the queries' time.
    let now = ctx.clock.now();
    let decision = decide::decide(&snapshot, &measured, now);

    let wake = decision.wake.into_iter().chain(analysis_wake).collect();
    let run = Run {
        writer: &writer,
        ctx,
        zdr,
        key: &key,
        obs: &obs,
        update: &update_hash,
        templates: &templates,
        now,
    };
    run.execute(decision, &views, wake).await
}

/// What the execute step of one reconcile works with.
struct Run<'a> {
    writer: &'a Writer<'a>,
    ctx: &'a Context,
    zdr: &'a ZeroDowntimeRollout,
    key: &'a str,
    obs: &'a Observed,
    update: &'a str,
    templates: &'a BTreeMap<String, PodTemplateSpec>,
    now: jiff::Timestamp,
}

impl Run<'_> {
    /// Executes `decision`: the abort Event, traffic before pods, the pods, pruning, status and
    /// the other Events. Returns when to come back.
    async fn execute(
        &self,
        decision: decide::Decision,
        views: &[planner::PodView],
        mut wake: Vec<Duration>,
    ) -> Result<Action> {
        let (zdr, writer, now) = (self.zdr, self.writer, self.now);
        if let Some(reason) = decision.abort {
            self.ctx.metrics.abort(reason.as_str());
        }
        for note in decision.events.iter().filter(|n| n.action == "Abort") {
            emit(writer, note).await;
        }
        if let (Some(traffic), Some(canary)) = (&decision.traffic, &zdr.spec.strategy.canary) {
            let ns = zdr.namespace().unwrap_or_default();
            let written = super::traffic::write(self.ctx, &ns, canary, traffic).await;
            let prev = zdr.status.clone().unwrap_or_default();
            report_traffic(writer, zdr, &prev, written, now).await?;
        }
        let revs: Vec<&ControllerRevision> = self.obs.revisions.iter().map(AsRef::as_ref).collect();
        let pods = execute(
            writer,
            self.ctx,
            self.key,
            self.obs,
            &decision.plan,
            self.templates,
            now,
        );
        wake.extend(pods.await?);
        self.swap(&decision.swaps).await?;
        let mut keep: BTreeSet<String> = views.iter().filter_map(|v| v.revision.clone()).collect();
        keep.insert(self.update.to_string());
        keep.extend(decision.stable_after.clone());
        let limit = zdr.spec.revision_history_limit.max(0) as usize;
        for old in revisions::to_prune(&revs, limit, &keep) {
            writer.delete_revision(&old).await?;
        }
        if zdr.status.as_ref() != Some(&decision.status) {
            for note in decision.events.iter().filter(|n| n.action != "Abort") {
                emit(writer, note).await;
            }
            writer.status(&decision.status).await?;
        }
        Ok(match wake.into_iter().min() {
            Some(d) => Action::requeue(d.max(Duration::from_millis(100))),
            None => Action::await_change(),
        })
    }
}

impl Run<'_> {
    /// Takes the decided hot-swap steps, in parallel, and counts the swaps that ended.
    async fn swap(&self, commands: &[decide::hotswap::SwapCommand]) -> Result<()> {
        use crate::hotswap::step::PodStep;
        let Some(hs) = &self.zdr.spec.strategy.hot_swap else {
            return Ok(());
        };
        let mut writes = Vec::new();
        for cmd in commands {
            let Some(pod) = self.obs.owned.iter().find(|p| p.name_any() == cmd.pod.name) else {
                continue;
            };
            writes.push(async move {
                self.writer
                    .swap_step(pod, cmd, &hs.container, self.now)
                    .await?;
                match &cmd.step {
                    PodStep::Settle {
                        swapped: Some(d), ..
                    } => self.ctx.metrics.hot_swap(Some(*d)),
                    PodStep::Revert(_) => self.ctx.metrics.hot_swap(None),
                    _ => {}
                }
                Ok(())
            });
        }
        parallel(writes).await
    }
}

/// Status and an Event for a spec the controller cannot act on; waits for the next change.
async fn report_invalid(
    writer: &Writer<'_>,
    zdr: &ZeroDowntimeRollout,
    prev: &ZeroDowntimeRolloutStatus,
    invalid: &validate::Invalid,
    now: jiff::Timestamp,
) -> Result<Action> {
    let generation = zdr.meta().generation;
    let status = status::invalid(prev, invalid.reason, &invalid.message, generation, now);
    if zdr.status.as_ref() != Some(&status) {
        writer
            .event(
                EventType::Warning,
                invalid.reason,
                &invalid.message,
                "Validate",
            )
            .await;
        writer.status(&status).await?;
    }
    Ok(Action::await_change())
}

/// A router or Service that is missing or cannot carry the split is a Degraded status with a
/// TrafficRouting condition (and backoff); other errors only back off.
async fn report_traffic<T>(
    writer: &Writer<'_>,
    zdr: &ZeroDowntimeRollout,
    prev: &ZeroDowntimeRolloutStatus,
    result: Result<T>,
    now: jiff::Timestamp,
) -> Result<T> {
    use crate::traffic::RouterError;
    if let Err(Error::Traffic(e @ (RouterError::NotFound { .. } | RouterError::Unusable(_)))) =
        &result
    {
        let message = e.to_string();
        let status = status::traffic_error(prev, &message, zdr.meta().generation, now);
        if zdr.status.as_ref() != Some(&status) {
            writer
                .event(EventType::Warning, "TrafficRouterError", &message, "Route")
                .await;
            writer.status(&status).await?;
        }
    }
    result
}

/// The background analysis of the update revision, when the snapshot calls for it.
async fn measure(
    zdr: &ZeroDowntimeRollout,
    ctx: &Context,
    s: &Snapshot<'_>,
    ns: &str,
    now: jiff::Timestamp,
) -> Measurements {
    let run = decide::analysis_run(s);
    let (Some(spec), false) = (&zdr.spec.analysis, run == AnalysisRun::Skip) else {
        return Measurements::default();
    };
    let vars = crate::analysis::Vars {
        revision: s.update.to_string(),
        stable_revision: s.status.stable_revision.clone().unwrap_or_default(),
        namespace: ns.to_string(),
        name: s.name.to_string(),
    };
    let restart = run == AnalysisRun::Restart;
    let step = analysis::step(
        zdr,
        spec,
        &ctx.client,
        ctx.providers.as_ref(),
        &vars,
        now,
        restart,
    )
    .await;
    for phase in &step.taken {
        ctx.metrics.measurement(phase.as_str());
    }
    Measurements {
        analysis: Some(step),
    }
}

/// The template of every known revision, the update's included.
fn templates(
    revs: &[&ControllerRevision],
    update: &str,
    template: &PodTemplateSpec,
) -> BTreeMap<String, PodTemplateSpec> {
    let mut out: BTreeMap<String, PodTemplateSpec> = revs
        .iter()
        .filter_map(|r| {
            Some((
                r.labels().get(REVISION_LABEL)?.clone(),
                revisions::template_of(r)?,
            ))
        })
        .collect();
    out.insert(update.to_string(), template.clone());
    out
}

/// Emits one decided Event.
async fn emit(writer: &Writer<'_>, note: &Note) {
    let type_ = match note.severity {
        Severity::Normal => EventType::Normal,
        Severity::Warning => EventType::Warning,
    };
    writer
        .event_about(
            type_,
            note.reason,
            &note.message,
            note.action,
            note.pod.as_deref(),
        )
        .await;
}

/// Writes the planner's pod actions: serving gates for new pods, creations in slow-start
/// batches, and the next drain step of every retiring pod, in parallel. Returns when the drain
/// needs the reconcile again.
async fn execute(
    writer: &Writer<'_>,
    ctx: &Context,
    key: &str,
    obs: &Observed,
    plan: &planner::Plan,
    templates: &BTreeMap<String, PodTemplateSpec>,
    now: jiff::Timestamp,
) -> Result<Vec<Duration>> {
    let mut admit = Vec::new();
    for pod in &obs.owned {
        if pods::has_gate(pod)
            && pods::serving(pod).is_none()
            && pod.metadata.deletion_timestamp.is_none()
        {
            admit.push(writer.set_serving(pod, true, now));
        }
    }
    parallel(admit).await?;

    let mut removing: BTreeSet<String> = BTreeSet::new();
    for action in &plan.actions {
        match action {
            planner::Action::Create { revision, count } => {
                let Some(template) = templates.get(revision) else {
                    return Err(Error::MissingField(
                        revisions::revision_name(&writer.name(), revision),
                        "data.template",
                    ));
                };
                writer.create_pods(key, template, revision, *count).await?;
            }
            planner::Action::Remove { pod, .. } => {
                removing.insert(pod.clone());
            }
        }
    }

    let mut wake = Vec::new();
    let mut steps = Vec::new();
    for pod in &obs.owned {
        let retiring = pods::serving(pod) == Some(false);
        if pod.metadata.deletion_timestamp.is_some()
            || !(retiring || removing.contains(&pod.name_any()))
        {
            continue;
        }
        let pod_name = pod.name_any();
        let step = pods::retire_step(
            pod,
            pods::listed(&pod_name, &obs.slices),
            pods::listed_ready(&pod_name, &obs.slices),
            ctx.settings.endpoint_propagation,
            now,
        );
        match step {
            RetireStep::MarkDrained => wake.push(ctx.settings.endpoint_propagation),
            RetireStep::Wait(Some(d)) => wake.push(d),
            _ => {}
        }
        steps.push(retire(writer, key, pod, step, now));
    }
    parallel(steps).await?;
    Ok(wake)
}

/// The write of one drain step.
async fn retire(
    writer: &Writer<'_>,
    key: &str,
    pod: &Pod,
    step: RetireStep,
    now: jiff::Timestamp,
) -> Result<()> {
    match step {
        RetireStep::Delete => writer.delete_pod(key, pod).await,
        RetireStep::TakeOutOfTraffic => writer.set_serving(pod, false, now).await,
        RetireStep::MarkDrained => writer.mark_drained(pod, now).await,
        RetireStep::Wait(_) => Ok(()),
    }
}

/// Most writes of one reconcile in flight at once.
const PARALLEL_WRITES: usize = 16;

/// Runs `writes` with at most [`PARALLEL_WRITES`] in flight; the first error, after all ran.
async fn parallel<F>(writes: Vec<F>) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let results: Vec<Result<()>> = futures::stream::iter(writes)
        .buffered(PARALLEL_WRITES)
        .collect()
        .await;
    results.into_iter().collect()
}

/// An event about the rollout itself.
pub(super) fn event(type_: EventType, reason: &str, note: &str, action: &str) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    }
}
