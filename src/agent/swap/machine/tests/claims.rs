//! Pod mode: launchers with claims. Only the wanted slot starts, an idle wanted slot is
//! swapped to, a crash restarts the serving slot in place, the old version never takes over
//! from the new one, and a failed claim is told, remembered and kept standby.

use std::time::Duration;

use super::super::*;
use super::{DRAIN_TIMEOUT, H, READY_TIMEOUT, drain, exited_early, reconnect, refused, start};
use crate::contract::pod::Slot;

fn claim(slot: &str, generation: u64, active: bool, revision: Option<&str>) -> Claim {
    Claim {
        slot: Slot::parse(slot).expect("a or b"),
        revision: revision.map(str::to_owned),
        generation,
        active,
    }
}

fn hello(h: &mut H, conn: u64, c: Claim) -> Vec<Command> {
    let slot = c.slot.as_str().to_owned();
    h.ev(Event::Hello(Hello {
        conn,
        slot: slot.clone(),
        pid: 100 + conn as u32,
        version: c.revision.clone().unwrap_or_default(),
        app: None,
        hands_back: false,
        claim: Some(c),
    }))
}

fn no_starts(cmds: &[Command]) -> bool {
    !cmds.iter().any(|c| matches!(c, Command::Start { .. }))
}

/// Slot a (conn 1, generation 1, revision r1) serving; slot b (conn 2) parked.
fn pod() -> H {
    let (mut h, _) = H::new(false, &[]);
    let cmds = hello(&mut h, 2, claim("b", 1, false, None));
    assert!(no_starts(&cmds), "a parked slot never starts: {cmds:?}");
    assert_eq!(h.core.wanted(), None);
    assert!(h.core.pod_mode());
    let cmds = hello(&mut h, 1, claim("a", 1, true, Some("r1")));
    assert_eq!(cmds.last(), Some(&start(1, "a")));
    assert_eq!(h.core.wanted(), Some("a"));
    assert_eq!(h.ready(1), vec![]);
    assert_eq!(h.core.active(), Some("a"));
    h
}

/// `pod()`, then slot b restarted by the kubelet with generation 2 wanting revision r2: the
/// automatic swap to it has started (conn 3).
fn swapping_to_b() -> H {
    let mut h = pod();
    assert_eq!(h.ev(Event::Gone { conn: 2 }), vec![]);
    let cmds = hello(&mut h, 3, claim("b", 2, true, Some("r2")));
    assert_eq!(cmds.last(), Some(&start(3, "b")), "{cmds:?}");
    assert_eq!(h.core.wanted(), Some("b"));
    assert_eq!(h.core.active(), Some("a"), "no traffic change before ready");
    h
}

#[test]
fn a_claim_to_serve_is_swapped_to_like_ctl_swap() {
    let mut h = swapping_to_b();
    h.elapsed += Duration::from_millis(800);
    assert_eq!(h.ready(3), vec![drain(1, "a")]);
    assert_eq!(h.core.active(), Some("b"));
    h.elapsed += Duration::from_millis(200);
    let cmds = h.exited(1, Some(0), None);
    let [Command::Finished(r)] = cmds.as_slice() else {
        panic!("one Finished, no reply (nobody asked): {cmds:?}");
    };
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!((r.from.as_deref(), r.to.as_str()), (Some("a"), "b"));
    assert_eq!(r.to_version, "r2");
    assert_eq!(r.ready, Some(Duration::from_millis(800)));
    assert_eq!(r.drain, Some(Duration::from_millis(200)));
    // Slot a stays standby for good: its claim (generation 1) is older.
    assert_eq!(h.advance(Duration::from_secs(5)), vec![]);
    assert!(h.app("a").is_none());
}

#[test]
fn a_crash_of_the_serving_app_restarts_it_in_its_own_slot() {
    let mut h = swapping_to_b();
    h.ready(3);
    h.exited(1, Some(0), None);
    assert_eq!(h.exited(3, None, Some(11)), vec![]);
    assert_eq!(h.core.active(), None);
    assert_eq!(h.advance(Duration::from_millis(500)), vec![start(3, "b")]);
}

#[test]
fn the_old_version_never_takes_over_when_the_new_slot_is_gone() {
    let mut h = swapping_to_b();
    h.ready(3);
    h.exited(1, Some(0), None);
    // The new slot's container restarts: nothing serves, connections wait in the backlog.
    assert_eq!(h.ev(Event::Gone { conn: 3 }), vec![]);
    assert_eq!(h.core.wanted(), None);
    assert_eq!(h.advance(Duration::from_secs(30)), vec![]);
    assert!(h.app("a").is_none(), "old version must not start");
    // A ctl swap cannot start it either.
    refused(
        h.swap(1, Some("a")),
        1,
        Refusal::NotWanted {
            slot: "a".into(),
            wanted: None,
        },
    );
    // The new slot comes back with the same claim: it alone starts.
    let cmds = hello(&mut h, 4, claim("b", 2, true, Some("r2")));
    assert_eq!(cmds.last(), Some(&start(4, "b")));
}

