//! The hot-swap pod layout: the names, paths, annotations, environment and exit code that the
//! controller renders into a pod and the agent reads inside it (`docs/hotswap.md`). One
//! definition for both sides; nothing here does I/O.
//!
//! A hot-swap pod has two app *slots*: the user's container (slot `a`, its name kept) and
//! [`SLOT_B_CONTAINER`] (slot `b`). Both run the user's command under `zdr-agent exec`; the
//! sidecar [`AGENT_CONTAINER`] holds the listening sockets. The controller swaps by changing
//! the image of the idle slot and, in the same patch, the annotations below; the kubelet
//! restarts that container, resolving its environment from the new annotations (downward API),
//! so the launcher that starts knows its slot, its revision and whether it is wanted active.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Name of the agent's native sidecar (an init container with `restartPolicy: Always`).
pub const AGENT_CONTAINER: &str = "zdr-agent";
/// Name of slot `b`'s container; slot `a` keeps the user's container name.
pub const SLOT_B_CONTAINER: &str = "zdr-slot-b";
/// The shared `emptyDir` volume.
pub const VOLUME: &str = "zdr-agent";
/// Where every container mounts [`VOLUME`].
pub const MOUNT_PATH: &str = "/zdr";
/// The agent's run directory (control socket, notify sockets, failure markers).
pub const RUN_DIR: &str = "/zdr/run";
/// Where the sidecar installs its own binary for the slots (`sidecar --install`).
pub const AGENT_BIN: &str = "/zdr/bin/zdr-agent";
/// The agent binary inside the agent image.
pub const AGENT_IMAGE_BIN: &str = "/usr/local/bin/zdr-agent";
/// Port of the sidecar's HTTP server (`/status`, `/metrics`, `/livez`, `/readyz`, slot
/// readiness).
pub const STATUS_PORT: u16 = 9901;

/// Pod annotation: the slot the controller wants serving.
pub const ACTIVE_SLOT_ANNOTATION: &str = "zdr.dev/active-slot";
/// Pod annotation: raised by one on every swap or revert the controller starts; a launcher's
/// wish to serve counts only if it carries the highest generation seen.
pub const GENERATION_ANNOTATION: &str = "zdr.dev/swap-generation";
/// Pod annotation (controller only): when the swap in progress was started (RFC 3339).
pub const SWAP_STARTED_ANNOTATION: &str = "zdr.dev/swap-started-at";
/// Pod annotation (controller only): how long the last completed swap kept the pod out of
/// endpoints, in milliseconds.
pub const UNREADY_MS_ANNOTATION: &str = "zdr.dev/swap-unready-ms";
/// Pod annotation (controller only): `<slot>/<containerID>` of the container the operation in
/// progress restarts; the operation is over once that slot runs another container.
pub const SWAP_FROM_ANNOTATION: &str = "zdr.dev/swap-from";

/// Environment of a slot: its slot name (literal).
pub const ENV_SLOT: &str = "ZDR_SLOT";
/// Environment of a slot: the revision it runs (from its `zdr.dev/slot-X-revision`
/// annotation; empty: parked, it runs nothing).
pub const ENV_VERSION: &str = "ZDR_VERSION";
/// Environment of a slot: [`ACTIVE_SLOT_ANNOTATION`] when the container started.
pub const ENV_ACTIVE_SLOT: &str = "ZDR_ACTIVE_SLOT";
/// Environment of a slot: [`GENERATION_ANNOTATION`] when the container started.
pub const ENV_GENERATION: &str = "ZDR_SWAP_GENERATION";

/// Exit code of a launcher whose app failed to take over (exited, or not ready in time). The
/// reason goes to the container's termination message; the restarted launcher stays standby.
pub const EXIT_SWAP_FAILED: i32 = 75;

/// One of the two app slots of a hot-swap pod (`a` or `b` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The user's container, its name kept.
    A,
    /// [`SLOT_B_CONTAINER`].
    B,
}

impl Slot {
    /// Both slots, `a` first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// `a` or `b`; anything else is None.
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The container that runs this slot, given the user's container name.
    pub fn container(self, user_container: &str) -> &str {
        match self {
            Slot::A => user_container,
            Slot::B => SLOT_B_CONTAINER,
        }
    }

