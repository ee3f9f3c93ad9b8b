//! The contract's wire format: every type survives a JSON round trip, documents captured from a
//! real agent before the types were enums still parse and serialize back byte-for-byte equal
//! (as JSON values), and the derived phases read those documents as intended.

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::protocol::{decode, encode};
use super::*;

/// Captured from `zdr-agent` (sidecar, four launchers running `zdr-agent demo-app`): `GET
/// /status` before any swap, while a swap waits for a slow new version, and after it; `ctl
/// swap` output for a succeeded and a failed swap; the raw answer line to `{"type":"status"}`.
const STATUS_START: &str = include_str!("fixtures/status-start.json");
const STATUS_SWAPPING: &str = include_str!("fixtures/status-swapping.json");
const STATUS_AFTER: &str = include_str!("fixtures/status-after.json");
const SWAP_SUCCEEDED: &str = include_str!("fixtures/swap-succeeded.json");
const SWAP_FAILED: &str = include_str!("fixtures/swap-failed.json");
const CONTROL_STATUS_LINE: &str = include_str!("fixtures/control-status-line.json");

/// Parses `text` as `T` and checks that serializing it gives the same JSON value back.
fn parses_unchanged<T: Serialize + DeserializeOwned>(text: &str) -> T {
    let typed: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let original: Value = serde_json::from_str(text).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), original);
    typed
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let text = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(&back, v, "{text}");
}

fn record(result: SwapResult, ready_ms: Option<u64>) -> SwapRecord {
    SwapRecord {
        id: 4,
        from: Some("a".into()),
        to: "b".into(),
        to_version: "v2".into(),
        result,
        error: (result == SwapResult::Failed).then(|| "not ready in 60s".into()),
        ready_ms,
        drain_ms: ready_ms.map(|_| 7),
        total_ms: (result != SwapResult::Running).then_some(40),
    }
}

fn slot(name: &str, app: Option<(bool, bool)>) -> SlotStatus {
    SlotStatus {
        slot: name.into(),
        launcher_pid: 10,
        version: format!("v-{name}"),
        app: app.map(|(ready, draining)| AppStatus {
            pid: 11,
            ready,
            draining,
        }),
        starts: 1,
    }
}

fn status() -> Status {
    Status {
        sockets: vec![SocketStatus {
            name: "http".into(),
            addr: "0.0.0.0:8080".into(),
            listening: true,
            adopted: true,
        }],
        active_slot: Some("a".into()),
        slots: vec![slot("a", Some((true, false))), slot("b", None)],
        swap_in_progress: Some(record(SwapResult::Running, None)),
        last_swap: Some(record(SwapResult::Failed, None)),
        swaps_succeeded: 3,
        swaps_failed: 1,
        recovering: false,
        http_addr: Some("0.0.0.0:9901".into()),
        pid: 1,
    }
}

#[test]
fn captured_status_documents_parse_and_serialize_back_unchanged() {
    for text in [STATUS_START, STATUS_SWAPPING, STATUS_AFTER] {
        parses_unchanged::<Status>(text);
    }
    let rec: SwapRecord = parses_unchanged(SWAP_SUCCEEDED);
    assert_eq!(
        (rec.result, rec.phase()),
        (SwapResult::Succeeded, SwapPhase::Succeeded)
    );
    let rec: SwapRecord = parses_unchanged(SWAP_FAILED);
    assert_eq!(
        (rec.result, rec.phase()),
        (SwapResult::Failed, SwapPhase::Failed)
    );
    assert!(
        rec.error
            .is_some_and(|e| e.contains("exited before it was ready"))
    );
}

#[test]
fn captured_control_line_decodes_to_the_typed_status() {
    let (msg, fds) = decode::<FromSidecar>(CONTROL_STATUS_LINE.trim().as_bytes()).unwrap();
    assert_eq!(fds, 0);
    let FromSidecar::Status { status } = msg else {
        panic!("not a status answer: {msg:?}");
    };
    // Taken right after `status-after.json`, with nothing happening in between.
    assert_eq!(
        *status,
        serde_json::from_str::<Status>(STATUS_AFTER).unwrap()
    );
}

