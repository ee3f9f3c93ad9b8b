//! The zdr controller: reconciles `ZeroDowntimeRollout` objects into pods, revisions and status.
//!
//! - [`reconcile`]: the pipeline (fetch -> validate -> plan -> apply -> status).
//! - [`validate`], [`pods`], [`revisions`], [`status`]: pure pieces of that pipeline.
//! - [`analysis`]: the background SLO analysis of the update revision.
//! - [`stuck`]: what holds an update (the `Blocked` condition), from what the pods say.
//! - [`apply`]: every API write. [`expectations`]: guards against a stale cache.
//! - [`backoff`]: per-rollout exponential backoff of failures.
//! - [`rbac`]: the API rights the controller needs, with the reason for each.
//! - [`run`](run::run): the watches, the HTTP server and leader election around it.

pub mod analysis;
pub mod apply;
pub mod backoff;
pub mod clock;
pub mod context;
pub mod decide;
pub mod error;
pub mod expectations;
pub mod leader;
pub mod metrics;
pub mod pods;
pub mod rbac;
pub mod reconcile;
pub mod run;
pub mod status;
pub mod stuck;
pub mod traffic;

pub use context::{Context, FIELD_MANAGER, Settings};
pub use error::Error;

#[cfg(test)]
mod tests;
