//! A [`TrafficRouter`] for controller tests: [`Recorder`] keeps every target applied to it and
//! fails when told to.

use std::sync::{Arc, Mutex, PoisonError};

use super::{ObserveFuture, RouterError, RouterFuture, TrafficRouter, TrafficTarget};

/// Records the targets applied to it. Clones share the record, so a test keeps one clone and
/// hands the other (boxed) to the code under test.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// Every target applied successfully, in order.
    pub applied: Arc<Mutex<Vec<TrafficTarget>>>,
    /// When set, `apply` fails with `RouterError::Unusable(<this>)` and records nothing.
    pub fail: Arc<Mutex<Option<String>>>,
    /// Every call of `apply`, failed ones included.
    pub calls: Arc<Mutex<u32>>,
}

impl Recorder {
    /// A recorder that succeeds and has recorded nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, fail every `apply` with `Unusable(message)`; `None` succeeds again.
    pub fn fail_with(&self, message: Option<&str>) {
        *lock(&self.fail) = message.map(str::to_string);
    }

    /// The targets applied successfully so far.
    pub fn applied(&self) -> Vec<TrafficTarget> {
        lock(&self.applied).clone()
    }

    /// The last target applied successfully.
    pub fn last(&self) -> Option<TrafficTarget> {
        lock(&self.applied).last().cloned()
    }

    /// How many times `apply` was called, failed calls included.
    pub fn calls(&self) -> u32 {
        *lock(&self.calls)
    }
}

/// The lock, also after a panic in another test thread (the data is still usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TrafficRouter for Recorder {
    fn apply<'a>(&'a self, target: &'a TrafficTarget) -> RouterFuture<'a> {
        *lock(&self.calls) += 1;
        let result = match lock(&self.fail).clone() {
            Some(message) => Err(RouterError::Unusable(message)),
            None => {
                lock(&self.applied).push(target.clone());
                Ok(())
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn observe(&self) -> ObserveFuture<'_> {
        let last = lock(&self.applied).last().cloned().unwrap_or_default();
        let mut routes: Vec<String> = last
            .routes
            .iter()
            .filter(|r| !r.matches.is_empty())
            .map(|r| r.name.clone())
            .collect();
        routes.sort();
        Box::pin(std::future::ready(Ok(crate::traffic::Observed {
            weight: last.weight,
            routes,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_targets_and_fails_when_told() {
        let recorder = Recorder::new();
        let router: Box<dyn TrafficRouter> = Box::new(recorder.clone());
        let ten = TrafficTarget {
            weight: 10,
            routes: vec![],
        };
        router.apply(&ten).await.expect("records");
        recorder.fail_with(Some("boom"));
        let err = router.apply(&TrafficTarget::default()).await.unwrap_err();
        assert_eq!(err.to_string(), "boom");
        recorder.fail_with(None);
        router
            .apply(&TrafficTarget::default())
            .await
            .expect("records");
        assert_eq!(recorder.applied(), vec![ten, TrafficTarget::default()]);
        assert_eq!(recorder.last(), Some(TrafficTarget::default()));
        assert_eq!(recorder.calls(), 3);
    }
}
