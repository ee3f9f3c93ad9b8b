//! The hot-swap benchmark (`hack/bench-hotswap`): the same load against several ways of
//! replacing a server process, in one run, reported as one table. Variants: the zdr swap, a
//! naive restart (stop, then start), a naive SO_REUSEPORT overlap (new binds its own socket,
//! old closes its own), and HAProxy's seamless reload (see [`super::bench_haproxy`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::bench_haproxy::Haproxy;
use super::loadgen::{Load, LoadConfig, LoadReport, Outcome};
use super::pod::{LocalPod, PodOptions};
use crate::agent::notify::NotifySocket;
use crate::contract::SwapResult;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The `zdr-agent` binary (also the demo app).
    pub agent: PathBuf,
    /// Load duration per variant.
    pub duration: Duration,
    /// Swaps per variant.
    pub swaps: u32,
    /// Concurrent clients (half new connection per request, half keep-alive).
    pub workers: usize,
    /// Pause between a client's requests.
    pub pause: Duration,
}

/// One variant's result.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Variant name.
    pub name: String,
    /// Requests sent.
    pub requests: u64,
    /// Failed.
    pub failed: u64,
    /// Reset.
    pub reset: u64,
    /// p99 latency of requests overlapping a swap window.
    pub p99_in_ms: f64,
    /// p99 latency of the other requests.
    pub p99_out_ms: f64,
    /// Mean swap duration.
    pub swap_mean_ms: f64,
    /// Longest swap.
    pub swap_max_ms: f64,
    /// Swaps done.
    pub swaps: u32,
    /// Remarks (skipped, errors).
    pub note: String,
}

/// Something that replaces the serving process once per call.
pub trait Swapper {
    /// Replaces the serving process; returns when the old one is gone and the new one serves.
    fn swap(&mut self, i: u32) -> impl std::future::Future<Output = Result<(), String>>;
}

/// Runs the load against `addr` and calls `swapper` `swaps` times, evenly spaced.
pub async fn measure(
    name: &str,
    addr: SocketAddr,
    cfg: &BenchConfig,
    swapper: &mut impl Swapper,
) -> Row {
    let load = Load::start(LoadConfig {
        addr,
        workers: cfg.workers,
        duration: cfg.duration,
        max_requests: 10_000_000,
        pause: cfg.pause,
        timeout: Duration::from_secs(5),
    });
    let t0 = load.started();
    let gap = cfg.duration / (cfg.swaps + 1);
    let mut windows = Vec::new();
    let mut notes = Vec::new();
    for i in 0..cfg.swaps {
        tokio::time::sleep_until((t0 + gap * (i + 1)).into()).await;
        let s = Instant::now();
        match swapper.swap(i).await {
            Ok(()) => windows.push((s - t0, s.elapsed() + (s - t0))),
            Err(e) => {
                notes.push(format!("swap {i}: {e}"));
                windows.push((s - t0, s.elapsed() + (s - t0)));
            }
        }
    }
    let report = load.finish().await;
    row(name, &report, &windows, notes)
}

fn row(
    name: &str,
    r: &LoadReport,
    windows: &[(Duration, Duration)],
    mut notes: Vec<String>,
) -> Row {
    let in_window = |s: &super::loadgen::Sample| {
        let (a, b) = (s.at, s.at + s.latency);
        windows.iter().any(|(ws, we)| a <= *we && b >= *ws)
    };
    let durs: Vec<f64> = windows
        .iter()
        .map(|(a, b)| (*b - *a).as_secs_f64() * 1000.0)
        .collect();
    if let Some(e) = r.errors.first() {
        notes.push(format!("e.g. {e}"));
    }
    Row {
        name: name.into(),
        requests: r.requests(),
        failed: r.count(Outcome::Failed),
        reset: r.count(Outcome::Reset),
        p99_in_ms: r.percentile_ms(99.0, in_window),
        p99_out_ms: r.percentile_ms(99.0, |s| !in_window(s)),
        swap_mean_ms: if durs.is_empty() {
            0.0
        } else {
            durs.iter().sum::<f64>() / durs.len() as f64
        },
        swap_max_ms: durs.iter().cloned().fold(0.0, f64::max),
        swaps: windows.len() as u32,
        note: notes.join("; "),
    }
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| variant | requests | failed | reset | p99 in swap (ms) | p99 outside (ms) | swap mean / max (ms) | note |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} / {:.0} | {} |\n",
            r.name,
            r.requests,
            r.failed,
            r.reset,
            r.p99_in_ms,
            r.p99_out_ms,
            r.swap_mean_ms,
            r.swap_max_ms,
            r.note
        ));
    }
    s
}

/// A free loopback port (bound then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Stops a child with SIGTERM and waits (SIGKILL after `grace`).
pub async fn stop_child(c: &mut Child, grace: Duration) {
    if let Some(pid) = c.id() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, c.wait()).await.is_err() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}

