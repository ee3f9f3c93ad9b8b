//! Failure handling with real processes: a new version that exits or never becomes ready, a
//! second concurrent swap, a sidecar crash and restart, a launcher crash — under load, with
//! nothing failed or reset, and the old version never drained before the new one is ready.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use zdr::agent::status::Status;

fn draining(st: &Status, slot: &str) -> bool {
    st.slots
        .iter()
        .find(|s| s.slot == slot)
        .and_then(|s| s.app.as_ref())
        .is_some_and(|a| a.draining)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_version_that_exits_before_ready_fails_the_swap_and_old_keeps_serving() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &["--never-ready", "--exit-after", "300ms"]).await;
        let old = app_pid(&pod.status().await.unwrap(), "a").unwrap();
        let load = load(pod.addr, 4, 60);
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, "failed", "{r:?}");
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("exited before it was ready"),
            "{r:?}"
        );
        assert!(
            r.drain_ms.is_none(),
            "no drain may start before readiness: {r:?}"
        );
        let st = pod.status().await.unwrap();
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        assert_eq!(app_pid(&st, "a"), Some(old), "the old version was replaced");
        assert!(!draining(&st, "a"), "the old version was told to drain");
        assert_eq!(app_pid(&st, "b"), None);
        assert_eq!(st.swaps_failed, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.stop();
        let rep = load.finish().await;
        assert_clean(&rep, "exit before ready");
        // The broken version never accepted: every response came from v1.
        assert_eq!(rep.versions.keys().collect::<Vec<_>>(), vec!["v1"]);
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_version_never_ready_is_stopped_at_the_deadline() {
    bounded(60, async {
        let mut pod = pod_ab(&["--ready-timeout-seconds", "2"], &["--never-ready"]).await;
        let old = app_pid(&pod.status().await.unwrap(), "a").unwrap();
        let load = load(pod.addr, 4, 60);
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, "failed", "{r:?}");
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("not ready within"),
            "{r:?}"
        );
        assert!(r.total_ms.unwrap() >= 2000, "{r:?}");
        // The unready version is stopped (drained), the old one is untouched.
        let st = pod
            .wait_for(Duration::from_secs(15), |s| app_pid(s, "b").is_none())
            .await
            .unwrap();
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        assert_eq!(app_pid(&st, "a"), Some(old));
        assert!(!draining(&st, "a"));
        // A later swap to a healthy version still works: the failed one left no state behind.
        load.stop();
        let rep = load.finish().await;
        // The unready version accepted some connections; it drained them without loss.
        assert_clean(&rep, "never ready");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_swap_is_refused_while_one_runs() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &["--ready-delay", "1500ms"]).await;
        let dir = pod.dir.clone();
        let first = tokio::spawn(async move {
            zdr::agent::ctl::swap(&dir, Some("b".into()), Duration::from_secs(30)).await
        });
        pod.wait_for(Duration::from_secs(5), |s| s.swap_in_progress.is_some())
            .await
            .unwrap();
        let second = pod.swap(None).await;
        let msg = second.expect_err("second swap accepted").to_string();
        assert!(msg.contains("already in progress"), "{msg}");
        let second = pod
            .swap(Some("a"))
            .await
            .expect_err("second swap accepted")
            .to_string();
        assert!(second.contains("already in progress"), "{second}");
        let r = first.await.unwrap().unwrap();
        assert_eq!(r.result, "succeeded", "{r:?}");
        assert!(r.ready_ms.unwrap() >= 1400, "{r:?}");
        // Refusals are not swaps.
        let st = pod.status().await.unwrap();
        assert_eq!((st.swaps_succeeded, st.swaps_failed), (1, 0));
        // Swapping to the active slot, or to a slot nobody runs, is refused clearly.
        let e = pod.swap(Some("b")).await.unwrap_err().to_string();
        assert!(e.contains("not idle"), "{e}");
        let e = pod.swap(Some("zz")).await.unwrap_err().to_string();
        assert!(e.contains("no launcher"), "{e}");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_crash_and_upgrade_keep_the_socket_and_every_connection() {
    bounded(90, async {
        let mut pod = pod_ab(&[], &[]).await;
        let addr = pod.addr;
        let load = load(addr, 6, 120);
        tokio::time::sleep(Duration::from_millis(300)).await;
        pod.kill_sidecar().await;
        // No sidecar: the app still serves from the shared socket.
        tokio::time::sleep(Duration::from_millis(500)).await;
        pod.start_sidecar().await.expect("sidecar restarts");
        let st = pod
            .wait_for(Duration::from_secs(15), |s| {
                !s.recovering && s.slots.len() == 2 && s.active_slot.is_some()
            })
            .await
            .unwrap();
        assert!(
            st.sockets[0].adopted,
            "socket was bound again instead of adopted: {st:?}"
        );
        assert_eq!(st.sockets[0].addr, addr.to_string());
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        // The recovered sidecar swaps as before.
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, "succeeded", "{r:?}");
        // And survives an upgrade-style stop (SIGTERM) and restart, now with b active.
        pod.stop_sidecar().await;
        pod.start_sidecar().await.unwrap();
        let st = pod
            .wait_for(Duration::from_secs(15), |s| {
                s.slots.len() == 2 && s.active_slot.is_some()
            })
            .await
            .unwrap();
        assert_eq!(st.active_slot.as_deref(), Some("b"));
        let r = pod.swap(Some("a")).await.unwrap();
        assert_eq!(r.result, "succeeded", "{r:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.stop();
        let rep = load.finish().await;
        assert_clean(&rep, "sidecar restarts");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_crash_never_closes_the_socket_for_the_others() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let load = load(pod.addr, 6, 60);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The active launcher dies: its app is told to drain (PR_SET_PDEATHSIG), the sidecar
        // sees nothing serving and starts the standby slot; queued connections wait meanwhile.
        pod.signal_launcher("a", Signal::SIGKILL);
        let st = pod
            .wait_for(Duration::from_secs(15), |s| {
                s.active_slot.as_deref() == Some("b")
                    && s.slots
                        .iter()
                        .any(|x| x.slot == "b" && x.app.as_ref().is_some_and(|a| a.ready))
            })
            .await
            .unwrap();
        assert_eq!(st.slots.len(), 1);
        assert!(st.sockets[0].listening);
        tokio::time::sleep(Duration::from_millis(500)).await;
        load.stop();
        let rep = load.finish().await;
        assert_clean(&rep, "launcher crash");
        assert!(rep.versions.get("v2").is_some_and(|n| *n > 0));
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_shutting_down_the_shared_listener_is_contained() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let st = pod.status().await.unwrap();
        let http: std::net::SocketAddr = st.http_addr.unwrap().parse().unwrap();
        // Simulate a misbehaving holder: take a copy of the socket from the launcher's process
        // and shutdown(2) it, which stops listening for every holder.
        let lpid = pod.launcher_pid("a").unwrap();
        let fd =
            steal_listener(lpid, &st.sockets[0].addr).expect("find the listener in the launcher");
        nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::sys::socket::Shutdown::Both,
        )
        .unwrap();
        assert!(!zdr::agent::sockets::is_listening(
            std::os::fd::AsFd::as_fd(&fd)
        ));
        // The sidecar binds a replacement on the same address and swaps to the idle slot.
        let st = pod
            .wait_for(Duration::from_secs(15), |s| {
                s.sockets[0].listening
                    && s.last_swap
                        .as_ref()
                        .is_some_and(|r| r.result == "succeeded")
            })
            .await
            .unwrap();
        assert_eq!(st.active_slot.as_deref(), Some("b"));
        assert_eq!(st.sockets[0].addr, pod.addr.to_string());
        let m = http_get(http, "/metrics").await.unwrap();
        assert!(m.contains("zdr_agent_listener_repairs_total 1"), "{m}");
        let resp = http_get(pod.addr, "/").await.unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200") && resp.contains("X-Version: v2"),
            "{resp}"
        );
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

/// A new reference to the launcher's copy of the listener (pidfd_getfd(2)), as any holder has.
fn steal_listener(pid: u32, addr: &str) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let e = e.ok()?;
        let link = std::fs::read_link(e.path()).ok()?;
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let n: i32 = e.file_name().to_string_lossy().parse().ok()?;
        let Some(fd) = pidfd_getfd(pid, n) else {
            continue;
        };
        let here = zdr::agent::sockets::local_addr(fd.as_fd()).ok();
        if here.as_deref() == Some(addr) && zdr::agent::sockets::is_listening(fd.as_fd()) {
            return Some(fd);
        }
    }
    None
}

