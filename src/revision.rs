//! ControllerRevisions: one per distinct pod template, named `<rollout>-<hash>`. Hashing,
//! building, rollback renumbering and pruning are pure; the reconcile applies them.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{REVISION_LABEL, ZeroDowntimeRollout};

/// The revision hash of a template: the first 10 hex digits of the SHA-256 of its JSON form
/// (maps serialize with sorted keys, so equal templates hash equal).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// Name of the ControllerRevision of `hash`.
pub fn revision_name(zdr_name: &str, hash: &str) -> String {
    let prefix: String = zdr_name.chars().take(253 - hash.len() - 1).collect();
    format!("{prefix}-{hash}")
}

/// The ControllerRevision recording `template` as revision number `number`.
pub fn build_revision(
    zdr: &ZeroDowntimeRollout,
    hash: &str,
    template: &PodTemplateSpec,
    number: i64,
) -> ControllerRevision {
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&zdr.name_any(), hash)),
            namespace: zdr.namespace(),
            labels: Some([(REVISION_LABEL.to_string(), hash.to_string())].into()),
            owner_references: zdr.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(serde_json::json!({ "template": template }))),
        revision: number,
    }
}

/// The template a ControllerRevision records.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let data = rev.data.as_ref()?;
    serde_json::from_value(data.0.get("template")?.clone()).ok()
}

/// The revision number `hash` should carry: unchanged if it is already the newest, otherwise
/// one above the newest (a rollback to an old template makes its revision the newest again).
pub fn next_number(revisions: &[&ControllerRevision], hash: &str) -> i64 {
    let max = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    match revisions
        .iter()
        .find(|r| r.labels().get(REVISION_LABEL).map(String::as_str) == Some(hash))
    {
        Some(r) if r.revision == max => max,
        _ => max + 1,
    }
}

/// Names of revisions to delete: the oldest beyond `limit`, never one in `keep` (the update
/// and stable revisions, and any a live pod still runs).
pub fn to_prune(
    revisions: &[&ControllerRevision],
    limit: usize,
    keep: &BTreeSet<String>,
) -> Vec<String> {
    let mut old: Vec<&&ControllerRevision> = revisions
        .iter()
        .filter(|r| {
            r.labels()
                .get(REVISION_LABEL)
                .is_none_or(|h| !keep.contains(h))
        })
        .collect();
    old.sort_by_key(|r| r.revision);
    let excess = old.len().saturating_sub(limit);
    old.into_iter().take(excess).map(|r| r.name_any()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rev(hash: &str, number: i64) -> ControllerRevision {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{hash}"), "labels": {REVISION_LABEL: hash}},
            "revision": number
        }))
        .unwrap()
    }

    #[test]
    fn equal_templates_hash_equal_and_differ_otherwise() {
        let a: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"b": "1", "a": "2"}},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]}}))
            .unwrap();
        let b: PodTemplateSpec = serde_json::from_value(
            json!({"spec": {"containers": [{"image": "web:1", "name": "app"}]},
            "metadata": {"labels": {"a": "2", "b": "1"}}}),
        )
        .unwrap();
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
        let mut c = a.clone();
        c.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
        assert_ne!(template_hash(&a), template_hash(&c));
    }

    #[test]
    fn rollback_renumbers_the_old_revision() {
        let (a, b) = (rev("aaa", 1), rev("bbb", 2));
        let all = [&a, &b];
        assert_eq!(next_number(&all, "bbb"), 2, "the newest keeps its number");
        assert_eq!(next_number(&all, "aaa"), 3, "a rollback becomes the newest");
        assert_eq!(next_number(&all, "ccc"), 3);
        assert_eq!(next_number(&[], "ccc"), 1);
    }

    #[test]
    fn prunes_the_oldest_unused_beyond_the_limit() {
        let revs: Vec<_> = (1..=5).map(|i| rev(&format!("h{i}"), i)).collect();
        let refs: Vec<_> = revs.iter().collect();
        let keep: BTreeSet<String> = ["h5".to_string(), "h1".to_string()].into();
        assert_eq!(to_prune(&refs, 1, &keep), vec!["web-h2", "web-h3"]);
        assert!(to_prune(&refs, 10, &keep).is_empty());
    }
}
