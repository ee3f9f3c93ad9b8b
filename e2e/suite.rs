//! The suite around the tests. `e2e` is a `harness = false` target run by libtest-mimic (same
//! command line and output as libtest: filters, `--skip`, `--test-threads`, `--list`), so it has
//! a before and an after:
//!
//! - before, once, and only when a selected test needs the cluster: find the cluster (or note
//!   why there is none: each test then prints its own SKIPPED line), server-side apply the CRD,
//!   apply the chart's RBAC and write the kubeconfig every test's zdr-controller uses (it
//!   impersonates the chart's ServiceAccount: see `rbac.rs`);
//! - after: no namespace the suite created is still `Active` (`Terminating` or gone is fine;
//!   a failed test keeps its namespace for inspection, as does `ZDR_E2E_KEEP_NAMESPACE=1`), and
//!   no zdr-controller process it started is still running. Either is a failure of the run.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use libtest_mimic::{Arguments, Trial};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use zdr::crd::ZeroDowntimeRollout;

use crate::cluster::{MANAGER, env_flag};
use crate::rbac;

/// Label of every namespace a run creates, valued with the run's id.
pub const RUN_LABEL: &str = "zdr.dev/e2e-run";

/// An async test body.
pub type AsyncBody = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a test runs.
pub enum Body {
    /// A plain function (no cluster, no runtime).
    Sync(fn()),
    /// A future, run on its own 2-worker tokio runtime.
    Async(AsyncBody),
}

/// One test of the suite.
pub struct Test {
    /// Its name as libtest would give it (`module::function`), for filters and `--skip`.
    pub name: &'static str,
    /// Whether it uses the cluster (so the suite's set-up is needed when it is selected).
    pub cluster: bool,
    pub body: Body,
}

/// What the suite found before the tests.
pub enum Cluster {
    /// No usable cluster: each cluster test prints SKIPPED (or fails with
    /// `ZDR_REQUIRE_CLUSTER=1`): see `cluster::skip`.
    Absent(String),
    /// A cluster, but the suite's set-up on it failed: every cluster test fails with this.
    Broken(String),
    /// Ready for the tests.
    Ready(Box<Suite>),
}

/// The cluster, set up for the tests.
pub struct Suite {
    /// The client configuration from `KUBECONFIG` (the tests' own requests use it).
    pub config: kube::Config,
    /// Id of this run: the value of [`RUN_LABEL`] on its namespaces.
    pub run_id: String,
    /// Kubeconfig of the zdr-controller processes the tests start; it impersonates the chart's
    /// ServiceAccount. `None` with `ZDR_E2E_EXTERNAL_CONTROLLER=1` (no controller started).
    pub controller_kubeconfig: Option<PathBuf>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
/// Outcome of every test that ran: name -> passed.
static OUTCOMES: Mutex<BTreeMap<&'static str, bool>> = Mutex::new(BTreeMap::new());
/// Every namespace a test created, with the test's name.
static NAMESPACES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());
/// Every zdr-controller process started: pid and namespace.
static CONTROLLERS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

tokio::task_local! {
    /// The name of the test whose body is running.
    static CURRENT_TEST: &'static str;
}

/// The suite's cluster. Only read by tests that need it, which run only after `main` set it.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::Broken("the suite's set-up did not run".into()))
}

/// Records a namespace created by the running test.
pub fn created_namespace(ns: &str) {
    let test = CURRENT_TEST.try_with(|t| *t).unwrap_or("<unknown test>");
    lock(&NAMESPACES).insert(ns.to_string(), test);
}

