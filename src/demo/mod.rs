//! The demo and benchmark tooling: everything that shows or measures the agent on a laptop, on
//! loopback, with real processes. It is not the agent ([`crate::agent`] is what runs in pods):
//! `zdr demo`, `zdr bench-hotswap` and the agent's integration tests use it, and the agent
//! binary carries only the demo app (`zdr-agent demo-app`), as the app those tests swap.
//!
//! - [`demoapp`]: the demo app (`zdr-agent demo-app`), a socket-activated HTTP server.
//! - [`loadgen`]: the load generator (no retries; failures and resets counted apart).
//! - [`pod`]: a local pod of real processes (sidecar and launchers in a private directory).
//! - [`run`]: `zdr demo`.
//! - [`bench`], [`bench_haproxy`]: the hot-swap benchmark against naive and HAProxy reloads.

pub mod bench;
pub mod bench_haproxy;
pub mod demoapp;
pub mod loadgen;
pub mod pod;
pub mod run;

pub use run::{DemoConfig, run};
