//! Leader election on a coordination.k8s.io Lease, so several controller replicas can run and
//! only one reconciles. Optimistic concurrency (resourceVersion) decides races.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// A lease held (or wanted) by this process.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Whether a lease with `holder`, renewed at `renewed`, may be taken by `me` at `now`.
pub fn can_take(
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    duration: Duration,
    me: &str,
    now: Timestamp,
) -> bool {
    match (holder, renewed) {
        (None, _) | (Some(""), _) => true,
        (Some(h), _) if h == me => true,
        (Some(_), None) => true,
        (Some(_), Some(at)) => {
            at + SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX) < now
        }
    }
}

impl LeaseLock {
    /// A lock on lease `name` through `api`, for `identity`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    /// One attempt to acquire or renew. `Ok(true)`: we hold the lease now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let pp = PostParams {
            field_manager: Some(crate::controller::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(0, None)),
                };
                match self.api.create(&pp, &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let cur = lease.spec.clone().unwrap_or_default();
                let holder = cur.holder_identity.as_deref();
                if !can_take(
                    holder,
                    cur.renew_time.as_ref().map(|t| t.0),
                    self.duration,
                    &self.identity,
                    now,
                ) {
                    return Ok(false);
                }
                let ours = holder == Some(self.identity.as_str());
                let transitions = cur.lease_transitions.unwrap_or(0) + i32::from(!ours);
                let acquired = if ours { cur.acquire_time.clone() } else { None };
                lease.spec = Some(spec(transitions, acquired));
                // replace() sends the resourceVersion we read: a concurrent writer makes it 409.
                match self.api.replace(&self.name, &pp, &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: could not read or write the lease")
                }
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the lease until a renewal fails for longer than the lease lasts; then returns,
    /// and the caller must stop reconciling (another replica may take over).
    pub async fn hold(&self) {
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = std::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
            }
            if last_ok.elapsed() > self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        let d = Duration::from_secs(15);
        assert!(can_take(None, None, d, "me", now));
        assert!(can_take(Some("me"), Some(now), d, "me", now));
        assert!(!can_take(
            Some("other"),
            Some(now - SignedDuration::from_secs(10)),
            d,
            "me",
            now
        ));
        assert!(can_take(
            Some("other"),
            Some(now - SignedDuration::from_secs(16)),
            d,
            "me",
            now
        ));
    }
}
