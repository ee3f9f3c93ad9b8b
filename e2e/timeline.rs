//! Every state of a canary, in the order the API server wrote it. A [`Recorder`] watches the
//! rollout, its pods, the stable and canary Services and the HTTPRoute, and keeps every event.
//! Separate watches deliver in no common order (a route update can arrive before the pod
//! update that justified it), so the checks replay the events sorted by `resourceVersion`:
//! on one etcd it is the global revision of the write, so at each point of the replay the
//! [`World`] is what the API server held right after that write. (The checks need integer
//! resourceVersions, as etcd and kine give.)
//!
//! [`Recorder::sync`] is the barrier before a replay: it waits until every watch has delivered
//! the state a fresh read returns, so that no write older than that read is still in flight.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::Instant;
use zdr::crd::{REVISION_LABEL, ZeroDowntimeRollout};

use crate::gateway::{self, RouteView};

/// One recorded object state.
#[derive(Clone, Debug)]
pub enum Obj {
    Pod(Box<Pod>),
    PodGone(String),
    Route(Box<DynamicObject>),
    Service(Box<Service>),
    Rollout(Box<ZeroDowntimeRollout>),
    /// A watch listed again: pods not in this list are gone.
    PodRelist(Vec<String>),
}

/// One recorded event.
#[derive(Clone, Debug)]
pub struct Entry {
    /// resourceVersion of the write.
    pub rv: u64,
    /// Arrival order, to break ties.
    pub seq: u64,
    /// Milliseconds since the recorder started, when it arrived.
    pub ms: u128,
    pub obj: Obj,
}

/// The last state of each object as delivered, by resourceVersion: for the barrier.
#[derive(Default)]
struct Latest {
    pods: BTreeMap<String, u64>,
    services: BTreeMap<String, u64>,
    route: u64,
    rollout: u64,
}

#[derive(Default)]
struct Shared {
    entries: Vec<Entry>,
    latest: Latest,
    errors: Vec<String>,
}

/// Names of the objects of one canary.
#[derive(Clone, Debug)]
pub struct Names {
    pub ns: String,
    /// The rollout, and the `app` label of its pods.
    pub rollout: String,
    pub stable: String,
    pub canary: String,
    /// The HTTPRoute or VirtualService.
    pub route: String,
    pub router: Router,
}

/// The kind of object that splits the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Router {
    HttpRoute,
    VirtualService,
}

impl Router {
    /// The router objects of `ns`.
    pub fn api(self, client: &Client, ns: &str) -> Api<DynamicObject> {
        match self {
            Router::HttpRoute => gateway::routes(client, ns),
            Router::VirtualService => crate::istio::virtualservices(client, ns),
        }
    }

    /// What the router object `r` says about the canary's traffic.
    pub fn view(self, r: &DynamicObject, n: &Names) -> RouteView {
        match self {
            Router::HttpRoute => RouteView::of(r, &n.stable, &n.canary),
            Router::VirtualService => crate::istio::view(r, &n.ns, &n.stable, &n.canary),
        }
    }

    /// Everything in `r` that is not the controller's to change.
    pub fn foreign_part(self, r: &DynamicObject, n: &Names) -> String {
        match self {
            Router::HttpRoute => gateway::foreign_part(r, &n.stable, &n.canary),
            Router::VirtualService => crate::istio::foreign_part(r, &n.ns, &n.stable, &n.canary),
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Router::HttpRoute => "HTTPRoute",
            Router::VirtualService => "VirtualService",
        }
    }
}

/// Watches of one canary, recording every event until dropped.
pub struct Recorder {
    shared: Arc<Mutex<Shared>>,
    /// resourceVersion up to which the replay only builds the world: the initial lists place
    /// each object at its last write, so the world is complete only from there on.
    baseline: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: Client,
    pub names: Names,
}

