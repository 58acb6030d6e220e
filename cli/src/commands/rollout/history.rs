//! `minikctl rollout history` and `rollout undo`: a Deployment's revisions, and going back.
//!
//! The Deployment keeps no history itself: its ReplicaSets are the history. Every ReplicaSet
//! whose controller `ownerReference` is the Deployment (matched by `uid`, not by name: a
//! Deployment deleted and created again owns nothing of the old one) holds one revision, numbered
//! by its `deployment.kubernetes.io/revision` annotation, with the `kubernetes.io/change-cause`
//! the user recorded. *Undo* is not a special operation on the server: kubectl copies the
//! chosen ReplicaSet's template back into the Deployment (one JSON patch, guarded by the
//! `resourceVersion` it read), and the controller, finding that ReplicaSet matches the template
//! again, scales it back up and gives it the next revision number.
//! A revision's template is printed by `describe` (kubectl's `DescribePodTemplate`).
//! Read next: `template.rs` (templates compared), the controller's
//! `controller/src/deployment/`.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{json, Value};

use super::super::scale::Named;
use super::super::{describe, get, send, Ctx, Failures};
use super::{group_kind, is_deployment, objects, template, Objects};

/// The annotation numbering a ReplicaSet's revision (and the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The annotation recording why a revision was made.
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The Deployment annotations an undo keeps rather than copying them from the ReplicaSet.
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The arguments of `minikctl rollout history`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// See the details, including the pod template, of this revision.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub revision: i64,
}

/// The arguments of `minikctl rollout undo`.
#[derive(clap::Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// The revision to roll back to; 0 is the one before the latest.
    #[arg(
        long = "to-revision",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub to_revision: i64,
    /// `client`: print the template it would restore; `server`: let the server check the
    /// patch without storing it.
    #[arg(long = "dry-run", value_enum, default_value_t = DryRun::None)]
    pub dry_run: DryRun,
}

/// kubectl's `--dry-run` strategies.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Change the object.
    None,
    /// Change nothing; print what would be done.
    Client,
    /// Send the change with `dryRun=All`: checked, not stored.
    Server,
}

impl DryRun {
    /// The printed line's suffix.
    fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// A ReplicaSet's revision: its annotation, 0 when it has none, `None` when it is not a number
/// (kubectl leaves such a ReplicaSet out).
fn revision_of(object: &Value) -> Option<i64> {
    match object["metadata"]["annotations"][REVISION].as_str() {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// Does the label selector `selector` (`matchLabels`, `matchExpressions`) select an object
/// with `labels`? As Go's `LabelSelectorAsSelector`: no selector selects nothing, an empty
/// one everything.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let pairs = selector["matchLabels"].as_object().into_iter().flatten();
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten();
    pairs.into_iter().all(|(k, v)| label(k) == v.as_str())
        && expressions.into_iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let mut values = e["values"].as_array().into_iter().flatten();
            match (e["operator"].as_str(), label(key)) {
                (Some("In"), Some(l)) => values.any(|v| v == l),
                (Some("NotIn"), Some(l)) => !values.any(|v| v == l),
                (Some("NotIn"), None) | (Some("Exists"), Some(_)) => true,
                (Some("DoesNotExist"), l) => l.is_none(),
                _ => false,
            }
        })
}

/// The ReplicaSets `deployment` controls, by revision (a later one of equal revision wins, as
/// in kubectl's map): those its selector selects whose controller is the Deployment.
async fn revisions(ctx: &Ctx, deployment: &Value) -> anyhow::Result<BTreeMap<i64, Value>> {
    let ns = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let uid = &deployment["metadata"]["uid"];
    let selector = &deployment["spec"]["selector"];
    let list = get::get_json(
        ctx,
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
        false,
    )
    .await?;
    let mut out = BTreeMap::new();
    for rs in list["items"].as_array().into_iter().flatten() {
        let controlled = rs["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["controller"] == true && &r["uid"] == uid);
        let selected = selects(selector, &rs["metadata"]["labels"]);
        if let (true, Some(v)) = (controlled && selected, revision_of(rs)) {
            out.insert(v, rs.clone());
        }
    }
    Ok(out)
}

/// kubectl's history table: `REVISION  CHANGE-CAUSE`, aligned as Go's tabwriter aligns it
/// (padding 2), `<none>` where no cause was recorded.
pub fn history_table(revisions: &BTreeMap<i64, Value>) -> String {
    if revisions.is_empty() {
        return "No rollout history found.".to_string();
    }
    let rows: Vec<(String, String)> = revisions
        .iter()
        .map(|(v, rs)| {
            let cause = rs["metadata"]["annotations"][CHANGE_CAUSE]
                .as_str()
                .filter(|c| !c.is_empty())
                .unwrap_or("<none>");
            (v.to_string(), cause.to_string())
        })
        .collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8) + 2;
    let mut out = format!("{:width$}CHANGE-CAUSE\n", "REVISION");
    for (v, cause) in rows {
        out.push_str(&format!("{v:width$}{cause}\n"));
    }
    out
}

