//! The in-pod agent (`zdr-agent`): a sidecar that owns the pod's listening sockets and a
//! launcher per slot that runs the app on them, so a new version is hot-swapped in without
//! refusing or resetting a connection. See `docs/agent.md`.
//!
//! - [`fds`]: SCM_RIGHTS and descriptor flags (the only `unsafe`).
//! - [`sockets`]: binding and checking the shared listeners.
//! - [`conn`]: the framed connection of the control protocol ([`crate::contract::protocol`]).
//! - [`sidecar`], [`swap`], [`status`]: the sidecar, its swap state machine, the `/status`
//!   endpoint and metrics (the document itself is [`crate::contract::status`]).
//! - [`launcher`], [`notify`]: `zdr-agent exec`, the exec shim and `NOTIFY_SOCKET`.
//! - [`liveness`]: the lock each launcher holds, which tells a restarted sidecar who is alive.
//! - [`install`]: `sidecar --install`, the copy of the agent binary for the slots.
//! - [`ctl`], [`cli`]: the local client, and command-line parsers.
//!
//! The demo app, load generator, local pod and benchmark live in [`crate::demo`]: they are
//! tooling around the agent, not part of it.

pub mod cli;
pub mod conn;
pub mod ctl;
pub mod fds;
pub mod install;
pub mod launcher;
pub mod liveness;
pub mod notify;
pub mod sidecar;
pub mod sockets;
pub mod status;
pub mod swap;
