//! Sidecar restarts in a directory a previous sidecar left behind, with real processes: after a
//! clean stop (launchers and sidecar stopped) or a crash whose launchers are gone, the new
//! sidecar binds at once instead of waiting `--recover-timeout-seconds`; after a crash with a
//! live launcher it still recovers that launcher's socket and app. Also `ctl --dir` before and
//! after the subcommand, and the exit codes of `ctl swap` (1 refused, 2 failed).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use zdr::agent::sidecar::STATE_FILE;
use zdr::agent::status::Status;
use zdr::agent::swap::Persisted;

/// Long enough that waiting for it could never pass for binding at once.
const RECOVER: &str = "30";
/// What "at once" may take on a loaded 2-core machine (start, bind, first status).
const AT_ONCE: Duration = Duration::from_secs(6);

fn pid_alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

/// A pod serving v1 from slot a, with a long recovery window.
async fn serving_pod() -> (zdr::agent::pod::LocalPod, u32) {
    let p = pod_a(&["--recover-timeout-seconds", RECOVER]).await;
    let st = p.status().await.expect("status");
    let pid = app_pid(&st, "a").expect("app pid");
    assert!(
        p.dir.join(STATE_FILE).is_file(),
        "the sidecar keeps its state file while a launcher is registered"
    );
    (p, pid)
}

/// Restarts the sidecar; how long until it answered and was no longer recovering.
async fn restart(p: &mut zdr::agent::pod::LocalPod) -> (Duration, Status) {
    let started = Instant::now();
    p.start_sidecar().await.expect("sidecar restarts");
    let took = started.elapsed();
    (took, p.status().await.unwrap())
}

fn assert_bound_afresh(p: &zdr::agent::pod::LocalPod, took: Duration, st: &Status, what: &str) {
    let log = p.log_tail("sidecar.log", 30);
    assert!(
        took < AT_ONCE,
        "{what}: the new sidecar took {took:?} (recover window {RECOVER}s):\n{log}"
    );
    assert!(!st.recovering, "{what}: {st:?}");
    assert!(
        st.sockets.iter().all(|s| s.listening && !s.adopted),
        "{what}: bound, not adopted: {st:?}"
    );
    assert!(log.contains("no launcher of it is alive"), "{what}:\n{log}");
    let state: Persisted =
        serde_json::from_slice(&std::fs::read(p.dir.join(STATE_FILE)).unwrap()).unwrap();
    assert!(
        state.slots.is_empty(),
        "{what}: the stale slots are gone: {state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_stop_the_next_sidecar_binds_at_once_and_serves() {
    bounded(90, async {
        let (mut p, app) = serving_pod().await;
        p.shutdown(Duration::from_secs(10)).await;
        assert!(!pid_alive(app), "the app ended with its launcher");
        assert!(p.dir.join(STATE_FILE).is_file(), "the state is left behind");
        let (took, st) = restart(&mut p).await;
        assert_bound_afresh(&p, took, &st, "clean stop");
        // And it serves a new app right away.
        let v2 = p.demo_app("v2", &[]);
        p.launch("a", "v2", &[], &v2).unwrap();
        p.wait_for(Duration::from_secs(15), |s| {
            s.slots
                .iter()
                .any(|x| x.app.as_ref().is_some_and(|a| a.ready))
        })
        .await
        .expect("a new app becomes ready");
        let rep = {
            let l = load(p.addr, 2, 1);
            l.finish().await
        };
        assert_clean(&rep, "after a clean restart");
        assert_eq!(rep.versions.keys().collect::<Vec<_>>(), vec!["v2"]);
        p.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_whose_launchers_are_gone_the_next_sidecar_binds_at_once() {
    bounded(90, async {
        let (mut p, app) = serving_pod().await;
        p.kill_sidecar().await;
        p.signal_launcher("a", nix::sys::signal::Signal::SIGKILL);
        p.wait_launcher("a", Duration::from_secs(10)).await;
        // The app gets the launcher's stop signal (PR_SET_PDEATHSIG) and drains: wait for it to
        // let go of the port.
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid_alive(app) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!pid_alive(app), "the app ended after its launcher");
        let (took, st) = restart(&mut p).await;
        assert_bound_afresh(&p, took, &st, "crash without launchers");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_with_a_live_launcher_the_socket_and_app_are_recovered() {
    bounded(90, async {
        let (mut p, app) = serving_pod().await;
        p.kill_sidecar().await;
        let (took, st) = restart(&mut p).await;
        let log = p.log_tail("sidecar.log", 30);
        assert!(
            st.sockets.iter().all(|s| s.listening && s.adopted),
            "the socket was handed back, not bound again: {st:?}\n{log}"
        );
        assert_eq!(app_pid(&st, "a"), Some(app), "the same app serves");
        assert!(
            took < AT_ONCE,
            "the live launcher came back within {took:?}, not at the end of the window"
        );
        assert!(log.contains("recovering sockets from launchers"), "{log}");
        p.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}

fn agent_ctl(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(agent())
        .args(args)
        .env("ZDR_AGENT_DIR", dir.join("not-this-one"))
        .output()
        .expect("zdr-agent runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_dir_goes_before_or_after_the_subcommand_and_swap_exit_codes() {
    bounded(90, async {
        let mut p = pod_ab(&[], &["--never-ready", "--exit-after", "300ms"]).await;
        let dir = p.dir.to_str().unwrap().to_string();
        for args in [
            ["ctl", "--dir", dir.as_str(), "status"],
            ["ctl", "status", "--dir", dir.as_str()],
        ] {
            let (code, out, err) = tokio::task::block_in_place(|| agent_ctl(&args, &p.dir));
            assert_eq!(code, 0, "{args:?}: {err}");
            let st: Status = serde_json::from_str(&out).expect("status JSON");
            assert_eq!(st.active_slot.as_deref(), Some("a"), "{args:?}");
        }
        // Refused: slot a runs the active app.
        let (code, _, err) = tokio::task::block_in_place(|| {
            agent_ctl(&["ctl", "swap", "--dir", dir.as_str(), "--to", "a"], &p.dir)
        });
        assert_eq!(code, 1, "a refused swap exits 1: {err}");
        assert!(err.contains("not idle"), "{err}");
        // Failed: the new version exits before it is ready.
        let (code, out, err) = tokio::task::block_in_place(|| {
            agent_ctl(&["ctl", "swap", "--dir", dir.as_str()], &p.dir)
        });
        assert_eq!(code, 2, "a failed swap exits 2: {out}{err}");
        assert!(out.contains("\"failed\""), "{out}");
        p.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}
