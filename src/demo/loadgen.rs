//! The built-in load generator: concurrent HTTP/1.1 clients on loopback, half opening a new
//! connection per request (the harsh case), half keeping connections alive. No request is ever
//! retried (a retry would hide a failure); failures (refused, timeout, bad status) and resets
//! (ECONNRESET, EPIPE, EOF before the response is complete) are counted apart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Load settings.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Target.
    pub addr: SocketAddr,
    /// Concurrent workers (the first half: new connection per request; the rest: keep-alive).
    pub workers: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests in all.
    pub max_requests: u64,
    /// Pause between a worker's requests.
    pub pause: Duration,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with a complete body.
    Ok,
    /// Refused, timed out, or a bad status/response.
    Failed,
    /// Reset, broken pipe, or the connection ended before the response was complete.
    Reset,
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Start, since the load began.
    pub at: Duration,
    /// Latency.
    pub latency: Duration,
    /// Outcome.
    pub outcome: Outcome,
    /// Whether it used a kept-alive connection.
    pub keepalive: bool,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// All requests, in no particular order.
    pub samples: Vec<Sample>,
    /// `X-Version` values seen, with counts.
    pub versions: BTreeMap<String, u64>,
    /// The first few error descriptions, for diagnosis.
    pub errors: Vec<String>,
}

impl LoadReport {
    /// Requests sent.
    pub fn requests(&self) -> u64 {
        self.samples.len() as u64
    }
    /// Requests with this outcome.
    pub fn count(&self, o: Outcome) -> u64 {
        self.samples.iter().filter(|s| s.outcome == o).count() as u64
    }
    /// Latency percentile (0..=100) in ms over samples that `keep` selects.
    pub fn percentile_ms(&self, p: f64, keep: impl Fn(&Sample) -> bool) -> f64 {
        let mut v: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.latency)
            .collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort();
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx.min(v.len() - 1)].as_secs_f64() * 1000.0
    }
}

struct Response {
    version: Option<String>,
    close: bool,
}

enum ReqError {
    Failed(String),
    Reset(String),
}

fn classify(stage: &str, e: io::Error) -> ReqError {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted => {
            ReqError::Reset(format!("{stage}: {e}"))
        }
        _ => ReqError::Failed(format!("{stage}: {e}")),
    }
}

async fn exchange(s: &mut TcpStream, close: bool, buf: &mut Vec<u8>) -> Result<Response, ReqError> {
    let req = if close {
        "GET / HTTP/1.1\r\nHost: zdr\r\nConnection: close\r\n\r\n"
    } else {
        "GET / HTTP/1.1\r\nHost: zdr\r\n\r\n"
    };
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| classify("write", e))?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 16 * 1024 {
            return Err(ReqError::Failed("response head too long".into()));
        }
        let n = s.read(&mut chunk).await.map_err(|e| classify("read", e))?;
        if n == 0 {
            return Err(ReqError::Reset(format!(
                "EOF after {} bytes of response head",
                buf.len()
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split(' ').nth(1).unwrap_or("");
    let (mut len, mut version, mut conn_close) = (None, None, false);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("x-version") {
                version = Some(v.to_owned());
            } else if k.eq_ignore_ascii_case("connection") {
                conn_close = v.eq_ignore_ascii_case("close");
            }
        }
    }
    // HTTP/1.0 closes after the response unless it says keep-alive.
    if status.starts_with("HTTP/1.0")
        && !head.to_ascii_lowercase().contains("connection: keep-alive")
    {
        conn_close = true;
    }
    let Some(len) = len else {
        return Err(ReqError::Failed(format!("no Content-Length in {status:?}")));
    };
    let mut have = buf.len() - head_end - 4;
    while have < len {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| classify("read body", e))?;
        if n == 0 {
            return Err(ReqError::Reset("EOF in response body".into()));
        }
        have += n;
    }
    if code != "200" {
        return Err(ReqError::Failed(format!("status {status:?}")));
    }
    Ok(Response {
        version,
        close: conn_close || close,
    })
}

struct WorkerOut {
    samples: Vec<Sample>,
    versions: BTreeMap<String, u64>,
    errors: Vec<String>,
}