    /// Pod annotation holding the revision this slot runs (empty: parked).
    pub fn revision_annotation(self) -> &'static str {
        match self {
            Slot::A => "zdr.dev/slot-a-revision",
            Slot::B => "zdr.dev/slot-b-revision",
        }
    }

    /// Path of this slot's readiness on the sidecar's HTTP server: 200 while the slot is
    /// standby, serving a ready app, or draining; 503 while its app starts to take over.
    pub fn ready_path(self) -> &'static str {
        match self {
            Slot::A => "/slots/a/ready",
            Slot::B => "/slots/b/ready",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a slot's launcher learns from its environment when its container starts: whether the
/// controller wants it serving, and with which generation of the pod's swap history. The
/// launcher sends it to the sidecar in its `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The launcher's slot.
    pub slot: Slot,
    /// The revision it runs; None when parked (the slot runs nothing).
    #[serde(default)]
    pub revision: Option<String>,
    /// [`GENERATION_ANNOTATION`] at container start.
    pub generation: u64,
    /// [`ACTIVE_SLOT_ANNOTATION`] at container start named this slot.
    pub active: bool,
}

impl Claim {
    /// The claim in a slot's environment; None when the environment is not a rendered pod's
    /// (no [`ENV_ACTIVE_SLOT`]), as for `zdr demo` and hand-run launchers. An unreadable
    /// value is an error naming the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Claim>, String> {
        let Some(active) = get(ENV_ACTIVE_SLOT) else {
            return Ok(None);
        };
        let slot_name = get(ENV_SLOT).unwrap_or_default();
        let slot = Slot::parse(&slot_name)
            .ok_or_else(|| format!("{ENV_SLOT}={slot_name:?}: expected a or b"))?;
        let active = match active.as_str() {
            "" => false,
            s => {
                Slot::parse(s).ok_or_else(|| format!("{ENV_ACTIVE_SLOT}={s:?}: expected a or b"))?
                    == slot
            }
        };
        let generation_text = get(ENV_GENERATION).unwrap_or_default();
        let generation = match generation_text.as_str() {
            "" => 0,
            g => g
                .parse()
                .map_err(|_| format!("{ENV_GENERATION}={g:?}: expected a non-negative integer"))?,
        };
        let revision = get(ENV_VERSION).filter(|v| !v.is_empty());
        Ok(Some(Claim {
            slot,
            revision,
            generation,
            active,
        }))
    }

    /// Whether this launcher asks to serve: wanted active and not parked.
    pub fn wants_to_serve(&self) -> bool {
        self.active && self.revision.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn claims_from_a_rendered_environment() {
        let c = Claim::from_env(env(&[
            (ENV_SLOT, "b"),
            (ENV_ACTIVE_SLOT, "b"),
            (ENV_GENERATION, "3"),
            (ENV_VERSION, "5f7c9d"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.slot, Slot::B);
        assert!(c.active && c.wants_to_serve());
        assert_eq!(c.generation, 3);
        assert_eq!(c.revision.as_deref(), Some("5f7c9d"));

        let parked = Claim::from_env(env(&[
            (ENV_SLOT, "b"),
            (ENV_ACTIVE_SLOT, "a"),
            (ENV_VERSION, ""),
        ]))
        .unwrap()
        .unwrap();
        assert!(!parked.active && !parked.wants_to_serve());
        assert_eq!((parked.generation, parked.revision), (0, None));
    }

    #[test]
    fn no_claim_outside_a_rendered_pod_and_clear_errors() {
        assert_eq!(Claim::from_env(env(&[(ENV_SLOT, "a")])).unwrap(), None);
        let e = Claim::from_env(env(&[(ENV_SLOT, "c"), (ENV_ACTIVE_SLOT, "a")])).unwrap_err();
        assert!(e.contains("ZDR_SLOT=\"c\""), "{e}");
        let e = Claim::from_env(env(&[
            (ENV_SLOT, "a"),
            (ENV_ACTIVE_SLOT, "a"),
            (ENV_GENERATION, "-1"),
        ]))
        .unwrap_err();
        assert!(e.contains("ZDR_SWAP_GENERATION"), "{e}");
    }

    #[test]
    fn slots() {
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::B.container("app"), SLOT_B_CONTAINER);
        assert_eq!(Slot::A.container("app"), "app");
        for s in Slot::ALL {
            assert_eq!(Slot::parse(s.as_str()), Some(s));
            assert!(s.revision_annotation().contains(s.as_str()));
            assert!(s.ready_path().contains(s.as_str()));
        }
    }
}
