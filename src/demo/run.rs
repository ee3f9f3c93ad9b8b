//! `zdr demo`: the whole hot swap on a laptop. Starts the sidecar, the demo app v1 in slot `a`
//! and v2 in standby slot `b`, drives steady load, swaps back and forth, and prints one line:
//! `requests=N failed=F reset=R swaps=S p50_ms=… p99_ms=…`.

use std::path::PathBuf;
use std::time::Duration;

use super::loadgen::{Load, LoadConfig, Outcome};
use super::pod::{LocalPod, PodError, PodOptions};
use crate::contract::SwapResult;

/// Settings of the demo.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// The `zdr-agent` binary.
    pub agent: PathBuf,
    /// Swaps to do.
    pub swaps: u32,
    /// Length of the load.
    pub duration: Duration,
    /// Concurrent clients.
    pub workers: usize,
}

/// What the demo measured.
#[derive(Clone, Debug, Default)]
pub struct DemoSummary {
    /// Requests sent.
    pub requests: u64,
    /// Failed requests.
    pub failed: u64,
    /// Reset requests.
    pub reset: u64,
    /// Swaps that succeeded.
    pub swaps: u32,
    /// Swaps that failed.
    pub swaps_failed: u32,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Responses per version.
    pub versions: Vec<(String, u64)>,
    /// Error samples.
    pub errors: Vec<String>,
}

impl DemoSummary {
    /// The one summary line.
    pub fn line(&self) -> String {
        format!(
            "requests={} failed={} reset={} swaps={} p50_ms={:.2} p99_ms={:.2}",
            self.requests, self.failed, self.reset, self.swaps, self.p50_ms, self.p99_ms
        )
    }

    /// Whether anything went wrong.
    pub fn ok(&self, wanted_swaps: u32) -> bool {
        self.failed == 0
            && self.reset == 0
            && self.swaps_failed == 0
            && self.swaps == wanted_swaps
            && self.requests > 0
    }
}

/// Runs the demo; progress goes to stderr.
pub async fn run(cfg: DemoConfig) -> Result<DemoSummary, PodError> {
    if !cfg.agent.is_file() {
        return Err(PodError::Io(
            format!(
                "zdr-agent binary {} (build it: cargo build --bins)",
                cfg.agent.display()
            ),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let mut pod = LocalPod::start(PodOptions::new(&cfg.agent)).await?;
    eprintln!(
        "zdr demo: sidecar holds http={} (dir {})",
        pod.addr,
        pod.dir.display()
    );
    let v1 = pod.demo_app("v1", &[]);
    pod.launch("a", "v1", &[], &v1)?;
    pod.wait_for(Duration::from_secs(15), |s| {
        s.active_slot.as_deref() == Some("a")
    })
    .await?;
    let v2 = pod.demo_app("v2", &[]);
    pod.launch("b", "v2", &[], &v2)?;
    pod.wait_for(Duration::from_secs(15), |s| s.slots.len() == 2)
        .await?;
    eprintln!(
        "zdr demo: v1 serving in slot a, v2 standing by in slot b; load for {:?}, {} swaps",
        cfg.duration, cfg.swaps
    );

    let load = Load::start(LoadConfig {
        addr: pod.addr,
        workers: cfg.workers,
        duration: cfg.duration,
        max_requests: 5_000_000,
        pause: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
    });
    let gap = cfg.duration / (cfg.swaps + 1);
    let mut summary = DemoSummary::default();
    for i in 0..cfg.swaps {
        tokio::time::sleep_until((load.started() + gap * (i + 1)).into()).await;
        let to = if i.is_multiple_of(2) { "b" } else { "a" };
        match pod.swap(Some(to)).await {
            Ok(r) if r.result == SwapResult::Succeeded => {
                summary.swaps += 1;
                eprintln!(
                    "zdr demo: swap {} -> slot {to} ({}) ready in {} ms, old drained in {} ms",
                    i + 1,
                    r.to_version,
                    r.ready_ms.unwrap_or(0),
                    r.drain_ms.unwrap_or(0)
                );
            }
            Ok(r) => {
                summary.swaps_failed += 1;
                eprintln!(
                    "zdr demo: swap {} failed: {}",
                    i + 1,
                    r.error.unwrap_or_default()
                );
            }
            Err(e) => {
                summary.swaps_failed += 1;
                eprintln!("zdr demo: swap {} refused: {e}", i + 1);
            }
        }
    }
    let report = load.finish().await;
    summary.requests = report.requests();
    summary.failed = report.count(Outcome::Failed);
    summary.reset = report.count(Outcome::Reset);
    summary.p50_ms = report.percentile_ms(50.0, |_| true);
    summary.p99_ms = report.percentile_ms(99.0, |_| true);
    summary.versions = report.versions.into_iter().collect();
    summary.errors = report.errors;
    if !summary.ok(cfg.swaps) {
        pod.keep_dir = true;
        eprintln!(
            "zdr demo: something failed; logs kept in {}",
            pod.dir.display()
        );
    }
    pod.shutdown(Duration::from_secs(10)).await;
    Ok(summary)
}
