//! The in-pod agent (`zdr-agent`): a sidecar that owns the pod's listening sockets and a
//! launcher per slot that runs the app on them, so a new version is hot-swapped in without
//! refusing or resetting a connection. See `docs/agent.md`.
//!
//! - [`fds`]: SCM_RIGHTS and descriptor flags (the only `unsafe`).
//! - [`sockets`]: binding and checking the shared listeners.
//! - [`protocol`], [`conn`]: the control protocol and its framed connection.
//! - [`sidecar`], [`swap`], [`status`]: the sidecar, its swap state machine, `/status` and metrics.
//! - [`launcher`], [`notify`]: `zdr-agent exec`, the exec shim and `NOTIFY_SOCKET`.
//! - [`liveness`]: the lock each launcher holds, which tells a restarted sidecar who is alive.
//! - [`ctl`], [`cli`]: the local client, and command-line parsers.
//! - [`demoapp`], [`loadgen`], [`pod`], [`demo`]: the demo app, the load generator, a local
//!   pod of real processes, and `zdr demo`.
//! - [`bench`], [`bench_haproxy`]: the hot-swap benchmark against naive and HAProxy reloads.

pub mod bench;
pub mod bench_haproxy;
pub mod cli;
pub mod conn;
pub mod ctl;
pub mod demo;
pub mod demoapp;
pub mod fds;
pub mod launcher;
pub mod liveness;
pub mod loadgen;
pub mod notify;
pub mod pod;
pub mod protocol;
pub mod sidecar;
pub mod sockets;
pub mod status;
pub mod swap;
