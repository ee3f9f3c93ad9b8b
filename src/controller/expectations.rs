//! Expectations: pods the controller created or deleted that the watch cache has not shown yet.
//! While any are outstanding the reconcile does not plan, so a stale cache never makes it create
//! or delete twice. They expire after a timeout, in case a watch event was missed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an unobserved expectation holds before the cache is trusted again.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Outstanding creations and deletions, keyed by rollout (`namespace/name`).
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Records that `pod` was created for `key`.
    pub fn expect_create(&self, key: &str, pod: &str) {
        self.with(key, |p| {
            p.creates.insert(pod.to_string());
        });
    }

    /// Records that `pod` was deleted for `key`.
    pub fn expect_delete(&self, key: &str, pod: &str) {
        self.with(key, |p| {
            p.deletes.insert(pod.to_string());
        });
    }

    /// Whether the cache has caught up with every expectation of `key`. `present` tells whether
    /// the cache shows a pod (for deletions: shows it without a deletion timestamp).
    pub fn satisfied(&self, key: &str, present: impl Fn(&str) -> bool) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(key) else {
            return true;
        };
        p.creates.retain(|name| !present(name));
        p.deletes.retain(|name| present(name));
        let expired = p.since.is_some_and(|s| s.elapsed() > EXPECTATION_TTL);
        if expired || (p.creates.is_empty() && p.deletes.is_empty()) {
            map.remove(key);
            return true;
        }
        false
    }

    /// Drops the expectation for `pod` (its create or delete call failed, so it never shows).
    pub fn cancel(&self, key: &str, pod: &str) {
        self.with(key, |p| {
            p.creates.remove(pod);
            p.deletes.remove(pod);
        });
    }

    /// Forgets everything about `key` (the rollout was deleted).
    pub fn forget(&self, key: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn with(&self, key: &str, f: impl FnOnce(&mut Pending)) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.entry(key.to_string()).or_default();
        p.since.get_or_insert_with(Instant::now);
        f(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_the_cache_shows_the_change() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a", |_| false));
        e.expect_create("ns/a", "p1");
        e.expect_delete("ns/a", "p0");
        assert!(!e.satisfied("ns/a", |n| n == "p0"), "p1 not seen yet");
        assert!(
            !e.satisfied("ns/a", |n| n == "p0" || n == "p1"),
            "p0 still there"
        );
        assert!(e.satisfied("ns/a", |n| n == "p1"));
        assert!(
            e.satisfied("ns/b", |_| true),
            "other rollouts are independent"
        );
    }
}
