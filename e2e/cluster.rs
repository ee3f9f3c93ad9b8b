//! The e2e harness of one test: takes the cluster the suite set up (or skips), gives the test a
//! namespace and a zdr-controller child process (running with the chart's RBAC), and watches
//! rollouts and their pods until a condition holds, checking the rolling-update bounds at every
//! observed state. No sleeps: every wait is a watch bounded by a deadline, and fails with the
//! last status seen.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};
use zdr::crd::{Phase, ZeroDowntimeRollout};

use crate::chaos::{Kills, Lcg};
use crate::pods::{Bounds, PodSet};
use crate::suite::{self, Cluster, RUN_LABEL};

/// A boxed watch stream.
type Events<K> = futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// Field manager of everything the tests write.
pub const MANAGER: &str = "zdr-e2e";

/// Pod annotation read by the simulated kubelet of `../shared/k8s` (which runs no container and
/// no probe): `unready` keeps every container of the pod running but never ready, `crash` makes
/// them crash-loop. Real kubelets ignore it, so a template carries both this and the real
/// behaviour (e.g. a readiness probe that never passes).
pub const SIM_MODE: &str = "sim.zdr.dev/mode";

/// Image of the test app, and the one an update switches to.
pub fn image_v1() -> String {
    std::env::var("ZDR_E2E_IMAGE")
        .unwrap_or_else(|_| "registry.k8s.io/e2e-test-images/agnhost:2.53".into())
}
pub fn image_v2() -> String {
    std::env::var("ZDR_E2E_IMAGE_V2")
        .unwrap_or_else(|_| "registry.k8s.io/e2e-test-images/agnhost:2.52".into())
}

/// agnhost serving HTTP on 8080 (ready once it listens).
pub const NETEXEC: &[&str] = &["netexec", "--http-port=8080"];
/// agnhost doing nothing: the readiness probe on 8080 never passes.
pub const NEVER_READY: &[&str] = &["pause"];

pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Bound of every wait: `ZDR_E2E_TIMEOUT_SECONDS`, default 300.
pub fn timeout() -> Duration {
    let secs = std::env::var("ZDR_E2E_TIMEOUT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Prints the skip (straight to the stderr handle, never through captured output) or fails:
/// with `ZDR_REQUIRE_CLUSTER=1`, or when `KUBEBUILDER_ASSETS` says envtest was meant.
fn skip(test: &str, why: &str) -> Option<TestEnv> {
    assert!(
        std::env::var_os("KUBEBUILDER_ASSETS").is_none(),
        "KUBEBUILDER_ASSETS is set but there is no usable cluster ({why}). envtest (an API \
         server without kubelets) cannot run these tests, whose pods must really start and \
         become Ready: use ../shared/k8s/up.sh (simulated kubelets), kind or k3d \
         (hack/e2e-kind.sh) and set KUBECONFIG; see docs/e2e.md"
    );
    assert!(
        !env_flag("ZDR_REQUIRE_CLUSTER"),
        "ZDR_REQUIRE_CLUSTER=1 but there is no usable cluster: {why}"
    );
    // One write of the whole line, so that it does not interleave with the harness's output.
    let line = format!("\n*** e2e {test}: SKIPPED: no cluster: {why} (see docs/e2e.md) ***\n\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// A container of the test app.
pub fn app_container(image: &str, args: &[&str]) -> Value {
    json!({
        "name": "app",
        "image": image,
        "args": args,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/", "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 1
        },
        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}}
    })
}

/// A rollout of `replicas` pods labelled `app=<name>`; `spec` is merged over the defaults.
pub fn rollout(name: &str, replicas: i32, container: Value, spec: Value) -> ZeroDowntimeRollout {
    let mut body = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]}
        }
    });
    if let (Some(base), Value::Object(extra)) = (body.as_object_mut(), spec) {
        base.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "zdr.dev/v1alpha1",
        "kind": "ZeroDowntimeRollout",
        "metadata": {"name": name},
        "spec": body
    }))
    .expect("the test rollout is a valid ZeroDowntimeRollout")
}

