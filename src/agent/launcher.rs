//! `zdr-agent exec`: one slot's launcher. It registers with the sidecar, starts the app with the
//! sockets the systemd way when told (through the `__shim` re-exec, so `LISTEN_PID` is the app's
//! own pid), relays `READY=1`, forwards signals, reaps, drains on command, and keeps a copy of
//! the sockets to hand back to a restarted sidecar. In a hot-swap pod it carries its claim
//! (`contract::pod::Claim`) and, when the swap to its slot fails, writes the reason as the
//! container's termination message and exits with `EXIT_SWAP_FAILED`.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::sleep_until;

use super::conn::Conn;
use super::fds;
use super::notify::NotifySocket;
use super::sidecar::control_path;
use crate::contract::pod::{Claim, EXIT_SWAP_FAILED};
use crate::contract::protocol::{AppState, FromSidecar, ToSidecar};

/// Environment variable naming the termination message file (default
/// [`DEFAULT_TERMINATION_LOG`]).
pub const ENV_TERMINATION_LOG: &str = "ZDR_TERMINATION_LOG";
/// Where Kubernetes reads a container's termination message by default.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// Settings of `zdr-agent exec`.
#[derive(Clone, Debug)]
pub struct LauncherConfig {
    /// Shared directory with the sidecar's control socket.
    pub dir: PathBuf,
    /// Slot name.
    pub slot: String,
    /// Version label reported in status.
    pub version: String,
    /// Fallback for apps without `READY=1`: ready after this long alive.
    pub ready_after: Option<Duration>,
    /// Signal and grace used when the launcher itself is told to stop (SIGTERM/SIGINT).
    pub stop_signal: i32,
    /// Grace before SIGKILL on stop.
    pub stop_timeout: Duration,
    /// Give up if the sidecar cannot be reached at start-up for this long.
    pub connect_timeout: Duration,
    /// The app's command.
    pub cmd: Vec<OsString>,
    /// This launcher's claim, in a hot-swap pod.
    pub claim: Option<Claim>,
    /// Where to write the reason of a failed swap (the container's termination message).
    pub termination_log: PathBuf,
}

/// Launcher errors.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// No command.
    #[error("no command given after --")]
    NoCommand,
    /// The sidecar could not be reached.
    #[error("cannot reach the sidecar at {0} within {1:?}")]
    Unreachable(PathBuf, Duration),
    /// The sidecar refused us.
    #[error("sidecar refused this launcher: {0}")]
    Refused(String),
    /// Local I/O.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// The slot's liveness lock (see `liveness`).
    #[error(transparent)]
    Liveness(#[from] super::liveness::HoldError),
}

