//! Invariants of the swap machine over arbitrary event sequences (launchers coming and going,
//! apps starting, becoming ready and exiting in any order, swap requests, time passing),
//! starting either with the sockets held or recovering them after a sidecar restart; and in
//! pod mode, where launchers of slots `a` and `b` carry arbitrary claims.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::super::*;
use super::H;

const SLOTS: [&str; 3] = ["a", "b", "c"];

/// A claim's generation, whether it names its slot active, and whether it runs a revision.
type ClaimOp = (u64, bool, bool);

#[derive(Clone, Debug)]
enum Op {
    /// A new connection says hello for a slot; with an app only while recovering; with a claim
    /// only in pod mode.
    Hello(usize, Option<(bool, u16)>, ClaimOp),
    Started(usize),
    Ready(usize),
    Exited(usize, Option<i32>),
    Gone(usize),
    Swap(Option<usize>),
    Advance(u32),
    Replaced,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (
            0..SLOTS.len(),
            proptest::option::of((any::<bool>(), any::<u16>())),
            (0..4u64, any::<bool>(), any::<bool>()),
        )
            .prop_map(|(s, a, c)| Op::Hello(s, a, c)),
        1 => (0..8usize).prop_map(Op::Started),
        4 => (0..8usize).prop_map(Op::Ready),
        3 => (0..8usize, proptest::option::of(0..3i32)).prop_map(|(c, x)| Op::Exited(c, x)),
        1 => (0..8usize).prop_map(Op::Gone),
        3 => proptest::option::of(0..SLOTS.len()).prop_map(Op::Swap),
        3 => prop_oneof![0..1_000u32, 0..70_000u32].prop_map(Op::Advance),
        1 => Just(Op::Replaced),
    ]
}

/// The model of the driver's side: which connections exist and which requests are open.
#[derive(Default)]
struct World {
    pod: bool,
    conns: Vec<u64>,
    gone: HashSet<u64>,
    next_request: u64,
    answered: HashSet<u64>,
}

impl World {
    fn conn(&self, i: usize) -> Option<u64> {
        let live: Vec<u64> = self
            .conns
            .iter()
            .copied()
            .filter(|c| !self.gone.contains(c))
            .collect();
        (!live.is_empty()).then(|| live[i % live.len()])
    }

    fn event(&mut self, h: &H, op: &Op) -> Option<Event> {
        Some(match op {
            Op::Hello(s, app, (generation, active, runs)) => {
                let slot = if self.pod { SLOTS[*s % 2] } else { SLOTS[*s] };
                let claim = self.pod.then(|| Claim {
                    slot: crate::contract::pod::Slot::parse(slot).expect("a or b"),
                    revision: runs.then(|| format!("r{generation}")),
                    generation: *generation,
                    active: *active,
                });
                let conn = self.conns.len() as u64 + 1;
                self.conns.push(conn);
                let app = app
                    .filter(|_| h.core.recovering())
                    .map(|(ready, t)| AppState {
                        pid: 5000 + conn as u32,
                        ready,
                        draining: false,
                        started_unix_ms: t as u64,
                    });
                Event::Hello(Hello {
                    conn,
                    slot: slot.into(),
                    pid: 100 + conn as u32,
                    version: "v".into(),
                    hands_back: app.is_some(),
                    app,
                    claim,
                })
            }
            Op::Started(i) => Event::Started {
                conn: self.conn(*i)?,
                pid: 7,
            },
            Op::Ready(i) => Event::Ready {
                conn: self.conn(*i)?,
                pid: 7,
            },
            Op::Exited(i, code) => Event::Exited {
                conn: self.conn(*i)?,
                pid: 7,
                code: *code,
                signal: code.is_none().then_some(9),
            },
            Op::Gone(i) => {
                let conn = self.conn(*i)?;
                self.gone.insert(conn);
                Event::Gone { conn }
            }
            Op::Swap(to) => {
                self.next_request += 1;
                Event::SwapRequested {
                    request: self.next_request,
                    to: to.map(|s| SLOTS[s].to_owned()),
                }
            }
            Op::Advance(_) => Event::Tick,
            Op::Replaced => Event::ListenersReplaced,
        })
    }
}

fn slot_conn(core: &Core, slot: &str, conn: u64) -> bool {
    core.slots().get(slot).is_some_and(|s| s.conn == conn)
}

