//! Hot swap as the controller sees it: which template changes an in-place swap could carry, and
//! the pod layout a hot-swap rollout's pods are rendered with.

pub mod eligibility;
pub mod render;

pub use eligibility::{NotEligible, Side, SwapPath, classify};
pub use render::{AgentImage, ProbeKind, RenderError, render};
