//! The pods of a rollout as a watch sees them, and the bounds a rolling update must respect:
//! available pods >= replicas - maxUnavailable; pods counting against maxSurge (every existing
//! pod with `TerminationComplete`, the ones that serve or start with `TerminationStarted`)
//! <= replicas + maxSurge; and no pod is deleted while it is Ready (in traffic).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use zdr::crd::PodReplacementPolicy;

/// Resolves maxSurge / maxUnavailable against `replicas` as a Deployment does: percentages of
/// replicas, surge rounded up, unavailable rounded down. `None` when the value is malformed.
pub fn scaled(value: &IntOrString, replicas: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let num = pct * i64::from(replicas);
            let v = if round_up {
                (num + 99) / 100
            } else {
                num / 100
            };
            i32::try_from(v).ok()
        }
    }
}

/// The bounds of one rolling update.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub replicas: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
    /// Which pods count against maxSurge.
    pub policy: PodReplacementPolicy,
}

impl Bounds {
    /// The bounds with the strict accounting (`TerminationComplete`): every existing pod counts.
    pub fn new(replicas: i32, max_surge: &IntOrString, max_unavailable: &IntOrString) -> Self {
        let max_surge = scaled(max_surge, replicas, true).expect("valid maxSurge");
        let max_unavailable =
            scaled(max_unavailable, replicas, false).expect("valid maxUnavailable");
        Self {
            replicas,
            max_surge,
            max_unavailable,
            policy: PodReplacementPolicy::TerminationComplete,
        }
    }

    /// The same bounds under `policy`.
    pub fn with_policy(self, policy: PodReplacementPolicy) -> Self {
        Self { policy, ..self }
    }
}

/// Whether the pod ran to completion (phase Succeeded or Failed): it no longer counts at all.
fn terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Ready condition True.
fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Being deleted.
fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Taken out of traffic by the rollout: its `zdr.dev/serving` readiness gate is False and it is
/// no longer Ready.
fn out_of_traffic(pod: &Pod) -> bool {
    let gate_false = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == zdr::crd::READINESS_GATE && c.status == "False")
        });
    gate_false && !ready(pod)
}

/// The pods selected by the rollout, rebuilt from a pod watch.
#[derive(Default)]
pub struct PodSet {
    pods: BTreeMap<String, Pod>,
    buffer: BTreeMap<String, Pod>,
    /// The initial list is complete: counts mean something.
    pub synced: bool,
}

/// Counts at one observed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Pods that are not terminated, including those being deleted: they still run and take
    /// capacity until they are gone.
    pub existing: i32,
    /// Ready and not being deleted.
    pub available: i32,
    /// Being deleted.
    pub terminating: i32,
    /// Pods that serve or start: not terminated, not being deleted, not out of traffic.
    pub serving_or_starting: i32,
}

impl PodSet {
    /// Applies one watch event. Returns true when the set changed and is complete.
    pub fn apply(&mut self, event: Event<Pod>) -> bool {
        match event {
            Event::Init => {
                self.buffer.clear();
                false
            }
            Event::InitApply(p) => {
                self.buffer.insert(p.name_any(), p);
                false
            }
            Event::InitDone => {
                self.pods = std::mem::take(&mut self.buffer);
                self.synced = true;
                true
            }
            Event::Apply(p) => {
                self.pods.insert(p.name_any(), p);
                self.synced
            }
            Event::Delete(p) => {
                self.pods.remove(&p.name_any());
                self.synced
            }
        }
    }

    pub fn counts(&self) -> Counts {
        let live = || self.pods.values().filter(|p| !terminated(p));
        Counts {
            existing: i32::try_from(live().count()).unwrap_or(i32::MAX),
            available: i32::try_from(live().filter(|p| ready(p) && !terminating(p)).count())
                .unwrap_or(i32::MAX),
            terminating: i32::try_from(live().filter(|p| terminating(p)).count())
                .unwrap_or(i32::MAX),
            serving_or_starting: i32::try_from(
                live()
                    .filter(|p| !terminating(p) && !out_of_traffic(p))
                    .count(),
            )
            .unwrap_or(i32::MAX),
        }
    }

