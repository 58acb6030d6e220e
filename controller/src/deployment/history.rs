//! Revisions: every distinct pod template a Deployment has had is one ReplicaSet, named
//! `<deployment>-<pod-template-hash>` and annotated `deployment.kubernetes.io/revision`.
//!
//! The hash is computed over the template (and `status.collisionCount`), so changing an image
//! or an annotation (`kubectl rollout restart`) makes a new ReplicaSet, while going back to an
//! old template (`kubectl rollout undo`) finds the old ReplicaSet again, which then gets the
//! next revision number. Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// Label (on the ReplicaSet, its selector and its pods) naming the template's hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Annotation with the revision number, on ReplicaSets and the Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotations the Deployment controller keeps on its ReplicaSets.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations that describe a ReplicaSet, not its template: never copied between the two.
const NOT_COPIED: &[&str] = &[
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision-history",
];

/// FNV-1a, 32 bits (the hash upstream uses for pod-template-hash).
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The template with the hash label removed: what two revisions are compared by.
pub fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    t
}

/// `pod-template-hash` for a template: FNV over its JSON, encoded with the consonant-and-digit
/// alphabet upstream uses so a hash never spells a word.
pub fn template_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&without_hash(t)).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(format!("#{c}").as_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Does the ReplicaSet run the Deployment's current template?
pub fn same_template(rs: &ReplicaSet, d: &Deployment) -> bool {
    let a = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(without_hash);
    let b = d.spec.as_ref().map(|s| without_hash(&s.template));
    a.is_some() && a == b
}

/// A ReplicaSet's revision number (0 if unannotated).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet for the Deployment's current template, not yet created.
pub fn new_replica_set(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    max_surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(
        DESIRED_REPLICAS.into(),
        spec.replicas.unwrap_or(1).to_string(),
    );
    annotations.insert(
        MAX_REPLICAS.into(),
        (spec.replicas.unwrap_or(1) + max_surge).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels: meta.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![crate::replicaset::owner_reference(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// The Deployment's own annotations that its ReplicaSets carry too.
pub fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.annotations()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Old ReplicaSets to delete: empty ones (no replicas wanted or running) beyond the history
/// limit, oldest revision first.
pub fn to_clean_up<'a>(olds: &[&'a ReplicaSet], limit: i32) -> Vec<&'a ReplicaSet> {
    let mut empty: Vec<&ReplicaSet> = olds
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .filter(|rs| {
            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
        })
        .collect();
    let excess = empty.len() as i64 - limit.max(0) as i64;
    if excess <= 0 {
        return vec![];
    }
    empty.sort_by_key(|rs| revision(rs));
    empty.into_iter().take(excess as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn hash_depends_on_template_and_collisions_but_not_the_hash_label() {
        let a = template("nginx:1");
        let h = template_hash(&a, None);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, template_hash(&template("nginx:2"), None));
        assert_ne!(h, template_hash(&a, Some(1)));
        let mut labelled = a.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h.clone());
        assert_eq!(
            h,
            template_hash(&labelled, None),
            "a rollback's template round-trips to the same hash"
        );
    }
}
