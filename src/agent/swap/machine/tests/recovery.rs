//! Recovery after a sidecar restart: launchers reconnecting with their apps and sockets,
//! the interrupted swap completing, and the recovery deadline.

use std::time::Duration;

use super::super::*;
use super::{H, RECOVER_TIMEOUT, drain, persist, reconnect, refused, start};

fn hello_with_app(h: &mut H, conn: u64, slot: &str, ready: bool, started: u64) -> Vec<Command> {
    reconnect(h, conn, slot, format!("v-{slot}"), None, (ready, started))
}

#[test]
fn recovery_mid_swap_completes_the_interrupted_swap() {
    let (mut h, first) = H::new(true, &["a", "b"]);
    assert_eq!(first, vec![persist(&["a", "b"])]);
    assert!(h.core.recovering());
    refused(h.swap(1, None), 1, Refusal::Recovering);
    // Old `a` and the newer `b`, both ready: the sidecar died between b's READY and a's drain.
    let cmds = hello_with_app(&mut h, 1, "a", true, 100);
    assert_eq!(
        cmds,
        vec![Command::Adopt { conn: 1 }, Command::Keep { conn: 1 }]
    );
    let cmds = hello_with_app(&mut h, 2, "b", true, 200);
    assert_eq!(
        cmds,
        vec![
            Command::Adopt { conn: 2 },
            Command::Keep { conn: 2 },
            Command::BindMissing,
            persist(&["a", "b"]),
            drain(1, "a"),
        ],
        "recovery ends when every socket and every slot is back"
    );
    assert!(!h.core.recovering());
    assert_eq!(h.core.active(), Some("b"));
    assert_eq!(
        h.exited(1, None, Some(15)),
        vec![],
        "a drained app's exit is expected"
    );
    assert_eq!(h.core.active(), Some("b"));
}

#[test]
fn recovery_stops_an_app_that_never_became_ready() {
    let (mut h, _) = H::new(true, &["a", "b"]);
    hello_with_app(&mut h, 1, "a", true, 100);
    let cmds = hello_with_app(&mut h, 2, "b", false, 200);
    assert!(cmds.contains(&drain(2, "b")), "{cmds:?}");
    assert_eq!(h.core.active(), Some("a"));
}

#[test]
fn recovery_timeout_binds_and_goes_on_with_who_came_back() {
    let (mut h, _) = H::new(true, &["a", "b"]);
    // `a` has no app: it waits for the end of recovery before it gets `standby`.
    let cmds = h.ev(Event::Hello(Hello {
        conn: 1,
        slot: "a".into(),
        pid: 101,
        version: "v-a".into(),
        app: None,
        hands_back: false,
        claim: None,
    }));
    assert_eq!(cmds, vec![]);
    assert_eq!(
        h.advance(RECOVER_TIMEOUT - Duration::from_millis(1)),
        vec![]
    );
    let cmds = h.advance(Duration::from_millis(1));
    assert_eq!(
        cmds,
        vec![
            Command::BindMissing,
            persist(&["a", "b"]),
            Command::Standby { conn: 1 },
            start(1, "a"),
        ]
    );
    assert!(!h.core.recovering());
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn recovery_with_no_ready_app_keeps_only_the_newest() {
    let (mut h, _) = H::new(true, &["a", "b"]);
    hello_with_app(&mut h, 1, "a", false, 300);
    let cmds = hello_with_app(&mut h, 2, "b", false, 200);
    assert_eq!(cmds.last(), Some(&drain(2, "b")), "{cmds:?}");
    assert_eq!(h.core.active(), None, "nothing ready, nothing active");
    assert_eq!(h.ready(1), vec![]);
    assert_eq!(h.core.active(), Some("a"));
    assert_eq!(h.ready(2), vec![], "a drained app does not come back");
    assert_eq!(h.core.active(), Some("a"));
}