/// A patch replacing the pod template's containers.
pub fn containers_patch(container: Value) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [container]}}}})
}

/// The rollout reports `phase` for `generation` (or a later one).
pub fn at(z: &ZeroDowntimeRollout, phase: Phase, generation: i64) -> bool {
    z.status.as_ref().is_some_and(|s| {
        s.phase == Some(phase) && s.observed_generation.is_some_and(|g| g >= generation)
    })
}

/// Healthy for `generation` with every pod updated and available.
pub fn healthy(z: &ZeroDowntimeRollout, generation: i64) -> bool {
    let replicas = z.spec.replicas;
    at(z, Phase::Healthy, generation)
        && z.status.as_ref().is_some_and(|s| {
            s.updated_replicas == replicas
                && s.available_replicas >= replicas
                && s.update_revision.is_some()
        })
}

/// The status as one line of JSON, for failure messages.
pub fn status_of(z: Option<&ZeroDowntimeRollout>) -> String {
    z.and_then(|z| z.status.as_ref())
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .unwrap_or_else(|| "<no status>".into())
}

/// The zdr-controller child process of one test.
struct Controller {
    child: tokio::process::Child,
    log: PathBuf,
}

/// Waits for the controller to exit and describes it; never returns if there is none.
async fn controller_exit(ctl: &mut Option<Controller>) -> String {
    let Some(c) = ctl else {
        return std::future::pending().await;
    };
    let status = c.child.wait().await;
    let log = std::fs::read_to_string(&c.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!(
        "zdr-controller exited ({status:?}); last lines of {}:\n{tail}",
        c.log.display()
    )
}

/// One test's cluster context.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    controller: Option<Controller>,
    /// The controller's kubeconfig, to start it again.
    controller_kubeconfig: Option<PathBuf>,
    timeout: Duration,
}

/// Connects, installs the CRD, creates the namespace and starts the controller; `None` (after
/// printing SKIPPED) when there is no cluster.
pub async fn setup(test: &str) -> Option<TestEnv> {
    setup_with(test, true).await
}

/// As [`setup`], without a controller: for tests of the API server's side only.
pub async fn setup_api_only(test: &str) -> Option<TestEnv> {
    setup_with(test, false).await
}

async fn setup_with(test: &str, with_controller: bool) -> Option<TestEnv> {
    let suite = match suite::cluster() {
        Cluster::Absent(why) => return skip(test, why),
        Cluster::Broken(why) => panic!("the e2e suite's set-up failed: {why}"),
        Cluster::Ready(suite) => suite,
    };
    let client = Client::try_from(suite.config.clone())
        .unwrap_or_else(|e| panic!("cannot build a client: {e}"));
    let ns = create_namespace(&client, test, &suite.run_id).await;
    let controller_kubeconfig = suite
        .controller_kubeconfig
        .clone()
        .filter(|_| with_controller);
    let controller = controller_kubeconfig
        .as_deref()
        .map(|kubeconfig| start_controller(&ns, kubeconfig));
    Some(TestEnv {
        client,
        ns,
        controller,
        controller_kubeconfig,
        timeout: timeout(),
    })
}

/// Creates the test's namespace `zdr-e2e-<test>-<random>`, labelled with the run's id so the
/// suite can check at the end that it was deleted.
async fn create_namespace(client: &Client, test: &str, run_id: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff
    );
    let ns = format!("zdr-e2e-{test}-{suffix}");
    let api: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {"zdr.dev/e2e": "true", RUN_LABEL: run_id}}
    }))
    .expect("namespace object");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
    suite::created_namespace(&ns);
    ns
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `zdr-controller` watching only `ns`, logging to a file under the target directory,
/// with `kubeconfig` (which impersonates the chart's ServiceAccount).
fn start_controller(ns: &str, kubeconfig: &std::path::Path) -> Controller {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{ns}-controller.log"));
    // Appended to: a controller restarted by a test keeps one log.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err_file = file.try_clone().expect("clone log file handle");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdr-controller"));
    cmd.args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--namespace", ns])
        .args(["--endpoint-propagation-seconds", "1"])
        .args(["--log-format", "text"])
        .args(
            std::env::var("ZDR_E2E_AGENT_IMAGE")
                .map(|i| vec!["--agent-image".to_string(), i])
                .unwrap_or_default(),
        )
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,zdr=debug".into()),
        )
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", ns)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn zdr-controller");
    suite::started_controller(child.id(), ns);
    let _ = writeln!(
        std::io::stderr(),
        "e2e: namespace {ns}, controller log {}",
        log.display()
    );
    Controller { child, log }
}