#[test]
fn an_early_exit_of_the_new_version_fails_its_claim_and_old_keeps_serving() {
    let mut h = swapping_to_b();
    let cmds = h.exited(3, Some(3), None);
    let reason = exited_early("b", Exit::Code(3));
    assert!(cmds.contains(&Command::SwapFailed {
        conn: Some(3),
        slot: "b".into(),
        generation: 2,
        reason: reason.to_string(),
    }));
    assert_eq!(cmds.len(), 2, "Finished and SwapFailed only: {cmds:?}");
    assert_eq!(h.core.active(), Some("a"));
    assert!(h.app("a").is_some_and(|a| a.ready && !a.draining));
    assert_eq!(
        h.core.wanted(),
        Some("a"),
        "the older claim is wanted again"
    );
    assert_eq!(h.core.failed_generations().collect::<Vec<_>>(), vec![2]);
    // Its launcher exits (75); the kubelet restarts it with the same claim: standby.
    h.ev(Event::Gone { conn: 3 });
    let cmds = hello(&mut h, 4, claim("b", 2, true, Some("r2")));
    assert_eq!(cmds, vec![Command::Standby { conn: 4 }]);
    assert_eq!(h.advance(Duration::from_secs(120)), vec![]);
    assert_eq!(h.core.active(), Some("a"));
}

#[test]
fn a_ready_timeout_stops_the_new_version_and_fails_its_claim() {
    let mut h = swapping_to_b();
    let cmds = h.advance(READY_TIMEOUT);
    assert_eq!(cmds[0], drain(3, "b"));
    let failure = Failure::NotReady {
        slot: "b".into(),
        timeout: READY_TIMEOUT,
    };
    assert!(cmds.contains(&Command::SwapFailed {
        conn: Some(3),
        slot: "b".into(),
        generation: 2,
        reason: failure.to_string(),
    }));
    assert_eq!(h.core.active(), Some("a"));
    // The stopped app's exit does not restart it.
    assert_eq!(h.exited(3, None, Some(15)), vec![]);
    assert_eq!(h.advance(Duration::from_secs(1)), vec![]);
}

#[test]
fn a_lost_launcher_mid_swap_fails_its_claim_without_a_connection() {
    let mut h = swapping_to_b();
    let cmds = h.ev(Event::Gone { conn: 3 });
    failed_with_claim(&cmds, None, 2);
    assert_eq!(h.core.active(), Some("a"));
}

fn failed_with_claim(cmds: &[Command], conn: Option<u64>, generation: u64) {
    assert!(
        cmds.iter().any(|c| matches!(c,
            Command::SwapFailed { conn: c, generation: g, .. } if *c == conn && *g == generation)),
        "{cmds:?}"
    );
}

#[test]
fn a_slow_drain_does_not_fail_the_new_claim() {
    let mut h = swapping_to_b();
    h.ready(3);
    let cmds = h.advance(DRAIN_TIMEOUT + Duration::from_secs(5));
    assert!(!cmds.iter().any(|c| matches!(c, Command::SwapFailed { .. })));
    assert_eq!(h.core.active(), Some("b"));
    assert_eq!(h.core.failed_generations().count(), 0);
}

#[test]
fn failed_generations_from_the_markers_keep_their_launcher_standby() {
    let (mut h, _) = H::new(false, &[]);
    let mut cfg = h.core.cfg.clone();
    cfg.failed_generations = [2].into();
    let (core, _) = Core::new(cfg, false, vec![], h.now());
    h.core = core;
    assert!(h.core.pod_mode());
    hello(&mut h, 1, claim("a", 1, true, Some("r1")));
    let cmds = hello(&mut h, 2, claim("b", 2, true, Some("r2")));
    assert_eq!(cmds, vec![persist_ab(), Command::Standby { conn: 2 }]);
    assert_eq!(h.core.wanted(), Some("a"));
}

fn persist_ab() -> Command {
    Command::Persist(Persisted {
        sockets: vec!["http".into()],
        slots: vec!["a".into(), "b".into()],
    })
}