/// Checks one step: `busy_before` is the set of slots running an app before it, `exited` the connection
/// whose app exited or was lost in it, `cmds` what it returned.
fn check(
    core: &Core,
    busy_before: &BTreeSet<String>,
    exited: Option<u64>,
    cmds: &[Command],
    w: &mut World,
) {
    for c in cmds {
        match c {
            Command::Start { conn, slot, .. } => {
                assert!(slot_conn(core, slot, *conn), "{c:?} targets no slot");
                assert!(
                    !busy_before.contains(slot) || exited == Some(*conn),
                    "{c:?} of a slot that ran an app"
                );
                if w.pod {
                    assert_eq!(
                        core.wanted(),
                        Some(slot.as_str()),
                        "{c:?}: pod mode starts only the wanted slot"
                    );
                }
            }
            Command::Drain { conn, slot, .. } => {
                assert!(slot_conn(core, slot, *conn), "{c:?} targets no slot")
            }
            Command::Standby { conn } | Command::Keep { conn } => assert!(
                core.slots().values().any(|s| s.conn == *conn),
                "{c:?} targets no slot"
            ),
            Command::Reject { conn, .. } => assert!(
                core.slots().values().all(|s| s.conn != *conn),
                "{c:?} rejects a registered launcher"
            ),
            Command::Reply { request, .. } => {
                assert!(*request <= w.next_request, "{c:?}: no such request");
                assert!(w.answered.insert(*request), "{c:?}: answered twice");
            }
            Command::Finished(r) => check_finished(core, r),
            Command::SwapFailed {
                conn, generation, ..
            } => {
                assert!(w.pod, "{c:?} outside pod mode");
                assert!(core.failed_generations().any(|g| g == *generation));
                assert!(conn.is_none_or(|c| !w.gone.contains(&c)), "{c:?}: closed");
            }
            Command::Adopt { .. } | Command::BindMissing | Command::Persist(_) => {}
        }
    }
    if let Some(active) = core.active() {
        let app = core.slots().get(active).and_then(|s| s.app.as_ref());
        assert!(
            app.is_some_and(|a| a.ready && !a.draining),
            "active slot {active} does not run a ready app: {app:?}"
        );
    }
    if core.swap_in_progress().is_none() && !core.recovering() {
        let serving: Vec<&String> = core
            .slots()
            .iter()
            .filter(|(_, s)| s.app.as_ref().is_some_and(|a| a.ready && !a.draining))
            .map(|(n, _)| n)
            .collect();
        assert!(
            serving.len() <= 1,
            "several apps serve outside a swap: {serving:?}"
        );
    }
    if let Some((r, _)) = core.swap_in_progress() {
        assert_eq!(r.outcome, Outcome::Running);
        assert!(
            core.next_deadline().is_some(),
            "a swap without a deadline can hang"
        );
    }
}

fn check_finished(core: &Core, r: &SwapReport) {
    match &r.outcome {
        Outcome::Running => panic!("finished swap still running: {r:?}"),
        Outcome::Succeeded => {
            let target_serves = core
                .slots()
                .get(&r.to)
                .and_then(|s| s.app.as_ref())
                .is_some_and(|a| a.ready && !a.draining);
            if target_serves {
                assert_eq!(
                    core.active(),
                    Some(r.to.as_str()),
                    "succeeded: new must serve"
                );
            }
            assert!(r.ready.is_some(), "succeeded without READY=1: {r:?}");
        }
        Outcome::Failed(_) => {
            let old_serving = r.from.as_ref().is_some_and(|f| {
                core.slots()
                    .get(f)
                    .and_then(|s| s.app.as_ref())
                    .is_some_and(|a| a.ready && !a.draining)
            });
            if old_serving {
                assert_eq!(
                    core.active(),
                    r.from.as_deref(),
                    "failed swap: old must serve"
                );
            }
            // With nothing serving, the target may be started again at once.
            let target_runs = core.slots().get(&r.to).and_then(|s| s.app.as_ref());
            if r.ready.is_none() && old_serving {
                assert!(
                    target_runs.is_none_or(|a| a.draining),
                    "a failed new version is stopped: {target_runs:?}"
                );
            }
        }
    }
}

fn run(recovering: bool, pod: bool, ops: Vec<Op>) {
    let expected: &[&str] = if recovering { &["a", "b"] } else { &[] };
    let (mut h, _) = H::new(recovering, expected);
    let mut w = World {
        pod,
        ..World::default()
    };
    for op in &ops {
        if let Op::Advance(ms) = op {
            h.elapsed += Duration::from_millis(*ms as u64);
        }
        let Some(ev) = w.event(&h, op) else { continue };
        let busy: BTreeSet<String> = h
            .core
            .slots()
            .iter()
            .filter(|(_, s)| s.app.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let exited = match &ev {
            Event::Exited { conn, .. } | Event::Gone { conn } => Some(*conn),
            _ => None,
        };
        let cmds = h.ev(ev);
        check(&h.core, &busy, exited, &cmds, &mut w);
    }
    // Every request is answered, except the one of the swap still running.
    let open = (1..=w.next_request)
        .filter(|r| !w.answered.contains(r))
        .count();
    assert!(
        open <= usize::from(h.core.swap_in_progress().is_some()),
        "{open} unanswered"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_with_sockets_held(ops in proptest::collection::vec(op(), 0..80)) {
        run(false, false, ops);
    }

    #[test]
    fn invariants_hold_when_recovering(ops in proptest::collection::vec(op(), 0..80)) {
        run(true, false, ops);
    }

    #[test]
    fn invariants_hold_in_pod_mode(ops in proptest::collection::vec(op(), 0..80)) {
        run(false, true, ops);
    }

    #[test]
    fn invariants_hold_in_pod_mode_when_recovering(
        ops in proptest::collection::vec(op(), 0..80)
    ) {
        run(true, true, ops);
    }
}
