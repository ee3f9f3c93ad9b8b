//! The rollout planner: a pure function from what was asked (validated spec), what is observed
//! (pods) and the time to the next actions and the counts status reports. No Kubernetes types,
//! no I/O: the controller, `kubectl zdr plan` and the property tests all call the same code.

pub mod canary;
mod model;
pub mod preview;
mod quantity;
mod rolling;
mod simulate;
pub mod split;
mod summary;

pub use model::*;
pub use quantity::{ScaleError, resolve_surge_unavailable};
pub use rolling::plan;
pub use simulate::{Timeline, Timing, Wave, seconds, simulate_rollout};
pub use summary::{Progress, Summary, summarize};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod canary_sim_tests;
#[cfg(test)]
mod canary_tests;