#[test]
fn ctl_swap_in_pod_mode_only_to_the_wanted_slot() {
    let mut h = pod();
    refused(
        h.swap(1, Some("b")),
        1,
        Refusal::NotWanted {
            slot: "b".into(),
            wanted: Some("a".into()),
        },
    );
    let cmds = h.swap(2, None);
    assert!(
        matches!(
            cmds.as_slice(),
            [Command::Reply {
                request: 2,
                outcome: Err(Refusal::NotIdle { .. })
            }]
        ),
        "{cmds:?}"
    );
    // A replaced listener cannot swap to a parked slot either: nothing starts.
    assert!(no_starts(&h.ev(Event::ListenersReplaced)));
}

#[test]
fn a_claim_for_another_slot_is_rejected() {
    let (mut h, _) = H::new(false, &[]);
    let cmds = h.ev(Event::Hello(Hello {
        conn: 1,
        slot: "a".into(),
        pid: 101,
        version: "r1".into(),
        app: None,
        hands_back: false,
        claim: Some(claim("b", 1, true, Some("r1"))),
    }));
    let [Command::Reject { conn: 1, message }] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert!(message.contains("must agree"), "{message}");
    assert!(h.core.slots().is_empty());
}

#[test]
fn parking_and_swapping_back_goes_through_the_newest_claim() {
    let mut h = swapping_to_b();
    h.ready(3);
    h.exited(1, Some(0), None);
    // Park a (generation 3, b named active): it stays standby.
    h.ev(Event::Gone { conn: 1 });
    let cmds = hello(&mut h, 5, claim("a", 3, false, None));
    assert!(no_starts(&cmds), "{cmds:?}");
    assert_eq!(h.core.wanted(), Some("b"));
    // Swap into a (generation 4, revision r1 again).
    h.ev(Event::Gone { conn: 5 });
    let cmds = hello(&mut h, 6, claim("a", 4, true, Some("r1")));
    assert_eq!(cmds.last(), Some(&start(6, "a")));
    assert_eq!(h.ready(6), vec![drain(3, "b")]);
    let cmds = h.exited(3, Some(0), None);
    assert!(matches!(cmds.as_slice(), [Command::Finished(r)] if r.outcome == Outcome::Succeeded));
    assert_eq!(h.core.active(), Some("a"));
}

fn hello_running(h: &mut H, conn: u64, c: Claim, ready: bool, started: u64) -> Vec<Command> {
    let slot = c.slot.as_str().to_owned();
    let version = c.revision.clone().unwrap_or_default();
    reconnect(h, conn, &slot, version, Some(c), (ready, started))
}

#[test]
fn a_sidecar_restart_mid_swap_ends_with_the_wanted_slot_serving() {
    // The sidecar died while b (generation 2) was starting and a still served.
    let (mut h, _) = H::new(true, &["a", "b"]);
    hello_running(&mut h, 1, claim("a", 1, true, Some("r1")), true, 100);
    let cmds = hello_running(&mut h, 2, claim("b", 2, true, Some("r2")), false, 200);
    // Recovery resolves like any restart: the ready app serves, the unready one is stopped...
    assert!(cmds.contains(&drain(2, "b")), "{cmds:?}");
    assert_eq!(h.core.active(), Some("a"));
    assert_eq!(h.core.wanted(), Some("b"));
    // ... and once it is gone, the claims swap to b again, from the start.
    let cmds = h.exited(2, None, Some(15));
    assert_eq!(cmds.last(), Some(&start(2, "b")), "{cmds:?}");
    assert_eq!(h.ready(2), vec![drain(1, "a")]);
    let cmds = h.exited(1, Some(0), None);
    assert!(matches!(cmds.as_slice(), [Command::Finished(r)] if r.outcome == Outcome::Succeeded));
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn a_sidecar_restart_after_the_swap_keeps_the_new_version() {
    // Both apps ran when the sidecar died: the new one ready, the old one draining.
    let (mut h, _) = H::new(true, &["a", "b"]);
    h.ev(Event::Hello(Hello {
        conn: 1,
        slot: "a".into(),
        pid: 101,
        version: "r1".into(),
        app: Some(AppState {
            pid: 1001,
            ready: true,
            draining: true,
            started_unix_ms: 100,
        }),
        hands_back: true,
        claim: Some(claim("a", 1, true, Some("r1"))),
    }));
    let cmds = hello_running(&mut h, 2, claim("b", 2, true, Some("r2")), true, 200);
    assert!(no_starts(&cmds), "{cmds:?}");
    assert_eq!(h.core.active(), Some("b"));
    assert_eq!(h.exited(1, Some(0), None), vec![]);
    assert_eq!(h.advance(Duration::from_secs(5)), vec![]);
    assert_eq!(h.core.active(), Some("b"));
}
