//! `describe namespace`, and the generic page for every kind without a describer of its own.
//!
//! A Namespace's page is short: its phase (`Active`, or `Terminating` while its objects are
//! deleted) and the ResourceQuotas and LimitRanges that bound what its pods may ask for, when
//! the server serves those. It has no Events section, as in kubectl.
//!
//! Any other kind (a Lease, an Event, a custom resource) gets kubectl's *generic* describer:
//! name, namespace, labels, annotations, then every other field of the object as an indented
//! `Key: value` tree, keys sorted and spelled as a person would (`apiVersion` → `API
//! Version`, `holderIdentity` → `Holder Identity`), and the object's Events.
//! Read next: `mod.rs`, which picks the describer for a kind.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::Api;
use serde_json::{Map, Value};

use super::text::{self, annotations, labels, Page};
use crate::commands::events;
use crate::commands::get::get_json;
use crate::commands::Ctx;
use crate::discovery::Resource;

/// Fields the generic page shows in its header, or never.
const SKIPPED: [&str; 5] = [
    ".metadata.managedFields",
    ".metadata.name",
    ".metadata.namespace",
    ".metadata.labels",
    ".metadata.annotations",
];

/// Fetch a Namespace and whether its quotas and limit ranges are served; describe it.
pub async fn namespace(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let ns = Api::<Namespace>::all(ctx.client.clone()).get(name).await?;
    let quotas = served_list(ctx, &format!("/api/v1/namespaces/{name}/resourcequotas")).await?;
    let limits = served_list(ctx, &format!("/api/v1/namespaces/{name}/limitranges")).await?;
    Ok(describe_namespace(&ns, quotas, limits))
}

