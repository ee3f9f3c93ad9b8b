//! The reconcile pipeline of one rollout: fetch (from the watch caches) -> validate -> plan
//! (pure) -> apply (API writes) -> update status. Errors requeue with backoff; an invalid spec
//! waits for the next change.

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
use super::error::{Error, Result};
use super::pods::{self, RetireStep};
use super::status::{self, Outcome};
use crate::analysis::Verdict;
use crate::crd::{
    ABORT_ANNOTATION, REVISION_LABEL, ZeroDowntimeRollout, ZeroDowntimeRolloutStatus,
};
use crate::planner::{self, Params, Progress};
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
fn key_of(zdr: &ZeroDowntimeRollout) -> String {
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

async fn reconcile_one(zdr: &ZeroDowntimeRollout, ctx: &Context) -> Result<Action> {
    let name = zdr.name_any();
    let ns = zdr
        .namespace()
        .ok_or_else(|| Error::MissingField(name.clone(), "metadata.namespace"))?;
    let key = key_of(zdr);
    if zdr.meta().deletion_timestamp.is_some() {
        // Owner references hand the pods and revisions to the garbage collector.
        ctx.expectations.forget(&key);
        return Ok(Action::await_change());
    }
    if ctx
        .backoff
        .in_terminating_namespace(&zdr.uid().unwrap_or_default())
    {
        // Creations are refused there; the namespace's deletion removes this rollout too.
        return Ok(Action::await_change());
    }
    let now = ctx.clock.now();
    let generation = zdr.meta().generation;
    let prev = zdr.status.clone().unwrap_or_default();
    let writer = Writer::new(ctx, zdr, &ns);

    // Validate (pure).
    let valid = match validate::validate(&zdr.spec).and_then(|v| match v.canary {
        Some(_) => Err(validate::Invalid {
            reason: "CanaryNotSupported",
            message: "strategy.canary is not implemented by this controller version; nothing is rolled out".into(),
        }),
        None => Ok(v),
    }) {
        Ok(v) => v,
        Err(invalid) => {
            let status = status::invalid(&prev, invalid.reason, &invalid.message, generation, now);
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
            return Ok(Action::await_change());
        }
    };

    // Fetch from the caches; wait while our own writes are not visible yet.
    let obs = fetch(zdr, ctx, &valid);
    let visible = |pod: &str| {
        obs.owned
            .iter()
            .any(|p| p.name_any() == pod && p.metadata.deletion_timestamp.is_none())
    };
    if !ctx.expectations.satisfied(&key, visible) {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }

    // Revisions: the update revision is recorded (renumbered on rollback).
    let update_hash = revisions::template_hash(&zdr.spec.template);
    let revs: Vec<&ControllerRevision> = obs.revisions.iter().map(AsRef::as_ref).collect();
    writer
        .ensure_revision(&revs, &update_hash, &zdr.spec.template)
        .await?;

    // Adopt matching orphans.
    for orphan in &obs.orphans {
        writer.adopt(orphan).await?;
    }

    // Decide the target: the update revision, or the stable one after an abort.
    let stable = prev.stable_revision.clone();
    let mut aborted: Option<(String, String)> = match (&prev.aborted_revision, &stable) {
        (Some(rev), Some(st)) if *rev == update_hash && *st != update_hash => Some((
            rev.clone(),
            abort_reason(&prev).unwrap_or_else(|| "Aborted".into()),
        )),
        _ => None,
    };
    let mut templates: BTreeMap<String, PodTemplateSpec> = revs
        .iter()
        .filter_map(|r| {
            Some((
                r.labels().get(REVISION_LABEL)?.clone(),
                revisions::template_of(r)?,
            ))
        })
        .collect();
    templates.insert(update_hash.clone(), zdr.spec.template.clone());

    let views: Vec<_> = obs
        .owned
        .iter()
        .map(|p| pods::pod_view(p, &obs.slices))
        .collect();
    let deadline = Duration::from_secs(zdr.spec.progress_deadline_seconds.max(1) as u64);
    let progress = Progress {
        revision: prev.update_revision.clone(),
        counts: planner::Counts {
            replicas: prev.replicas,
            updated: prev.updated_replicas,
            ready: prev.ready_replicas,
            available: prev.available_replicas,
            updated_available: prev.updated_replicas.min(prev.available_replicas),
            ..planner::Counts::default()
        },
        last_progress: prev.last_progress_time.as_ref().map(|t| t.0),
    };
    // Background analysis of the update revision while it rolls out over a stable one.
    let mut wake: Vec<Duration> = Vec::new();
    let mut abort: Option<(&'static str, String)> = None;
    let mut held: Option<(String, String)> = None;
    let mut analysis_status = prev
        .analysis
        .clone()
        .filter(|_| zdr.spec.analysis.is_some());
    let abortable = stable.as_deref().filter(|st| *st != update_hash);
    if let (Some(st), None) = (abortable, &aborted)
        && zdr.annotations().get(ABORT_ANNOTATION) == Some(&update_hash)
    {
        abort = Some((
            "AbortedByUser",
            format!(
                "annotation {ABORT_ANNOTATION} names revision {update_hash}: rolling back to {st}"
            ),
        ));
    }
    if let (Some(spec), Some(st), None, None) = (&zdr.spec.analysis, abortable, &aborted, &abort) {
        if let Some(why) = analysis::crash_looping(&obs.owned, &update_hash) {
            abort = Some(("CanaryCrashLooping", format!("{why}: rolling back to {st}")));
        } else {
            let vars = crate::analysis::Vars {
                revision: update_hash.clone(),
                stable_revision: st.to_string(),
                namespace: ns.clone(),
                name: name.clone(),
            };
            let step =
                analysis::step(zdr, spec, &ctx.client, ctx.providers.as_ref(), &vars, now).await;
            wake.extend(step.wake);
            for phase in &step.taken {
                ctx.metrics.measurement(phase.as_str());
            }
            match step.verdict {
                Verdict::Failed => {
                    abort = Some((
                        "AnalysisFailed",
                        format!(
                            "{}: rolling back to {st}",
                            analysis::failure_note(&step.status)
                        ),
                    ))
                }
                Verdict::Inconclusive => {
                    held = Some((
                        "AnalysisInconclusive".to_string(),
                        format!(
                            "{}; resume: kubectl zdr resume {name} (or set spec.paused true, then false), or apply a new template",
                            step.status.message.clone().unwrap_or_default()
                        ),
                    ))
                }
                Verdict::Running | Verdict::Successful => {}
            }
            analysis_status = Some(step.status);
        }
    }

    let params = |target: &str| Params {
        replicas: zdr.spec.replicas,
        max_surge: valid.max_surge,
        max_unavailable: valid.max_unavailable,
        min_ready: Duration::from_secs(zdr.spec.min_ready_seconds.max(0) as u64),
        target_revision: target.to_string(),
        stable_revision: stable.clone(),
        paused: zdr.spec.paused || held.is_some(),
        replacement: valid.replacement,
    };
    let mut prm = params(
        aborted
            .as_ref()
            .and(stable.as_deref())
            .unwrap_or(&update_hash),
    );
    let mut plan = planner::plan(&prm, &views, now);
    let mut summary = planner::summarize(
        &prm,
        &plan,
        &progress,
        deadline,
        aborted.as_ref().map(|(_, r)| r.as_str()),
        now,
    );

    // A progress deadline aborts when asked to, if there is a stable revision to go back to.
    if let (true, Some(st), None) = (
        summary.deadline_exceeded && zdr.spec.progress_deadline_abort && aborted.is_none(),
        abortable,
        &abort,
    ) {
        abort = Some((
            "ProgressDeadlineExceeded",
            format!(
                "no progress for {}s: rolling back to {st}",
                deadline.as_secs()
            ),
        ));
    }
    // Abort (deadline, failed analysis, crash-looping canary): target the stable revision,
    // through the same drain-before-delete waves.
    if let (Some((reason, note)), Some(st), None) = (&abort, abortable, &aborted) {
        aborted = Some((update_hash.clone(), (*reason).to_string()));
        prm = params(st);
        plan = planner::plan(&prm, &views, now);
        summary = planner::summarize(&prm, &plan, &progress, deadline, Some(reason), now);
        let event_reason = match *reason {
            "ProgressDeadlineExceeded" => "RolloutAborted",
            r => r,
        };
        ctx.metrics.abort(reason);
        writer
            .event(EventType::Warning, event_reason, note, "Abort")
            .await;
    }
    if let (Some((_, message)), None) = (&held, &aborted) {
        summary.message = format!("{}; {message}", summary.message);
    }
    // With an analysis, the update becomes stable only once it was measured good: a fast
    // rollout is not declared Healthy before its first successful measurements.
    let mut complete = plan.complete;
    if let (true, None, Some(spec), Some(a)) = (
        plan.complete,
        &aborted,
        &zdr.spec.analysis,
        analysis_status.as_ref().filter(|_| abortable.is_some()),
    ) && let Some(waiting) = analysis::waiting(spec, a)
    {
        complete = false;
        if held.is_none() {
            summary.phase = crate::crd::Phase::Progressing;
        }
        summary.message = format!(
            "{}/{} updated, {} available; revision {update_hash} becomes stable once {waiting}",
            plan.counts.updated, zdr.spec.replicas, plan.counts.available
        );
    }

    // Apply: serving gates for new pods, creations, removals and the retiring pods' drain.
    wake.extend(plan.requeue_after);
    wake.extend(summary.deadline_in);
    wake.extend(execute(&writer, ctx, &key, &obs, &plan, &templates, now).await?);

    // Stable revision: the update revision once it completed (not after an abort).
    let stable_after = if complete && aborted.is_none() {
        Some(update_hash.clone())
    } else {
        stable.clone()
    };

    // Prune revisions beyond the history limit, never one in use.
    let mut keep: BTreeSet<String> = views.iter().filter_map(|v| v.revision.clone()).collect();
    keep.insert(update_hash.clone());
    keep.extend(stable_after.clone());
    for old in revisions::to_prune(
        &revs,
        zdr.spec.revision_history_limit.max(0) as usize,
        &keep,
    ) {
        writer.delete_revision(&old).await?;
    }

    // Status.
    let held = held.filter(|_| aborted.is_none());
    let analysis = analysis_status.map(|mut a| {
        if stable_after.as_deref() == Some(a.revision.as_str())
            && a.phase == crate::crd::AnalysisPhase::Running
        {
            a.phase = crate::crd::AnalysisPhase::Successful;
            a.message = Some("the rollout completed while the analysis passed".into());
        }
        a
    });
    let status = status::build(
        &prev,
        Outcome {
            counts: plan.counts,
            summary: &summary,
            complete,
            replicas: zdr.spec.replicas,
            min_available: prm.min_available(),
            update_revision: &update_hash,
            stable_revision: stable_after,
            aborted,
            paused: zdr.spec.paused,
            selector: valid.selector.to_string(),
            extra: valid
                .notices
                .iter()
                .map(|n| status::Cond::new(n.type_, "False", n.reason, n.message.clone()))
                .collect(),
            held,
            analysis,
        },
        generation,
        now,
    );
    if zdr.status.as_ref() != Some(&status) {
        announce(&writer, &prev, &status).await;
        writer.status(&status).await?;
    }

    Ok(match wake.into_iter().min() {
        Some(d) => Action::requeue(d.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
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

fn abort_reason(prev: &ZeroDowntimeRolloutStatus) -> Option<String> {
    prev.conditions
        .iter()
        .find(|c| c.type_ == crate::crd::condition::ABORTED && c.status == "True")
        .map(|c| c.reason.clone())
}

/// Events for phase transitions people care about.
async fn announce(
    writer: &Writer<'_>,
    prev: &ZeroDowntimeRolloutStatus,
    next: &ZeroDowntimeRolloutStatus,
) {
    use crate::crd::Phase;
    if prev.phase == next.phase {
        return;
    }
    let msg = next.message.clone().unwrap_or_default();
    match next.phase {
        Some(Phase::Healthy) => {
            writer
                .event(EventType::Normal, "RolloutCompleted", &msg, "Rollout")
                .await
        }
        Some(Phase::Degraded) => {
            writer
                .event(
                    EventType::Warning,
                    "ProgressDeadlineExceeded",
                    &msg,
                    "Rollout",
                )
                .await
        }
        Some(Phase::Paused) => {
            writer
                .event(EventType::Normal, "RolloutPaused", &msg, "Rollout")
                .await
        }
        _ => {}
    }
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
