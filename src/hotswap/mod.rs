//! Hot swap as the controller sees it: which template changes an in-place swap could carry.

pub mod eligibility;

pub use eligibility::{NotEligible, Side, SwapPath, classify};
