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
