//! Every transition of the sans-IO swap machine, driven with a fake clock and the driver's
//! answers (`Adopt` -> `Adopted`, `BindMissing` -> `SocketsReady`) emulated; and a proptest of
//! its invariants over arbitrary event sequences.

use std::time::{Duration, Instant};

use super::*;

mod claims;
mod props;
mod recovery;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const RECOVER_TIMEOUT: Duration = Duration::from_secs(10);

fn cfg() -> Config {
    Config {
        sockets: vec!["http".into()],
        drain_signal: 15,
        drain_timeout: DRAIN_TIMEOUT,
        ready_timeout: READY_TIMEOUT,
        recover_timeout: RECOVER_TIMEOUT,
        failed_generations: Default::default(),
    }
}

/// The core with a fake clock, emulating the driver's answers.
pub(super) struct H {
    pub core: Core,
    t0: Instant,
    pub elapsed: Duration,
}

impl H {
    pub fn new(recovering: bool, expected: &[&str]) -> (H, Vec<Command>) {
        let t0 = Instant::now();
        let expected = expected.iter().map(|s| s.to_string()).collect();
        let now = Now {
            at: t0,
            unix_ms: 1_000_000,
        };
        let (core, cmds) = Core::new(cfg(), recovering, expected, now);
        (
            H {
                core,
                t0,
                elapsed: Duration::ZERO,
            },
            cmds,
        )
    }

    pub fn now(&self) -> Now {
        Now {
            at: self.t0 + self.elapsed,
            unix_ms: 1_000_000 + self.elapsed.as_millis() as u64,
        }
    }

    /// Feeds `ev` and the events the driver would answer commands with; all commands.
    pub fn ev(&mut self, ev: Event) -> Vec<Command> {
        let mut all = Vec::new();
        let mut queue = std::collections::VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            for c in self.core.handle(self.now(), ev) {
                match &c {
                    Command::Adopt { .. } => queue.push_back(Event::Adopted {
                        names: vec!["http".into()],
                    }),
                    Command::BindMissing => queue.push_back(Event::SocketsReady),
                    _ => {}
                }
                all.push(c);
            }
        }
        all
    }

    pub fn advance(&mut self, d: Duration) -> Vec<Command> {
        self.elapsed += d;
        self.ev(Event::Tick)
    }

    fn hello(&mut self, conn: u64, slot: &str) -> Vec<Command> {
        self.ev(Event::Hello(Hello {
            conn,
            slot: slot.into(),
            pid: 100 + conn as u32,
            version: format!("v-{slot}"),
            app: None,
            hands_back: false,
            claim: None,
        }))
    }

    fn ready(&mut self, conn: u64) -> Vec<Command> {
        self.ev(Event::Ready {
            conn,
            pid: 1000 + conn as u32,
        })
    }

    fn exited(&mut self, conn: u64, code: Option<i32>, signal: Option<i32>) -> Vec<Command> {
        self.ev(Event::Exited {
            conn,
            pid: 1000 + conn as u32,
            code,
            signal,
        })
    }

    fn swap(&mut self, request: u64, to: Option<&str>) -> Vec<Command> {
        self.ev(Event::SwapRequested {
            request,
            to: to.map(str::to_owned),
        })
    }

    fn app(&self, slot: &str) -> Option<AppState> {
        self.core.slots().get(slot).and_then(|s| s.app.clone())
    }
}

/// A launcher of `slot` reconnecting with its running app (after a sidecar restart), with
/// its version label and claim.
fn reconnect(
    h: &mut H,
    conn: u64,
    slot: &str,
    version: String,
    claim: Option<crate::contract::pod::Claim>,
    (ready, started): (bool, u64),
) -> Vec<Command> {
    h.ev(Event::Hello(Hello {
        conn,
        slot: slot.into(),
        pid: 100 + conn as u32,
        version,
        app: Some(AppState {
            pid: 1000 + conn as u32,
            ready,
            draining: false,
            started_unix_ms: started,
        }),
        hands_back: true,
        claim,
    }))
}

fn start(conn: u64, slot: &str) -> Command {
    Command::Start {
        conn,
        slot: slot.into(),
        sockets: vec!["http".into()],
    }
}

fn drain(conn: u64, slot: &str) -> Command {
    Command::Drain {
        conn,
        slot: slot.into(),
        signal: 15,
        timeout: DRAIN_TIMEOUT,
    }
}

fn persist(slots: &[&str]) -> Command {
    Command::Persist(Persisted {
        sockets: vec!["http".into()],
        slots: slots.iter().map(|s| s.to_string()).collect(),
    })
}