#[test]
fn captured_documents_read_as_the_expected_phases() {
    let phases = |text: &str| -> Vec<(String, SlotPhase)> {
        let st: Status = serde_json::from_str(text).unwrap();
        st.slot_phases().map(|(s, p)| (s.slot.clone(), p)).collect()
    };
    let names = |v: &[(&str, SlotPhase)]| -> Vec<(String, SlotPhase)> {
        v.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    };
    use SlotPhase::*;
    assert_eq!(phases(STATUS_START), names(&[("a", Serving), ("b", Idle)]));
    let swapping = [("a", Idle), ("b", Serving), ("c", Idle), ("d", Starting)];
    assert_eq!(phases(STATUS_SWAPPING), names(&swapping));
    let after = [("a", Idle), ("b", Idle), ("c", Idle), ("d", Serving)];
    assert_eq!(phases(STATUS_AFTER), names(&after));

    let st: Status = serde_json::from_str(STATUS_SWAPPING).unwrap();
    let running = st.swap_in_progress.as_ref().unwrap();
    assert_eq!(
        (running.result, running.phase()),
        (SwapResult::Running, SwapPhase::Starting)
    );
    assert_eq!(
        st.last_swap.as_ref().map(SwapRecord::phase),
        Some(SwapPhase::Failed)
    );
    assert_eq!(st.active().map(|s| s.slot.as_str()), Some("b"));
}

#[test]
fn slot_phase_reads_every_combination() {
    let cases = [
        (None, Some("a"), SlotPhase::Idle),
        (Some((false, false)), None, SlotPhase::Starting),
        (Some((true, false)), Some("a"), SlotPhase::Serving),
        (Some((true, false)), Some("b"), SlotPhase::Ready),
        (Some((true, false)), None, SlotPhase::Ready),
        (Some((true, true)), Some("a"), SlotPhase::Draining),
        (Some((false, true)), Some("b"), SlotPhase::Draining),
    ];
    for (app, active, want) in cases {
        assert_eq!(
            slot("a", app).phase(active),
            want,
            "{app:?} active={active:?}"
        );
    }
}

#[test]
fn swap_phase_follows_result_and_readiness() {
    let cases = [
        (SwapResult::Running, None, SwapPhase::Starting),
        (SwapResult::Running, Some(12), SwapPhase::Draining),
        (SwapResult::Succeeded, Some(12), SwapPhase::Succeeded),
        (SwapResult::Failed, None, SwapPhase::Failed),
    ];
    for (result, ready_ms, want) in cases {
        assert_eq!(
            record(result, ready_ms).phase(),
            want,
            "{result} {ready_ms:?}"
        );
    }
}

#[test]
fn swap_result_words_are_the_wire_words() {
    for (r, word) in [
        (SwapResult::Running, "running"),
        (SwapResult::Succeeded, "succeeded"),
        (SwapResult::Failed, "failed"),
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), Value::from(word));
        assert_eq!((r.as_str(), r.to_string()), (word, word.to_string()));
        round_trip(&r);
    }
    let e = serde_json::from_str::<SwapResult>(r#""done""#).unwrap_err();
    assert!(e.to_string().contains("unknown variant `done`"), "{e}");
    let bad = SWAP_SUCCEEDED.replace("\"succeeded\"", "\"Succeeded\"");
    assert!(serde_json::from_str::<SwapRecord>(&bad).is_err());
}

#[test]
fn phases_have_snake_case_words() {
    let slot_words = [
        (SlotPhase::Idle, "idle"),
        (SlotPhase::Starting, "starting"),
        (SlotPhase::Serving, "serving"),
        (SlotPhase::Ready, "ready"),
        (SlotPhase::Draining, "draining"),
    ];
    for (p, word) in slot_words {
        assert_eq!(serde_json::to_value(p).unwrap(), Value::from(word));
        round_trip(&p);
    }
    let swap_words = [
        (SwapPhase::Starting, "starting"),
        (SwapPhase::Draining, "draining"),
        (SwapPhase::Succeeded, "succeeded"),
        (SwapPhase::Failed, "failed"),
    ];
    for (p, word) in swap_words {
        assert_eq!(serde_json::to_value(p).unwrap(), Value::from(word));
        round_trip(&p);
    }
}