impl TestEnv {
    /// Whether this test runs its own controller process (on this machine, so it reaches
    /// loopback servers the test starts).
    pub fn has_local_controller(&self) -> bool {
        self.controller.is_some()
    }

    /// Watches of the rollout's pods (by its `app` label) and of the rollout itself.
    fn watch(&self, name: &str) -> (Events<Pod>, Events<ZeroDowntimeRollout>) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let pod_events = watcher(
            pods,
            watcher::Config::default().labels(&format!("app={name}")),
        )
        .default_backoff()
        .boxed();
        let zdr_events = watcher(
            self.api(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .boxed();
        (pod_events, zdr_events)
    }

    pub fn api(&self) -> Api<ZeroDowntimeRollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates the rollout; returns its generation.
    pub async fn create(&self, z: &ZeroDowntimeRollout) -> i64 {
        let created = self
            .api()
            .create(&PostParams::default(), z)
            .await
            .unwrap_or_else(|e| panic!("creating rollout {}: {e}", z.name_any()));
        created.metadata.generation.unwrap_or(1)
    }

    /// Creates a rollout of `replicas` app pods at image v1 (`spec` merged over the defaults)
    /// and waits until it is Healthy at that first revision.
    pub async fn create_healthy(&mut self, name: &str, replicas: i32, spec: Value) {
        let container = app_container(&image_v1(), NETEXEC);
        let generation = self.create(&rollout(name, replicas, container, spec)).await;
        self.wait_until(name, "Healthy at the first revision", |z| {
            healthy(z, generation)
        })
        .await;
    }

    /// Merge-patches the rollout's spec; returns the new generation.
    pub async fn patch(&self, name: &str, patch: &Value) -> i64 {
        let patched = self
            .api()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("patching rollout {name} with {patch}: {e}"));
        patched.metadata.generation.unwrap_or(0)
    }

    /// Waits until `cond` holds for the rollout, or fails with its last status.
    pub async fn wait_until(
        &mut self,
        name: &str,
        what: &str,
        cond: impl Fn(&ZeroDowntimeRollout) -> bool,
    ) -> ZeroDowntimeRollout {
        let api = self.api();
        let wait = await_condition(api.clone(), name, |z: Option<&ZeroDowntimeRollout>| {
            z.is_some_and(&cond)
        });
        let deadline = Instant::now() + self.timeout;
        let failure = tokio::select! {
            r = wait => match r {
                Ok(Some(z)) => return z,
                Ok(None) => "the rollout was deleted".to_string(),
                Err(e) => format!("watch failed: {e}"),
            },
            _ = sleep_until(deadline) => format!("timed out after {:?}", self.timeout),
            msg = controller_exit(&mut self.controller) => msg,
        };
        let last = api.get_opt(name).await.ok().flatten();
        panic!(
            "{}/{name}: waiting for {what}: {failure}\nlast status: {}",
            self.ns,
            status_of(last.as_ref())
        );
    }

    /// Applies `patch` once the pod watch has listed the pods, then watches the rollout and its
    /// pods: at every observed pod state the `bounds` must hold, until `done` holds for the
    /// rollout at the patched generation and, with `settle`, every serving pod runs the
    /// update revision and there are `replicas` of them.
    pub async fn roll(
        &mut self,
        name: &str,
        bounds: Bounds,
        patch: &Value,
        settle: bool,
        done: impl Fn(&ZeroDowntimeRollout, i64) -> bool,
    ) -> ZeroDowntimeRollout {
        self.roll_with_kills(name, bounds, patch, settle, done, None)
            .await
            .0
    }