/// Slot `a` (conn 1) serving, slot `b` (conn 2) on standby.
fn serving() -> H {
    let (mut h, first) = H::new(false, &[]);
    assert_eq!(first, vec![persist(&[])]);
    assert_eq!(
        h.hello(1, "a"),
        vec![persist(&["a"]), Command::Standby { conn: 1 }, start(1, "a")]
    );
    assert_eq!(h.ready(1), vec![]);
    assert_eq!(h.core.active(), Some("a"));
    assert_eq!(
        h.hello(2, "b"),
        vec![persist(&["a", "b"]), Command::Standby { conn: 2 }]
    );
    h
}

/// The one `Finished` report and the `Reply` for `request`, which must carry the same report.
fn finished(cmds: &[Command], request: u64) -> SwapReport {
    let reports: Vec<&SwapReport> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Finished(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1, "one Finished in {cmds:?}");
    let reply = Command::Reply {
        request,
        outcome: Ok(reports[0].clone()),
    };
    assert!(cmds.contains(&reply), "{reply:?} in {cmds:?}");
    reports[0].clone()
}

fn failed_with(r: &SwapReport, failure: Failure) {
    assert_eq!(r.outcome, Outcome::Failed(failure));
}

fn refused(cmds: Vec<Command>, request: u64, refusal: Refusal) {
    let want = Command::Reply {
        request,
        outcome: Err(refusal),
    };
    assert_eq!(cmds, vec![want]);
}

fn exited_early(slot: &str, exit: Exit) -> Failure {
    Failure::ExitedBeforeReady {
        slot: slot.into(),
        exit,
    }
}

#[test]
fn happy_swap_starts_new_then_drains_old_after_ready() {
    let mut h = serving();
    assert_eq!(h.swap(7, None), vec![start(2, "b")]);
    assert_eq!(h.core.active(), Some("a"), "no traffic change before ready");
    assert_eq!(h.core.next_deadline(), Some(h.now().at + READY_TIMEOUT));
    h.elapsed += Duration::from_secs(2);
    assert_eq!(h.ev(Event::Started { conn: 2, pid: 1002 }), vec![]);
    assert_eq!(h.ready(2), vec![drain(1, "a")]);
    assert_eq!(h.core.active(), Some("b"));
    assert!(h.app("a").is_some_and(|a| a.draining));
    let (_, phase) = h.core.swap_in_progress().expect("still draining");
    assert!(matches!(phase, Phase::Draining { .. }));
    h.elapsed += Duration::from_secs(1);
    let cmds = h.exited(1, Some(0), None);
    let r = finished(&cmds, 7);
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(
        (r.id, r.from.as_deref(), r.to.as_str()),
        (1, Some("a"), "b")
    );
    assert_eq!(r.to_version, "v-b");
    assert_eq!(r.ready, Some(Duration::from_secs(2)));
    assert_eq!(r.drain, Some(Duration::from_secs(1)));
    assert_eq!(r.total, Some(Duration::from_secs(3)));
    assert_eq!(cmds.len(), 2, "nothing else started: {cmds:?}");
    assert_eq!(h.core.active(), Some("b"));
    assert_eq!(h.core.counts(), (1, 0));
    assert_eq!(h.core.last_swap(), Some(&r));
    assert!(h.core.swap_in_progress().is_none());
    // The old slot is the standby of the next swap.
    assert_eq!(h.swap(8, None), vec![start(1, "a")]);
}

#[test]
fn ready_timeout_stops_new_and_old_keeps_serving() {
    let mut h = serving();
    h.swap(1, Some("b"));
    assert_eq!(h.advance(READY_TIMEOUT - Duration::from_millis(1)), vec![]);
    let cmds = h.advance(Duration::from_millis(1));
    assert_eq!(cmds[0], drain(2, "b"));
    let r = finished(&cmds, 1);
    failed_with(
        &r,
        Failure::NotReady {
            slot: "b".into(),
            timeout: READY_TIMEOUT,
        },
    );
    assert_eq!(h.core.active(), Some("a"));
    assert!(h.app("a").is_some_and(|a| a.ready && !a.draining));
    assert_eq!(h.core.counts(), (0, 1));
    // A late READY=1 of the stopped version does not take traffic.
    assert_eq!(h.ready(2), vec![]);
    assert_eq!(h.core.active(), Some("a"));
    assert_eq!(h.exited(2, None, Some(9)), vec![]);
    assert_eq!(h.core.active(), Some("a"));
}

