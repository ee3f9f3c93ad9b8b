//! Per-rollout exponential backoff of failed reconciles (1 s doubling to 5 min, reset by a
//! success), and the rollouts whose namespace is being deleted, where nothing may be created.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First retry delay after a failure.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_secs(300);
/// How long a rollout is remembered as living in a namespace being deleted.
const TERMINATING_TTL: Duration = Duration::from_secs(3600);

/// Failure counts per rollout key (`namespace/name`).
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
    terminating: Mutex<HashMap<String, Instant>>,
}

impl Backoff {
    /// Records a failure of `key`; returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        let delay = BASE
            .checked_mul(1u32 << (*n).min(16))
            .unwrap_or(MAX)
            .min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Records a success of `key`: the next failure starts again at [`BASE`].
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Remembers that the namespace of rollout `uid` is being deleted: nothing more is created
    /// for it.
    pub fn namespace_terminating(&self, uid: &str) {
        let mut map = self.terminating.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, since| since.elapsed() < TERMINATING_TTL);
        map.insert(uid.to_string(), Instant::now());
    }

    /// Whether the namespace of rollout `uid` was seen being deleted.
    pub fn in_terminating_namespace(&self, uid: &str) -> bool {
        self.terminating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .is_some_and(|since| since.elapsed() < TERMINATING_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_bound_and_resets_on_success() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| b.failed("ns/a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(b.failed("ns/b"), BASE, "per rollout");
        b.succeeded("ns/a");
        assert_eq!(b.failed("ns/a"), BASE);
        for _ in 0..100 {
            assert!(b.failed("ns/c") <= MAX);
        }
    }

    #[test]
    fn remembers_rollouts_in_terminating_namespaces_by_uid() {
        let b = Backoff::default();
        assert!(!b.in_terminating_namespace("uid-1"));
        b.namespace_terminating("uid-1");
        assert!(b.in_terminating_namespace("uid-1"));
        assert!(
            !b.in_terminating_namespace("uid-2"),
            "a rollout re-created in a new namespace of the same name has another uid"
        );
    }
}
