//! The control protocol spoken on the sidecar's Unix socket: versioned JSON lines, one message
//! per line, `{"v":1,"type":…,"fds":N,…}`, where `fds` counts SCM_RIGHTS descriptors that
//! travel with the bytes of that line. Launchers and `ctl` speak it with the sidecar; every
//! payload is typed (the status document and swap records are [`super::status`]'s).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pod::Claim;
use super::status::{Status, SwapRecord};

/// Protocol version this build speaks. A message with another `v` is answered with an error.
pub const VERSION: u32 = 1;

/// Longest accepted line (bytes). Longer input is an error and closes the connection.
pub const MAX_LINE: usize = 64 * 1024;

/// State of a launcher's app, as the launcher reports it (on reconnect, in `hello`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    /// The app's pid.
    pub pid: u32,
    /// Whether it has signalled readiness.
    pub ready: bool,
    /// Whether it was told to drain.
    pub draining: bool,
    /// When it was started (Unix ms), to order two running apps after a sidecar restart.
    pub started_unix_ms: u64,
}

/// Messages to the sidecar: from launchers (`hello` … `exited`) and from `ctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToSidecar {
    /// A launcher registers as `slot`. `held` names the descriptors attached (a launcher giving
    /// back the sockets it holds after a sidecar restart); `app` is its running app, if any.
    Hello {
        /// Slot name (e.g. `a`, `b`).
        slot: String,
        /// Launcher pid.
        pid: u32,
        /// Version label of the app this launcher runs.
        version: String,
        /// The running app, if any.
        #[serde(default)]
        app: Option<AppState>,
        /// Names of the attached descriptors, in order.
        #[serde(default)]
        held: Vec<String>,
        /// The launcher's claim in a hot-swap pod (`docs/hotswap.md`); absent outside one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim: Option<Claim>,
    },
    /// The launcher started its app.
    Started {
        /// App pid (after exec, as in `LISTEN_PID`).
        pid: u32,
    },
    /// The app signalled readiness (`READY=1`, or the launcher's documented fallback).
    Ready {
        /// App pid.
        pid: u32,
    },
    /// The app exited.
    Exited {
        /// App pid.
        pid: u32,
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// Signal number, when killed by a signal.
        signal: Option<i32>,
    },
    /// `ctl swap`: start the new version in slot `to` (or the idle slot), then drain the old.
    Swap {
        /// Target slot; `None` picks the one idle slot.
        #[serde(default)]
        to: Option<String>,
    },
    /// `ctl status`: the same JSON as HTTP `/status`.
    Status,
}

/// Messages from the sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromSidecar {
    /// Registered; wait without running anything.
    Standby,
    /// Start the app with the attached sockets, named in order.
    Start {
        /// LISTEN_FDNAMES, one per attached fd.
        names: Vec<String>,
    },
    /// Registered; keep the app you run (after a sidecar restart).
    Keep,
    /// Drain the app: send `signal`, then SIGKILL after `timeout_ms`.
    Drain {
        /// Signal number.
        signal: i32,
        /// Grace before SIGKILL.
        timeout_ms: u64,
    },
    /// Answer to `swap`.
    SwapResult {
        /// The finished swap.
        record: SwapRecord,
    },
    /// Answer to `status`.
    Status {
        /// The status document (boxed: it is much larger than the other messages).
        status: Box<Status>,
    },
    /// The swap to this launcher's slot failed: write `reason` as the container's termination
    /// message and exit with [`super::pod::EXIT_SWAP_FAILED`] once the app is gone.
    SwapFailed {
        /// The generation of the launcher's claim that failed.
        generation: u64,
        /// Why, in words.
        reason: String,
    },
    /// The request was refused or malformed.
    Error {
        /// Human-readable reason.
        message: String,
    },
}

/// A line that is not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// Missing or unsupported `v`.
    #[error("unsupported protocol version {0:?} (this agent speaks v{VERSION})")]
    Version(Option<u64>),
    /// `fds` is not a small non-negative integer.
    #[error("bad fds count")]
    Fds,
    /// Unknown `type` or wrong fields.
    #[error("invalid message: {0}")]
    Message(String),
}

/// Encodes `msg` as one line (with trailing newline), announcing `fds` descriptors.
pub fn encode<T: Serialize>(msg: &T, fds: usize) -> Vec<u8> {
    let mut v = serde_json::to_value(msg).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("v".into(), VERSION.into());
        if fds > 0 {
            m.insert("fds".into(), fds.into());
        }
    }
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Decodes one line (without its newline): the message and how many descriptors it announces.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<(T, usize), DecodeError> {
    let mut v: Value =
        serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Object(m) = &mut v else {
        return Err(DecodeError::Json("not an object".into()));
    };
    // Descriptors are counted first, so that even a bad message's fds are accounted for.
    let fds = match m.remove("fds") {
        None => 0,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n <= 4096 => n as usize,
            _ => return Err(DecodeError::Fds),
        },
        Some(_) => return Err(DecodeError::Fds),
    };
    match m.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(VERSION)) => {}
        Some(Value::Number(n)) => return Err(DecodeError::Version(n.as_u64())),
        _ => return Err(DecodeError::Version(None)),
    }
    let msg = serde_json::from_value(v).map_err(|e| DecodeError::Message(e.to_string()))?;
    Ok((msg, fds))
}

/// The number of descriptors a line announces, read leniently (0 if unreadable), so a
/// connection can drop the right number of fds that came with a rejected line.
pub fn announced_fds(line: &[u8]) -> usize {
    serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|v| v.get("fds").and_then(Value::as_u64))
        .map(|n| n.min(4096) as usize)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = ToSidecar::Hello {
            slot: "a".into(),
            pid: 7,
            version: "v1".into(),
            app: None,
            held: vec!["http".into()],
            claim: None,
        };
        let line = encode(&m, 1);
        assert!(line.ends_with(b"\n"));
        let (back, fds): (ToSidecar, usize) = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(back, m);
        assert_eq!(fds, 1);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            decode::<ToSidecar>(b"hello"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode::<ToSidecar>(b"[1,2]"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode::<ToSidecar>(br#"{"type":"status"}"#),
            Err(DecodeError::Version(None))
        ));
        assert!(matches!(
            decode::<ToSidecar>(br#"{"v":2,"type":"status"}"#),
            Err(DecodeError::Version(Some(2)))
        ));
        assert!(matches!(
            decode::<ToSidecar>(br#"{"v":1,"type":"launch_missiles"}"#),
            Err(DecodeError::Message(_))
        ));
        assert!(matches!(
            decode::<ToSidecar>(br#"{"v":1,"type":"status","fds":-1}"#),
            Err(DecodeError::Fds)
        ));
        // A hello of a launcher older than claims still parses.
        let (m, _) =
            decode::<ToSidecar>(br#"{"v":1,"type":"hello","slot":"a","pid":3,"version":"v1"}"#)
                .unwrap();
        assert!(matches!(m, ToSidecar::Hello { claim: None, .. }));
        let (m, n) = decode::<ToSidecar>(br#"{"v":1,"type":"status"}"#).unwrap();
        assert_eq!((m, n), (ToSidecar::Status, 0));
        assert_eq!(announced_fds(br#"{"v":9,"fds":3}"#), 3);
    }
}