#[test]
fn new_exiting_before_ready_fails_the_swap() {
    let mut h = serving();
    h.swap(3, None);
    let cmds = h.exited(2, Some(1), None);
    let r = finished(&cmds, 3);
    failed_with(&r, exited_early("b", Exit::Code(1)));
    assert_eq!(cmds.len(), 2, "the old version is not touched: {cmds:?}");
    assert_eq!(h.core.active(), Some("a"));
    assert!(h.app("b").is_none());
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn new_exiting_during_drain_is_restarted_once_old_is_gone() {
    let mut h = serving();
    h.swap(1, None);
    h.elapsed += Duration::from_secs(1);
    h.ready(2);
    assert_eq!(h.exited(2, None, Some(11)), vec![]);
    assert_eq!(h.core.active(), None, "a crashed app does not serve");
    // The old version is draining: it never takes over again.
    assert_eq!(h.advance(Duration::from_millis(500)), vec![]);
    assert_eq!(h.core.active(), None);
    let cmds = h.exited(1, Some(0), None);
    // The drain completed, so the swap ends; then the most recently active slot restarts.
    let r = finished(&cmds, 1);
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(cmds.last(), Some(&start(2, "b")));
    assert_eq!(h.ready(2), vec![]);
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn old_exiting_during_drain_completes_the_swap() {
    let mut h = serving();
    h.swap(1, None);
    h.ready(2);
    h.elapsed += Duration::from_millis(1500);
    let cmds = h.exited(1, None, Some(15));
    let r = finished(&cmds, 1);
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(r.drain, Some(Duration::from_millis(1500)));
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn old_crashing_while_new_starts_lets_new_take_over_when_ready() {
    let mut h = serving();
    h.swap(1, None);
    assert_eq!(h.exited(1, Some(2), None), vec![]);
    assert_eq!(h.core.active(), None);
    // The restart timer does nothing while a swap runs.
    assert_eq!(h.advance(Duration::from_millis(500)), vec![]);
    let cmds = h.ready(2);
    let r = finished(&cmds, 1);
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(r.drain, None);
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn drain_timeout_fails_the_swap_after_the_launchers_kill() {
    let mut h = serving();
    h.swap(1, None);
    // The launcher kills the old app at DRAIN_TIMEOUT; the machine waits 5 s more.
    assert_eq!(h.ready(2), vec![drain(1, "a")]);
    let backstop = DRAIN_TIMEOUT + Duration::from_secs(5);
    assert_eq!(h.core.next_deadline(), Some(h.now().at + backstop));
    assert_eq!(h.advance(backstop - Duration::from_millis(1)), vec![]);
    let cmds = h.advance(Duration::from_millis(1));
    failed_with(&finished(&cmds, 1), Failure::DrainTimeout);
    assert_eq!(h.core.active(), Some("b"), "the new version keeps serving");
    // The old app's late exit changes nothing.
    assert_eq!(h.exited(1, None, Some(9)), vec![]);
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn swap_requested_while_swapping_is_refused() {
    let mut h = serving();
    h.hello(3, "c");
    h.swap(1, Some("b"));
    let in_progress = |phase| Refusal::InProgress {
        id: 1,
        to: "b".into(),
        phase,
    };
    refused(h.swap(2, Some("c")), 2, in_progress(Phase::Starting));
    h.ready(2);
    let since = h.now().at;
    refused(h.swap(3, None), 3, in_progress(Phase::Draining { since }));
    let cmds = h.exited(1, Some(0), None);
    finished(&cmds, 1);
}

#[test]
fn bad_swap_requests_are_refused() {
    let (mut h, _) = H::new(false, &[]);
    refused(h.swap(1, None), 1, Refusal::NoIdleSlot);
    h.hello(1, "a");
    let not_idle = |pid, active| Refusal::NotIdle {
        slot: "a".into(),
        pid,
        active,
    };
    refused(h.swap(2, Some("a")), 2, not_idle(0, false));
    h.ready(1);
    refused(h.swap(3, Some("a")), 3, not_idle(1001, true));
    refused(h.swap(4, Some("z")), 4, Refusal::NoLauncher("z".into()));
    h.hello(2, "b");
    h.hello(3, "c");
    let idle = vec!["b".to_string(), "c".to_string()];
    refused(h.swap(5, None), 5, Refusal::SeveralIdle(idle));
    assert_eq!(h.core.counts(), (0, 0));
}

#[test]
fn swap_with_nothing_serving_needs_no_drain() {
    let (mut h, _) = H::new(false, &[]);
    h.hello(1, "a");
    h.exited(1, Some(1), None); // the first start failed before READY=1: nothing serves
    assert_eq!(h.swap(9, Some("a")), vec![start(1, "a")]);
    let cmds = h.ready(1);
    let r = finished(&cmds, 9);
    assert_eq!((r.from, r.outcome), (None, Outcome::Succeeded));
    assert_eq!(h.core.active(), Some("a"));
}

#[test]
fn swap_before_the_first_version_is_ready_drains_it_too() {
    let (mut h, _) = H::new(false, &[]);
    h.hello(1, "a");
    h.hello(2, "b");
    assert_eq!(h.swap(9, None), vec![start(2, "b")]);
    // The first version becoming ready meanwhile serves until the new one is.
    assert_eq!(h.ready(1), vec![]);
    assert_eq!(h.core.active(), Some("a"));
    assert_eq!(h.ready(2), vec![drain(1, "a")]);
    let r = finished(&h.exited(1, Some(0), None), 9);
    assert_eq!(
        (r.from.as_deref(), r.outcome),
        (Some("a"), Outcome::Succeeded)
    );
}

#[test]
fn serving_app_crash_restarts_a_slot_after_half_a_second() {
    let mut h = serving();
    assert_eq!(h.exited(1, None, Some(11)), vec![]);
    assert_eq!(h.core.active(), None);
    assert_eq!(h.advance(Duration::from_millis(499)), vec![]);
    assert_eq!(h.advance(Duration::from_millis(1)), vec![start(1, "a")]);
    assert_eq!(h.app("a").map(|a| a.started_unix_ms), Some(1_000_500));
}

#[test]
fn launcher_lost_mid_swap_fails_it_and_old_keeps_serving() {
    let mut h = serving();
    h.swap(4, None);
    let cmds = h.ev(Event::Gone { conn: 2 });
    failed_with(&finished(&cmds, 4), exited_early("b", Exit::LauncherLost));
    assert_eq!(h.core.active(), Some("a"));
    assert!(!h.core.slots().contains_key("b"));
    // Events of the closed connection are ignored.
    assert_eq!(h.ready(2), vec![]);
}

#[test]
fn launcher_of_serving_slot_lost_starts_the_standby() {
    let mut h = serving();
    assert_eq!(h.ev(Event::Gone { conn: 1 }), vec![]);
    assert_eq!(h.core.active(), None);
    assert_eq!(h.advance(Duration::from_millis(500)), vec![start(2, "b")]);
}

#[test]
fn second_launcher_for_a_slot_is_rejected() {
    let mut h = serving();
    let cmds = h.hello(5, "a");
    assert_eq!(
        cmds,
        vec![Command::Reject {
            conn: 5,
            message: "slot \"a\" already has a launcher (pid 101)".into()
        }]
    );
    assert_eq!(h.ev(Event::Gone { conn: 5 }), vec![]);
    assert_eq!(h.core.active(), Some("a"));
}

#[test]
fn replaced_listener_swaps_to_the_idle_slot() {
    let mut h = serving();
    assert_eq!(h.ev(Event::ListenersReplaced), vec![start(2, "b")]);
    // No waiter: the swap finishes without a reply.
    h.ready(2);
    let cmds = h.exited(1, Some(0), None);
    assert!(matches!(cmds.as_slice(), [Command::Finished(r)] if r.outcome == Outcome::Succeeded));
}

/// The words `ctl swap` prints come from these enums: they must not drift.
#[test]
fn failures_and_refusals_read_as_before() {
    let cases: Vec<(String, &str)> = vec![
        (
            exited_early("b", Exit::Code(1)).to_string(),
            "new version in slot b exited before it was ready (exit code 1); old version kept serving",
        ),
        (Exit::Signal(9).to_string(), "signal 9"),
        (Exit::Unknown.to_string(), "unknown status"),
        (Exit::LauncherLost.to_string(), "launcher disconnected"),
        (
            Failure::NotReady {
                slot: "b".into(),
                timeout: Duration::from_millis(1500),
            }
            .to_string(),
            "new version in slot b was not ready within 1.5s; stopped it, old version kept serving",
        ),
        (
            Failure::DrainTimeout.to_string(),
            "old version did not exit after its drain timeout",
        ),
        (
            Refusal::InProgress {
                id: 3,
                to: "b".into(),
                phase: Phase::Starting,
            }
            .to_string(),
            "swap #3 to slot b is already in progress (starting the new version); one swap at a time",
        ),
        (
            Refusal::NotIdle {
                slot: "a".into(),
                pid: 7,
                active: false,
            }
            .to_string(),
            "slot \"a\" is not idle: it runs pid 7 (stopping)",
        ),
        (
            Refusal::SeveralIdle(vec!["b".into(), "c".into()]).to_string(),
            "several idle slots [\"b\", \"c\"]: name one with --to",
        ),
        (
            Refusal::NoLauncher("z".into()).to_string(),
            "no launcher is connected for slot \"z\"",
        ),
        (
            Refusal::NotWanted {
                slot: "b".into(),
                wanted: Some("a".into()),
            }
            .to_string(),
            "slot \"b\" is not the slot the launchers' claims want serving (a); in a hot-swap pod the controller chooses it",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}