/// The items of a list, or `None` when the server does not serve the resource.
async fn served_list(ctx: &Ctx, path: &str) -> anyhow::Result<Option<Vec<Value>>> {
    match get_json(ctx, path, false).await {
        Ok(v) => Ok(Some(v["items"].as_array().cloned().unwrap_or_default())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The description of a Namespace; `quotas` and `limits` are `None` when not served.
pub fn describe_namespace(
    ns: &Namespace,
    quotas: Option<Vec<Value>>,
    limits: Option<Vec<Value>>,
) -> String {
    let mut w = Page::default();
    let meta = &ns.metadata;
    w.w(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    let status = ns.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or_default();
    w.w(0, &format!("Status:\t{phase}\n"));
    if let Some(conditions) = status.conditions.filter(|c| !c.is_empty()) {
        w.w(0, "Conditions:\n");
        w.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        w.w(1, "----\t------\t------------------\t------\t-------\n");
        for c in &conditions {
            w.w(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    c.type_,
                    c.status,
                    text::time(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(quotas) = quotas {
        w.w(0, "\n");
        resource_quotas(&mut w, &quotas);
    }
    if let Some(limits) = limits {
        w.w(0, "\n");
        if limits.is_empty() {
            w.w(0, "No LimitRange resource.\n");
        } else {
            w.w(0, "Resource Limits\n");
            for l in &limits {
                let name = l["metadata"]["name"].as_str().unwrap_or_default();
                w.w(1, &format!("Name:\t{name}\n"));
            }
        }
    }
    w.finish()
}

/// `Resource Quotas`, each with its used and hard amounts (`DescribeResourceQuotas`).
fn resource_quotas(w: &mut Page, quotas: &[Value]) {
    if quotas.is_empty() {
        w.w(0, "No resource quota.\n");
        return;
    }
    let mut quotas: Vec<&Value> = quotas.iter().collect();
    quotas.sort_by_key(|q| {
        q["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    w.w(0, "Resource Quotas\n");
    for q in quotas {
        let name = q["metadata"]["name"].as_str().unwrap_or_default();
        w.w(1, &format!("Name:\t{name}\n"));
        w.w(1, "Resource\tUsed\tHard\n");
        w.w(1, "--------\t---\t---\n");
        let empty = Map::new();
        let hard = q["status"]["hard"].as_object().unwrap_or(&empty);
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for r in names {
            let s = |v: &Value| v.as_str().unwrap_or("0").to_string();
            let used = s(&q["status"]["used"][r]);
            w.w(1, &format!("{r}\t{used}\t{}\n", s(&hard[r])));
        }
    }
}

/// Fetch any object and its events; describe it generically.
pub async fn generic(
    ctx: &Ctx,
    resource: &Resource,
    ns: Option<&str>,
    name: &str,
    show_events: bool,
) -> anyhow::Result<String> {
    let url = format!("{}/{name}", resource.url(ns));
    let obj = get_json(ctx, &url, false).await?;
    let uid = obj["metadata"]["uid"].as_str();
    let kind = Some(resource.kind.as_str());
    let evs = match show_events {
        true => Some(events::about(ctx, ns.unwrap_or_default(), name, kind, uid).await),
        false => None,
    };
    Ok(describe_generic(&obj, evs, Timestamp::now()))
}

/// kubectl's generic page: the header, the object's fields as a tree, its events.
pub fn describe_generic(obj: &Value, mut evs: Option<Vec<Event>>, now: Timestamp) -> String {
    let mut w = Page::default();
    let meta = &obj["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    w.w(0, &format!("Name:\t{}\n", s(&meta["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(&meta["namespace"])));
    let map = |v: &Value| serde_json::from_value(v.clone()).ok();
    labels(&mut w, "Labels", map(&meta["labels"]).as_ref());
    annotations(&mut w, "Annotations", map(&meta["annotations"]).as_ref());
    if let Value::Object(content) = obj {
        tree(&mut w, 0, content, "");
    }
    text::events(&mut w, evs.as_deref_mut(), now);
    w.finish()
}

/// `printUnstructuredContent`: fields sorted, maps and lists one level deeper.
fn tree(w: &mut Page, level: usize, content: &Map<String, Value>, prefix: &str) {
    let mut keys: Vec<&String> = content.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!("{prefix}.{key}");
        if SKIPPED.contains(&path.as_str()) {
            continue;
        }
        match &content[key] {
            Value::Object(m) => {
                w.w(level, &format!("{}:\n", smart_label(key)));
                tree(w, level + 1, m, &path);
            }
            Value::Array(items) => {
                w.w(level, &format!("{}:\n", smart_label(key)));
                for item in items {
                    match item {
                        Value::Object(m) => tree(w, level + 1, m, &path),
                        other => w.w(level + 1, &format!("{}\n", go_value(other))),
                    }
                }
            }
            other => w.w(
                level,
                &format!("{}:\t{}\n", smart_label(key), go_value(other)),
            ),
        }
    }
}

/// A JSON value as Go's `%v` prints it once decoded into `interface{}`.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&m[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

/// kubectl's `smartLabelFor`: `apiVersion` → `API Version`, `podIP` → `Pod IP`; a field with
/// characters other than letters and `-` as it is.
fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            if ACRONYMS.contains(&p.to_uppercase().as_str()) {
                p.to_uppercase()
            } else {
                title(&p)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `strings.Title` for one word: its first letter upper case.
fn title(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// fatih/camelcase's `Split`: runs of lower, upper, digit and other characters, where an
/// upper-case run followed by lower case gives its last letter to the next word
/// (`PDFLoader` → `PDF`, `Loader`).
fn camel_split(s: &str) -> Vec<String> {
    let class = |c: char| match () {
        _ if c.is_lowercase() => 1,
        _ if c.is_uppercase() => 2,
        _ if c.is_numeric() => 3,
        _ => 4,
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = 0;
    for c in s.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(run) if k == last => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = k;
    }
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i][0].is_uppercase() && runs[i + 1][0].is_lowercase() {
            if let Some(c) = runs[i].pop() {
                runs[i + 1].insert(0, c);
            }
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_spelled_out() {
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("holderIdentity"), "Holder Identity");
        assert_eq!(smart_label("uid"), "UID");
        assert_eq!(smart_label("podIP"), "Pod IP");
        assert_eq!(smart_label("v1"), "v1");
        assert_eq!(camel_split("PDFLoader"), ["PDF", "Loader"]);
    }

    #[test]
    fn the_tree_is_sorted_and_nested() {
        let obj = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "uid": "u"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}
        });
        let page = describe_generic(&obj, Some(Vec::new()), Timestamp::now());
        assert_eq!(
            page,
            "Name:         n1\nNamespace:    kube-node-lease\nLabels:       <none>\n\
             Annotations:  <none>\nAPI Version:  coordination.k8s.io/v1\nKind:         Lease\n\
             Metadata:\n  UID:  u\nSpec:\n  Holder Identity:         n1\n\
             \x20 Lease Duration Seconds:  40\nEvents:                    <none>\n"
        );
    }
}