/// A demo app that binds its own socket (the naive variants), started and awaited ready.
pub async fn spawn_bound_app(
    agent: &Path,
    dir: &Path,
    addr: SocketAddr,
    version: &str,
    reuseport: bool,
) -> Result<Child, String> {
    let notify = NotifySocket::bind(&dir.join(format!("notify-{version}.sock")))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(agent);
    cmd.args([
        "demo-app",
        "--version",
        version,
        "--bind",
        &addr.to_string(),
    ]);
    if reuseport {
        cmd.arg("--reuseport");
    }
    cmd.env("NOTIFY_SOCKET", notify.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    tokio::select! {
        n = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(n) = notify.recv().await && n.is_ready() {
                    return;
                }
            }
        }) => n.map_err(|_| "no READY=1 within 10s".to_string())?,
        s = child.wait() => return Err(format!("app exited at start-up: {s:?}")),
    }
    Ok(child)
}

struct ZdrSwap<'a>(&'a LocalPod);

impl Swapper for ZdrSwap<'_> {
    async fn swap(&mut self, i: u32) -> Result<(), String> {
        let to = if i.is_multiple_of(2) { "b" } else { "a" };
        let r = self.0.swap(Some(to)).await.map_err(|e| e.to_string())?;
        if r.result == SwapResult::Succeeded {
            Ok(())
        } else {
            Err(r.error.unwrap_or_default())
        }
    }
}

struct Naive {
    agent: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
    current: Option<Child>,
    reuseport: bool,
}

impl Swapper for Naive {
    async fn swap(&mut self, i: u32) -> Result<(), String> {
        let version = if i.is_multiple_of(2) { "v2" } else { "v1" };
        if self.reuseport {
            // Overlap: the new process binds its own socket, then the old one closes its own.
            let new = spawn_bound_app(&self.agent, &self.dir, self.addr, version, true).await?;
            if let Some(mut old) = self.current.replace(new) {
                stop_child(&mut old, Duration::from_secs(15)).await;
            }
        } else {
            // Restart: stop, then start.
            if let Some(mut old) = self.current.take() {
                stop_child(&mut old, Duration::from_secs(15)).await;
            }
            self.current =
                Some(spawn_bound_app(&self.agent, &self.dir, self.addr, version, false).await?);
        }
        Ok(())
    }
}

async fn naive(cfg: &BenchConfig, dir: &Path, reuseport: bool) -> Result<Row, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().map_err(|e| e.to_string())?));
    let first = spawn_bound_app(&cfg.agent, dir, addr, "v1", reuseport).await?;
    let mut s = Naive {
        agent: cfg.agent.clone(),
        dir: dir.to_owned(),
        addr,
        current: Some(first),
        reuseport,
    };
    let name = if reuseport {
        "naive overlap (SO_REUSEPORT)"
    } else {
        "naive restart (stop, start)"
    };
    let row = measure(name, addr, cfg, &mut s).await;
    if let Some(mut c) = s.current.take() {
        stop_child(&mut c, Duration::from_secs(10)).await;
    }
    Ok(row)
}

async fn zdr(cfg: &BenchConfig) -> Result<Row, String> {
    let mut pod = LocalPod::start(PodOptions::new(&cfg.agent))
        .await
        .map_err(|e| e.to_string())?;
    let v1 = pod.demo_app("v1", &[]);
    pod.launch("a", "v1", &[], &v1).map_err(|e| e.to_string())?;
    pod.wait_for(Duration::from_secs(15), |s| {
        s.active_slot.as_deref() == Some("a")
    })
    .await
    .map_err(|e| e.to_string())?;
    let v2 = pod.demo_app("v2", &[]);
    pod.launch("b", "v2", &[], &v2).map_err(|e| e.to_string())?;
    pod.wait_for(Duration::from_secs(15), |s| s.slots.len() == 2)
        .await
        .map_err(|e| e.to_string())?;
    let row = measure("zdr swap", pod.addr, cfg, &mut ZdrSwap(&pod)).await;
    pod.shutdown(Duration::from_secs(10)).await;
    Ok(row)
}

/// Runs every variant in turn; progress on stderr.
pub async fn run(cfg: &BenchConfig) -> Vec<Row> {
    let dir = std::env::temp_dir().join(format!("zdr-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut rows = Vec::new();
    let failed = |name: &str, e: String| Row {
        name: name.into(),
        note: format!("error: {e}"),
        ..Row::default()
    };
    eprintln!("bench: zdr swap");
    rows.push(zdr(cfg).await.unwrap_or_else(|e| failed("zdr swap", e)));
    eprintln!("bench: naive restart");
    rows.push(
        naive(cfg, &dir, false)
            .await
            .unwrap_or_else(|e| failed("naive restart (stop, start)", e)),
    );
    eprintln!("bench: naive SO_REUSEPORT overlap");
    rows.push(
        naive(cfg, &dir, true)
            .await
            .unwrap_or_else(|e| failed("naive overlap (SO_REUSEPORT)", e)),
    );
    eprintln!("bench: haproxy seamless reload");
    rows.push(match Haproxy::find() {
        None => Row {
            name: "HAProxy seamless reload".into(),
            note: "skipped: haproxy not installed (apt-get install haproxy)".into(),
            ..Row::default()
        },
        Some(h) => h
            .bench(cfg, &dir)
            .await
            .unwrap_or_else(|e| failed("HAProxy seamless reload", e)),
    });
    let _ = std::fs::remove_dir_all(&dir);
    rows
}