#[test]
fn status_types_round_trip() {
    let st = status();
    round_trip(&st);
    round_trip(&Status::default());
    round_trip(&st.sockets[0]);
    round_trip(&st.slots[0]);
    round_trip(st.slots[0].app.as_ref().unwrap());
    round_trip(&record(SwapResult::Succeeded, Some(3)));
}

#[test]
fn every_control_message_round_trips_through_a_line() {
    let app = AppState {
        pid: 5,
        ready: true,
        draining: false,
        started_unix_ms: 1_700_000_000_000,
    };
    round_trip(&app);
    let to = [
        ToSidecar::Hello {
            slot: "b".into(),
            pid: 4,
            version: "v2".into(),
            app: Some(app.clone()),
            held: vec!["http".into()],
            claim: None,
        },
        ToSidecar::Hello {
            slot: "b".into(),
            pid: 4,
            version: "5f7c9d".into(),
            app: None,
            held: vec![],
            claim: Some(crate::contract::pod::Claim {
                slot: crate::contract::pod::Slot::B,
                revision: Some("5f7c9d".into()),
                generation: 3,
                active: true,
            }),
        },
        ToSidecar::Started { pid: 5 },
        ToSidecar::Ready { pid: 5 },
        ToSidecar::Exited {
            pid: 5,
            code: None,
            signal: Some(9),
        },
        ToSidecar::Swap {
            to: Some("b".into()),
        },
        ToSidecar::Swap { to: None },
        ToSidecar::Status,
    ];
    for m in to {
        let line = encode(&m, 2);
        let (back, fds) = decode::<ToSidecar>(&line[..line.len() - 1]).unwrap();
        assert_eq!((back, fds), (m, 2));
    }
    let from = [
        FromSidecar::Standby,
        FromSidecar::Start {
            names: vec!["http".into(), "admin".into()],
        },
        FromSidecar::Keep,
        FromSidecar::Drain {
            signal: 15,
            timeout_ms: 30_000,
        },
        FromSidecar::SwapResult {
            record: record(SwapResult::Failed, None),
        },
        FromSidecar::Status {
            status: Box::new(status()),
        },
        FromSidecar::SwapFailed {
            generation: 3,
            reason: "new version in slot b exited before it was ready (exit code 1)".into(),
        },
        FromSidecar::Error {
            message: "no idle slot".into(),
        },
    ];
    for m in from {
        let line = encode(&m, 0);
        let (back, fds) = decode::<FromSidecar>(&line[..line.len() - 1]).unwrap();
        assert_eq!((back, fds), (m, 0));
    }
}

#[test]
fn a_swap_answer_with_an_untyped_record_is_an_error() {
    let line = br#"{"v":1,"type":"swap_result","record":{"id":1,"result":"maybe"}}"#;
    let e = decode::<FromSidecar>(line).unwrap_err();
    assert!(e.to_string().starts_with("invalid message"), "{e}");
}

fn any_result() -> impl Strategy<Value = SwapResult> {
    prop_oneof![
        Just(SwapResult::Running),
        Just(SwapResult::Succeeded),
        Just(SwapResult::Failed),
    ]
}

proptest! {
    #[test]
    fn any_swap_record_round_trips(
        id in any::<u64>(),
        from in proptest::option::of("[a-z]{1,8}"),
        to in "[a-z]{1,8}",
        to_version in ".{0,20}",
        result in any_result(),
        error in proptest::option::of(".{0,40}"),
        ms in proptest::array::uniform3(proptest::option::of(any::<u64>())),
    ) {
        let r = SwapRecord {
            id, from, to, to_version, result, error,
            ready_ms: ms[0], drain_ms: ms[1], total_ms: ms[2],
        };
        let text = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(serde_json::from_str::<SwapRecord>(&text).unwrap(), r);
    }
}
