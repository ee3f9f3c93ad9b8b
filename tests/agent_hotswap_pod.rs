//! The agent in the rendered hot-swap pod, with real processes. The sidecar's and the slots'
//! commands and environments are taken from what `hotswap::render` makes of a plain template
//! (command `/app/server`, port `http` 8080): a temporary directory stands for `/zdr`, each
//! "image" is a directory whose `app/server` starts a version of the demo app, the listen and
//! status addresses become loopback ports, and the downward API's annotations are resolved by a
//! small harness playing the kubelet: changing a slot's image stops its launcher (SIGTERM, wait)
//! and starts it again with the new image and the environment resolved from the new
//! annotations. The one addition to the rendered commands is the sidecar's
//! `--ready-timeout-seconds 5`, so that a never-ready version fails within the test. Under load, it swaps a -> b -> a (back through
//! parking), fails a swap, and stops a draining slot, and checks that no request failed.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use zdr::agent::ctl;
use zdr::contract::pod::{
    self, ENV_ACTIVE_SLOT, ENV_GENERATION, ENV_SLOT, ENV_VERSION, EXIT_SWAP_FAILED, Slot,
};
use zdr::contract::{Status, SwapRecord, SwapResult};
use zdr::crd::HotSwapStrategy;
use zdr::hotswap::render::{AgentImage, render};

/// `path` of the rendered pod (an absolute path under `/zdr`) under `root` instead.
fn under(root: &Path, path: &str) -> PathBuf {
    let rel = Path::new(path)
        .strip_prefix(pod::MOUNT_PATH)
        .expect("pod paths live under the mount");
    root.join(rel)
}

/// The user's command in the template; each "image" is a directory holding it.
const APP: &str = "/app/server";

/// The pod the controller renders for a plain template of the demo app.
fn rendered() -> PodSpec {
    let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "web:1", "command": [APP],
                                 "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .expect("template");
    let hot_swap: HotSwapStrategy =
        serde_json::from_value(serde_json::json!({"container": "app", "drainTimeoutSeconds": 10}))
            .expect("hotSwap");
    let agent = AgentImage::new("zdr:test");
    render(&template, &hot_swap, &agent, "r1")
        .expect("the template renders")
        .spec
        .expect("a pod spec")
}

/// The rendered container `name` (the sidecar among the init containers).
fn container(spec: &PodSpec, name: &str) -> Container {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no container {name} in the rendered pod"))
}

/// The pod's annotations the slots read through the downward API.
#[derive(Clone, Debug)]
struct Annotations {
    active: Slot,
    generation: u64,
    revisions: BTreeMap<Slot, String>,
}

/// The kubelet's part: one sidecar and two slot containers of one pod.
struct Kubelet {
    root: PathBuf,
    annotations: Annotations,
    /// Each slot's "image": a directory whose `app/server` is the user's command.
    images: BTreeMap<Slot, PathBuf>,
    slots: BTreeMap<Slot, Child>,
    sidecar: Option<Child>,
    addr: SocketAddr,
    http: SocketAddr,
}

impl Kubelet {
    fn run_dir(&self) -> PathBuf {
        under(&self.root, pod::RUN_DIR)
    }

    fn agent_bin(&self) -> PathBuf {
        under(&self.root, pod::AGENT_BIN)
    }

    fn termination_log(&self, slot: Slot) -> PathBuf {
        self.root.join(format!("termination-log-{slot}"))
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{name}.log")))
            .expect("log file")
    }

