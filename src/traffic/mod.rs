//! Canary traffic: where a weight and header routes are applied (a Gateway API HTTPRoute, an
//! Istio VirtualService) and the stable and canary Services' selectors. The controller decides
//! the [`TrafficTarget`]; a [`TrafficRouter`] makes the router object say it, touching nothing
//! else the user wrote.
//!
//! - [`gateway`], [`istio`]: pure functions that edit the router object's JSON.
//! - [`router`]: [`GatewayRouter`] and [`IstioRouter`] (read-modify-write on the API server) and
//!   [`router_for`]; [`services`]: [`select_revision`] for the two Services.
//! - [`fake`]: [`fake::Recorder`], a router for controller tests.

use std::future::Future;
use std::pin::Pin;

pub mod fake;
pub mod gateway;
pub mod istio;
mod object;
pub mod observe;
pub mod router;
#[cfg(test)]
mod schema_check;
pub mod services;
#[cfg(test)]
mod testing;

pub use object::ZDR_PREFIX;
pub use router::{GatewayRouter, IstioRouter, router_for};
pub use services::select_revision;

use crate::crd::HeaderRoute;

/// What the router should send where.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficTarget {
    /// Percent of the weighted traffic sent to the canary Service (0-100); the stable Service
    /// gets the rest.
    pub weight: i32,
    /// Header routes to the canary Service, sorted by name; every other `zdr-` route is removed.
    pub routes: Vec<HeaderRoute>,
}

/// Why a router could not apply a target.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The router object does not exist.
    #[error("{kind} {namespace}/{name} not found: create it before the canary starts")]
    NotFound {
        /// HTTPRoute or VirtualService.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The object exists but cannot carry the split (e.g. no rule names both Services).
    #[error("{0}")]
    Unusable(String),
    /// The API server refused or failed the request.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Another writer kept changing the object.
    #[error("{kind} {name}: still conflicting after {attempts} read-modify-write attempts")]
    Conflict {
        /// HTTPRoute or VirtualService.
        kind: &'static str,
        /// Name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
}

pub use observe::Observed;

/// Future returned by [`TrafficRouter::observe`].
pub type ObserveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Observed, RouterError>> + Send + 'a>>;

/// Future returned by [`TrafficRouter::apply`].
pub type RouterFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RouterError>> + Send + 'a>>;

/// A traffic router for one rollout. `apply` is idempotent: applying the same target twice
/// writes nothing the second time.
pub trait TrafficRouter: Send + Sync {
    /// Makes the router send traffic as `target` says.
    fn apply<'a>(&'a self, target: &'a TrafficTarget) -> RouterFuture<'a>;

    /// What the router object carries now.
    fn observe(&self) -> ObserveFuture<'_>;
}
