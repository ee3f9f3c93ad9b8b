//! zdr: a Kubernetes operator for zero-downtime rollouts, and the in-pod agent that hot-swaps
//! application processes without dropping a connection.
//!
//! The tree mirrors the architecture:
//! - [`crd`]: the `ZeroDowntimeRollout` API types (the contract users see).
//! - [`telemetry`]: logging set-up shared by every binary.
//! - [`observe`]: the `/livez`, `/readyz`, `/metrics` HTTP server shared by controller and agent.
//! - [`agent`]: the in-pod agent, `zdr-agent` (socket-holding sidecar, launchers, hot swap).

pub mod agent;
pub mod observe;
pub mod telemetry;