fn rv_of<K: Resource>(k: &K) -> u64 {
    let rv = k.meta().resource_version.as_deref().unwrap_or_default();
    rv.parse().unwrap_or_else(|_| {
        panic!(
            "resourceVersion {rv:?} is not an integer: the canary checks need etcd-like revisions"
        )
    })
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Spawns a watch of `api` that records each applied object with `wrap` and, for pods,
/// deletions and relists.
fn spawn<K>(
    shared: Arc<Mutex<Shared>>,
    started: Instant,
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(K) -> Obj,
    gone: Option<fn(String) -> Obj>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher(api, config).default_backoff().boxed();
    tokio::spawn(async move {
        let mut relist: Option<Vec<String>> = None;
        while let Some(ev) = stream.next().await {
            let mut s = lock(&shared);
            let seq = s.entries.len() as u64;
            let ms = started.elapsed().as_millis();
            let push = |s: &mut Shared, rv: u64, obj: Obj| {
                s.entries.push(Entry { rv, seq, ms, obj });
            };
            match ev {
                Ok(watcher::Event::Init) => relist = Some(Vec::new()),
                Ok(watcher::Event::InitApply(k) | watcher::Event::Apply(k)) => {
                    if let Some(l) = relist.as_mut() {
                        l.push(k.name_any());
                    }
                    let rv = rv_of(&k);
                    note(&mut s.latest, &wrap(k.clone()), rv);
                    push(&mut s, rv, wrap(k));
                }
                Ok(watcher::Event::InitDone) => {
                    if let (Some(names), Some(_)) = (relist.take(), gone) {
                        let rv = s.entries.iter().map(|e| e.rv).max().unwrap_or(0);
                        s.latest.pods.retain(|n, _| names.contains(n));
                        push(&mut s, rv, Obj::PodRelist(names));
                    }
                }
                Ok(watcher::Event::Delete(k)) => {
                    if let Some(gone) = gone {
                        let rv = rv_of(&k);
                        s.latest.pods.remove(&k.name_any());
                        push(&mut s, rv, gone(k.name_any()));
                    }
                }
                Err(e) => s.errors.push(e.to_string()),
            }
        }
    })
}

/// Records `obj` (at `rv`) as the last delivered state.
fn note(l: &mut Latest, obj: &Obj, rv: u64) {
    match obj {
        Obj::Pod(p) => {
            l.pods.insert(p.name_any(), rv);
        }
        Obj::Service(s) => {
            l.services.insert(s.name_any(), rv);
        }
        Obj::Route(_) => l.route = rv,
        Obj::Rollout(_) => l.rollout = rv,
        Obj::PodGone(_) | Obj::PodRelist(_) => {}
    }
}

impl Recorder {
    /// Starts the watches and waits until they have listed everything (the baseline).
    pub async fn start(client: &Client, names: Names) -> Self {
        let mut rec = Self::spawn_all(client, names);
        rec.sync().await;
        rec.baseline = rec.entries().iter().map(|e| e.rv).max().unwrap_or(0);
        rec
    }

    fn spawn_all(client: &Client, names: Names) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let started = Instant::now();
        let ns = &names.ns;
        let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
        let tasks = vec![
            spawn::<Pod>(
                shared.clone(),
                started,
                Api::namespaced(client.clone(), ns),
                watcher::Config::default().labels(&format!("app={}", names.rollout)),
                |p| Obj::Pod(Box::new(p)),
                Some(Obj::PodGone),
            ),
            spawn::<Service>(
                shared.clone(),
                started,
                Api::namespaced(client.clone(), ns),
                watcher::Config::default(),
                |s| Obj::Service(Box::new(s)),
                None,
            ),
            spawn::<DynamicObject>(
                shared.clone(),
                started,
                names.router.api(client, ns),
                by_name(&names.route),
                |r| Obj::Route(Box::new(r)),
                None,
            ),
            spawn::<ZeroDowntimeRollout>(
                shared.clone(),
                started,
                Api::namespaced(client.clone(), ns),
                by_name(&names.rollout),
                |z| Obj::Rollout(Box::new(z)),
                None,
            ),
        ];
        Self {
            shared,
            baseline: 0,
            tasks,
            client: client.clone(),
            names,
        }
    }

    /// Every event so far, in the order of the writes.
    pub fn entries(&self) -> Vec<Entry> {
        let mut e = lock(&self.shared).entries.clone();
        e.sort_by_key(|e| (e.rv, e.seq));
        e
    }

    /// Waits until every watch has delivered what a fresh read of the objects returns (so the
    /// replay misses no write older than the read). Needs the objects to hold still briefly.
    pub async fn sync(&self) {
        let n = &self.names;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &n.ns);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &n.ns);
        let zdrs: Api<ZeroDowntimeRollout> = Api::namespaced(self.client.clone(), &n.ns);
        let routes = n.router.api(&self.client, &n.ns);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lp = ListParams::default().labels(&format!("app={}", n.rollout));
            let want_pods: BTreeMap<String, u64> = (pods.list(&lp).await.expect("list pods").items)
                .iter()
                .map(|p| (p.name_any(), rv_of(p)))
                .collect();
            let want_svcs: BTreeMap<String, u64> = (services.list(&ListParams::default()).await)
                .expect("list services")
                .items
                .iter()
                .map(|s| (s.name_any(), rv_of(s)))
                .collect();
            let route = rv_of(&routes.get(&n.route).await.expect("get the router object"));
            let rollout = rv_of(&zdrs.get(&n.rollout).await.expect("get the rollout"));
            {
                let s = lock(&self.shared);
                let l = &s.latest;
                if l.pods == want_pods
                    && l.services == want_svcs
                    && l.route == route
                    && l.rollout == rollout
                {
                    return;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "{}: the watches did not catch up with a fresh read within 60s (watch errors: {:?})",
                        n.ns, s.errors
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replays every event in write order; `check` sees the world after each one and the
    /// world before it. Panics with the recent history at the first problem.
    pub fn replay(
        &self,
        what: &str,
        mut check: impl FnMut(&World, &World, &Entry) -> Result<(), String>,
    ) {
        let entries = self.entries();
        let mut world = World::new(&self.names);
        let mut history: Vec<String> = Vec::new();
        let mut failure: Option<(String, usize)> = None;
        for e in &entries {
            let before = world.clone();
            world.apply(e);
            if e.rv <= self.baseline {
                continue;
            }
            history.push(world.line(e));
            if failure.is_none()
                && let Err(problem) = check(&world, &before, e)
            {
                let at = format!("at resourceVersion {} (+{} ms): {problem}", e.rv, e.ms);
                failure = Some((at, history.len()));
                history.push(format!("^^^ {problem}"));
            }
        }
        let file = self.write_history(&history);
        if let Some((at, n)) = failure {
            let tail = history[n.saturating_sub(60)..n].join("\n");
            panic!(
                "{}: {what}: {at}\nthe states before (rv +ms what | route weights stable/canary, zdr rules | revision the stable/canary Service selects | (ready, alive) pods per revision | status); all of them in {file}:\n{tail}",
                self.names.ns
            );
        }
        let errors = lock(&self.shared).errors.clone();
        if !errors.is_empty() {
            let _ = writeln!(
                std::io::stderr(),
                "e2e: {}: watch errors (retried): {errors:?}",
                self.names.ns
            );
        }
    }
}

impl Recorder {
    /// The world after every event so far.
    pub fn world(&self) -> World {
        let mut world = World::new(&self.names);
        for e in &self.entries() {
            world.apply(e);
        }
        world
    }

    /// Polls the recorded world until `cond` holds, or fails after `timeout` with it.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&World) -> bool,
    ) -> World {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.world();
            if cond(&w) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "{}: waiting for {what}: timed out after {timeout:?}; now: {}",
                self.names.ns,
                w.summary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Recorder {
    /// Writes the replayed states to `<target>/tmp/<namespace>-timeline.txt`; returns its path.
    fn write_history(&self, history: &[String]) -> String {
        let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-timeline.txt", self.names.ns));
        let _ = std::fs::write(&path, history.join("\n") + "\n");
        path.display().to_string()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the API server held at one point of the replay.
#[derive(Clone, Debug)]
pub struct World {
    names: Names,
    pub pods: BTreeMap<String, Pod>,
    pub services: BTreeMap<String, Service>,
    pub route: Option<DynamicObject>,
    pub rollout: Option<ZeroDowntimeRollout>,
}

/// Ready condition True.
pub fn is_ready(p: &Pod) -> bool {
    (p.status.as_ref().and_then(|s| s.conditions.as_ref()))
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Taken out of traffic by the controller: its readiness gate `zdr.dev/serving` is False.
fn retiring(p: &Pod) -> bool {
    (p.status.as_ref().and_then(|s| s.conditions.as_ref())).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == zdr::crd::READINESS_GATE && c.status == "False")
    })
}

/// Finished (Succeeded or Failed).
fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's revision label.
pub fn revision(p: &Pod) -> Option<&str> {
    p.labels().get(REVISION_LABEL).map(String::as_str)
}

impl World {
    fn new(names: &Names) -> Self {
        Self {
            names: names.clone(),
            pods: BTreeMap::new(),
            services: BTreeMap::new(),
            route: None,
            rollout: None,
        }
    }

    fn apply(&mut self, e: &Entry) {
        match &e.obj {
            Obj::Pod(p) => {
                self.pods.insert(p.name_any(), (**p).clone());
            }
            Obj::PodGone(n) => {
                self.pods.remove(n);
            }
            Obj::PodRelist(names) => self.pods.retain(|n, _| names.contains(n)),
            Obj::Service(s) => {
                self.services.insert(s.name_any(), (**s).clone());
            }
            Obj::Route(r) => self.route = Some((**r).clone()),
            Obj::Rollout(z) => self.rollout = Some((**z).clone()),
        }
    }

    /// Pods of `rev` that are Ready and not being deleted: they can take traffic.
    pub fn ready(&self, rev: &str) -> i64 {
        (self.pods.values())
            .filter(|p| revision(p) == Some(rev) && is_ready(p))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !finished(p))
            .count() as i64
    }

    /// Pods in service that do not run `rev`: Ready, not being deleted, and not taken out of
    /// traffic by the controller (its `zdr.dev/serving` gate is not False).
    pub fn serving_other_than(&self, rev: &str) -> Vec<String> {
        (self.pods.values())
            .filter(|p| revision(p) != Some(rev) && is_ready(p) && !finished(p))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !retiring(p))
            .map(|p| p.name_any())
            .collect()
    }

    /// Pods of `rev` that exist and are not being deleted.
    pub fn alive(&self, rev: &str) -> i64 {
        (self.pods.values())
            .filter(|p| revision(p) == Some(rev))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !finished(p))
            .count() as i64
    }

    /// The revision in the Service's selector.
    pub fn selects(&self, service: &str) -> Option<String> {
        let s = self.services.get(service)?;
        let sel = s.spec.as_ref()?.selector.as_ref()?;
        sel.get(REVISION_LABEL).cloned()
    }

    pub fn stable_selects(&self) -> Option<String> {
        self.selects(&self.names.stable)
    }

    pub fn canary_selects(&self) -> Option<String> {
        self.selects(&self.names.canary)
    }

    /// The HTTPRoute's traffic (empty before the route was seen).
    pub fn route_view(&self) -> RouteView {
        (self.route.as_ref())
            .map(|r| self.names.router.view(r, &self.names))
            .unwrap_or_default()
    }

    /// The state in one line, for failure messages.
    pub fn summary(&self) -> String {
        let e = Entry {
            rv: 0,
            seq: 0,
            ms: 0,
            obj: Obj::PodRelist(Vec::new()),
        };
        self.line(&e)
    }

    /// One line of history.
    fn line(&self, e: &Entry) -> String {
        let what = match &e.obj {
            Obj::Pod(p) => format!(
                "pod {} rev={} ready={} deleting={}",
                p.name_any(),
                revision(p).unwrap_or("-"),
                is_ready(p),
                p.metadata.deletion_timestamp.is_some()
            ),
            Obj::PodGone(n) => format!("pod {n} gone"),
            Obj::PodRelist(_) => "pods relisted".into(),
            Obj::Service(s) => format!("service {}", s.name_any()),
            Obj::Route(_) => "route".into(),
            Obj::Rollout(_) => "rollout".into(),
        };
        let mut revs: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for p in self.pods.values() {
            let r = revs.entry(revision(p).unwrap_or("-")).or_default();
            if p.metadata.deletion_timestamp.is_none() {
                r.1 += 1;
                r.0 += i64::from(is_ready(p));
            }
        }
        let status = (self.rollout.as_ref())
            .and_then(|z| z.status.as_ref())
            .map(|s| {
                format!(
                    "{:?} replicas={} stable={:?} step={:?} weight={:?} routes={:?} services={:?}",
                    s.phase,
                    self.rollout.as_ref().map_or(0, |z| z.spec.replicas),
                    s.stable_revision,
                    s.current_step_index,
                    s.canary_weight,
                    s.header_routes,
                    s.services
                        .as_ref()
                        .map(|x| (x.stable.clone(), x.canary.clone()))
                )
            })
            .unwrap_or_default();
        let rv = self.route_view();
        format!(
            "{} +{} {what} | w={:?}/{:?} rules={:?} | {:?}/{:?} | ready/alive {revs:?} | {status}",
            e.rv,
            e.ms,
            rv.stable,
            rv.canary,
            rv.header_names(),
            self.stable_selects(),
            self.canary_selects(),
        )
    }
}
