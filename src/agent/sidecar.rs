//! `zdr-agent sidecar`: binds (or recovers) the pod's listening sockets, serves them to local
//! launchers on the control socket, and hosts the swap machine and the status endpoint.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::conn::{Conn, ConnError};
use super::liveness;
use super::sockets::{Held, ListenSpec};
use super::status::{self, Metrics, SharedReadiness, SharedStatus};
use super::swap::{Event, Machine, MachineConfig, Outgoing, Persisted, read_failed};
use crate::contract::pod::Claim;
use crate::contract::protocol::{AppState, FromSidecar, ToSidecar};
use crate::contract::status::Status;
use crate::observe::Health;

/// File name of the control socket in the shared directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// File name of the state the sidecar keeps across its own restarts.
pub const STATE_FILE: &str = "sidecar-state.json";

/// Settings of `zdr-agent sidecar`.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// Shared directory (an emptyDir in Kubernetes).
    pub dir: PathBuf,
    /// Sockets to hold.
    pub listen: Vec<ListenSpec>,
    /// Status/metrics HTTP address (port 0: any).
    pub http_addr: SocketAddr,
    /// The machine's settings (state path is filled in from `dir`).
    pub backlog: i32,
    /// Drain signal number.
    pub drain_signal: i32,
    /// Grace before SIGKILL.
    pub drain_timeout: Duration,
    /// Readiness deadline of a new version.
    pub ready_timeout: Duration,
    /// Recovery window after a restart.
    pub recover_timeout: Duration,
    /// Where to copy this binary for the slots before binding (`--install`).
    pub install: Option<PathBuf>,
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// No sockets configured.
    #[error("no --listen socket given")]
    NoSockets,
    /// Two sockets with one name.
    #[error("socket name {0:?} given twice")]
    DuplicateName(String),
    /// Shared directory problems.
    #[error("shared directory {0}: {1}")]
    Dir(PathBuf, io::Error),
    /// Binding a listener.
    #[error("binding {0}: {1}")]
    Bind(String, io::Error),
    /// The status endpoint.
    #[error("status endpoint {0}: {1}")]
    Http(SocketAddr, io::Error),
    /// `--install` failed.
    #[error(transparent)]
    Install(#[from] super::install::InstallError),
    /// The machine stopped on a fatal error.
    #[error(transparent)]
    Machine(#[from] super::swap::MachineError),
}

/// The previous sidecar's state, when this pod's sidecar ran before and a launcher of it is
/// still alive: those launchers hold the sockets, so they are recovered instead of bound again.
/// When none is alive (a clean stop after the apps ended, or everything crashed), nobody holds
/// them: the stale state is removed and the sockets are bound at once.
fn previous_state(dir: &Path, state_path: &Path) -> Option<Persisted> {
    let p: Persisted = serde_json::from_slice(&std::fs::read(state_path).ok()?).ok()?;
    let alive: Vec<String> = p
        .slots
        .iter()
        .filter(|s| liveness::alive(dir, s))
        .cloned()
        .collect();
    if alive.is_empty() {
        tracing::info!(slots = ?p.slots, "previous sidecar state found, but no launcher of it is alive: binding");
        let _ = std::fs::remove_file(state_path);
        return None;
    }
    Some(Persisted { slots: alive, ..p })
}

/// Runs the sidecar until SIGTERM/SIGINT.
pub async fn run(cfg: SidecarConfig) -> Result<(), SidecarError> {
    if cfg.listen.is_empty() {
        return Err(SidecarError::NoSockets);
    }
    for (i, s) in cfg.listen.iter().enumerate() {
        if cfg.listen[..i].iter().any(|o| o.name == s.name) {
            return Err(SidecarError::DuplicateName(s.name.clone()));
        }
    }
    if let Some(dest) = &cfg.install {
        super::install::install_self(dest)?;
        tracing::info!(path = %dest.display(), "installed the agent binary for the slots");
    }
    let dir_err = |e| SidecarError::Dir(cfg.dir.clone(), e);
    std::fs::create_dir_all(&cfg.dir).map_err(dir_err)?;
    let state_path = cfg.dir.join(STATE_FILE);
    let previous = previous_state(&cfg.dir, &state_path);
    let (sockets, expected) = match previous {
        Some(p) => {
            tracing::info!(slots = ?p.slots, "previous sidecar state found: recovering sockets from launchers");
            (None, p.slots)
        }
        None => {
            let mut held = Vec::new();
            for spec in &cfg.listen {
                let h = Held::bind(spec, cfg.backlog)
                    .map_err(|e| SidecarError::Bind(spec.addr.to_string(), e))?;
                tracing::info!(name = %h.name, addr = %h.bound, "listening");
                held.push(h);
            }
            (Some(held), Vec::new())
        }
    };

    let control_path = cfg.dir.join(CONTROL_SOCKET);
    let _ = std::fs::remove_file(&control_path);
    let listener = UnixListener::bind(&control_path).map_err(dir_err)?;
    std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600))
        .map_err(dir_err)?;

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let health = Health::new(registry);
    let shared: SharedStatus = Arc::new(Mutex::new(Status::default()));
    let readiness: SharedReadiness = Arc::default();
    let http = status::serve(
        cfg.http_addr,
        health.clone(),
        shared.clone(),
        readiness.clone(),
    )
    .await
    .map_err(|e| SidecarError::Http(cfg.http_addr, e))?;
    tracing::info!(control = %control_path.display(), http = %http, "sidecar up");

    let mcfg = MachineConfig {
        specs: cfg.listen.clone(),
        backlog: cfg.backlog,
        drain_signal: cfg.drain_signal,
        drain_timeout: cfg.drain_timeout,
        ready_timeout: cfg.ready_timeout,
        recover_timeout: cfg.recover_timeout,
        state_path,
        failed_generations: read_failed(&cfg.dir),
    };
    let machine = Machine::new(
        mcfg,
        sockets,
        expected,
        metrics,
        shared.clone(),
        readiness,
        Some(http.to_string()),
    );
    let (tx, rx) = mpsc::channel(256);
    let mut machine_task = tokio::spawn(machine.run(rx));
    health.set_ready(true);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(dir_err)?;
    let next_id = Arc::new(AtomicU64::new(1));
    loop {
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve_conn(Conn::new(stream), id, tx.clone(), shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept on control socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            r = &mut machine_task => {
                return match r {
                    Ok(r) => r.map_err(SidecarError::from),
                    Err(e) => Err(SidecarError::Dir(cfg.dir.clone(), io::Error::other(e.to_string()))),
                };
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("sidecar stopping; launchers keep their sockets and apps");
    Ok(())
}

/// Serves one control connection: a launcher session (after `hello`) or `ctl` requests.
async fn serve_conn(mut conn: Conn, id: u64, tx: mpsc::Sender<Event>, status: SharedStatus) {
    // Only processes of our own user may talk to us (the socket file is 0600 too).
    let me = nix::unistd::geteuid().as_raw();
    let peer = match super::fds::peer_cred(conn.socket()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "SO_PEERCRED failed; closing");
            return;
        }
    };
    if peer.0 != me {
        tracing::warn!(
            uid = peer.0,
            pid = peer.1,
            "refused control connection from another user"
        );
        let _ = reply_error(
            &mut conn,
            format!("uid {} may not use this agent (only uid {me})", peer.0),
        )
        .await;
        // Read what the peer already sent before closing, or the close becomes a reset that
        // can destroy our answer before the peer reads it. Descriptors it sent are closed.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(Some(_)) | Err(ConnError::Decode(_) | ConnError::MissingFds(..)) =
                conn.recv::<serde::de::IgnoredAny>().await
            {}
        })
        .await;
        return;
    }
    loop {
        let (msg, fds) = match conn.recv::<ToSidecar>().await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                let fatal = !e.recoverable();
                let _ = reply_error(&mut conn, e.to_string()).await;
                if fatal {
                    return;
                }
                continue;
            }
        };
        match msg {
            ToSidecar::Hello {
                slot,
                version,
                app,
                held,
                claim,
                ..
            } => {
                if held.len() != fds.len() {
                    let _ =
                        reply_error(&mut conn, "held names do not match the attached fds".into())
                            .await;
                    continue;
                }
                if slot.is_empty() || slot.len() > 64 {
                    let _ = reply_error(&mut conn, "slot name must be 1-64 chars".into()).await;
                    continue;
                }
                let held = held.into_iter().zip(fds).collect();
                let hello = Hello {
                    pid: peer.1 as u32,
                    slot,
                    version,
                    app,
                    held,
                    claim,
                };
                launcher_session(conn, id, hello, tx).await;
                return;
            }
            ToSidecar::Swap { to } => {
                let (rtx, rrx) = oneshot::channel();
                if tx.send(Event::Swap { to, reply: rtx }).await.is_err() {
                    let _ = reply_error(&mut conn, "sidecar is shutting down".into()).await;
                    return;
                }
                let r = match rrx.await {
                    Ok(Ok(record)) => FromSidecar::SwapResult { record },
                    Ok(Err(e)) => FromSidecar::Error { message: e },
                    Err(_) => FromSidecar::Error {
                        message: "sidecar is shutting down".into(),
                    },
                };
                if conn.send(&r, &[]).await.is_err() {
                    return;
                }
            }
            ToSidecar::Status => {
                let s = Box::new(status::snapshot(&status));
                if conn
                    .send(&FromSidecar::Status { status: s }, &[])
                    .await
                    .is_err()
                {
                    return;
                }
            }
            ToSidecar::Started { .. } | ToSidecar::Ready { .. } | ToSidecar::Exited { .. } => {
                let _ = reply_error(&mut conn, "launcher reports need a hello first".into()).await;
            }
        }
    }
}

