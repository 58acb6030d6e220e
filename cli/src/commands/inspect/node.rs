//! `minikctl inspect node NAME`: a node as the scheduler weighs it and as its kubelet runs it.
//!
//! The API holds what the control plane knows: the Node's conditions and taints (what keeps
//! pods off it), its allocatable resources, and its Lease in `kube-node-lease`, whose renewal
//! is the node's heartbeat (a silent Lease turns the node `Ready=Unknown`). The kubelet
//! (`/inspect/node`) adds what only the node knows: the requests of the pods it runs summed
//! against allocatable, and the images in its runtime. Read next: `pod.rs`.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use serde_json::{json, Value};

use crate::printer::emit;
use crate::printer::style::emit_keyed;

use super::{aligned, bytes, field, kubelet_get, Ctx, Format};

/// Fetch the Node, its Lease and the kubelet's view; print them.
pub(super) async fn run(ctx: &Ctx, name: &str, output: Option<Format>) -> anyhow::Result<()> {
    let n = Api::<Node>::all(ctx.client.clone()).get(name).await?;
    let lease = Api::<Lease>::namespaced(ctx.client.clone(), "kube-node-lease")
        .get_opt(name)
        .await?;
    let kubelet = kubelet_get(ctx, name, "/inspect/node").await?;
    let renewed = lease.and_then(|l| l.spec?.renew_time).map(|t| t.0);
    let age = renewed.map(|t| (jiff::Timestamp::now() - t).get_milliseconds() / 1000);
    let status = n.status.unwrap_or_default();
    let api = json!({
        "etcdKey": format!("/registry/minions/{name}"),
        "resourceVersion": n.metadata.resource_version,
        "leaseRenewedSecondsAgo": age,
        "conditions": status.conditions,
        "taints": n.spec.and_then(|s| s.taints),
        "allocatable": status.allocatable,
    });
    match output {
        Some(Format::Json) => {
            let mut v = kubelet;
            v["api"] = api;
            emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        }
        None => emit_keyed(&node_text(name, &api, &kubelet))?,
    }
    Ok(())
}

/// The text view: the API's facts, the resources, the pods, the images.
fn node_text(name: &str, api: &Value, k: &Value) -> String {
    let mut out = field("Node", name);
    out.push_str(&health_text(name, api));
    out.push_str(&resources_text(&k["allocatable"], &k["requested"]));
    out.push_str("\nPods:\n");
    out.push_str(&pods_text(&k["pods"]));
    out.push_str(&images_text(&k["runtime"]));
    out
}

/// Lease age, conditions, taints: what the control plane thinks of the node.
fn health_text(name: &str, api: &Value) -> String {
    let lease = match api["leaseRenewedSecondsAgo"].as_i64() {
        Some(s) => format!("renewed {s}s ago (kube-node-lease/{name})"),
        None => "none".into(),
    };
    let mut out = field("Lease", &lease);
    let conds: Vec<String> = api["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({})",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.push_str(&field("Conditions", &conds.join(", ")));
    let taints: Vec<String> = api["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(taint)
        .collect();
    out.push_str(&field(
        "Taints",
        &if taints.is_empty() {
            "<none>".into()
        } else {
            taints.join(", ")
        },
    ));
    out
}

/// `key=value:Effect`, as `kubectl describe node` writes a taint.
fn taint(t: &Value) -> String {
    let value = t["value"]
        .as_str()
        .map(|v| format!("={v}"))
        .unwrap_or_default();
    format!(
        "{}{value}:{}",
        t["key"].as_str().unwrap_or("?"),
        t["effect"].as_str().unwrap_or("?")
    )
}

/// `123m`: CPU in millicores.
fn millis(v: &Value) -> String {
    format!("{}m", v.as_i64().unwrap_or(0))
}

fn mem(v: &Value) -> String {
    bytes(v.as_i64().unwrap_or(0))
}

/// Allocatable, then the pods' requests with their share of it.
fn resources_text(a: &Value, r: &Value) -> String {
    let pct = |key: &str| {
        let (used, total) = (r[key].as_i64().unwrap_or(0), a[key].as_i64().unwrap_or(0));
        if total > 0 {
            format!(" ({}%)", used * 100 / total)
        } else {
            String::new()
        }
    };
    let mut out = field(
        "Allocatable",
        &format!(
            "cpu {}, memory {}, pods {}",
            millis(&a["cpuMillis"]),
            mem(&a["memoryBytes"]),
            a["pods"]
        ),
    );
    out.push_str(&field(
        "Requested",
        &format!(
            "cpu {}{}, memory {}{}, pods {}{}",
            millis(&r["cpuMillis"]),
            pct("cpuMillis"),
            mem(&r["memoryBytes"]),
            pct("memoryBytes"),
            r["pods"],
            pct("pods")
        ),
    ));
    out
}

/// The node's pods with their requests, as a table.
fn pods_text(pods: &Value) -> String {
    let mut rows = vec![[
        "NAMESPACE",
        "NAME",
        "PHASE",
        "CPU REQUESTS",
        "MEMORY REQUESTS",
    ]
    .map(String::from)
    .to_vec()];
    for p in pods.as_array().into_iter().flatten() {
        rows.push(vec![
            p["namespace"].as_str().unwrap_or("").to_string(),
            p["name"].as_str().unwrap_or("").to_string(),
            p["phase"].as_str().unwrap_or("Pending").to_string(),
            millis(&p["cpuMillis"]),
            mem(&p["memoryBytes"]),
        ]);
    }
    aligned(&rows)
}

/// The runtime's images and how many sandboxes and containers it holds.
fn images_text(rt: &Value) -> String {
    let mut out = format!(
        "\nImages ({} sandboxes, {} containers in the runtime):\n",
        rt["sandboxes"], rt["containers"]
    );
    let images: Vec<Vec<String>> = rt["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            vec![
                format!("  {}", i["name"].as_str().unwrap_or("?")),
                i["manifest"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    out.push_str(&aligned(&images));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_view_weighs_requests_against_allocatable() {
        let api = json!({"leaseRenewedSecondsAgo": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]});
        let k = json!({"allocatable": {"cpuMillis": 2000, "memoryBytes": 1073741824u64, "pods": 110},
            "requested": {"cpuMillis": 500, "memoryBytes": 67108864, "pods": 1},
            "pods": [{"namespace": "default", "name": "web", "phase": "Running",
                      "cpuMillis": 500, "memoryBytes": 67108864}],
            "runtime": {"sandboxes": 1, "containers": 1,
                        "images": [{"name": "busybox:latest", "manifest": "sha256:ab"}]}});
        let text = node_text("n1", &api, &k);
        for want in [
            "renewed 2s ago (kube-node-lease/n1)",
            "Ready=True (KubeletReady)",
            "k=v:NoSchedule",
            "cpu 2000m, memory 1Gi, pods 110",
            "cpu 500m (25%), memory 64Mi (6%), pods 1 (0%)",
            "busybox:latest",
            "1 sandboxes, 1 containers",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert!(text
            .lines()
            .any(|l| l.starts_with("default") && l.contains("web")));
    }
}
