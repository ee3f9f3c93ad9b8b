//! `kubectl zdr`: the kubectl plugin. [`plan`] works offline on a manifest; [`cluster`] reads
//! rollouts in a cluster and [`status`] renders them; [`actions`] drives them (promote, retry,
//! abort, pause, resume); [`validate`] checks a manifest offline as the API server would.

pub mod actions;
pub mod cluster;
pub mod describe;
pub mod plan;
pub mod status;
pub mod validate;

use kube::api::PatchParams;

/// The plugin's field manager: its annotations and `spec.paused` are a person's changes, not the
/// controller's.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-zdr";

/// Patch parameters of every write the plugin makes.
fn plugin_params() -> PatchParams {
    PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// A failed API call for people: the API server's own message, and for a rollout not found the
/// namespace that was searched (the kube error's debug dump helps nobody at a terminal).
pub fn api_error(e: &kube::Error, ns: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => format!(
            "{} in namespace {ns} (-n/--namespace names another)",
            s.message
        ),
        kube::Error::Api(s) => format!("{} ({}, HTTP {})", s.message, s.reason, s.code),
        other => other.to_string(),
    }
}
