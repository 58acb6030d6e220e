//! `describe deployment` and `describe replicaset`: a controller, its pod template and the
//! objects it made.
//!
//! A Deployment does not make pods: it makes one ReplicaSet per version of its pod template
//! (named after the template's hash, `web-5d4f…`) and scales them, so a rollout is the new
//! ReplicaSet growing while the old ones shrink. The page shows the spec (replicas, strategy:
//! `RollingUpdate` with its max unavailable and max surge, or `Recreate`), the status counts
//! (`3 desired | 3 updated | 3 total | 3 available | 0 unavailable`), the pod template, and
//! which ReplicaSet is new (its template equals the Deployment's, the hash label aside, as
//! `rollout/template.rs` compares them) and which are old. A ReplicaSet's page counts its
//! pods by phase instead. Read next: `node.rs`.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::containers::containers;
use super::pod::volumes;
use super::text::{self, annotations, labels, tolerations, Page};
use crate::commands::events;
use crate::commands::rollout::template::equal_ignore_hash;
use crate::commands::Ctx;

/// Fetch a Deployment, its ReplicaSets and events; describe it.
pub async fn deployment(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    show_events: bool,
) -> anyhow::Result<String> {
    let d = Api::<Deployment>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await?;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut evs = match show_events {
        true => Some(events::about(ctx, ns, name, Some("Deployment"), Some(&uid)).await),
        false => None,
    };
    let selector = d.spec.as_ref().map(|s| selector_string(&s.selector));
    let rs_api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns);
    let owned: Vec<ReplicaSet> = match rs_api
        .list(&ListParams::default().labels(selector.as_deref().unwrap_or_default()))
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|rs| controller_uid(&rs.metadata) == Some(uid.as_str()))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(describe_deployment(
        &d,
        &owned,
        evs.as_deref_mut(),
        Timestamp::now(),
    ))
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
fn controller_uid(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The description of Deployment `d`, whose ReplicaSets are `owned`.
pub fn describe_deployment(
    d: &Deployment,
    owned: &[ReplicaSet],
    evs: Option<&mut [Event]>,
    now: Timestamp,
) -> String {
    let mut w = Page::default();
    let meta = &d.metadata;
    let spec = d.spec.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    w.w(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    let ns = meta.namespace.as_deref().unwrap_or_default();
    w.w(0, &format!("Namespace:\t{ns}\n"));
    let created = text::time(meta.creation_timestamp.as_ref());
    w.w(0, &format!("CreationTimestamp:\t{created}\n"));
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    w.w(
        0,
        &format!("Selector:\t{}\n", selector_string(&spec.selector)),
    );
    w.w(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            spec.replicas.unwrap_or(1),
            st.updated_replicas.unwrap_or(0),
            st.replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
            st.unavailable_replicas.unwrap_or(0)
        ),
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let kind = strategy.type_.as_deref().unwrap_or_default();
    w.w(0, &format!("StrategyType:\t{kind}\n"));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    w.w(0, &format!("MinReadySeconds:\t{min_ready}\n"));
    if let Some(ru) = &strategy.rolling_update {
        let s = |v: &Option<IntOrString>| match v {
            Some(IntOrString::Int(i)) => i.to_string(),
            Some(IntOrString::String(s)) => s.clone(),
            None => "<nil>".to_string(),
        };
        w.w(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                s(&ru.max_unavailable),
                s(&ru.max_surge)
            ),
        );
    }
    pod_template(&mut w, &spec.template);
    let conditions = st.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.w(1, "----\t------\t------\n");
        for c in &conditions {
            let reason = c.reason.as_deref().unwrap_or_default();
            w.w(1, &format!("{} \t{}\t{reason}\n", c.type_, c.status));
        }
    }
    if !owned.is_empty() {
        let (old, new) = split_replica_sets(&spec.template, owned);
        w.w(
            0,
            &format!("OldReplicaSets:\t{}\n", replica_sets_line(&old)),
        );
        w.w(0, &format!("NewReplicaSet:\t{}\n", replica_sets_line(&new)));
    }
    text::events(&mut w, evs, now);
    w.finish()
}

