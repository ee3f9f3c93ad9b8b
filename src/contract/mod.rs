//! The contract between the in-pod agent and whoever reads or drives it (`zdr-agent ctl`, the
//! demo and tests, and the controller): the `/status` document with swap records, results and
//! phases as enums ([`status`]), and the control protocol's messages ([`protocol`]). Both sides
//! use these types, so the JSON on the wire has one definition. Nothing here does I/O.

pub mod pod;
pub mod protocol;
pub mod status;

pub use protocol::{AppState, FromSidecar, ToSidecar};
pub use status::{
    AppStatus, SlotPhase, SlotStatus, SocketStatus, Status, SwapPhase, SwapRecord, SwapResult,
};

#[cfg(test)]
mod tests;
