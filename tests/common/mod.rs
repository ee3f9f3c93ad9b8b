//! Shared helpers of the agent integration tests: a local pod of real `zdr-agent` processes,
//! bounded load, and raw HTTP/1.1 requests on loopback.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zdr::agent::loadgen::{Load, LoadConfig, LoadReport, Outcome};
use zdr::agent::pod::{LocalPod, PodOptions};
use zdr::agent::status::Status;

/// The agent binary built by cargo for these tests.
pub fn agent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zdr-agent"))
}

/// Runs `f` with a hard deadline, so that no test can hang.
pub async fn bounded<F: Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("test exceeded its {secs}s bound"))
}

/// A pod with the sidecar up (extra sidecar args appended).
pub async fn pod(extra: &[&str]) -> LocalPod {
    let mut o = PodOptions::new(agent());
    // Flags given in `extra` replace the defaults of the same name.
    let mut args: Vec<String> = Vec::new();
    for pair in o.sidecar_args.chunks(2) {
        if !extra.contains(&pair[0].as_str()) {
            args.extend(pair.iter().cloned());
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    o.sidecar_args = args;
    LocalPod::start(o).await.expect("start sidecar")
}

/// A pod with demo app v1 launched in slot a, active and ready.
pub async fn pod_a(extra: &[&str]) -> LocalPod {
    let mut p = pod(extra).await;
    let v1 = p.demo_app("v1", &[]);
    p.launch("a", "v1", &[], &v1).unwrap();
    p.wait_for(Duration::from_secs(15), |s| {
        s.active_slot.as_deref() == Some("a")
            && s.slots
                .iter()
                .any(|x| x.app.as_ref().is_some_and(|a| a.ready))
    })
    .await
    .expect("slot a active");
    p
}

/// The pid of the app running in `slot`, if any.
pub fn app_pid(st: &Status, slot: &str) -> Option<u32> {
    st.slots
        .iter()
        .find(|s| s.slot == slot)
        .and_then(|s| s.app.as_ref())
        .map(|a| a.pid)
}

/// A pod with demo app v1 active in slot a and v2 standing by in slot b.
pub async fn pod_ab(extra: &[&str], b_args: &[&str]) -> LocalPod {
    let mut p = pod_a(extra).await;
    let v2 = p.demo_app("v2", b_args);
    p.launch("b", "v2", &[], &v2).unwrap();
    p.wait_for(Duration::from_secs(15), |s| s.slots.len() == 2)
        .await
        .expect("slot b registered");
    p
}

/// Starts a bounded load: `workers` clients (half new connection per request, half keep-alive).
pub fn load(addr: SocketAddr, workers: usize, secs: u64) -> Load {
    Load::start(LoadConfig {
        addr,
        workers,
        duration: Duration::from_secs(secs),
        max_requests: 2_000_000,
        pause: Duration::from_millis(2),
        timeout: Duration::from_secs(10),
    })
}

/// Asserts no request failed or was reset, and that some were made.
pub fn assert_clean(r: &LoadReport, what: &str) {
    let (f, x) = (r.count(Outcome::Failed), r.count(Outcome::Reset));
    eprintln!(
        "{what}: requests={} failed={f} reset={x} versions={:?}",
        r.requests(),
        r.versions
    );
    assert!(r.requests() > 0, "{what}: no request was made");
    assert_eq!(
        (f, x),
        (0, 0),
        "{what}: failed/reset requests: {:?}",
        r.errors
    );
}

/// One raw GET; returns (status line, headers+body text).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Open descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    zdr::agent::fds::count_open_fds(pid).expect("read /proc/PID/fd")
}

/// The fd count of `pid` once it equals `want`, or the last count after 5 s of polling (the
/// server side of a just-closed connection is closed asynchronously).
pub async fn settled_fd_count(pid: u32, want: usize) -> usize {
    let mut n = fd_count(pid);
    for _ in 0..50 {
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        n = fd_count(pid);
    }
    n
}