/// The new ReplicaSet (the oldest whose template equals `template`, the hash label aside)
/// and the old ones, in list order.
fn split_replica_sets<'a>(
    template: &PodTemplateSpec,
    owned: &'a [ReplicaSet],
) -> (Vec<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    let want = as_json(template);
    let mut by_age: Vec<&ReplicaSet> = owned.iter().collect();
    by_age.sort_by(|a, b| {
        let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let new = by_age.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(&as_json(t), &want))
    });
    let new_uid = new.and_then(|rs| rs.metadata.uid.clone());
    let old = owned
        .iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .collect();
    (old, new.into_iter().collect())
}

/// A template as the JSON the comparison reads.
fn as_json(t: &PodTemplateSpec) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

/// `web-5d4f (3/3 replicas created), ...`, or `<none>`.
fn replica_sets_line(list: &[&ReplicaSet]) -> String {
    if list.is_empty() {
        return "<none>".into();
    }
    list.iter()
        .map(|rs| {
            let current = rs.status.as_ref().map_or(0, |s| s.replicas);
            let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            format!("{name} ({current}/{desired} replicas created)")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A label selector as `labels.Selector.String()` prints it: requirements sorted by key,
/// `app=web,tier in (a,b),!gone`.
pub fn selector_string(s: &LabelSelector) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in s.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({})", e.key, values.join(",")),
        };
        reqs.push((e.key.clone(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `Pod Template:` and the template's labels, containers, volumes (`DescribePodTemplate`).
pub fn pod_template(w: &mut Page, t: &PodTemplateSpec) {
    w.w(0, "Pod Template:\n");
    let meta = t.metadata.clone().unwrap_or_default();
    let spec = t.spec.clone().unwrap_or_default();
    labels(w, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations(w, "  Annotations", meta.annotations.as_ref());
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w.w(1, &format!("Service Account:\t{sa}\n"));
    }
    if let Some(init) = spec.init_containers.as_ref().filter(|c| !c.is_empty()) {
        containers(w, "Init Containers", init, None, None, "  ");
    }
    containers(w, "Containers", &spec.containers, None, None, "  ");
    volumes(w, spec.volumes.as_deref().unwrap_or_default(), "  ");
    if let Some(p) = spec
        .priority_class_name
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        w.w(1, &format!("Priority Class Name:\t{p}\n"));
    }
    labels(w, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations(w, "  Tolerations", spec.tolerations.as_ref());
}

/// Fetch a ReplicaSet, count its pods by phase, fetch its events; describe it.
pub async fn replica_set(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    show_events: bool,
) -> anyhow::Result<String> {
    let rs = Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await?;
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let selector = rs.spec.as_ref().map(|s| selector_string(&s.selector));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(selector.as_deref().unwrap_or_default()))
        .await;
    let counts = pods.map(|list| {
        let mut counts = [0usize; 4];
        let mine = list
            .items
            .iter()
            .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()));
        for p in mine {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            let i = ["Running", "Pending", "Succeeded", "Failed"]
                .iter()
                .position(|x| Some(*x) == phase);
            if let Some(i) = i {
                counts[i] += 1;
            }
        }
        counts
    });
    let mut evs = match show_events {
        true => Some(events::about(ctx, ns, name, Some("ReplicaSet"), Some(&uid)).await),
        false => None,
    };
    let pods_line = match counts {
        Ok([r, w, s, f]) => format!("{r} Running / {w} Waiting / {s} Succeeded / {f} Failed"),
        Err(e) => format!("error in fetching pods: {e}"),
    };
    Ok(describe_replica_set(
        &rs,
        &pods_line,
        evs.as_deref_mut(),
        Timestamp::now(),
    ))
}

/// The description of ReplicaSet `rs`; `pods` is its `Pods Status:` line.
pub fn describe_replica_set(
    rs: &ReplicaSet,
    pods: &str,
    evs: Option<&mut [Event]>,
    now: Timestamp,
) -> String {
    let mut w = Page::default();
    let meta = &rs.metadata;
    let spec = rs.spec.clone().unwrap_or_default();
    w.w(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    let ns = meta.namespace.as_deref().unwrap_or_default();
    w.w(0, &format!("Namespace:\t{ns}\n"));
    let selector = selector_string(&spec.selector);
    let selector = if selector.is_empty() {
        "<none>".into()
    } else {
        selector
    };
    w.w(0, &format!("Selector:\t{selector}\n"));
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    if let Some(c) = text::controlled_by(meta) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    let current = rs.status.as_ref().map_or(0, |s| s.replicas);
    let desired = spec.replicas.unwrap_or(1);
    w.w(
        0,
        &format!("Replicas:\t{current} current / {desired} desired\n"),
    );
    w.w(0, &format!("Pods Status:\t{pods}\n"));
    pod_template(&mut w, &spec.template.clone().unwrap_or_default());
    let conditions = rs.status.as_ref().and_then(|s| s.conditions.clone());
    if let Some(conditions) = conditions.filter(|c| !c.is_empty()) {
        w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.w(1, "----\t------\t------\n");
        for c in &conditions {
            let reason = c.reason.as_deref().unwrap_or_default();
            w.w(1, &format!("{} \t{}\t{reason}\n", c.type_, c.status));
        }
    }
    text::events(&mut w, evs, now);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::rollout::template::POD_TEMPLATE_HASH;

    #[test]
    fn selectors_print_sorted() {
        let s: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]
        }))
        .unwrap();
        assert_eq!(selector_string(&s), "app=web,env in (dev,prod),tier=front");
    }

    #[test]
    fn the_new_replica_set_has_the_deployments_template_but_the_hash() {
        let template = |image: &str, hash: Option<&str>| {
            let mut labels = serde_json::json!({"app": "web"});
            if let Some(h) = hash {
                labels[POD_TEMPLATE_HASH] = h.into();
            }
            serde_json::json!({"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image}]}})
        };
        let rs = |name: &str, image: &str| -> ReplicaSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "uid": name},
                "spec": {"selector": {}, "template": template(image, Some(name))},
            }))
            .unwrap()
        };
        let owned = [rs("old", "busybox:1.35"), rs("new", "busybox:1.36")];
        let want = serde_json::from_value(template("busybox:1.36", None)).unwrap();
        let (old, new) = split_replica_sets(&want, &owned);
        let names = |l: Vec<&ReplicaSet>| -> Vec<String> {
            l.iter().map(|r| r.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(
            (names(old), names(new)),
            (vec!["old".into()], vec!["new".into()])
        );
    }

    /// The block as `rollout history --revision=N` prints it: tabs kept.
    fn template_block(t: serde_json::Value) -> String {
        let mut w = Page::default();
        pod_template(&mut w, &serde_json::from_value(t).unwrap());
        w.unaligned()
    }

    #[test]
    fn describes_a_template_as_kubectl_does() {
        let t = serde_json::json!({
            "metadata": {
                "labels": {"app": "web", POD_TEMPLATE_HASH: "abc"},
                "annotations": {"kubernetes.io/change-cause": "set image",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
            "spec": {"containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
            }], "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "nfs", "nfs": {
                "server": "s", "path": "/"}}]},
        });
        let want = "Pod Template:\n\
            \x20 Labels:\tapp=web\n\tpod-template-hash=abc\n\
            \x20 Annotations:\tkubernetes.io/change-cause: set image\n\
            \x20 Containers:\n\
            \x20  main:\n\
            \x20   Image:\tbusybox:1.36\n\
            \x20   Port:\t80/TCP\n\
            \x20   Host Port:\t0/TCP\n\
            \x20   Command:\n\
            \x20     sleep\n\
            \x20     3600\n\
            \x20   Environment:\n\
            \x20     A:\t1\n\
            \x20   Mounts:\n\
            \x20     /data from scratch (rw)\n\
            \x20 Volumes:\n\
            \x20  scratch:\n\
            \x20   Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n\
            \x20   Medium:\t\n\
            \x20   SizeLimit:\t<unset>\n\
            \x20  nfs:\n\
            \x20 <unknown>\n\
            \x20 Node-Selectors:\t<none>\n\
            \x20 Tolerations:\t<none>\n";
        assert_eq!(template_block(t), want);
    }

    #[test]
    fn describes_empty_parts_with_none() {
        assert_eq!(
            template_block(serde_json::json!({"metadata": {}, "spec": {"containers": []}})),
            "Pod Template:\n  Labels:\t<none>\n  Containers: <none>\n  Volumes:\t<none>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
    }
}