async fn worker(
    cfg: LoadConfig,
    keepalive: bool,
    t0: Instant,
    budget: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
) -> WorkerOut {
    let mut out = WorkerOut {
        samples: Vec::new(),
        versions: BTreeMap::new(),
        errors: Vec::new(),
    };
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let end = t0 + cfg.duration;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        let start = Instant::now();
        let reused = conn.is_some();
        let r = tokio::time::timeout(cfg.timeout, async {
            if conn.is_none() {
                let s = TcpStream::connect(cfg.addr)
                    .await
                    .map_err(|e| ReqError::Failed(format!("connect: {e}")))?;
                let _ = s.set_nodelay(true);
                conn = Some(s);
            }
            let Some(s) = conn.as_mut() else {
                return Err(ReqError::Failed("no connection".into()));
            };
            exchange(s, !keepalive, &mut buf).await
        })
        .await;
        let latency = start.elapsed();
        let outcome = match r {
            Ok(Ok(resp)) => {
                if let Some(v) = resp.version {
                    *out.versions.entry(v).or_default() += 1;
                }
                if resp.close {
                    conn = None;
                }
                Outcome::Ok
            }
            Ok(Err(e)) => {
                conn = None;
                let (o, msg) = match e {
                    ReqError::Failed(m) => (Outcome::Failed, m),
                    ReqError::Reset(m) => (Outcome::Reset, m),
                };
                if out.errors.len() < 5 {
                    out.errors.push(format!(
                        "{:?} at {:?} (reused={reused}): {msg}",
                        o,
                        start - t0
                    ));
                }
                o
            }
            Err(_) => {
                conn = None;
                if out.errors.len() < 5 {
                    out.errors
                        .push(format!("Failed at {:?}: timeout", start - t0));
                }
                Outcome::Failed
            }
        };
        out.samples.push(Sample {
            at: start - t0,
            latency,
            outcome,
            keepalive,
        });
        if !cfg.pause.is_zero() {
            tokio::time::sleep(cfg.pause).await;
        }
    }
    out
}

/// A running load: stop it early with [`Load::stop`], collect with [`Load::finish`].
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<WorkerOut>>,
}

impl Load {
    /// Starts the workers.
    pub fn start(cfg: LoadConfig) -> Load {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let budget = Arc::new(std::sync::atomic::AtomicU64::new(cfg.max_requests));
        let workers = cfg.workers.max(2);
        let tasks = (0..workers)
            .map(|i| {
                tokio::spawn(worker(
                    cfg.clone(),
                    i >= workers / 2,
                    t0,
                    budget.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Load { t0, stop, tasks }
    }

    /// When the load started.
    pub fn started(&self) -> Instant {
        self.t0
    }

    /// Asks the workers to stop after their current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the workers (they stop by themselves at the duration or request budget).
    pub async fn finish(self) -> LoadReport {
        let mut r = LoadReport::default();
        for t in self.tasks {
            if let Ok(w) = t.await {
                r.samples.extend(w.samples);
                for (k, v) in w.versions {
                    *r.versions.entry(k).or_default() += v;
                }
                r.errors.extend(w.errors);
            }
        }
        r.samples.sort_by_key(|s| s.at);
        r
    }
}

/// Runs a load to completion.
pub async fn run(cfg: LoadConfig) -> LoadReport {
    Load::start(cfg).finish().await
}

/// `zdr-agent load`: the load generator against a host name or address, for the e2e traffic
/// tests that run it in a pod of the cluster (through a Service) and read its one-line report.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// `host:port` (a Service name resolves once, at start).
    #[arg(long)]
    pub target: String,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = crate::agent::cli::parse_duration)]
    pub duration: Duration,
    /// Concurrent clients (half new connection per request, half keep-alive).
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Most requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Wait before starting (for the Service's endpoints to reach the node).
    #[arg(long, default_value = "0s", value_parser = crate::agent::cli::parse_duration)]
    pub delay: Duration,
}

/// Runs `args` and returns the report as one JSON line: requests, ok, failed, reset, the
/// versions seen and the first errors.
pub async fn run_args(args: &LoadArgs) -> Result<String, String> {
    let addr = tokio::net::lookup_host(&args.target)
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", args.target))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", args.target))?;
    tokio::time::sleep(args.delay).await;
    let report = run(LoadConfig {
        addr,
        workers: args.workers,
        duration: args.duration,
        max_requests: args.max_requests,
        pause: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    })
    .await;
    let line = serde_json::json!({
        "target": args.target,
        "requests": report.requests(),
        "ok": report.count(Outcome::Ok),
        "failed": report.count(Outcome::Failed),
        "reset": report.count(Outcome::Reset),
        "versions": report.versions,
        "errors": report.errors.iter().take(5).collect::<Vec<_>>(),
    });
    Ok(line.to_string())
}