    /// Rolls each of `patches` in turn as [`roll_with_kills`](Self::roll_with_kills) does, the
    /// controller killed on the `kills` schedule: each settles, `done`, with every replica
    /// updated. Returns how many times the controller was killed, which must be at least once.
    pub async fn roll_each_with_kills(
        &mut self,
        name: &str,
        bounds: Bounds,
        patches: impl IntoIterator<Item = Value>,
        done: impl Fn(&ZeroDowntimeRollout, i64) -> bool,
        kills: Kills,
    ) -> u32 {
        let mut total = 0;
        for patch in patches {
            let (z, killed) = self
                .roll_with_kills(name, bounds, &patch, true, &done, Some(kills))
                .await;
            assert_eq!(z.status.expect("status").updated_replicas, bounds.replicas);
            total += killed;
        }
        assert!(total > 0, "the controller was never killed");
        total
    }

    /// As [`roll`](Self::roll), killing the controller (SIGKILL) and starting it again at random
    /// moments `kills` apart; returns the rollout and how many times it was killed.
    pub async fn roll_with_kills(
        &mut self,
        name: &str,
        bounds: Bounds,
        patch: &Value,
        settle: bool,
        done: impl Fn(&ZeroDowntimeRollout, i64) -> bool,
        kills: Option<Kills>,
    ) -> (ZeroDowntimeRollout, u32) {
        let (mut pod_events, mut zdr_events) = self.watch(name);
        let deadline = Instant::now() + self.timeout;
        let mut rng = Lcg::seeded();
        let mut next_kill = kills.map(|k| Instant::now() + rng.between(k.min, k.max));
        let mut killed = 0u32;
        let mut set = PodSet::default();
        let mut generation: Option<i64> = None;
        let mut last: Option<ZeroDowntimeRollout> = None;
        let mut finished: Option<ZeroDowntimeRollout> = None;
        let mut states = 0u32;
        let failure = loop {
            tokio::select! {
                ev = pod_events.next() => match ev {
                    Some(Ok(ev)) => {
                        if set.apply(ev) {
                            states += 1;
                            if let Err(e) = set.check(bounds) {
                                break e;
                            }
                            if generation.is_none() {
                                generation = Some(self.patch(name, patch).await);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "e2e: pod watch error (retrying): {e}");
                    }
                    None => break "the pod watch ended".to_string(),
                },
                ev = zdr_events.next() => match ev {
                    Some(Ok(watcher::Event::Apply(z) | watcher::Event::InitApply(z))) => {
                        if let Some(g) = generation
                            && done(&z, g)
                        {
                            finished = Some(z.clone());
                        }
                        last = Some(z);
                    }
                    Some(Ok(watcher::Event::Delete(_))) => break "the rollout was deleted".to_string(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "e2e: rollout watch error (retrying): {e}");
                    }
                    None => break "the rollout watch ended".to_string(),
                },
                _ = sleep_until(deadline) => break format!("timed out after {:?}", self.timeout),
                _ = sleep_until(next_kill.unwrap_or(deadline)), if next_kill.is_some() => {
                    self.restart_controller().await;
                    killed += 1;
                    next_kill = kills.map(|k| Instant::now() + rng.between(k.min, k.max));
                }
                msg = controller_exit(&mut self.controller) => break msg,
            }
            if let Some(z) = &finished {
                if !settle {
                    return (z.clone(), killed);
                }
                let rev = z.status.as_ref().and_then(|s| s.update_revision.clone());
                let serving = set.serving_revisions();
                let replicas = usize::try_from(z.spec.replicas).unwrap_or_default();
                if serving.len() == replicas && serving.iter().all(|(_, r)| *r == rev) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "e2e: {}/{name}: done after {states} observed pod states within {bounds:?}, {killed} controller kill(s)",
                        self.ns
                    );
                    return (z.clone(), killed);
                }
            }
        };
        panic!(
            "{}/{name}: {failure}\nlast status: {}\npods:\n{}",
            self.ns,
            status_of(last.as_ref()),
            set.describe()
        );
    }

    /// Watches the rollout and its pods for `window` and fails if `check` reports a problem at
    /// any observed state (used to show that nothing moves).
    pub async fn hold(
        &mut self,
        name: &str,
        window: Duration,
        check: impl Fn(&PodSet, Option<&ZeroDowntimeRollout>) -> Result<(), String>,
    ) {
        let (mut pod_events, mut zdr_events) = self.watch(name);
        let end = Instant::now() + window;
        let mut set = PodSet::default();
        let mut last: Option<ZeroDowntimeRollout> = None;
        let failure = loop {
            tokio::select! {
                ev = pod_events.next() => match ev {
                    Some(Ok(ev)) => { set.apply(ev); }
                    Some(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "e2e: pod watch error (retrying): {e}");
                    }
                    None => break "the pod watch ended".to_string(),
                },
                ev = zdr_events.next() => match ev {
                    Some(Ok(watcher::Event::Apply(z) | watcher::Event::InitApply(z))) => last = Some(z),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "e2e: rollout watch error (retrying): {e}");
                    }
                    None => break "the rollout watch ended".to_string(),
                },
                _ = sleep_until(end) => {
                    if set.synced && last.is_some() {
                        return;
                    }
                    break format!("the watches did not sync within {window:?}");
                }
                msg = controller_exit(&mut self.controller) => break msg,
            }
            if set.synced
                && let Err(e) = check(&set, last.as_ref())
            {
                break e;
            }
        };
        panic!(
            "{}/{name}: {failure}\nlast status: {}\npods:\n{}",
            self.ns,
            status_of(last.as_ref()),
            set.describe()
        );
    }

    /// Starts this test's controller (watching only its namespace) with `kubeconfig`, another
    /// identity than the suite's; a restart keeps it.
    pub fn start_controller_as(&mut self, kubeconfig: PathBuf) {
        self.controller = Some(start_controller(&self.ns, &kubeconfig));
        self.controller_kubeconfig = Some(kubeconfig);
    }

    /// What the controller of this test logged so far (`None` without one).
    pub fn controller_log(&self) -> Option<String> {
        let c = self.controller.as_ref()?;
        Some(std::fs::read_to_string(&c.log).unwrap_or_default())
    }

    /// Kills the controller with SIGKILL, waits for it, and starts a new one.
    pub async fn restart_controller(&mut self) {
        if let Some(c) = self.controller.as_mut() {
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        if let Some(kubeconfig) = &self.controller_kubeconfig {
            self.controller = Some(start_controller(&self.ns, kubeconfig));
        }
    }

    /// Waits until exactly `count` pods of `name` exist (draining and terminating ones gone).
    pub async fn wait_for_pod_count(&mut self, name: &str, count: usize) {
        let (mut pod_events, _) = self.watch(name);
        let deadline = Instant::now() + self.timeout;
        let mut set = PodSet::default();
        let failure = loop {
            tokio::select! {
                ev = pod_events.next() => match ev {
                    Some(Ok(ev)) => {
                        if set.apply(ev) && set.names().len() == count {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "e2e: pod watch error (retrying): {e}");
                    }
                    None => break "the pod watch ended".to_string(),
                },
                _ = sleep_until(deadline) => break format!("timed out after {:?}", self.timeout),
                msg = controller_exit(&mut self.controller) => break msg,
            }
        };
        panic!(
            "{}/{name}: waiting for exactly {count} pods: {failure}\npods:\n{}",
            self.ns,
            set.describe()
        );
    }

    /// Stops the controller and deletes the namespace (kept with `ZDR_E2E_KEEP_NAMESPACE=1`).
    /// A failed test never gets here: its namespace stays for inspection.
    pub async fn teardown(mut self) {
        if let Some(c) = self.controller.as_mut() {
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        if env_flag("ZDR_E2E_KEEP_NAMESPACE") {
            return;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = api.delete(&self.ns, &DeleteParams::background()).await {
            let _ = writeln!(
                std::io::stderr(),
                "e2e: deleting namespace {}: {e}",
                self.ns
            );
        }
    }
}