struct App {
    pid: u32,
    ready: bool,
    draining: bool,
    started: Instant,
    started_unix_ms: u64,
    kill_at: Option<Instant>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Runs the launcher; returns the exit code to use (the app's, when it was stopped).
pub async fn run(cfg: LauncherConfig) -> Result<i32, LauncherError> {
    if cfg.cmd.is_empty() {
        return Err(LauncherError::NoCommand);
    }
    let path = control_path(&cfg.dir);
    let mut conn = {
        let deadline = Instant::now() + cfg.connect_timeout;
        loop {
            match Conn::connect(&path).await {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(_) => return Err(LauncherError::Unreachable(path, cfg.connect_timeout)),
            }
        }
    };
    // Held until this process ends: a restarted sidecar sees this slot alive and waits for it.
    // Without it (the directory is not writable) this launcher still runs, but a restarted
    // sidecar will not wait for it; the sidecar itself refuses a second launcher of a slot.
    let _alive = match super::liveness::hold(&cfg.dir, &cfg.slot) {
        Ok(f) => Some(f),
        Err(e @ super::liveness::HoldError::Taken(..)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "no liveness lock: a restarted sidecar will not wait for this launcher");
            None
        }
    };
    let mut held: Vec<(String, OwnedFd)> = Vec::new();
    let mut app: Option<App> = None;
    // Kept apart from `app` so their futures can be awaited side by side.
    let mut child: Option<tokio::process::Child> = None;
    let mut notify: Option<NotifySocket> = None;
    hello(&mut conn, &cfg, &app, &held)
        .await
        .map_err(|e| LauncherError::Io("hello", e))?;
    let mut conn = Some(conn);
    let mut reconnect_at: Option<Instant> = None;
    let mut stopping = false;
    let mut last_code = 0;
    let mut swap_failed = false;
    let mut term = signal(SignalKind::terminate()).map_err(|e| LauncherError::Io("signal", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| LauncherError::Io("signal", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| LauncherError::Io("signal", e))?;
    let mut usr1 =
        signal(SignalKind::user_defined1()).map_err(|e| LauncherError::Io("signal", e))?;
    let mut usr2 =
        signal(SignalKind::user_defined2()).map_err(|e| LauncherError::Io("signal", e))?;
    let mut quit = signal(SignalKind::quit()).map_err(|e| LauncherError::Io("signal", e))?;

    loop {
        if stopping && app.is_none() {
            return Ok(if swap_failed {
                EXIT_SWAP_FAILED
            } else {
                last_code
            });
        }
        let ready_at = app
            .as_ref()
            .filter(|a| !a.ready && !a.draining)
            .and_then(|a| cfg.ready_after.map(|d| a.started + d));
        let kill_at = app.as_ref().and_then(|a| a.kill_at);
        tokio::select! {
            msg = recv_from(&mut conn), if conn.is_some() => match msg {
                Ok(Some((m, got))) => {
                    match m {
                        FromSidecar::Start { names } => {
                            if app.is_some() || names.len() != got.len() || stopping {
                                tracing::warn!("ignoring start: already running, stopping, or fds/names mismatch");
                                continue;
                            }
                            held = names.into_iter().zip(got).collect();
                            match spawn_app(&cfg, &held) {
                                Ok((a, c, n)) => {
                                    tracing::info!(slot = %cfg.slot, pid = a.pid, "app started");
                                    let pid = a.pid;
                                    app = Some(a);
                                    child = Some(c);
                                    notify = Some(n);
                                    send(&mut conn, &mut reconnect_at, &ToSidecar::Started { pid }).await;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot start the app");
                                    send(&mut conn, &mut reconnect_at, &ToSidecar::Exited { pid: 0, code: Some(127), signal: None }).await;
                                }
                            }
                        }
                        FromSidecar::Drain { signal, timeout_ms } => {
                            if let Some(a) = app.as_mut() {
                                drain(a, signal, Duration::from_millis(timeout_ms));
                            }
                        }
                        FromSidecar::Error { message } => {
                            if app.is_none() && held.is_empty() {
                                return Err(LauncherError::Refused(message));
                            }
                            tracing::warn!(%message, "sidecar error");
                        }
                        FromSidecar::SwapFailed { generation, reason } => {
                            tracing::error!(slot = %cfg.slot, generation, %reason, "the swap to this slot failed: exiting once the app is gone");
                            write_termination_message(&cfg.termination_log, &reason);
                            swap_failed = true;
                            stopping = true;
                        }
                        FromSidecar::Standby | FromSidecar::Keep => {}
                        other => tracing::warn!(?other, "unexpected message from sidecar"),
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("lost the sidecar; app and sockets stay as they are, reconnecting");
                    conn = None;
                    reconnect_at = Some(Instant::now() + Duration::from_millis(100));
                }
            },
            _ = sleep_until(reconnect_at.unwrap_or_else(far).into()), if conn.is_none() => {
                match Conn::connect(&path).await {
                    Ok(mut c) => match hello(&mut c, &cfg, &app, &held).await {
                        Ok(()) => {
                            tracing::info!("reconnected to the sidecar");
                            conn = Some(c);
                            reconnect_at = None;
                        }
                        Err(_) => reconnect_at = Some(Instant::now() + Duration::from_millis(100)),
                    },
                    Err(_) => reconnect_at = Some(Instant::now() + Duration::from_millis(100)),
                }
            }
            status = wait_for(&mut child), if child.is_some() => {
                child = None;
                notify = None;
                let a = app.take();
                let pid = a.as_ref().map(|a| a.pid).unwrap_or(0);
                let (code, sig) = match status {
                    Ok(s) => split_status(s),
                    Err(_) => (None, None),
                };
                last_code = code.unwrap_or_else(|| 128 + sig.unwrap_or(0));
                tracing::info!(slot = %cfg.slot, pid, ?code, signal = ?sig, "app exited");
                send(&mut conn, &mut reconnect_at, &ToSidecar::Exited { pid, code, signal: sig }).await;
            }
            n = notified(&notify), if notify.is_some() => {
                if let (Ok(n), Some(a)) = (n, app.as_mut()) {
                    // READY=1 counts only from the app's own process (NotifyAccess=main).
                    let from_app = n.pid.is_none_or(|p| p == a.pid as i32);
                    if n.is_ready() && from_app && !a.ready {
                        a.ready = true;
                        let pid = a.pid;
                        send(&mut conn, &mut reconnect_at, &ToSidecar::Ready { pid }).await;
                    }
                }
            }
            _ = sleep_until(ready_at.unwrap_or_else(far).into()), if ready_at.is_some() => {
                if let Some(a) = app.as_mut() {
                    tracing::info!(pid = a.pid, "no READY=1; ready by start-up grace period");
                    a.ready = true;
                    let pid = a.pid;
                    send(&mut conn, &mut reconnect_at, &ToSidecar::Ready { pid }).await;
                }
            }
            _ = sleep_until(kill_at.unwrap_or_else(far).into()), if kill_at.is_some() => {
                if let Some(a) = app.as_mut() {
                    tracing::warn!(pid = a.pid, "drain timeout: SIGKILL");
                    let _ = nix::sys::signal::kill(Pid::from_raw(a.pid as i32), Signal::SIGKILL);
                    a.kill_at = None;
                }
            }
            _ = term.recv() => {
                stopping = true;
                if let Some(a) = app.as_mut() { drain(a, cfg.stop_signal, cfg.stop_timeout) }
            }
            _ = int.recv() => {
                stopping = true;
                if let Some(a) = app.as_mut() { drain(a, cfg.stop_signal, cfg.stop_timeout) }
            }
            _ = hup.recv() => forward(&app, Signal::SIGHUP),
            _ = usr1.recv() => forward(&app, Signal::SIGUSR1),
            _ = usr2.recv() => forward(&app, Signal::SIGUSR2),
            _ = quit.recv() => forward(&app, Signal::SIGQUIT),
        }
    }
}

/// The next message from the sidecar; pending forever while disconnected.
async fn recv_from(
    conn: &mut Option<Conn>,
) -> Result<Option<(FromSidecar, Vec<OwnedFd>)>, super::conn::ConnError> {
    match conn.as_mut() {
        Some(c) => c.recv::<FromSidecar>().await,
        None => std::future::pending().await,
    }
}

/// The app's exit; pending forever while no app runs.
async fn wait_for(child: &mut Option<tokio::process::Child>) -> std::io::Result<ExitStatus> {
    match child.as_mut() {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// The next notification; pending forever while no app runs.
async fn notified(n: &Option<NotifySocket>) -> std::io::Result<super::notify::Notification> {
    match n.as_ref() {
        Some(n) => n.recv().await,
        None => std::future::pending().await,
    }
}

fn split_status(s: ExitStatus) -> (Option<i32>, Option<i32>) {
    (s.code(), s.signal())
}

fn forward(app: &Option<App>, sig: Signal) {
    if let Some(a) = app {
        let _ = nix::sys::signal::kill(Pid::from_raw(a.pid as i32), sig);
    }
}

fn drain(a: &mut App, signal: i32, timeout: Duration) {
    if a.draining {
        return;
    }
    a.draining = true;
    a.kill_at = Some(Instant::now() + timeout);
    let sig = Signal::try_from(signal).unwrap_or(Signal::SIGTERM);
    tracing::info!(pid = a.pid, signal = %sig, ?timeout, "draining app");
    let _ = nix::sys::signal::kill(Pid::from_raw(a.pid as i32), sig);
}

async fn send(conn: &mut Option<Conn>, reconnect_at: &mut Option<Instant>, msg: &ToSidecar) {
    if let Some(c) = conn.as_mut()
        && c.send(msg, &[]).await.is_err()
    {
        *conn = None;
        *reconnect_at = Some(Instant::now() + Duration::from_millis(100));
    }
    // Disconnected: nothing is lost, the next hello carries the full state.
}

async fn hello(
    conn: &mut Conn,
    cfg: &LauncherConfig,
    app: &Option<App>,
    held: &[(String, OwnedFd)],
) -> std::io::Result<()> {
    let msg = ToSidecar::Hello {
        slot: cfg.slot.clone(),
        pid: std::process::id(),
        version: cfg.version.clone(),
        app: app.as_ref().map(|a| AppState {
            pid: a.pid,
            ready: a.ready,
            draining: a.draining,
            started_unix_ms: a.started_unix_ms,
        }),
        held: held.iter().map(|(n, _)| n.clone()).collect(),
        claim: cfg.claim.clone(),
    };
    let fds: Vec<BorrowedFd<'_>> = held.iter().map(|(_, f)| f.as_fd()).collect();
    conn.send(&msg, &fds)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Writes `reason` as the container's termination message. A missing or unwritable file (outside
/// Kubernetes) is logged and otherwise ignored: the exit code still tells.
fn write_termination_message(path: &std::path::Path, reason: &str) {
    if let Err(e) = std::fs::write(path, format!("{reason}\n")) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the termination message");
    }
}

fn spawn_app(
    cfg: &LauncherConfig,
    held: &[(String, OwnedFd)],
) -> std::io::Result<(App, tokio::process::Child, NotifySocket)> {
    let notify_path = cfg
        .dir
        .join(format!("notify-{}-{}.sock", cfg.slot, std::process::id()));
    let notify = NotifySocket::bind(&notify_path)?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__shim")
        .arg("--pdeathsig")
        .arg(cfg.stop_signal.to_string())
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--")
        .args(&cfg.cmd);
    let names: Vec<&str> = held.iter().map(|(n, _)| n.as_str()).collect();
    cmd.env("LISTEN_FDS", held.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env("NOTIFY_SOCKET", notify.path())
        .env("ZDR_SLOT", &cfg.slot)
        .env("ZDR_VERSION", &cfg.version)
        .env_remove("LISTEN_PID");
    let borrowed: Vec<BorrowedFd<'_>> = held.iter().map(|(_, f)| f.as_fd()).collect();
    let _keep = fds::pass_fds_to_child(&mut cmd, &borrowed)?;
    let child = tokio::process::Command::from(cmd).spawn()?;
    let pid = child.id().unwrap_or(0);
    let app = App {
        pid,
        ready: false,
        draining: false,
        started: Instant::now(),
        started_unix_ms: unix_ms(),
        kill_at: None,
    };
    Ok((app, child, notify))
}

/// Errors of the exec shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// No command.
    #[error("__shim: no command")]
    NoCommand,
    /// A NUL byte in an argument or variable.
    #[error("__shim: NUL byte in argument or environment")]
    Nul,
    /// execvp failed.
    #[error("__shim: cannot exec {0}: {1}")]
    Exec(String, nix::Error),
    /// close_range failed.
    #[error("__shim: closing inherited fds: {0}")]
    Close(std::io::Error),
    /// The launcher died before the app started.
    #[error("__shim: the launcher is gone")]
    Orphan,
}

/// The `__shim` re-exec: runs in the child, sets `LISTEN_PID` to its own pid (which the app
/// keeps across exec), closes every inherited fd beyond stdio and the passed sockets, then
/// execs the app. With `pdeathsig`, the app gets that signal (normally its drain signal) if the
/// launcher dies, as a container's processes end with it in Kubernetes. Only returns on error.
pub fn shim(cmd: &[OsString], pdeathsig: Option<i32>, parent: Option<i32>) -> ShimError {
    let Some(prog) = cmd.first() else {
        return ShimError::NoCommand;
    };
    if let Some(sig) = pdeathsig.and_then(|s| Signal::try_from(s).ok()) {
        let _ = nix::sys::prctl::set_pdeathsig(sig);
        // The launcher may have died before prctl: then nobody would tell us.
        if parent.is_some_and(|p| nix::unistd::getppid().as_raw() != p) {
            return ShimError::Orphan;
        }
    }
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if let Err(e) = fds::close_fds_from(fds::LISTEN_FDS_START + n) {
        return ShimError::Close(e);
    }
    let pid = std::process::id().to_string();
    let mut env: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k == "LISTEN_PID" {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        match CString::new(kv) {
            Ok(c) => env.push(c),
            Err(_) => return ShimError::Nul,
        }
    }
    match CString::new(format!("LISTEN_PID={pid}")) {
        Ok(c) => env.push(c),
        Err(_) => return ShimError::Nul,
    }
    let args: Result<Vec<CString>, _> = cmd.iter().map(|a| CString::new(a.as_bytes())).collect();
    let (Ok(args), Ok(file)) = (args, CString::new(prog.as_bytes())) else {
        return ShimError::Nul;
    };
    match nix::unistd::execvpe(&file, &args, &env) {
        Err(e) => ShimError::Exec(prog.to_string_lossy().into_owned(), e),
        Ok(never) => match never {},
    }
}
