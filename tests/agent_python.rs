//! An unmodified app in another language: a small Python server that only knows the systemd
//! conventions (fd 3, LISTEN_PID, READY=1) is served and swapped under load.

mod common;

use std::ffi::OsString;
use std::time::Duration;

use common::*;
use zdr::contract::SwapResult;

fn python() -> OsString {
    // The real interpreter, not a wrapper script, so the pid that execs is the app's.
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this test");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socket_activated_app_is_served_and_swapped() {
    bounded(90, async {
        let mut pod = pod(&[]).await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/sd_http.py");
        let py = python();
        let report = |v: &str| pod.dir.join(format!("report-{v}.json"));
        let cmd =
            |v: &str, r: &std::path::Path| vec![py.clone(), script.into(), v.into(), r.into()];
        let (r1, r2) = (report("py1"), report("py2"));
        pod.launch("a", "py1", &[], &cmd("py1", &r1)).unwrap();
        pod.wait_for(Duration::from_secs(20), |s| {
            s.active_slot.as_deref() == Some("a")
        })
        .await
        .unwrap();
        pod.launch("b", "py2", &[], &cmd("py2", &r2)).unwrap();
        pod.wait_for(Duration::from_secs(10), |s| s.slots.len() == 2)
            .await
            .unwrap();

        // What the app received is exactly the systemd contract.
        let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&r1).unwrap()).unwrap();
        let st = pod.status().await.unwrap();
        let app_pid = st
            .slots
            .iter()
            .find(|s| s.slot == "a")
            .and_then(|s| s.app.as_ref())
            .unwrap()
            .pid;
        assert_eq!(rep["pid"], app_pid, "{rep}");
        assert_eq!(
            rep["listen_pid"],
            app_pid.to_string(),
            "LISTEN_PID must be the app's own pid: {rep}"
        );
        assert_eq!(rep["listen_fds"], "1");
        assert_eq!(rep["listen_fdnames"], "http");
        assert_eq!(
            rep["open_fds"],
            serde_json::json!([0, 1, 2, 3]),
            "only stdio and the socket: {rep}"
        );
        assert_eq!(rep["fd3_flags"], 0, "fd 3 must not be close-on-exec: {rep}");
        assert!(
            rep["notify_socket"]
                .as_str()
                .is_some_and(|p| p.starts_with(pod.dir.to_str().unwrap()))
        );

        let load = load(pod.addr, 4, 120);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (i, to) in ["b", "a", "b", "a"].iter().enumerate() {
            let r = pod.swap(Some(to)).await.unwrap();
            assert_eq!(r.result, SwapResult::Succeeded, "swap {i}: {r:?}");
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        load.stop();
        let rep = load.finish().await;
        assert_clean(&rep, "python swaps");
        assert!(
            rep.versions.get("py1").is_some_and(|n| *n > 0)
                && rep.versions.get("py2").is_some_and(|n| *n > 0),
            "{:?}",
            rep.versions
        );
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}