    /// The sidecar, as rendered: the agent image's binary with `--install`.
    async fn start(root: PathBuf, annotations: Annotations) -> Kubelet {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("pod root");
        let mut k = Kubelet {
            root,
            annotations,
            images: BTreeMap::new(),
            slots: BTreeMap::new(),
            sidecar: None,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        k.spawn_sidecar().await;
        k
    }

    /// Starts the sidecar (again, on the same addresses once known) and waits until it holds
    /// its sockets.
    async fn spawn_sidecar(&mut self) {
        let (listen, http) = if self.addr.port() == 0 {
            ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string())
        } else {
            (self.addr.to_string(), self.http.to_string())
        };
        let rendered = container(&rendered(), pod::AGENT_CONTAINER);
        let argv = rendered.command.expect("the sidecar's command");
        assert_eq!(argv[0], pod::AGENT_IMAGE_BIN);
        let mut args = Vec::new();
        let mut it = argv[1..].iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--listen" => {
                    let name = it
                        .next()
                        .expect("--listen NAME=ADDR")
                        .split('=')
                        .next()
                        .unwrap();
                    args.extend(["--listen".into(), format!("{name}={listen}")]);
                }
                "--http-addr" => {
                    it.next();
                    args.extend(["--http-addr".into(), http.clone()]);
                }
                p if p.starts_with(pod::MOUNT_PATH) => {
                    args.push(under(&self.root, p).to_string_lossy().into_owned())
                }
                other => args.push(other.to_string()),
            }
        }
        let mut c = Command::new(agent());
        c.args(&args)
            .args(["--ready-timeout-seconds", "5"])
            .stdin(Stdio::null())
            .stdout(self.log("sidecar"))
            .stderr(self.log("sidecar"))
            .kill_on_drop(true);
        self.sidecar = Some(c.spawn().expect("spawn sidecar"));
        let st = ctl::wait_status(&self.run_dir(), Duration::from_secs(15), |s| {
            !s.recovering && !s.sockets.is_empty()
        })
        .await
        .expect("sidecar up");
        self.addr = st.sockets[0].addr.parse().expect("tcp socket");
        self.http = st.http_addr.as_deref().unwrap().parse().expect("http addr");
        assert!(
            self.agent_bin().is_file(),
            "--install put the agent in place"
        );
    }

    /// The sidecar container crashes (SIGKILL) and the kubelet starts it again.
    async fn crash_sidecar(&mut self) {
        let mut c = self.sidecar.take().expect("sidecar runs");
        let _ = c.start_kill();
        let _ = c.wait().await;
        self.spawn_sidecar().await;
    }

    /// Starts `slot`'s container as rendered: its command (paths under `/zdr` and the user's
    /// command under this slot's image) and its environment, the downward API's values read
    /// from the annotations now.
    fn start_slot(&mut self, slot: Slot) {
        let a = &self.annotations;
        let rendered = container(&rendered(), slot.container("app"));
        let argv: Vec<OsString> = rendered
            .command
            .expect("a slot's command")
            .iter()
            .map(|arg| match arg.as_str() {
                APP => self.images[&slot].join("app/server").into_os_string(),
                p if p.starts_with(pod::MOUNT_PATH) => under(&self.root, p).into_os_string(),
                other => other.into(),
            })
            .collect();
        let annotation = |key: &str| match key {
            pod::ACTIVE_SLOT_ANNOTATION => a.active.as_str().to_string(),
            pod::GENERATION_ANNOTATION => a.generation.to_string(),
            k if k == slot.revision_annotation() => {
                a.revisions.get(&slot).cloned().unwrap_or_default()
            }
            k => panic!("slot {slot} reads an annotation the layout does not set: {k}"),
        };
        let env = rendered.env.unwrap_or_default();
        for name in [ENV_SLOT, ENV_VERSION, ENV_ACTIVE_SLOT, ENV_GENERATION] {
            assert!(
                env.iter().any(|e| e.name == name),
                "rendered without {name}"
            );
        }
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).env_remove("ZDR_AGENT_DIR");
        for e in env {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    let path = &from.field_ref.as_ref().expect("a fieldRef").field_path;
                    let key = path
                        .strip_prefix("metadata.annotations['")
                        .and_then(|k| k.strip_suffix("']"))
                        .unwrap_or_else(|| panic!("a downward API path the harness lacks: {path}"));
                    annotation(key)
                }
                (None, None) => String::new(),
            };
            c.env(&e.name, value);
        }
        c.env("ZDR_TERMINATION_LOG", self.termination_log(slot))
            .stdin(Stdio::null())
            .stdout(self.log(&format!("slot-{slot}")))
            .stderr(self.log(&format!("slot-{slot}")))
            .kill_on_drop(true);
        let child = c.spawn().expect("spawn slot");
        self.slots.insert(slot, child);
    }

    /// Stops `slot`'s container (SIGTERM, wait); its exit code.
    async fn stop_slot(&mut self, slot: Slot) -> Option<i32> {
        let mut c = self.slots.remove(&slot)?;
        if let Some(pid) = c.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        wait_exit(&mut c, Duration::from_secs(20)).await
    }

    /// The controller's patch and the kubelet's restart of that container: `slot` gets a new
    /// image and the pod new annotations.
    async fn change_image(&mut self, slot: Slot, image: PathBuf, a: Annotations) {
        self.annotations = a;
        self.images.insert(slot, image);
        let code = self.stop_slot(slot).await;
        assert!(code.is_some(), "slot {slot} stopped");
        self.start_slot(slot);
    }

    /// Waits until the sidecar knows the launcher the kubelet started last for `slot`.
    async fn wait_registered(&self, slot: Slot) -> Status {
        let pid = self
            .slots
            .get(&slot)
            .and_then(|c| c.id())
            .expect("slot runs");
        self.wait_for("launcher registered", |s| {
            s.slots
                .iter()
                .any(|x| x.slot == slot.as_str() && x.launcher_pid == pid)
        })
        .await
    }

    async fn status(&self) -> Status {
        ctl::status(&self.run_dir()).await.expect("status")
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        ctl::wait_status(&self.run_dir(), Duration::from_secs(20), pred)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", self.logs()))
    }

    /// `GET /slots/<slot>/ready`: (status code, body).
    async fn slot_ready(&self, slot: Slot) -> (u16, String) {
        let text = http_get(self.http, slot.ready_path()).await.expect("probe");
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_owned();
        (code, body)
    }

    async fn assert_ready(&self, slot: Slot, code: u16, word: &str) {
        let (got, body) = self.slot_ready(slot).await;
        assert_eq!(got, code, "slot {slot}: {body}");
        assert!(body.contains(word), "slot {slot}: {body:?} lacks {word:?}");
    }

    fn logs(&self) -> String {
        ["sidecar", "slot-a", "slot-b"]
            .iter()
            .map(|n| {
                let t =
                    std::fs::read_to_string(self.root.join(format!("{n}.log"))).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                format!(
                    "--- {n}\n{}",
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.slots.clear();
        self.sidecar = None;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn wait_exit(c: &mut Child, timeout: Duration) -> Option<i32> {
    match tokio::time::timeout(timeout, c.wait()).await {
        Ok(Ok(s)) => s.code(),
        _ => {
            let _ = c.start_kill();
            None
        }
    }
}

/// The demo app in the slot's "image" (run from the installed binary, as a slot would).
/// An "image" whose `/app/server` runs the demo app at `version` with `extra` arguments (from
/// the agent binary the sidecar installed, as an app image would carry its own server).
fn app(k: &Kubelet, version: &str, extra: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = k
        .root
        .join("images")
        .join(format!("{version}{}", extra.join("")));
    std::fs::create_dir_all(dir.join("app")).expect("image dir");
    let server = dir.join("app/server");
    let args: Vec<String> = extra.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "#!/bin/sh\nexec '{}' demo-app --version '{version}' {}\n",
        k.agent_bin().display(),
        args.join(" ")
    );
    std::fs::write(&server, script).expect("write the image's server");
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A parked slot runs the agent image: the user's command is not even there.
fn parked_image() -> PathBuf {
    PathBuf::from("/nonexistent/agent-image")
}

fn annotations(active: Slot, generation: u64, a: &str, b: &str) -> Annotations {
    Annotations {
        active,
        generation,
        revisions: [(Slot::A, a.to_owned()), (Slot::B, b.to_owned())].into(),
    }
}

fn root(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("zdr-hotswap-{name}-{}", std::process::id()))
}

/// Sidecar and both slots up: slot a serves `v1` (generation 1), slot b is parked.
async fn pod_with_a_serving(name: &str) -> Kubelet {
    let mut k = Kubelet::start(root(name), annotations(Slot::A, 1, "r1", "")).await;
    k.images.insert(Slot::A, app(&k, "v1", &[]));
    k.images.insert(Slot::B, parked_image());
    k.assert_ready(Slot::A, 503, "no launcher").await;
    k.start_slot(Slot::A);
    k.start_slot(Slot::B);
    k.wait_for("slot a serves", |s| {
        s.active_slot.as_deref() == Some("a") && s.slots.len() == 2
    })
    .await;
    k.assert_ready(Slot::A, 200, "serving").await;
    k.assert_ready(Slot::B, 200, "standby").await;
    k
}

/// Waits for the swap with `id` to end; checks that the new slot said 503 while starting.
async fn swap_done(k: &Kubelet, id: u64, to: Slot) -> SwapRecord {
    let t0 = Instant::now();
    let mut saw_starting = false;
    loop {
        let st = k.status().await;
        if let Some(r) = st.last_swap.filter(|r| r.id == id) {
            assert!(saw_starting, "slot {to} never answered 503 while starting");
            return r;
        }
        if st.swap_in_progress.as_ref().is_some_and(|r| r.id == id) {
            let (code, body) = k.slot_ready(to).await;
            if code == 503 && body.contains("starting") {
                saw_starting = true;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "swap #{id}: {}",
            k.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn succeeded(r: &SwapRecord, from: Slot, to: Slot, version: &str) {
    assert_eq!(r.result, SwapResult::Succeeded, "{r:?}");
    assert_eq!(
        (r.from.as_deref(), r.to.as_str()),
        (Some(from.as_str()), to.as_str())
    );
    assert_eq!(r.to_version, version);
    assert!(r.ready_ms.is_some() && r.drain_ms.is_some(), "{r:?}");
    eprintln!(
        "swap #{} {from}->{to}: ready_ms={:?} drain_ms={:?} total_ms={:?}",
        r.id, r.ready_ms, r.drain_ms, r.total_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_a_to_b_and_back_through_parking_under_load() {
    bounded(150, async {
        let mut k = pod_with_a_serving("swaps").await;
        let load = load(k.addr, 8, 120);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // a -> b: slot b gets image v2 (slow to start), generation 2 names it active.
        let v2 = app(&k, "v2", &["--ready-delay", "700ms"]);
        k.change_image(Slot::B, v2, annotations(Slot::B, 2, "r1", "r2"))
            .await;
        let r = swap_done(&k, 1, Slot::B).await;
        succeeded(&r, Slot::A, Slot::B, "r2");
        k.assert_ready(Slot::B, 200, "serving").await;
        k.assert_ready(Slot::A, 200, "standby").await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        // b -> a: slot a's image is v1 already, so it is parked first (generation 3)...
        k.change_image(Slot::A, parked_image(), annotations(Slot::B, 3, "", "r2"))
            .await;
        k.wait_registered(Slot::A).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = k.status().await;
        assert_eq!(st.active_slot.as_deref(), Some("b"));
        assert_eq!(app_pid(&st, "a"), None, "a parked slot runs nothing");
        k.assert_ready(Slot::A, 200, "standby").await;
        // ... then swapped into (generation 4).
        let v1 = app(&k, "v1", &["--ready-delay", "700ms"]);
        k.change_image(Slot::A, v1, annotations(Slot::A, 4, "r1", "r2"))
            .await;
        let r = swap_done(&k, 2, Slot::A).await;
        succeeded(&r, Slot::B, Slot::A, "r1");
        k.assert_ready(Slot::A, 200, "serving").await;
        k.assert_ready(Slot::B, 200, "standby").await;

        tokio::time::sleep(Duration::from_millis(300)).await;
        load.stop();
        let report = load.finish().await;
        assert_clean(&report, "hot-swap pod a->b->a");
        assert!(report.versions.contains_key("v2"), "{:?}", report.versions);
        let st = k.status().await;
        assert_eq!((st.swaps_succeeded, st.swaps_failed), (2, 0));
    })
    .await;
}

/// Changes slot b's image to `bad` (generation `generation`) and checks the failure: the
/// launcher exits 75 with `words` in its termination message, the old version serves, and the
/// restarted launcher (same claim) stays standby.
async fn failed_swap(k: &mut Kubelet, bad: PathBuf, generation: u64, words: &str) {
    k.change_image(Slot::B, bad, annotations(Slot::B, generation, "r1", "r3"))
        .await;
    let mut b = k.slots.remove(&Slot::B).unwrap();
    let code = wait_exit(&mut b, Duration::from_secs(20)).await;
    assert_eq!(code, Some(EXIT_SWAP_FAILED), "{}", k.logs());
    let message = std::fs::read_to_string(k.termination_log(Slot::B)).unwrap_or_default();
    assert!(message.contains(words), "termination message: {message:?}");
    let marker = k.run_dir().join(format!("failed-{generation}"));
    assert!(marker.is_file(), "{} missing", marker.display());
    let st = k.status().await;
    assert_eq!(st.active_slot.as_deref(), Some("a"));
    let r = st.last_swap.expect("the failed swap's record");
    assert_eq!((r.result, r.to.as_str()), (SwapResult::Failed, "b"));
    assert!(r.error.unwrap_or_default().contains(words));
    // The sidecar sees the launcher's connection close.
    k.wait_for("slot b gone", |s| s.slots.len() == 1).await;
    k.assert_ready(Slot::B, 503, "no launcher").await;

    // The kubelet restarts it with the same claim: it stays standby.
    k.start_slot(Slot::B);
    k.wait_registered(Slot::B).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = k.status().await;
    assert_eq!(app_pid(&st, "b"), None, "a failed claim never starts again");
    assert_eq!(st.active_slot.as_deref(), Some("a"));
    k.assert_ready(Slot::B, 200, "standby").await;
    k.assert_ready(Slot::A, 200, "serving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_swaps_keep_the_old_version_and_the_restarted_slot_standby() {
    bounded(120, async {
        let mut k = pod_with_a_serving("failed").await;
        let load = load(k.addr, 6, 60);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The new version exits before READY=1.
        let exits = app(&k, "v3", &["--never-ready", "--exit-after", "300ms"]);
        failed_swap(&mut k, exits, 2, "exited before it was ready").await;
        // The new version never says READY=1 (the sidecar's deadline is 5 s).
        let never = app(&k, "v3", &["--never-ready"]);
        failed_swap(&mut k, never, 3, "was not ready within 5s").await;
        let st = k.status().await;
        assert_eq!((st.swaps_succeeded, st.swaps_failed), (0, 2));
        // A restarted sidecar reads the failed generations back: b stays standby.
        k.crash_sidecar().await;
        k.wait_registered(Slot::A).await;
        k.wait_registered(Slot::B).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = k.status().await;
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        assert_eq!(app_pid(&st, "b"), None, "a failed claim never starts again");
        k.assert_ready(Slot::B, 200, "standby").await;
        k.assert_ready(Slot::A, 200, "serving").await;

        load.stop();
        assert_clean(&load.finish().await, "failed hot swaps");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_draining_slot_lets_its_drain_finish() {
    bounded(90, async {
        let mut k = pod_with_a_serving("drain").await;
        // A long request on v1, in flight during the swap.
        let addr = k.addr;
        let long = tokio::spawn(async move { http_get(addr, "/sleep/3000").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v2 = app(&k, "v2", &[]);
        k.change_image(Slot::B, v2, annotations(Slot::B, 2, "r1", "r2"))
            .await;
        k.wait_for("a draining", |s| {
            s.slots
                .iter()
                .any(|x| x.slot == "a" && x.app.as_ref().is_some_and(|a| a.draining))
        })
        .await;
        k.assert_ready(Slot::A, 200, "draining").await;
        // The controller parks slot a: the kubelet stops it while its app drains.
        let t0 = Instant::now();
        let code = k.stop_slot(Slot::A).await;
        let waited = t0.elapsed();
        let resp = long.await.unwrap().expect("long request");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("hello from v1"), "{resp}");
        assert!(
            waited >= Duration::from_millis(1500),
            "the launcher exited after {waited:?}, before its app's drain ended"
        );
        assert_eq!(code, Some(0), "the app drained and exited cleanly");
        let st = k.wait_for("swap done", |s| s.last_swap.is_some()).await;
        assert_eq!(st.last_swap.unwrap().result, SwapResult::Succeeded);
    })
    .await;
}
