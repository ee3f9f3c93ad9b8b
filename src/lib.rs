//! zdr: a Kubernetes operator for zero-downtime rollouts, and the in-pod agent that hot-swaps
//! application processes without dropping a connection.
//!
//! The tree mirrors the architecture:
//! - [`analysis`]: SLO analysis against Prometheus (conditions, run state machine, burn rates).
//! - [`crd`]: the `ZeroDowntimeRollout` API types (the contract users see).
//! - [`planner`]: the pure rollout planner (observed pods + spec + time -> actions), one module
//!   per strategy.
//! - [`validate`]: what the controller and `kubectl zdr validate` check beyond the CRD's rules.
//! - [`schema`]: offline checks of a manifest against the CRD's schema and rules, then [`validate`].
//! - [`hotswap`]: hot-swap eligibility: which template changes an in-place swap could carry.
//! - [`revision`]: template hashes and ControllerRevisions.
//! - [`traffic`]: traffic routers (Gateway API, Istio) and the canary's Services.
//! - [`controller`]: the reconcile pipeline around it, and everything that talks to the API server.
//! - [`plugin`]: `kubectl zdr`.
//! - [`contract`]: what the agent reports and accepts (`/status`, swap records, the control
//!   protocol), typed, shared by the agent and, later, the controller.
//! - [`agent`]: the in-pod agent, `zdr-agent` (socket-holding sidecar, launchers, hot swap).
//! - [`demo`]: the demo and benchmark tooling around the agent (`zdr demo`, demo app, load
//!   generator, local pod of real processes, benchmark).
//! - [`telemetry`]: logging set-up shared by every binary.
//! - [`observe`]: the `/livez`, `/readyz`, `/metrics` HTTP server shared by controller and agent.

pub mod agent;
pub mod analysis;
pub mod contract;
pub mod controller;
pub mod crd;
pub mod demo;
pub mod hotswap;
pub mod observe;
pub mod planner;
pub mod plugin;
pub mod revision;
pub mod schema;
pub mod telemetry;
pub mod traffic;
pub mod validate;