    /// Pods not terminated and not being deleted, with their revision label.
    pub fn serving_revisions(&self) -> Vec<(String, Option<String>)> {
        self.pods
            .values()
            .filter(|p| !terminated(p) && !terminating(p))
            .map(|p| {
                (
                    p.name_any(),
                    p.labels().get(zdr::crd::REVISION_LABEL).cloned(),
                )
            })
            .collect()
    }

    /// Names of every pod ever seen in this set right now (terminating included).
    pub fn names(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// One line per pod, for failure messages.
    pub fn describe(&self) -> String {
        self.pods
            .values()
            .map(|p| {
                format!(
                    "  {} rev={} phase={} ready={} deleting={}",
                    p.name_any(),
                    p.labels()
                        .get(zdr::crd::REVISION_LABEL)
                        .map_or("-", String::as_str),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("-"),
                    ready(p),
                    terminating(p)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks the rolling-update bounds on the current state.
    pub fn check(&self, b: Bounds) -> Result<Counts, String> {
        let c = self.counts();
        let min_available = b.replicas - b.max_unavailable;
        let max_counted = b.replicas + b.max_surge;
        if c.available < min_available {
            return Err(format!(
                "availability dropped: {} available < replicas {} - maxUnavailable {} ({c:?})\n{}",
                c.available,
                b.replicas,
                b.max_unavailable,
                self.describe()
            ));
        }
        let counted = match b.policy {
            PodReplacementPolicy::TerminationComplete => c.existing,
            PodReplacementPolicy::TerminationStarted => c.serving_or_starting,
        };
        if counted > max_counted {
            return Err(format!(
                "surge exceeded: {counted} pods counting ({:?}) > replicas {} + maxSurge {} ({c:?})\n{}",
                b.policy,
                b.replicas,
                b.max_surge,
                self.describe()
            ));
        }
        if let Some(p) = self.pods.values().find(|p| terminating(p) && ready(p)) {
            return Err(format!(
                "pod {} was deleted while Ready (still in traffic)\n{}",
                p.name_any(),
                self.describe()
            ));
        }
        Ok(c)
    }
}

/// Tests of the bounds and of the watch bookkeeping (no cluster): run by `main.rs`.
pub mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, rev: &str, phase: &str, ready: bool, deleting: bool) -> Pod {
        let mut meta = json!({"name": name, "labels": {zdr::crd::REVISION_LABEL: rev}});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .expect("a pod")
    }

    fn synced(pods: Vec<Pod>) -> PodSet {
        let mut set = PodSet::default();
        assert!(!set.apply(Event::Init));
        for p in pods {
            assert!(
                !set.apply(Event::InitApply(p)),
                "not complete before InitDone"
            );
        }
        assert!(set.apply(Event::InitDone));
        set
    }

    const B: Bounds = Bounds {
        replicas: 3,
        max_surge: 1,
        max_unavailable: 0,
        policy: PodReplacementPolicy::TerminationComplete,
    };

    pub fn a_surge_pod_is_fine_a_second_one_is_not() {
        let mut set = synced(vec![
            pod("a", "r1", "Running", true, false),
            pod("b", "r1", "Running", true, false),
            pod("c", "r1", "Running", true, false),
        ]);
        assert_eq!(
            set.check(B),
            Ok(Counts {
                existing: 3,
                available: 3,
                terminating: 0,
                serving_or_starting: 3
            })
        );
        assert!(set.apply(Event::Apply(pod("d", "r2", "Pending", false, false))));
        assert!(set.check(B).is_ok());
        set.apply(Event::Apply(pod("e", "r2", "Pending", false, false)));
        let err = set.check(B).expect_err("5 pods > 3 + 1");
        assert!(err.contains("surge exceeded"), "{err}");
        set.apply(Event::Delete(pod("e", "r2", "Pending", false, false)));
        assert!(set.check(B).is_ok());
    }

    pub fn a_pod_being_deleted_is_not_available_but_still_counts() {
        let mut set = synced(vec![
            pod("a", "r1", "Running", true, false),
            pod("b", "r1", "Running", true, false),
            pod("c", "r1", "Running", true, false),
            pod("d", "r2", "Running", true, false),
        ]);
        assert!(set.check(B).is_ok());
        // Deleting an old pod (drained: no longer Ready) once the new one is ready keeps 3
        // available, 4 existing.
        set.apply(Event::Apply(pod("a", "r1", "Running", false, true)));
        assert_eq!(
            set.check(B),
            Ok(Counts {
                existing: 4,
                available: 3,
                terminating: 1,
                serving_or_starting: 3
            })
        );
        // A surge pod created before the old one is gone exceeds the bound.
        set.apply(Event::Apply(pod("e", "r2", "Pending", false, false)));
        assert!(set.check(B).is_err());
        // Deleting a second pod first would drop availability.
        set.apply(Event::Delete(pod("e", "r2", "Pending", false, false)));
        set.apply(Event::Apply(pod("b", "r1", "Running", false, true)));
        let err = set.check(B).expect_err("2 available < 3");
        assert!(err.contains("availability dropped"), "{err}");
        assert_eq!(
            set.serving_revisions()
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["c", "d"]
        );
    }

    fn retiring(name: &str, ready: bool) -> Pod {
        let mut p = pod(name, "r1", "Running", ready, false);
        if let Some(cs) = p.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs.push(
                serde_json::from_value(json!({"type": "zdr.dev/serving", "status": "False"}))
                    .expect("a condition"),
            );
        }
        p
    }

    pub fn termination_started_counts_only_pods_that_serve_or_start() {
        let started = B.with_policy(PodReplacementPolicy::TerminationStarted);
        let mut set = synced(vec![
            pod("a", "r1", "Running", true, false),
            pod("b", "r1", "Running", true, false),
            pod("c", "r2", "Running", true, false),
            pod("d", "r2", "Running", true, false),
            retiring("e", true),
        ]);
        // e is retiring but still Ready: it serves, so 5 > 3 + 1.
        assert!(set.check(started).is_err());
        // Out of traffic: it no longer counts (it still does with TerminationComplete).
        set.apply(Event::Apply(retiring("e", false)));
        assert_eq!(set.check(started).map(|c| c.serving_or_starting), Ok(4));
        assert!(set.check(B).is_err());
        // Being deleted: never counts with TerminationStarted.
        set.apply(Event::Apply(pod("f", "r1", "Running", false, true)));
        assert!(set.check(started).is_ok());
    }

    pub fn a_pod_deleted_while_ready_is_reported() {
        let mut set = synced(vec![
            pod("a", "r1", "Running", true, false),
            pod("b", "r1", "Running", true, false),
            pod("c", "r1", "Running", true, false),
            pod("d", "r2", "Running", true, false),
        ]);
        set.apply(Event::Apply(pod("a", "r1", "Running", true, true)));
        let err = set.check(B).expect_err("a was in traffic");
        assert!(err.contains("deleted while Ready"), "{err}");
    }

    pub fn finished_pods_do_not_count_and_a_relist_replaces_the_set() {
        let mut set = synced(vec![
            pod("a", "r1", "Running", true, false),
            pod("x", "r1", "Failed", false, false),
        ]);
        assert_eq!(set.counts().existing, 1);
        // The watch restarts: the new list is the truth, "a" is gone.
        assert!(!set.apply(Event::Init));
        set.apply(Event::InitApply(pod("b", "r2", "Running", true, false)));
        assert_eq!(set.names(), ["a", "x"], "old set kept until InitDone");
        set.apply(Event::InitDone);
        assert_eq!(set.names(), ["b"]);
        assert_eq!(
            set.serving_revisions(),
            [("b".to_string(), Some("r2".to_string()))]
        );
    }

    pub fn percentages_round_like_a_deployment() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled(&pct("25%"), 6, true), Some(2));
        assert_eq!(scaled(&pct("25%"), 6, false), Some(1));
        assert_eq!(scaled(&pct("0%"), 6, true), Some(0));
        assert_eq!(scaled(&pct("100%"), 6, false), Some(6));
        assert_eq!(scaled(&IntOrString::Int(3), 6, true), Some(3));
        assert_eq!(scaled(&pct("x%"), 6, true), None);
        assert_eq!(scaled(&pct("25"), 6, true), None);
    }
}