/// The template of revision `rs` as `--revision=N` shows it: the change-cause copied from the
/// ReplicaSet into the template's annotations, as kubectl does.
fn revision_template(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(cause) = rs["metadata"]["annotations"][CHANGE_CAUSE]
        .as_str()
        .filter(|c| !c.is_empty())
    {
        if !t["metadata"].is_object() {
            t["metadata"] = json!({});
        }
        if !t["metadata"]["annotations"].is_object() {
            t["metadata"]["annotations"] = json!({});
        }
        t["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
    }
    t
}

/// A template as kubectl's `DescribePodTemplate` prints it (`describe`'s printer).
fn describe_template(template: &Value) -> anyhow::Result<String> {
    let t: PodTemplateSpec =
        serde_json::from_value(template.clone()).context("the ReplicaSet's pod template")?;
    Ok(describe::pod_template(&t))
}

/// Runs `minikctl rollout history`.
pub async fn run(ctx: &Ctx, args: HistoryArgs) -> anyhow::Result<()> {
    if args.revision < 0 {
        anyhow::bail!("revision must be a positive integer: {}", args.revision);
    }
    let objects = objects(ctx, &args.objects).await?;
    let mut failures = Failures::default();
    for object in &objects {
        failures.print(ctx, history_one(ctx, object, args.revision).await)?;
    }
    failures.finish()
}

/// The history of one object: its table of revisions, or one revision's template.
async fn history_one(ctx: &Ctx, object: &Named<'_>, revision: i64) -> anyhow::Result<String> {
    let deployment = object.get(ctx).await?;
    if !is_deployment(object) {
        let kind = group_kind(object.resource);
        anyhow::bail!("no history viewer has been implemented for {kind:?}");
    }
    let revisions = revisions(ctx, &deployment).await?;
    let body = match revisions.get(&revision) {
        _ if revisions.is_empty() || revision == 0 => history_table(&revisions),
        Some(rs) => describe_template(&revision_template(rs))?,
        None => anyhow::bail!("unable to find the specified revision"),
    };
    let with = if revision > 0 {
        format!("with revision #{revision}")
    } else {
        String::new()
    };
    Ok(format!("{} {with}\n{body}\n", object.display()))
}

/// Runs `minikctl rollout undo`.
pub async fn undo(ctx: &Ctx, args: UndoArgs) -> anyhow::Result<()> {
    let objects = objects(ctx, &args.objects).await?;
    let mut failures = Failures::default();
    for object in &objects {
        let result = undo_one(ctx, object, args.to_revision, args.dry_run).await;
        let suffix = args.dry_run.suffix();
        let line = result.map(|r| format!("{} {r}{suffix}\n", object.display()));
        failures.print(ctx, line)?;
    }
    failures.finish()
}

/// Which ReplicaSet an undo goes back to: revision `to`, or with 0 the one before the latest.
pub fn choose(
    revisions: &BTreeMap<i64, Value>,
    to: i64,
    deployment: &str,
) -> anyhow::Result<Value> {
    if to < 0 {
        anyhow::bail!("unable to find specified revision {to} in history");
    }
    if to > 0 {
        return revisions
            .get(&to)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unable to find specified revision {to} in history"));
    }
    revisions
        .values()
        .rev()
        .nth(1)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no rollout history found for deployment {deployment:?}"))
}

/// The JSON patch that restores `rs`'s template and annotations into `deployment`: guarded
/// by the resourceVersion read, so a concurrent change fails instead of being overwritten.
pub fn undo_patch(deployment: &Value, rs: &Value) -> Value {
    let mut annotations = serde_json::Map::new();
    let current = &deployment["metadata"]["annotations"];
    for key in ANNOTATIONS_TO_SKIP {
        if let Some(v) = current.get(key) {
            annotations.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    json!([
        {"op": "test", "path": "/metadata/resourceVersion",
         "value": deployment["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template",
         "value": template::without_hash(&rs["spec"]["template"])},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// Roll one Deployment back; the words kubectl prints after its name (with `--dry-run=client`
/// the template it would restore, hash label and all, as kubectl prints it).
async fn undo_one(
    ctx: &Ctx,
    object: &Named<'_>,
    to: i64,
    dry_run: DryRun,
) -> anyhow::Result<String> {
    let deployment = object.get(ctx).await?;
    if !is_deployment(object) {
        let kind = group_kind(object.resource);
        anyhow::bail!("no rollbacker has been implemented for {kind:?}");
    }
    let rs = choose(&revisions(ctx, &deployment).await?, to, &object.name)?;
    if dry_run == DryRun::Client {
        return describe_template(&rs["spec"]["template"]);
    }
    if deployment["spec"]["paused"] == true {
        anyhow::bail!(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
        );
    }
    let current = &deployment["spec"]["template"];
    if template::equal_ignore_hash(&rs["spec"]["template"], current) {
        return Ok(format!(
            "skipped rollback (current template already matches revision {to})"
        ));
    }
    let patch = undo_patch(&deployment, &rs);
    let url = match dry_run {
        DryRun::Server => format!("{}?dryRun=All", object.url()),
        _ => object.url(),
    };
    let req = http::Request::patch(url)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(serde_json::to_vec(&patch)?)?;
    if let Err(e) = send(ctx, req).await {
        let why = match e {
            kube::Error::Api(s) => s.message,
            other => other.to_string(),
        };
        anyhow::bail!("failed restoring revision {to}: {why}");
    }
    Ok("rolled back".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(revision: i64, cause: Option<&str>, image: &str) -> Value {
        let mut annotations = json!({REVISION: revision.to_string()});
        if let Some(c) = cause {
            annotations[CHANGE_CAUSE] = json!(c);
        }
        json!({
            "metadata": {"name": format!("web-{revision}"), "annotations": annotations},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{revision}")}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            }},
        })
    }

    fn history(items: &[Value]) -> BTreeMap<i64, Value> {
        items
            .iter()
            .map(|rs| (revision_of(rs).unwrap(), rs.clone()))
            .collect()
    }

    #[test]
    fn the_history_table_is_aligned_like_tabwriter() {
        let h = history(&[rs(2, Some("kubectl set image"), "b"), rs(1, None, "a")]);
        assert_eq!(
            history_table(&h),
            "REVISION  CHANGE-CAUSE\n1         <none>\n2         kubectl set image\n"
        );
        let long = history(&[rs(1234567890, None, "a")]);
        assert_eq!(
            history_table(&long),
            "REVISION    CHANGE-CAUSE\n1234567890  <none>\n"
        );
        assert_eq!(history_table(&BTreeMap::new()), "No rollout history found.");
    }

    #[test]
    fn selectors_select_as_gos_do() {
        let labels = json!({"app": "web", "tier": "front"});
        let sel = |s: Value| selects(&s, &labels);
        assert!(sel(json!({"matchLabels": {"app": "web"}})));
        assert!(!sel(json!({"matchLabels": {"app": "db"}})));
        assert!(sel(json!({})));
        assert!(!sel(Value::Null));
        let expr = |op: &str, key: &str, values: Value| {
            sel(json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]}))
        };
        assert!(expr("In", "tier", json!(["front", "back"])));
        assert!(!expr("In", "zone", json!(["a"])));
        assert!(expr("NotIn", "tier", json!(["back"])));
        assert!(expr("NotIn", "zone", json!(["a"])));
        assert!(expr("Exists", "app", Value::Null));
        assert!(!expr("DoesNotExist", "app", Value::Null));
        assert!(expr("DoesNotExist", "zone", Value::Null));
    }

    #[test]
    fn revisions_are_read_from_the_annotation() {
        assert_eq!(revision_of(&rs(3, None, "a")), Some(3));
        assert_eq!(revision_of(&json!({"metadata": {}})), Some(0));
        let bad = json!({"metadata": {"annotations": {REVISION: "x"}}});
        assert_eq!(revision_of(&bad), None);
    }

    #[test]
    fn undo_chooses_the_previous_revision_or_the_one_asked_for() {
        let h = history(&[rs(1, None, "a"), rs(2, None, "b"), rs(3, None, "c")]);
        assert_eq!(choose(&h, 0, "web").unwrap()["metadata"]["name"], "web-2");
        assert_eq!(choose(&h, 1, "web").unwrap()["metadata"]["name"], "web-1");
        let err = choose(&h, 7, "web").unwrap_err().to_string();
        assert_eq!(err, "unable to find specified revision 7 in history");
        let one = history(&[rs(1, None, "a")]);
        let err = choose(&one, 0, "web").unwrap_err().to_string();
        assert_eq!(err, "no rollout history found for deployment \"web\"");
    }

    #[test]
    fn the_undo_patch_restores_the_template_without_the_hash() {
        let deployment = json!({"metadata": {"resourceVersion": "9", "annotations": {
            REVISION: "3", "note": "dropped"}}});
        let patch = undo_patch(&deployment, &rs(1, Some("first"), "a"));
        assert_eq!(patch[0]["value"], "9");
        assert_eq!(
            patch[1]["value"]["metadata"]["labels"],
            json!({"app": "web"})
        );
        assert_eq!(
            patch[2]["value"],
            json!({REVISION: "3", CHANGE_CAUSE: "first"})
        );
    }

    #[test]
    fn a_revision_shows_its_change_cause_in_the_template() {
        let t = revision_template(&rs(2, Some("why"), "b"));
        assert_eq!(t["metadata"]["annotations"][CHANGE_CAUSE], "why");
        let t = revision_template(&rs(1, None, "a"));
        assert!(t["metadata"]["annotations"].is_null());
    }
}
