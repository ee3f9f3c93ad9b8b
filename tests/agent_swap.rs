//! Hot swaps with real processes and sockets: many swaps under load with nothing failed or
//! reset, the backlog case, and what `/status`, `/metrics` and `ctl` report.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zdr::contract::SwapResult;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_swaps_under_load_lose_nothing() {
    bounded(150, async {
        let mut pod = pod_ab(&[], &[]).await;
        let load = load(pod.addr, 8, 600);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut ready_ms = Vec::new();
        for i in 0..50 {
            let to = if i % 2 == 0 { "b" } else { "a" };
            let r = pod.swap(Some(to)).await.expect("swap accepted");
            assert_eq!(r.result, SwapResult::Succeeded, "swap {i}: {r:?}");
            assert_eq!(r.from.as_deref(), Some(if to == "a" { "b" } else { "a" }));
            ready_ms.push(r.ready_ms.unwrap_or(0));
            // Let both versions take real traffic between swaps.
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.stop();
        let report = load.finish().await;
        assert_clean(&report, "50 swaps");
        assert!(
            report.versions.contains_key("v1") && report.versions.contains_key("v2"),
            "{:?}",
            report.versions
        );
        let st = pod.status().await.unwrap();
        assert_eq!(st.swaps_succeeded, 50);
        assert_eq!(st.swaps_failed, 0);
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        eprintln!("ready_ms max {:?}", ready_ms.iter().max());
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_backlog_completes_when_the_next_version_starts() {
    bounded(60, async {
        let mut pod = pod(&[]).await;
        let v1 = pod.demo_app("v1", &[]);
        pod.launch("a", "v1", &[], &v1).unwrap();
        pod.wait_for(Duration::from_secs(15), |s| {
            s.active_slot.as_deref() == Some("a")
        })
        .await
        .unwrap();
        // Stop slot a entirely: no process accepts on the socket any more.
        pod.signal_launcher("a", nix::sys::signal::Signal::SIGTERM);
        assert_eq!(
            pod.wait_launcher("a", Duration::from_secs(15)).await,
            Some(0)
        );
        pod.wait_for(Duration::from_secs(5), |s| s.slots.is_empty())
            .await
            .unwrap();

        // The kernel completes the handshake and queues the connection in the backlog.
        let sent = Instant::now();
        let mut s = tokio::net::TcpStream::connect(pod.addr)
            .await
            .expect("connect queues in backlog");
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(700), s.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "nobody accepts, yet something answered: {early:?}"
        );

        let v2 = pod.demo_app("v2", &[]);
        pod.launch("b", "v2", &[], &v2).unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("X-Version: v2"), "{text}");
        assert!(sent.elapsed() >= Duration::from_millis(700));
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_ctl_report_the_swap() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let st = pod.status().await.unwrap();
        let http: std::net::SocketAddr = st.http_addr.clone().unwrap().parse().unwrap();
        let before = st
            .slots
            .iter()
            .find(|s| s.slot == "a")
            .and_then(|s| s.app.clone())
            .unwrap();

        // ctl swap through the real command line.
        let out = tokio::process::Command::new(agent())
            .args(["ctl", "--dir"])
            .arg(&pod.dir)
            .args(["swap", "--to", "b"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rec["result"], "succeeded");
        assert_eq!(rec["from"], "a");
        assert_eq!(rec["to"], "b");
        assert!(
            rec["ready_ms"].is_u64() && rec["drain_ms"].is_u64() && rec["total_ms"].is_u64(),
            "{rec}"
        );

        let status = http_get(http, "/status").await.unwrap();
        let body = status.split("\r\n\r\n").nth(1).unwrap();
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(j["active_slot"], "b");
        assert_eq!(j["last_swap"]["result"], "succeeded");
        assert_eq!(j["sockets"][0]["name"], "http");
        assert_eq!(j["sockets"][0]["listening"], true);
        let slots = j["slots"].as_array().unwrap();
        let a = slots.iter().find(|s| s["slot"] == "a").unwrap();
        assert!(a["app"].is_null(), "old version still running: {a}");
        let b = slots.iter().find(|s| s["slot"] == "b").unwrap();
        assert_eq!(b["version"], "v2");
        assert_ne!(b["app"]["pid"], before.pid);

        let metrics = http_get(http, "/metrics").await.unwrap();
        assert!(
            metrics.contains("zdr_agent_swaps_total{result=\"succeeded\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("zdr_agent_sockets_held 1"), "{metrics}");
        assert!(
            metrics.contains("zdr_agent_swap_duration_seconds_count 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("zdr_agent_drain_duration_seconds_count 1"),
            "{metrics}"
        );

        let resp = http_get(pod.addr, "/").await.unwrap();
        assert!(resp.contains("X-Version: v2"), "{resp}");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_is_held_and_swapped_like_tcp() {
    bounded(60, async {
        let path = std::env::temp_dir().join(format!("zdr-unix-{}.sock", std::process::id()));
        let mut o = zdr::demo::pod::PodOptions::new(agent());
        o.listen = format!("http=unix:{}", path.display());
        let mut pod = zdr::demo::pod::LocalPod::start(o).await.unwrap();
        assert_eq!(pod.bound, format!("unix:{}", path.display()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        let v1 = pod.demo_app("v1", &[]);
        pod.launch("a", "v1", &[], &v1).unwrap();
        pod.wait_for(Duration::from_secs(15), |s| {
            s.active_slot.as_deref() == Some("a")
        })
        .await
        .unwrap();
        let v2 = pod.demo_app("v2", &[]);
        pod.launch("b", "v2", &[], &v2).unwrap();
        pod.wait_for(Duration::from_secs(15), |s| s.slots.len() == 2)
            .await
            .unwrap();

        // Bounded client loop over the Unix socket, one connection per request, no retries.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, st) = (path.clone(), stop.clone());
        let client = tokio::spawn(async move {
            let (mut ok, mut bad, mut versions) =
                (0u32, Vec::new(), std::collections::BTreeSet::new());
            for _ in 0..20_000 {
                if st.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r = async {
                    let mut s = tokio::net::UnixStream::connect(&p).await?;
                    s.write_all(b"GET / HTTP/1.1\r\nHost: u\r\nConnection: close\r\n\r\n")
                        .await?;
                    let mut out = Vec::new();
                    s.read_to_end(&mut out).await?;
                    Ok::<String, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
                };
                match tokio::time::timeout(Duration::from_secs(5), r).await {
                    Ok(Ok(t)) if t.starts_with("HTTP/1.1 200") => {
                        ok += 1;
                        if let Some(v) = t.lines().find_map(|l| l.strip_prefix("X-Version: ")) {
                            versions.insert(v.to_owned());
                        }
                    }
                    other => bad.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (ok, bad, versions)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..6 {
            let r = pod
                .swap(Some(if i % 2 == 0 { "b" } else { "a" }))
                .await
                .unwrap();
            assert_eq!(r.result, SwapResult::Succeeded, "{r:?}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, bad, versions) = client.await.unwrap();
        eprintln!("unix: ok={ok} bad={} versions={versions:?}", bad.len());
        assert!(ok > 100, "too few requests: {ok}");
        assert!(
            bad.is_empty(),
            "failed requests over the Unix socket: {:?}",
            &bad[..bad.len().min(3)]
        );
        assert_eq!(versions.len(), 2, "{versions:?}");
        pod.shutdown(Duration::from_secs(10)).await;
        let _ = std::fs::remove_file(&path);
    })
    .await;
}
