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

    use http::{Method, Request, Response};
    use kube::Client;
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    async fn answer(h: &mut Handle, method: Method, path: &str, code: u16, reply: Value) -> Value {
        let (req, send) = h.next_request().await.expect("a request");
        // Only what the controller's RBAC rules (and so the chart's lease Role) allow.
        if let Err(e) =
            crate::controller::rbac::check(req.method().as_str(), &req.uri().to_string())
        {
            panic!("{e}");
        }
        assert_eq!(
            (req.method(), req.uri().to_string().as_str()),
            (&method, path)
        );
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let resp = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(resp);
        body
    }

    fn lease(holder: &str, renewed: Timestamp, transitions: i32) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "zdr-controller", "namespace": "ns", "resourceVersion": "7"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                        "renewTime": MicroTime(renewed), "leaseTransitions": transitions}})
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/zdr-controller";

    fn lock() -> (LeaseLock, Handle) {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let api = Api::namespaced(Client::new(svc, "ns"), "ns");
        (
            LeaseLock::new(api, "zdr-controller", "me", Duration::from_secs(15)),
            handle,
        )
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_and_held() {
        let (lock, mut h) = lock();
        let task = tokio::spawn(async move { lock.try_acquire_or_renew().await });
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": "not found"});
        answer(&mut h, Method::GET, PATH, 404, not_found).await;
        let created = answer(
            &mut h,
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases?&fieldManager=zdr-controller",
            201,
            lease("me", Timestamp::now(), 0),
        )
        .await;
        assert_eq!(created["spec"]["holderIdentity"], "me");
        assert!(task.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_fresh_lease_of_another_holder_is_left_alone() {
        let (lock, mut h) = lock();
        let task = tokio::spawn(async move { lock.try_acquire_or_renew().await });
        answer(
            &mut h,
            Method::GET,
            PATH,
            200,
            lease("other", Timestamp::now(), 2),
        )
        .await;
        assert!(!task.await.unwrap().unwrap());
        let next = tokio::time::timeout(Duration::from_millis(100), h.next_request()).await;
        // The client is gone with the task: the channel closes (None) or stays silent (timeout).
        assert!(
            !matches!(next, Ok(Some(_))),
            "no write to a lease another replica holds"
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_with_optimistic_concurrency() {
        let (lock, mut h) = lock();
        let task = tokio::spawn(async move { lock.try_acquire_or_renew().await });
        let old = Timestamp::now() - SignedDuration::from_secs(60);
        answer(&mut h, Method::GET, PATH, 200, lease("other", old, 2)).await;
        let put = answer(
            &mut h,
            Method::PUT,
            &format!("{PATH}?&fieldManager=zdr-controller"),
            200,
            lease("me", Timestamp::now(), 3),
        )
        .await;
        assert_eq!(
            put["metadata"]["resourceVersion"], "7",
            "replace carries what we read"
        );
        assert_eq!(put["spec"]["holderIdentity"], "me");
        assert_eq!(put["spec"]["leaseTransitions"], 3);
        assert!(task.await.unwrap().unwrap());
    }
}