/// Records a zdr-controller process started for `ns`.
pub fn started_controller(pid: Option<u32>, ns: &str) {
    if let Some(pid) = pid {
        lock(&CONTROLLERS).push((pid, ns.to_string()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes one line to stderr in one write (no interleaving with the harness's stdout).
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Runs the suite: set-up (if a selected test needs the cluster), the tests, the checks.
pub fn main(tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    let cluster_tests: Vec<&'static str> =
        tests.iter().filter(|t| t.cluster).map(|t| t.name).collect();
    let trials: Vec<Trial> = tests.into_iter().map(trial).collect();
    let uses_cluster = !args.list
        && trials.iter().any(|t| {
            cluster_tests.contains(&t.name()) && !args.is_filtered_out(t) && !args.is_ignored(t)
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the suite");
    if uses_cluster {
        let _ = CLUSTER.set(rt.block_on(prepare()));
    }

    let conclusion = libtest_mimic::run(&args, trials);

    let mut failed = conclusion.has_failed();
    if uses_cluster && let Some(Cluster::Ready(suite)) = CLUSTER.get() {
        let problems = rt.block_on(check_after(suite));
        if let Some(path) = &suite.controller_kubeconfig {
            let _ = std::fs::remove_file(path);
        }
        if problems.is_empty() {
            say(
                "e2e suite: checks passed: no namespace of this run left Active, no zdr-controller left running",
            );
        } else {
            failed = true;
            say(&format!(
                "\ne2e suite: FAILED after the tests:\n  {}\n",
                problems.join("\n  ")
            ));
        }
    }
    if failed {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    }
}

/// A libtest-mimic trial running `test` and recording its outcome.
fn trial(test: Test) -> Trial {
    let Test { name, body, .. } = test;
    Trial::test(name, move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| match body {
            Body::Sync(f) => f(),
            Body::Async(f) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the test");
                rt.block_on(CURRENT_TEST.scope(name, f()));
            }
        }));
        lock(&OUTCOMES).insert(name, result.is_ok());
        match result {
            Ok(()) => Ok(()),
            // libtest-mimic reports the panic message as the failure.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Finds the cluster and sets it up for the tests.
async fn prepare() -> Cluster {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    if kubeconfig.is_empty() {
        // Only an explicit KUBECONFIG is used, never ~/.kube/config: `cargo test` must not
        // create pods in whatever cluster the current context points at.
        return Cluster::Absent("KUBECONFIG is not set".into());
    }
    let options = kube::config::KubeConfigOptions::default();
    let config = match kube::Config::from_kubeconfig(&options).await {
        Ok(c) => c,
        Err(e) => return Cluster::Absent(format!("cannot load KUBECONFIG={kubeconfig}: {e}")),
    };
    let client = match Client::try_from(config.clone()) {
        Ok(c) => c,
        Err(e) => return Cluster::Absent(format!("cannot build a client: {e}")),
    };
    let version =
        match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
            Ok(Ok(v)) => v.git_version,
            Ok(Err(e)) => return Cluster::Absent(format!("API server unreachable: {e}")),
            Err(_) => return Cluster::Absent("API server did not answer within 10s".into()),
        };
    let run_id = run_id();
    if let Err(e) = install_crd(&client).await {
        return Cluster::Broken(e);
    }
    let controller_kubeconfig = if env_flag("ZDR_E2E_EXTERNAL_CONTROLLER") {
        say(&format!(
            "e2e suite: run {run_id} on {} ({version}); CRD applied; ZDR_E2E_EXTERNAL_CONTROLLER=1: the controller already runs in the cluster",
            config.cluster_url
        ));
        None
    } else {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-{run_id}-controller.kubeconfig"));
        match rbac::install(&client, &path).await {
            Ok(user) => {
                say(&format!(
                    "e2e suite: run {run_id} on {} ({version}); CRD applied; controllers run as {user} with the chart's RBAC ({})",
                    config.cluster_url,
                    path.display()
                ));
                Some(path)
            }
            Err(e) => return Cluster::Broken(e),
        }
    };
    Cluster::Ready(Box::new(Suite {
        config,
        run_id,
        controller_kubeconfig,
    }))
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:08x}",
        (nanos as u32) ^ std::process::id().rotate_left(16)
    )
}

/// Server-side applies the CRD from the Rust types and waits until it is Established.
async fn install_crd(client: &Client) -> Result<(), String> {
    let crd = ZeroDowntimeRollout::crd();
    let name = crd.name_any();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(|e| format!("server-side apply of CRD {name}: {e}"))?;
    let established = await_condition(api, &name, conditions::is_crd_established());
    match tokio::time::timeout(Duration::from_secs(60), established).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("waiting for CRD {name}: {e}")),
        Err(_) => Err(format!("CRD {name} not Established within 60s")),
    }
}

/// The checks after the tests; returns the problems found.
async fn check_after(suite: &Suite) -> Vec<String> {
    let mut problems = check_controllers().await;
    problems.extend(check_namespaces(suite).await);
    problems
}

/// No zdr-controller started by a test is still running (a test stops its own; a failed one
/// kills it when its runtime drops it). A straggler is reported and killed.
async fn check_controllers() -> Vec<String> {
    let started = lock(&CONTROLLERS).clone();
    let mut running: Vec<(u32, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        running.clear();
        for (pid, ns) in &started {
            let pid_t = Pid::from_raw(i32::try_from(*pid).unwrap_or(i32::MAX));
            // Our own child: still running, or a zombie we reap here. ECHILD: already reaped.
            if let Ok(WaitStatus::StillAlive) = waitpid(pid_t, Some(WaitPidFlag::WNOHANG)) {
                running.push((*pid, ns.clone()));
            }
        }
        if running.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running
        .into_iter()
        .map(|(pid, ns)| {
            let pid_t = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            let _ = kill(pid_t, Signal::SIGKILL);
            let _ = waitpid(pid_t, None);
            format!("zdr-controller pid {pid} (namespace {ns}) was still running after the tests (killed now)")
        })
        .collect()
}

/// No namespace of this run is still Active, except those kept on purpose.
async fn check_namespaces(suite: &Suite) -> Vec<String> {
    let client = match Client::try_from(suite.config.clone()) {
        Ok(c) => c,
        Err(e) => return vec![format!("cannot build a client to check namespaces: {e}")],
    };
    let api: Api<Namespace> = Api::all(client);
    let lp = ListParams::default().labels(&format!("{RUN_LABEL}={}", suite.run_id));
    let list = match api.list(&lp).await {
        Ok(l) => l,
        Err(e) => return vec![format!("cannot list the namespaces of this run: {e}")],
    };
    let created = lock(&NAMESPACES).clone();
    let outcomes = lock(&OUTCOMES).clone();
    let keep = env_flag("ZDR_E2E_KEEP_NAMESPACE");
    let mut problems = Vec::new();
    let (mut active, mut kept) = (0, 0);
    for ns in &list.items {
        let name = ns.name_any();
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        if ns.metadata.deletion_timestamp.is_some() || phase != Some("Active") {
            continue;
        }
        active += 1;
        let test = created.get(&name).copied();
        let test_failed = test.is_some_and(|t| outcomes.get(t) == Some(&false));
        if keep || test_failed {
            kept += 1;
            say(&format!(
                "e2e suite: namespace {name} kept ({}): kubectl delete namespace {name}",
                if keep {
                    "ZDR_E2E_KEEP_NAMESPACE=1"
                } else {
                    "its test failed"
                }
            ));
        } else {
            problems.push(format!(
                "namespace {name} (test {}) is still Active: the test did not delete it",
                test.unwrap_or("<not recorded>")
            ));
        }
    }
    say(&format!(
        "e2e suite: {} namespace(s) created by this run, {} still listed, {active} Active ({kept} kept on purpose)",
        created.len(),
        list.items.len(),
    ));
    problems
}
