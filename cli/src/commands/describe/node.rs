//! `describe node`: a node's health, size and load, as kubectl prints it.
//!
//! A node reports *conditions* (Ready, MemoryPressure, DiskPressure, PIDPressure), each with
//! the last heartbeat and the last change; its *capacity* (what the machine has) and
//! *allocatable* (what is left for pods once the system's reserve is taken); and renews a
//! Lease in `kube-node-lease` every few seconds, which is how the control plane knows it is
//! alive. The scheduler places pods by their *requests* against allocatable, never by real
//! usage: so the page lists the node's non-terminated pods with their requests and limits
//! as a share of allocatable, and the totals under `Allocated resources` (limits may pass
//! 100%: overcommitment). Read next: `generic.rs`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};

use super::text::{self, annotations, labels, taints, Page};
use crate::commands::events::{self, since};
use crate::commands::Ctx;
use client::quantity::Quantity as Amount;

/// Requests or limits per resource name, added up.
type Totals = BTreeMap<String, Amount>;

/// What the page shows besides the Node itself.
pub struct NodeExtras {
    /// Its pods that are neither Succeeded nor Failed.
    pub pods: Vec<Pod>,
    /// The Lease, or why it could not be read.
    pub lease: Result<Lease, String>,
    /// `None` with `--show-events=false`.
    pub events: Option<Vec<Event>>,
}

/// Fetch a Node, its Lease, its pods and events; describe it.
pub async fn node(ctx: &Ctx, name: &str, show_events: bool) -> anyhow::Result<String> {
    let node = Api::<Node>::all(ctx.client.clone()).get(name).await?;
    let fields = format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed");
    let pods = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default().fields(&fields))
        .await?
        .items;
    let lease = Api::<Lease>::namespaced(ctx.client.clone(), "kube-node-lease")
        .get(name)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => s.message,
            e => e.to_string(),
        });
    // Controllers name a node's events by its uid, kubelets by its name: both are asked.
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let mut evs = None;
    if show_events {
        let mut by_uid = events::about(ctx, "", name, Some("Node"), Some(&uid)).await;
        by_uid.extend(events::about(ctx, "", name, Some("Node"), Some(name)).await);
        evs = Some(by_uid);
    }
    let extras = NodeExtras {
        pods,
        lease,
        events: evs,
    };
    Ok(describe(&node, extras, Timestamp::now()))
}

