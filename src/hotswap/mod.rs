//! Hot swap as the controller sees it: which template changes an in-place swap can carry
//! ([`eligibility`]), one pod's swap as observed ([`state`]) and its next step and patch
//! ([`step`]).

pub mod eligibility;
pub mod state;
pub mod step;

pub use eligibility::{NotEligible, Side, SwapPath, classify};

#[cfg(test)]
mod tests;
