//! A pod on a laptop: runs the real `zdr-agent` sidecar and launchers as processes in a private
//! directory on loopback. Used by `zdr demo`, the benchmark and the integration tests.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::agent::ctl::{self, CtlError};
use crate::contract::status::{Status, SwapRecord};

/// Errors running a local pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// Spawning or I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Talking to the sidecar.
    #[error(transparent)]
    Ctl(#[from] CtlError),
    /// Status did not show the socket.
    #[error("sidecar holds no socket")]
    NoSocket,
}

/// Sidecar options of a local pod.
#[derive(Clone, Debug)]
pub struct PodOptions {
    /// The `zdr-agent` binary.
    pub agent: PathBuf,
    /// Extra sidecar arguments.
    pub sidecar_args: Vec<String>,
    /// The `--listen` spec.
    pub listen: String,
}

impl PodOptions {
    /// Defaults: one TCP socket `http` on a free loopback port.
    pub fn new(agent: &Path) -> Self {
        PodOptions {
            agent: agent.to_owned(),
            sidecar_args: vec![
                "--drain-timeout-seconds".into(),
                "10".into(),
                "--ready-timeout-seconds".into(),
                "10".into(),
            ],
            listen: "http=127.0.0.1:0".into(),
        }
    }
}

/// The running pod. Dropping it kills every process it started and removes its directory.
pub struct LocalPod {
    /// The shared directory.
    pub dir: PathBuf,
    /// Address of the `http` socket when it is TCP (else 0.0.0.0:0).
    pub addr: SocketAddr,
    /// The `http` socket as the sidecar reports it (`127.0.0.1:8080`, `unix:/path`).
    pub bound: String,
    opts: PodOptions,
    sidecar: Option<Child>,
    launchers: BTreeMap<String, Child>,
    /// Keep the directory (logs) on drop.
    pub keep_dir: bool,
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, PodError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map_err(|e| PodError::Io(format!("log file {name}"), e))
}

impl LocalPod {
    /// Starts the sidecar in a fresh directory and waits until it answers.
    pub async fn start(opts: PodOptions) -> Result<LocalPod, PodError> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zdr-pod-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| PodError::Io("pod dir".into(), e))?;
        let mut pod = LocalPod {
            dir,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            bound: String::new(),
            opts,
            sidecar: None,
            launchers: BTreeMap::new(),
            keep_dir: false,
        };
        pod.start_sidecar().await?;
        let st = pod.status().await?;
        let sock = st.sockets.first().ok_or(PodError::NoSocket)?;
        pod.bound = sock.addr.clone();
        if !pod.bound.starts_with("unix:") {
            pod.addr = sock.addr.parse().map_err(|_| PodError::NoSocket)?;
        }
        // From now on the sidecar must keep this address, also across its restarts.
        pod.opts.listen = format!("http={}", pod.bound);
        Ok(pod)
    }

    /// Starts (or restarts) the sidecar process and waits until it answers `status`.
    pub async fn start_sidecar(&mut self) -> Result<(), PodError> {
        let mut cmd = Command::new(&self.opts.agent);
        cmd.arg("sidecar")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(&self.opts.listen)
            .arg("--http-addr")
            .arg("127.0.0.1:0")
            .args(&self.opts.sidecar_args)
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, "sidecar.log")?)
            .stderr(log_file(&self.dir, "sidecar.log")?)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| PodError::Io("spawn sidecar".into(), e))?;
        self.sidecar = Some(child);
        ctl::wait_status(&self.dir, Duration::from_secs(15), |s| !s.recovering).await?;
        Ok(())
    }

    /// Pid of the sidecar process.
    pub fn sidecar_pid(&self) -> Option<u32> {
        self.sidecar.as_ref().and_then(|c| c.id())
    }

    /// Pid of a launcher process.
    pub fn launcher_pid(&self, slot: &str) -> Option<u32> {
        self.launchers.get(slot).and_then(|c| c.id())
    }

    /// SIGKILLs the sidecar (a crash) and reaps it.
    pub async fn kill_sidecar(&mut self) {
        if let Some(mut c) = self.sidecar.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// Stops the sidecar gracefully (SIGTERM, as for an upgrade) and reaps it.
    pub async fn stop_sidecar(&mut self) {
        if let Some(mut c) = self.sidecar.take() {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }

    /// Starts a launcher for `slot` running `cmd` (`exec_args` go before `--`).
    pub fn launch(
        &mut self,
        slot: &str,
        version: &str,
        exec_args: &[&str],
        cmd: &[OsString],
    ) -> Result<(), PodError> {
        let mut c = Command::new(&self.opts.agent);
        c.arg("exec")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--slot")
            .arg(slot)
            .arg("--app-version")
            .arg(version)
            .args(exec_args)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, &format!("launcher-{slot}.log"))?)
            .stderr(log_file(&self.dir, &format!("launcher-{slot}.log"))?)
            .kill_on_drop(true);
        let child = c
            .spawn()
            .map_err(|e| PodError::Io(format!("spawn launcher {slot}"), e))?;
        self.launchers.insert(slot.to_owned(), child);
        Ok(())
    }

    /// The demo app's command line, for `launch`.
    pub fn demo_app(&self, version: &str, extra: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            self.opts.agent.clone().into(),
            "demo-app".into(),
            "--version".into(),
            version.into(),
        ];
        v.extend(extra.iter().map(OsString::from));
        v
    }

    /// Sends `sig` to a launcher.
    pub fn signal_launcher(&self, slot: &str, sig: Signal) {
        if let Some(pid) = self.launcher_pid(slot) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Waits for a launcher process to exit; its exit code.
    pub async fn wait_launcher(&mut self, slot: &str, timeout: Duration) -> Option<i32> {
        let c = self.launchers.get_mut(slot)?;
        match tokio::time::timeout(timeout, c.wait()).await {
            Ok(Ok(s)) => {
                self.launchers.remove(slot);
                s.code()
            }
            _ => None,
        }
    }

    /// `ctl status`.
    pub async fn status(&self) -> Result<Status, PodError> {
        Ok(ctl::status(&self.dir).await?)
    }

    /// Waits until `pred` holds on the status.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> Result<Status, PodError> {
        Ok(ctl::wait_status(&self.dir, timeout, pred).await?)
    }

    /// `ctl swap`, waiting for the result.
    pub async fn swap(&self, to: Option<&str>) -> Result<SwapRecord, PodError> {
        Ok(ctl::swap(&self.dir, to.map(str::to_owned), Duration::from_secs(60)).await?)
    }

    /// Stops launchers (SIGTERM: drain) then the sidecar, waiting at most `timeout` for each.
    pub async fn shutdown(&mut self, timeout: Duration) {
        for c in self.launchers.values() {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        for (_, mut c) in std::mem::take(&mut self.launchers) {
            if tokio::time::timeout(timeout, c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
        if let Some(mut c) = self.sidecar.take() {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(timeout, c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }

    /// The tail of a log file in the pod directory (for failure reports).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let v: Vec<&str> = text.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        // Children have kill_on_drop; launchers' apps follow them (PR_SET_PDEATHSIG).
        self.launchers.clear();
        self.sidecar = None;
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
