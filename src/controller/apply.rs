//! Every write the reconcile makes, in one place: server-side apply with the one field manager,
//! owner references on what the controller creates, preconditions on deletes.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::context::{Context, FIELD_MANAGER};
use super::error::{Error, Result};
use super::pods::{self, DRAINED_AT_ANNOTATION};
use super::reconcile::event;
use crate::crd::{READINESS_GATE, REVISION_LABEL, ZeroDowntimeRollout, ZeroDowntimeRolloutStatus};
use crate::revision as revisions;

/// Writes for one rollout.
pub struct Writer<'a> {
    ctx: &'a Context,
    zdr: &'a ZeroDowntimeRollout,
    pods: Api<Pod>,
    revisions: Api<ControllerRevision>,
    zdrs: Api<ZeroDowntimeRollout>,
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

impl<'a> Writer<'a> {
    /// A writer for `zdr` in namespace `ns`.
    pub fn new(ctx: &'a Context, zdr: &'a ZeroDowntimeRollout, ns: &str) -> Self {
        Self {
            ctx,
            zdr,
            pods: Api::namespaced(ctx.client.clone(), ns),
            revisions: Api::namespaced(ctx.client.clone(), ns),
            zdrs: Api::namespaced(ctx.client.clone(), ns),
        }
    }

    /// Makes sure the ControllerRevision of `hash` exists with the right number; a rollback to
    /// an older template renumbers its revision as the newest.
    pub async fn ensure_revision(
        &self,
        existing: &[&ControllerRevision],
        hash: &str,
        template: &PodTemplateSpec,
    ) -> Result<()> {
        let number = revisions::next_number(existing, hash);
        let name = revisions::revision_name(&self.zdr.name_any(), hash);
        if let Some(cur) = existing.iter().find(|r| r.name_any() == name) {
            if revisions::template_of(cur).as_ref() != Some(template) {
                return Err(Error::RevisionCollision(name));
            }
            if cur.revision == number {
                return Ok(());
            }
        }
        let rev = revisions::build_revision(self.zdr, hash, template, number);
        self.revisions
            .patch(&name, &apply_params(), &Patch::Apply(&rev))
            .await?;
        Ok(())
    }

    /// Takes an orphan pod matching the selector under this rollout's control.
    pub async fn adopt(&self, pod: &Pod) -> Result<()> {
        let owner = self
            .zdr
            .controller_owner_ref(&())
            .ok_or_else(|| Error::MissingField(self.zdr.name_any(), "metadata.uid"))?;
        // Strategic merge keeps other owners (merged by uid); the uid makes the patch fail
        // if the pod was replaced by another of the same name meanwhile.
        let patch = json!({
            "metadata": {
                "ownerReferences": [owner],
                "uid": pod.uid(),
            }
        });
        self.pods
            .patch(&pod.name_any(), &patch_params(), &Patch::Strategic(&patch))
            .await?;
        tracing::info!(pod = %pod.name_any(), rollout = %self.zdr.name_any(), "adopted orphan pod");
        Ok(())
    }

    /// Sets the pod's `zdr.dev/serving` condition: True lets it into traffic once Ready, False
    /// takes it out (the first step of retiring it).
    pub async fn set_serving(&self, pod: &Pod, serving: bool, now: Timestamp) -> Result<()> {
        let (status, reason, message) = if serving {
            ("True", "Serving", "the rollout admits this pod to traffic")
        } else {
            (
                "False",
                "Retiring",
                "the rollout takes this pod out of traffic before deleting it",
            )
        };
        let patch = json!({
            "status": {"conditions": [{
                "type": READINESS_GATE,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            }]}
        });
        self.pods
            .patch_status(&pod.name_any(), &patch_params(), &Patch::Strategic(&patch))
            .await?;
        Ok(())
    }