fn pidfd_getfd(pid: u32, fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: raw syscalls with checked results; a returned fd is new and owned by us.
    unsafe {
        let pidfd = nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as i32, 0) as i32;
        if pidfd < 0 {
            return None;
        }
        let got = nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        nix::libc::close(pidfd);
        (got >= 0).then(|| std::os::fd::OwnedFd::from_raw_fd(got))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_crash_keeps_the_socket_and_the_app_is_restarted() {
    bounded(60, async {
        let mut pod = pod_ab(&[], &[]).await;
        let st = pod.status().await.unwrap();
        let old = app_pid(&st, "a").unwrap();
        // Crash the serving app itself (not its launcher).
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
        // A request sent right away waits in the backlog and is served once an app runs again.
        let resp = tokio::time::timeout(Duration::from_secs(15), http_get(pod.addr, "/"))
            .await
            .expect("request answered")
            .expect("request not refused or reset");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let st = pod
            .wait_for(Duration::from_secs(10), |s| {
                s.active_slot.is_some()
                    && s.slots
                        .iter()
                        .any(|x| x.app.as_ref().is_some_and(|a| a.ready))
            })
            .await
            .unwrap();
        // The most recently active slot (a) is restarted; the socket is the same one.
        assert_eq!(st.active_slot.as_deref(), Some("a"));
        assert_ne!(app_pid(&st, "a"), Some(old));
        assert!(st.sockets[0].listening && !st.sockets[0].adopted);
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_ready_notification_is_ready_after_the_grace_period() {
    bounded(60, async {
        let mut pod = pod(&[]).await;
        let v1 = pod.demo_app("v1", &[]);
        pod.launch("a", "v1", &[], &v1).unwrap();
        pod.wait_for(Duration::from_secs(15), |s| {
            s.active_slot.as_deref() == Some("a")
        })
        .await
        .unwrap();
        let v2 = pod.demo_app("v2", &["--never-ready"]);
        pod.launch("b", "v2", &["--ready-after", "700ms"], &v2)
            .unwrap();
        pod.wait_for(Duration::from_secs(10), |s| s.slots.len() == 2)
            .await
            .unwrap();
        let load = load(pod.addr, 4, 60);
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, "succeeded", "{r:?}");
        assert!(
            r.ready_ms.unwrap() >= 700,
            "ready before the grace period: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.stop();
        assert_clean(&load.finish().await, "ready-after fallback");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}
