//! Expectations: writes of the controller that the watch caches have not shown yet: pods it
//! created or deleted, and the last status it wrote for each rollout. While any is outstanding the
//! reconcile does not plan, so a stale cache never makes it create or delete twice, nor decide
//! from a status older than its own last write (which would take a canary back a step). They
//! expire after a timeout, in case a watch event was missed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crd::ZeroDowntimeRolloutStatus;

/// How long an unobserved expectation holds before the cache is trusted again.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// The status the API server returned for the controller's last status write of a rollout.
struct Written {
    uid: String,
    status: Option<ZeroDowntimeRolloutStatus>,
    since: Instant,
}

/// Outstanding creations, deletions and status writes, keyed by rollout (`namespace/name`).
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
    statuses: Mutex<HashMap<String, Written>>,
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

    /// Records the status the API server returned for a status write of rollout `uid`.
    pub fn expect_status(&self, key: &str, uid: &str, status: Option<ZeroDowntimeRolloutStatus>) {
        let written = Written {
            uid: uid.to_string(),
            status,
            since: Instant::now(),
        };
        let mut map = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of rollouts deleted before the cache showed their write go with the timeout.
        map.retain(|_, w| w.since.elapsed() <= EXPECTATION_TTL);
        map.insert(key.to_string(), written);
    }

    /// Whether the cached rollout `uid` shows the last status the controller wrote for it. Only
    /// the controller writes status, so a different one is an older one: the cache lags.
    pub fn status_seen(
        &self,
        key: &str,
        uid: &str,
        cached: Option<&ZeroDowntimeRolloutStatus>,
    ) -> bool {
        let mut map = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = map.get(key) else {
            return true;
        };
        let seen =
            w.uid != uid || w.status.as_ref() == cached || w.since.elapsed() > EXPECTATION_TTL;
        if seen {
            map.remove(key);
        }
        seen
    }

    /// Forgets everything about `key` (the rollout was deleted).
    pub fn forget(&self, key: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn with(&self, key: &str, f: impl FnOnce(&mut Pending)) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of rollouts deleted before the cache showed their writes go with the timeout.
        map.retain(|k, p| k == key || p.since.is_none_or(|s| s.elapsed() <= EXPECTATION_TTL));
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

    #[test]
    fn holds_until_the_cache_shows_the_status_written_last() {
        let e = Expectations::default();
        let at = |step| ZeroDowntimeRolloutStatus {
            current_step_index: Some(step),
            ..Default::default()
        };
        assert!(
            e.status_seen("ns/a", "u1", Some(&at(2))),
            "nothing written yet"
        );
        e.expect_status("ns/a", "u1", Some(at(3)));
        assert!(!e.status_seen("ns/a", "u1", Some(&at(2))), "the cache lags");
        assert!(!e.status_seen("ns/a", "u1", None), "the cache lags");
        assert!(
            e.status_seen("ns/b", "u9", Some(&at(2))),
            "other rollouts are independent"
        );
        assert!(
            e.status_seen("ns/a", "u2", Some(&at(2))),
            "a rollout recreated under the same name starts afresh"
        );
        e.expect_status("ns/a", "u1", Some(at(3)));
        assert!(e.status_seen("ns/a", "u1", Some(&at(3))));
        assert!(
            e.status_seen("ns/a", "u1", Some(&at(2))),
            "seen once, the expectation is gone"
        );
        e.expect_status("ns/a", "u1", Some(at(4)));
        e.forget("ns/a");
        assert!(
            e.status_seen("ns/a", "u1", Some(&at(2))),
            "forgotten with the rollout"
        );
    }
}