    /// Records that no EndpointSlice lists the pod as ready any more.
    pub async fn mark_drained(&self, pod: &Pod, now: Timestamp) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {DRAINED_AT_ANNOTATION: now.to_string()}}});
        self.pods
            .patch(&pod.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Takes one pod's hot-swap step with a JSON patch that first tests the pod's swap
    /// generation, so a step written twice fails instead of starting a second operation.
    pub async fn swap_step(
        &self,
        pod: &Pod,
        cmd: &crate::controller::decide::hotswap::SwapCommand,
        container: &str,
        now: Timestamp,
    ) -> Result<()> {
        let index = |name: &str| {
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .position(|c| c.name == name)
        };
        let agent = &self.ctx.settings.agent.image;
        let Some(ops) =
            crate::hotswap::step::patch(&cmd.pod, &cmd.step, container, index, agent, now)
        else {
            return Ok(());
        };
        let patch: json_patch::Patch = serde_json::from_value(ops)?;
        self.pods
            .patch(&pod.name_any(), &patch_params(), &Patch::Json::<()>(patch))
            .await?;
        tracing::info!(pod = %pod.name_any(), rollout = %self.zdr.name_any(), step = ?cmd.step, "hot swap step");
        Ok(())
    }

    /// The rollout's name.
    pub fn name(&self) -> String {
        self.zdr.name_any()
    }

    /// Creates `count` pods of `revision` in slow-start batches (1, 2, 4, ... in parallel, as the
    /// ReplicaSet controller does): a failure stops before the next batch, so a refused create
    /// (quota, a namespace being deleted) costs one request, and a 50-pod wave is not 50 round
    /// trips one after another.
    pub async fn create_pods(
        &self,
        key: &str,
        template: &PodTemplateSpec,
        revision: &str,
        count: i32,
    ) -> Result<()> {
        let mut left = count.max(0) as usize;
        let mut batch = 1usize;
        while left > 0 {
            let n = batch.min(left);
            let results =
                futures::future::join_all((0..n).map(|_| self.create_pod(key, template, revision)))
                    .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
            left -= n;
            batch *= 2;
        }
        Ok(())
    }

    /// Creates one pod of `revision`.
    async fn create_pod(
        &self,
        key: &str,
        template: &PodTemplateSpec,
        revision: &str,
    ) -> Result<()> {
        let name = pods::pod_name(&self.zdr.name_any(), revision);
        let pod = pods::build_pod(
            self.zdr,
            template,
            revision,
            name.clone(),
            &self.ctx.settings.agent,
        )
        .map_err(|source| Error::HotSwapRender {
            revision: revision.to_string(),
            source,
        })?;
        self.ctx.expectations.expect_create(key, &name);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        if let Err(e) = self.pods.create(&pp, &pod).await {
            self.ctx.expectations.cancel(key, &name);
            return Err(e.into());
        }
        tracing::info!(pod = %name, %revision, "created pod");
        Ok(())
    }

    /// Deletes a pod, only if it is still the one we planned for (uid precondition).
    pub async fn delete_pod(&self, key: &str, pod: &Pod) -> Result<()> {
        let name = pod.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        self.ctx.expectations.expect_delete(key, &name);
        match self.pods.delete(&name, &dp).await {
            Ok(_) => {
                tracing::info!(pod = %name, revision = ?pod.labels().get(REVISION_LABEL), "deleted pod");
                Ok(())
            }
            // Already gone, or replaced by another pod of the same name: nothing to do.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                self.ctx.expectations.cancel(key, &name);
                Ok(())
            }
            Err(e) => {
                self.ctx.expectations.cancel(key, &name);
                Err(e.into())
            }
        }
    }

    /// Deletes an old ControllerRevision.
    pub async fn delete_revision(&self, name: &str) -> Result<()> {
        match self.revisions.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the status subresource (server-side apply, the controller's field manager).
    pub async fn status(&self, status: &ZeroDowntimeRolloutStatus) -> Result<()> {
        let body = json!({
            "apiVersion": "zdr.dev/v1alpha1",
            "kind": "ZeroDowntimeRollout",
            "status": status,
        });
        let written = self
            .zdrs
            .patch_status(&self.zdr.name_any(), &apply_params(), &Patch::Apply(&body))
            .await?;
        // Until the watch cache shows this status, no reconcile decides from an older one.
        self.ctx.expectations.expect_status(
            &super::reconcile::key_of(self.zdr),
            &self.zdr.uid().unwrap_or_default(),
            written.status,
        );
        Ok(())
    }

    /// Publishes an event about the rollout; a failure is logged, never fatal.
    pub async fn event(&self, type_: EventType, reason: &str, note: &str, action: &str) {
        self.event_about(type_, reason, note, action, None).await;
    }

    /// As [`Writer::event`], with pod `pod` as the related object: Events about different pods
    /// are kept apart instead of counted as one series.
    pub async fn event_about(
        &self,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
        pod: Option<&str>,
    ) {
        let mut ev = event(type_, reason, note, action);
        ev.secondary = pod.map(|name| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: self.zdr.namespace(),
            ..Default::default()
        });
        if let Err(e) = self
            .ctx
            .recorder
            .publish(&ev, &self.zdr.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, %reason, "could not publish event");
        }
    }
}
