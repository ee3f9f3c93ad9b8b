//! The stable and canary Services: [`select_revision`] points a Service's selector at one
//! revision by adding the `zdr.dev/revision` key to the selector the user wrote.
//!
//! A JSON merge patch, not server-side apply: `spec.selector` is an atomic map
//! (`x-kubernetes-map-type: atomic`), so an apply of `{zdr.dev/revision: …}` alone would take
//! the whole map over and drop the user's keys, while a merge patch sets just the one key.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::RouterError;
use super::router::api_error;
use crate::controller::context::FIELD_MANAGER;
use crate::crd::REVISION_LABEL;

/// Makes Service `name` select the pods of `revision`: sets `spec.selector["zdr.dev/revision"]`
/// by a merge patch (field manager `zdr-controller`), keeping the selector's other keys.
/// Returns whether it wrote; a Service that already selects `revision` is left alone.
///
/// Errors: [`RouterError::NotFound`] (kind `Service`) when it does not exist;
/// [`RouterError::Unusable`] when it has no selector.
pub async fn select_revision(
    api: &Api<Service>,
    name: &str,
    revision: &str,
) -> Result<bool, RouterError> {
    let ns = api.namespace().unwrap_or_default();
    let service = api
        .get(name)
        .await
        .map_err(|e| api_error(e, "Service", ns, name))?;
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    if selector.is_empty() {
        return Err(RouterError::Unusable(format!(
            "Service {ns}/{name} has no spec.selector: zdr narrows the Service's own selector to \
             one revision by adding {REVISION_LABEL}; a selector of {REVISION_LABEL} alone would \
             select the pods of every app with that revision hash, and a Service without a \
             selector gets no endpoints from pods at all"
        )));
    }
    if selector.get(REVISION_LABEL).map(String::as_str) == Some(revision) {
        return Ok(false);
    }
    let patch = json!({"spec": {"selector": {REVISION_LABEL: revision}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, "Service", ns, name))?;
    Ok(true)
}