/// The description of `node`.
pub fn describe(node: &Node, mut x: NodeExtras, now: Timestamp) -> String {
    let mut w = Page::default();
    let meta = &node.metadata;
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    w.w(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    w.w(0, &format!("Roles:\t{}\n", roles(meta.labels.as_ref())));
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    let created = text::time(meta.creation_timestamp.as_ref());
    w.w(0, &format!("CreationTimestamp:\t{created}\n"));
    taints(&mut w, "Taints", spec.taints.as_ref());
    let unschedulable = spec.unschedulable.unwrap_or(false);
    w.w(0, &format!("Unschedulable:\t{unschedulable}\n"));
    lease(&mut w, &x.lease);
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.w(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.w(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in &conditions {
            w.w(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    c.type_,
                    c.status,
                    text::time(c.last_heartbeat_time.as_ref()),
                    text::time(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    w.w(0, "Addresses:\n");
    for a in status.addresses.iter().flatten() {
        w.w(1, &format!("{}:\t{}\n", a.type_, a.address));
    }
    for (title, list) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            w.w(0, &format!("{title}:\n"));
            for (k, q) in list {
                w.w(0, &format!("  {k}:\t{}\n", text::quantity(q)));
            }
        }
    }
    system_info(&mut w, node);
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        w.w(0, &format!("PodCIDR:\t{cidr}\n"));
    }
    if let Some(cidrs) = spec.pod_cidrs.as_ref().filter(|c| !c.is_empty()) {
        w.w(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    if let Some(p) = spec.provider_id.as_deref().filter(|p| !p.is_empty()) {
        w.w(0, &format!("ProviderID:\t{p}\n"));
    }
    pods_and_allocation(&mut w, node, &x.pods, now);
    text::events(&mut w, x.events.as_deref_mut(), now);
    w.finish()
}

/// `control-plane,worker` from `node-role.kubernetes.io/*` and `kubernetes.io/role`.
fn roles(labels: Option<&BTreeMap<String, String>>) -> String {
    let mut roles: Vec<&str> = labels
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None => (k == "kubernetes.io/role" && !v.is_empty()).then_some(v.as_str()),
        })
        .collect();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// `Lease:` with its holder and times, or why it could not be read.
fn lease(w: &mut Page, lease: &Result<Lease, String>) {
    let l = match lease {
        Ok(l) => l,
        Err(e) => {
            w.w(0, &format!("Lease:\tFailed to get lease: {e}\n"));
            return;
        }
    };
    let spec = l.spec.clone().unwrap_or_default();
    w.w(0, "Lease:\n");
    let holder = spec.holder_identity.as_deref().unwrap_or("<unset>");
    w.w(1, &format!("HolderIdentity:\t{holder}\n"));
    for (title, t) in [
        ("AcquireTime", &spec.acquire_time),
        ("RenewTime", &spec.renew_time),
    ] {
        let t = t
            .as_ref()
            .map_or("<unset>".into(), |t| text::rfc1123z(&t.0));
        w.w(1, &format!("{title}:\t{t}\n"));
    }
}

/// `System Info:`, the kubelet's report of the machine.
fn system_info(w: &mut Page, node: &Node) {
    let i = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.clone())
        .unwrap_or_default();
    w.w(0, "System Info:\n");
    for (k, v) in [
        ("Machine ID", &i.machine_id),
        ("System UUID", &i.system_uuid),
        ("Boot ID", &i.boot_id),
        ("Kernel Version", &i.kernel_version),
        ("OS Image", &i.os_image),
        ("Operating System", &i.operating_system),
        ("Architecture", &i.architecture),
        ("Container Runtime Version", &i.container_runtime_version),
        ("Kubelet Version", &i.kubelet_version),
        ("Kube-Proxy Version", &i.kube_proxy_version),
    ] {
        w.w(0, &format!("  {k}:\t{v}\n"));
    }
}

/// `Non-terminated Pods:` with each pod's requests and limits, then `Allocated resources:`.
fn pods_and_allocation(w: &mut Page, node: &Node, pods: &[Pod], now: Timestamp) {
    let status = node.status.clone().unwrap_or_default();
    let allocatable: Totals = status
        .allocatable
        .filter(|a| !a.is_empty())
        .or(status.capacity)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, q)| Some((k.clone(), Amount::try_from(q).ok()?)))
        .collect();
    let (reqs, limits) = pods_table(w, &allocatable, pods, now);
    allocated(w, &allocatable, &reqs, &limits);
}

/// The amount kubectl divides by for `name`: millicores for CPU, whole units otherwise.
fn amount(t: &Totals, name: &str) -> i64 {
    t.get(name).map_or(0, |q| match name {
        "cpu" => q.millis(),
        _ => q.value(),
    })
}

/// The pod table; returns the pods' requests and limits added up.
fn pods_table(
    w: &mut Page,
    allocatable: &Totals,
    pods: &[Pod],
    now: Timestamp,
) -> (Totals, Totals) {
    w.w(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.w(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.w(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let (mut reqs, mut limits) = (Totals::new(), Totals::new());
    for p in pods {
        let (r, l) = pod_requests_and_limits(p);
        let cell = |t: &Totals, name: &str| {
            let pct = go_percent(amount(t, name), amount(allocatable, name));
            format!("{} ({pct}%)", show(t.get(name)))
        };
        let meta = &p.metadata;
        w.w(
            1,
            &format!(
                "{}\t{}\t\t{}\t{}\t{}\t{}\t{}\n",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                cell(&r, "cpu"),
                cell(&l, "cpu"),
                cell(&r, "memory"),
                cell(&l, "memory"),
                since(meta.creation_timestamp.as_ref().map(|t| t.0), now)
            ),
        );
        add_all(&mut reqs, &r);
        add_all(&mut limits, &l);
    }
    (reqs, limits)
}

/// `Allocated resources:`: the totals against allocatable for CPU, memory, ephemeral storage
/// and huge pages, then extended resources (GPUs and the like) without a share.
fn allocated(w: &mut Page, allocatable: &Totals, reqs: &Totals, limits: &Totals) {
    w.w(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    let standard = ["cpu", "memory", "ephemeral-storage"];
    let huge = allocatable.keys().filter(|k| k.starts_with("hugepages-"));
    for name in standard.map(String::from).iter().chain(huge) {
        let of = amount(allocatable, name);
        let total = |t: &Totals| {
            let pct = if of == 0 {
                0
            } else {
                go_percent(amount(t, name), of)
            };
            format!("{} ({pct}%)", show(t.get(name.as_str())))
        };
        w.w(1, &format!("{name}\t{}\t{}\n", total(reqs), total(limits)));
    }
    let extended = allocatable.keys().filter(|k| {
        !standard.contains(&k.as_str()) && k.as_str() != "pods" && !k.starts_with("hugepages-")
    });
    for ext in extended {
        let (r, l) = (show(reqs.get(ext)), show(limits.get(ext)));
        w.w(1, &format!("{ext}\t{r}\t{l}\n"));
    }
}

/// `Quantity.String()` of a total; `0` when there is none.
fn show(q: Option<&Amount>) -> String {
    q.map_or("0".into(), Amount::canonical)
}

/// Go's `int64(float64(v) / float64(of) * 100)`: truncated, and the minimum of an int64 for
/// a division by zero (what amd64 makes of Inf and NaN).
fn go_percent(v: i64, of: i64) -> i64 {
    let f = v as f64 / of as f64 * 100.0;
    if f.is_finite() {
        f as i64
    } else {
        i64::MIN
    }
}

/// `a + b`, in `a`'s format unless `a` is zero (apimachinery's `Quantity.Add`), at milli
/// precision (the apiserver rounds requests and limits to it).
fn add(a: Option<&Amount>, b: &Amount) -> Amount {
    let Some(a) = a else { return *b };
    let format = if a.is_zero() { b.format() } else { a.format() };
    Amount::new(i128::from(a.millis()) + i128::from(b.millis()), -3, format)
}

fn add_all(into: &mut Totals, from: &Totals) {
    for (k, q) in from {
        let sum = add(into.get(k), q);
        into.insert(k.clone(), sum);
    }
}

/// The larger of the two per resource (an init container runs alone, before the others).
fn max_all(into: &mut Totals, from: &Totals) {
    for (k, q) in from {
        match into.get(k) {
            Some(cur) if cur.compare(q).is_ge() => {}
            _ => {
                into.insert(k.clone(), *q);
            }
        }
    }
}

/// A pod's requests and limits (kubectl's `PodRequestsAndLimits`): its containers added up,
/// or its largest init container where that is more, plus the pod's overhead.
fn pod_requests_and_limits(p: &Pod) -> (Totals, Totals) {
    let spec = p.spec.clone().unwrap_or_default();
    let list = |c: &k8s_openapi::api::core::v1::Container, limits: bool| -> Totals {
        let r = c.resources.clone().unwrap_or_default();
        let l = if limits { r.limits } else { r.requests };
        l.unwrap_or_default()
            .iter()
            .filter_map(|(k, q)| Some((k.clone(), Amount::try_from(q).ok()?)))
            .collect()
    };
    let mut out = [Totals::new(), Totals::new()];
    for (i, limits) in [false, true].into_iter().enumerate() {
        for c in &spec.containers {
            add_all(&mut out[i], &list(c, limits));
        }
        let mut init = Totals::new();
        for c in spec.init_containers.iter().flatten() {
            max_all(&mut init, &list(c, limits));
        }
        max_all(&mut out[i], &init);
        if let Some(overhead) = &spec.overhead {
            let o: Totals = overhead
                .iter()
                .filter_map(|(k, q)| Some((k.clone(), Amount::try_from(q).ok()?)))
                .collect();
            add_all(&mut out[i], &o);
        }
    }
    let [r, l] = out;
    (r, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_truncate_like_go() {
        assert_eq!(go_percent(250, 2000), 12);
        assert_eq!(go_percent(1, 0), i64::MIN);
    }

    #[test]
    fn roles_come_from_labels() {
        let l: BTreeMap<String, String> = [
            ("node-role.kubernetes.io/control-plane", ""),
            ("kubernetes.io/role", "worker"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(roles(Some(&l)), "control-plane,worker");
        assert_eq!(roles(None), "<none>");
    }
}
