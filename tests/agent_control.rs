//! The control socket under abuse: garbage, unknown messages, wrong versions, stray
//! descriptors and oversized lines get an error answer (never a crash, never a leaked fd), and
//! processes of another user are refused.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use zdr::agent::sidecar::control_path;
use zdr::contract::SwapResult;

fn answer(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("an answer line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer {line:?} is not JSON: {e}"))
}

fn assert_error(v: &serde_json::Value, needle: &str) {
    assert_eq!(v["type"], "error", "{v}");
    let m = v["message"].as_str().unwrap_or("");
    assert!(
        m.contains(needle),
        "error {m:?} does not mention {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_leak_nothing() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let sidecar = pod.sidecar_pid().unwrap();
        let path = control_path(&pod.dir);
        let st0 = pod.status().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = fd_count(sidecar);

        let p = path.clone();
        tokio::task::spawn_blocking(move || {
            let s = UnixStream::connect(&p).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut w = s.try_clone().unwrap();
            let raw = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            for (line, needle) in [
                ("hello there", "not a JSON object"),
                ("[1,2,3]", "not a JSON object"),
                (r#"{"type":"status"}"#, "unsupported protocol version"),
                (r#"{"v":99,"type":"status"}"#, "unsupported protocol version"),
                (r#"{"v":1,"type":"launch_missiles"}"#, "invalid message"),
                (r#"{"v":1,"type":"swap","to":42}"#, "invalid message"),
                (r#"{"v":1,"type":"ready","pid":1}"#, "hello first"),
                (r#"{"v":1,"type":"status","fds":-3}"#, "bad fds"),
                (r#"{"v":1,"type":"status","fds":2}"#, "announced 2 fds"),
            ] {
                w.write_all(format!("{line}\n").as_bytes()).unwrap();
                assert_error(&answer(&mut r), needle);
            }
            // Descriptors riding on garbage, or more than announced, are closed, not kept.
            let (x, y) = UnixStream::pair().unwrap();
            let sock = raw.as_fd();
            zdr::agent::fds::send_with_fds(sock, b"garbage with fds\n", &[x.as_fd(), y.as_fd()]).unwrap();
            assert_error(&answer(&mut r), "not a JSON object");
            let line = br#"{"v":1,"type":"nonsense","fds":2}"#;
            let mut l = line.to_vec();
            l.push(b'\n');
            zdr::agent::fds::send_with_fds(sock, &l, &[x.as_fd(), y.as_fd()]).unwrap();
            assert_error(&answer(&mut r), "invalid message");
            // A hello whose names do not match its fds is refused.
            let hello = br#"{"v":1,"type":"hello","slot":"c","pid":1,"version":"x","held":["http","extra"],"fds":1}
"#;
            zdr::agent::fds::send_with_fds(sock, hello, &[x.as_fd()]).unwrap();
            assert_error(&answer(&mut r), "do not match");
            // The same connection still answers a valid request.
            w.write_all(b"{\"v\":1,\"type\":\"status\"}\n").unwrap();
            assert_eq!(answer(&mut r)["type"], "status");
            // An endless line: error, then the connection is closed.
            let big = vec![b'x'; 70 * 1024];
            let _ = w.write_all(&big);
            assert_error(&answer(&mut r), "longer than");
            let mut rest = String::new();
            assert_eq!(r.read_line(&mut rest).unwrap_or(0), 0, "connection not closed: {rest:?}");
        })
        .await
        .unwrap();

        // The sidecar is alive, unchanged, and holds no stray descriptor.
        let st = pod.status().await.unwrap();
        assert_eq!(st.pid, st0.pid);
        assert_eq!(st.active_slot, st0.active_slot);
        assert_eq!(st.slots.len(), 2);
        // Closed connections are reaped asynchronously: allow a moment to settle.
        assert_eq!(settled_fd_count(sidecar, before).await, before, "sidecar fd count changed");
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, SwapResult::Succeeded);
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_launcher_for_a_taken_slot_is_refused() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let cmd = pod.demo_app("v3", &[]);
        pod.launch("c", "v3", &[], &cmd).unwrap();
        pod.wait_for(Duration::from_secs(10), |s| s.slots.len() == 3)
            .await
            .unwrap();
        // Another launcher claiming slot a: refused, exits non-zero, slot a is untouched.
        let before = pod.status().await.unwrap();
        let out = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::process::Command::new(agent())
                .args(["exec", "--dir"])
                .arg(&pod.dir)
                .args(["--slot", "a", "--app-version", "v9", "--"])
                .args(&cmd)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already has a launcher"), "{err}");
        let after = pod.status().await.unwrap();
        let pid = |s: &zdr::contract::Status| {
            s.slots
                .iter()
                .find(|x| x.slot == "a")
                .map(|x| x.launcher_pid)
        };
        assert_eq!(pid(&before), pid(&after));
        // With several idle slots, a swap must name its target.
        let e = pod.swap(None).await.unwrap_err().to_string();
        assert!(e.contains("several idle slots"), "{e}");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_fetch_sockets_or_drive_the_agent() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test switches to uid 65534 and must run as root (CI does)");
    }
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        // A copy of the binary that uid 65534 can execute wherever the checkout lives.
        use std::os::unix::fs::PermissionsExt;
        let bin = pod.dir.join("zdr-agent-copy");
        std::fs::copy(agent(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&pod.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = bin.clone();
        let ctl = move |dir: &std::path::Path| {
            let out = std::process::Command::new(&b)
                .args(["ctl", "--dir"])
                .arg(dir)
                .arg("status")
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        // File permissions stop it first (the socket is 0600).
        let (dir, c) = (pod.dir.clone(), ctl.clone());
        let (ok, err) = tokio::task::spawn_blocking(move || c(&dir)).await.unwrap();
        assert!(!ok);
        assert!(err.contains("Permission denied"), "{err}");
        // With the file opened up by mistake, SO_PEERCRED still refuses it.
        std::fs::set_permissions(
            control_path(&pod.dir),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let (dir, c) = (pod.dir.clone(), ctl.clone());
        let (ok, err) = tokio::task::spawn_blocking(move || c(&dir)).await.unwrap();
        assert!(!ok);
        assert!(
            err.contains("may not use this agent"),
            "{err}\n{}",
            pod.log_tail("sidecar.log", 5)
        );
        // A launcher of another user gets no socket either.
        let out = tokio::process::Command::new(&bin)
            .args(["exec", "--dir"])
            .arg(&pod.dir)
            .args([
                "--slot",
                "evil",
                "--connect-timeout-seconds",
                "2",
                "--",
                "/bin/true",
            ])
            .uid(65534)
            .gid(65534)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("may not use this agent"),
            "{err}\n{}",
            pod.log_tail("sidecar.log", 5)
        );
        assert_eq!(pod.status().await.unwrap().slots.len(), 2);
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}
