//! The pods of a rollout as a watch sees them, and the bounds a rolling update must respect:
//! available pods >= replicas - maxUnavailable, existing pods <= replicas + maxSurge.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

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
}

impl Bounds {
    pub fn new(replicas: i32, max_surge: &IntOrString, max_unavailable: &IntOrString) -> Self {
        let max_surge = scaled(max_surge, replicas, true).expect("valid maxSurge");
        let max_unavailable =
            scaled(max_unavailable, replicas, false).expect("valid maxUnavailable");
        Self {
            replicas,
            max_surge,
            max_unavailable,
        }
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
        let max_existing = b.replicas + b.max_surge;
        if c.available < min_available {
            return Err(format!(
                "availability dropped: {} available < replicas {} - maxUnavailable {} ({c:?})\n{}",
                c.available,
                b.replicas,
                b.max_unavailable,
                self.describe()
            ));
        }
        if c.existing > max_existing {
            return Err(format!(
                "surge exceeded: {} pods > replicas {} + maxSurge {} ({c:?})\n{}",
                c.existing,
                b.replicas,
                b.max_surge,
                self.describe()
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_a_deployment() {
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