async fn reply_error(conn: &mut Conn, message: String) -> Result<(), ConnError> {
    conn.send(&FromSidecar::Error { message }, &[]).await
}

/// A launcher's `hello`, checked, with its pid from SO_PEERCRED.
struct Hello {
    pid: u32,
    slot: String,
    version: String,
    app: Option<AppState>,
    held: Vec<(String, OwnedFd)>,
    claim: Option<Claim>,
}

async fn launcher_session(mut conn: Conn, id: u64, h: Hello, tx: mpsc::Sender<Event>) {
    let (otx, mut orx) = mpsc::unbounded_channel::<Outgoing>();
    let hello = Event::Hello {
        conn: id,
        slot: h.slot,
        pid: h.pid,
        version: h.version,
        app: h.app,
        held: h.held,
        claim: h.claim,
        tx: otx,
    };
    if tx.send(hello).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            out = orx.recv() => {
                let Some(out) = out else { break };
                let fds: Vec<BorrowedFd<'_>> = out.fds.as_ref().map(|v| v.iter().map(|h| h.fd.as_fd()).collect()).unwrap_or_default();
                if conn.send(&out.msg, &fds).await.is_err() || out.close {
                    break;
                }
            }
            msg = conn.recv::<ToSidecar>() => match msg {
                Ok(Some((m, _fds))) => {
                    if matches!(m, ToSidecar::Hello { .. } | ToSidecar::Swap { .. } | ToSidecar::Status) {
                        let _ = reply_error(&mut conn, "unexpected message in a launcher session".into()).await;
                        continue;
                    }
                    if tx.send(Event::Launcher { conn: id, msg: m }).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let fatal = !e.recoverable();
                    let _ = reply_error(&mut conn, e.to_string()).await;
                    if fatal {
                        break;
                    }
                }
            }
        }
    }
    let _ = tx.send(Event::Gone { conn: id }).await;
}

/// Path of the control socket in `dir`.
pub fn control_path(dir: &Path) -> PathBuf {
    dir.join(CONTROL_SOCKET)
}
