//! `describe pod`: everything about one pod on one page, as kubectl prints it.
//!
//! The page reads as the pod's life: where it is (`Node: name/hostIP`, `IP:`), who made it
//! (`Controlled By: ReplicaSet/web-5d4f`), its containers and their states, the pod's
//! *conditions* (PodScheduled → Initialized → ContainersReady → Ready, each True or False),
//! its volumes, its QoS class (Guaranteed when every container's requests equal its limits,
//! BestEffort when none has any, else Burstable), and at the bottom the Events that explain
//! most of what went wrong (`FailedScheduling`, `BackOff`). Events are found by the pod's
//! name, namespace and uid, so those of an earlier pod of the same name do not show.
//! Read next: `containers.rs`, then `workload.rs`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Pod, PodSpec, Volume};

use super::containers::containers;
use super::text::{self, annotations, labels, tolerations, Page};

/// The description of `pod` with its `events`.
pub fn describe(pod: &Pod, events: Option<&mut [Event]>, now: Timestamp) -> String {
    let mut w = Page::default();
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    w.w(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    let ns = meta.namespace.as_deref().unwrap_or_default();
    w.w(0, &format!("Namespace:\t{ns}\n"));
    header(&mut w, &spec);
    match spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        None => w.w(0, "Node:\t<none>\n"),
        Some(n) => {
            let host_ip = status.host_ip.as_deref().unwrap_or_default();
            w.w(0, &format!("Node:\t{n}/{host_ip}\n"));
        }
    }
    if let Some(t) = &status.start_time {
        w.w(0, &format!("Start Time:\t{}\n", text::rfc1123z(&t.0)));
    }
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    let phase = status.phase.as_deref().unwrap_or_default();
    match &meta.deletion_timestamp {
        Some(t) if phase != "Failed" && phase != "Succeeded" => {
            let since = crate::commands::events::since(Some(t.0), now);
            w.w(0, &format!("Status:\tTerminating (lasts {since})\n"));
            let grace = meta.deletion_grace_period_seconds.unwrap_or(0);
            w.w(0, &format!("Termination Grace Period:\t{grace}s\n"));
        }
        _ => w.w(0, &format!("Status:\t{phase}\n")),
    }
    for (title, v) in [("Reason", &status.reason), ("Message", &status.message)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            w.w(0, &format!("{title}:\t{v}\n"));
        }
    }
    network(&mut w, pod);
    body(&mut w, pod, &spec);
    text::events(&mut w, events, now);
    w.finish()
}

/// Priority, priority class, runtime class, service account: shown when set.
fn header(w: &mut Page, spec: &PodSpec) {
    if let Some(p) = spec.priority {
        w.w(0, &format!("Priority:\t{p}\n"));
    }
    let optional = [
        ("Priority Class Name", &spec.priority_class_name),
        ("Runtime Class Name", &spec.runtime_class_name),
        ("Service Account", &spec.service_account_name),
    ];
    for (title, v) in optional {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            w.w(0, &format!("{title}:\t{v}\n"));
        }
    }
}

/// Seccomp profile, `IP:`, `IPs:`, `Controlled By:`, `NominatedNodeName:`.
fn network(w: &mut Page, pod: &Pod) {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let seccomp = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if let Some(p) = seccomp {
        w.w(0, &format!("SeccompProfile:\t{}\n", p.type_));
        if p.type_ == "Localhost" {
            let profile = p.localhost_profile.as_deref().unwrap_or_default();
            w.w(0, &format!("LocalhostProfile:\t{profile}\n"));
        }
    }
    let ip = status.pod_ip.as_deref().unwrap_or_default();
    w.w(0, &format!("IP:\t{ip}\n"));
    match status.pod_ips.as_ref().filter(|ips| !ips.is_empty()) {
        None => w.w(0, "IPs:\t<none>\n"),
        Some(ips) => {
            w.w(0, "IPs:\n");
            for i in ips {
                w.w(1, &format!("IP:\t{}\n", i.ip));
            }
        }
    }
    if let Some(c) = text::controlled_by(&pod.metadata) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    if let Some(n) = status
        .nominated_node_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        w.w(0, &format!("NominatedNodeName:\t{n}\n"));
    }
}

/// Containers, readiness gates, conditions, volumes, QoS, node selectors, tolerations.
fn body(w: &mut Page, pod: &Pod, spec: &PodSpec) {
    let status = pod.status.clone().unwrap_or_default();
    if spec.resources.is_some() {
        w.w(0, "Resources:\n");
        text::resources(w, spec.resources.as_ref(), 1);
    }
    if let Some(init) = spec.init_containers.as_ref().filter(|c| !c.is_empty()) {
        let statuses = status.init_container_statuses.as_ref();
        containers(w, "Init Containers", init, statuses, Some(pod), "");
    }
    let statuses = status.container_statuses.as_ref();
    containers(w, "Containers", &spec.containers, statuses, Some(pod), "");
    let conditions = status.conditions.clone().unwrap_or_default();
    if let Some(gates) = spec.readiness_gates.as_ref().filter(|g| !g.is_empty()) {
        w.w(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let s = conditions
                .iter()
                .find(|c| c.type_ == g.condition_type)
                .map_or("<none>", |c| c.status.as_str());
            w.w(1, &format!("{} \t{s} \n", g.condition_type));
        }
    }
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in &conditions {
            w.w(1, &format!("{} \t{} \n", c.type_, c.status));
        }
    }
    volumes(w, spec.volumes.as_deref().unwrap_or_default(), "");
    let qos = status
        .qos_class
        .clone()
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| qos_class(spec).to_string());
    w.w(0, &format!("QoS Class:\t{qos}\n"));
    labels(w, "Node-Selectors", spec.node_selector.as_ref());
    tolerations(w, "Tolerations", spec.tolerations.as_ref());
}

/// kubectl's `ComputePodQOS`, for a pod whose status does not say.
fn qos_class(spec: &PodSpec) -> &'static str {
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = c.resources.clone().unwrap_or_default();
        let positive = |list: &Option<std::collections::BTreeMap<String, _>>, name: &str| {
            list.as_ref()
                .and_then(|l| l.get(name))
                .and_then(|q| client::quantity::Quantity::try_from(q).ok())
                .filter(|q| !q.is_zero() && !q.is_negative())
        };
        for name in ["cpu", "memory"] {
            let (req, lim) = (positive(&r.requests, name), positive(&r.limits, name));
            any |= req.is_some() || lim.is_some();
            match (req, lim) {
                (Some(req), Some(lim)) if req.compare(&lim).is_eq() => {}
                (None, Some(_)) => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// `Volumes:`, each with its source's kind and fields (`describeVolumes`).
pub fn volumes(w: &mut Page, list: &[Volume], space: &str) {
    if list.is_empty() {
        w.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.w(0, &format!("{space}Volumes:\n"));
    let indent = if space.is_empty() { "" } else { " " };
    for v in list {
        w.w(1, &format!("{indent}{}:\n", v.name));
        match volume_source(v) {
            Some(source) => w.w(2, &source),
            // kubectl's `default:` case writes at the name's level.
            None => w.w(1, "<unknown>\n"),
        }
    }
}

/// The lines of one volume's source, the first at level 2 (the caller's), the rest indented;
/// `None` for a kind of volume not described here.
fn volume_source(v: &Volume) -> Option<String> {
    if let Some(h) = &v.host_path {
        let t = h.type_.as_deref().unwrap_or("<none>");
        return Some(format!(
            "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{t}\n",
            h.path
        ));
    }
    if let Some(e) = &v.empty_dir {
        let medium = e.medium.as_deref().unwrap_or_default();
        let limit = e
            .size_limit
            .as_ref()
            .map(text::quantity)
            .filter(|q| q != "0" && !q.starts_with('-'))
            .unwrap_or_else(|| "<unset>".into());
        return Some(format!("Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{medium}\n    SizeLimit:\t{limit}\n"));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let optional = s.optional.unwrap_or(false);
        return Some(format!("Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{name}\n    Optional:\t{optional}\n"));
    }
    if let Some(c) = &v.config_map {
        let optional = c.optional.unwrap_or(false);
        return Some(format!("Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{optional}\n", c.name));
    }
    if let Some(c) = &v.persistent_volume_claim {
        let ro = c.read_only.unwrap_or(false);
        return Some(format!("Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{ro}\n", c.claim_name));
    }
    if let Some(d) = &v.downward_api {
        let mut s =
            "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n"
                .to_string();
        for item in d.items.iter().flatten() {
            if let Some(f) = &item.field_ref {
                s.push_str(&format!("      {} -> {}\n", f.field_path, item.path));
            }
            if let Some(r) = &item.resource_field_ref {
                s.push_str(&format!("      {} -> {}\n", r.resource, item.path));
            }
        }
        return Some(s);
    }
    v.projected.as_ref().map(projected)
}

/// A projected volume's sources (the service account token volume of every pod).
fn projected(p: &k8s_openapi::api::core::v1::ProjectedVolumeSource) -> String {
    let mut s = "Type:\tProjected (a volume that contains injected data from multiple sources)\n"
        .to_string();
    for src in p.sources.iter().flatten() {
        if let Some(sec) = &src.secret {
            s.push_str(&format!(
                "    SecretName:\t{}\n    SecretOptionalName:\t{}\n",
                sec.name,
                go_bool_ptr(sec.optional)
            ));
        } else if src.downward_api.is_some() {
            s.push_str("    DownwardAPI:\ttrue\n");
        } else if let Some(cm) = &src.config_map {
            s.push_str(&format!(
                "    ConfigMapName:\t{}\n    ConfigMapOptional:\t{}\n",
                cm.name,
                go_bool_ptr(cm.optional)
            ));
        } else if let Some(t) = &src.service_account_token {
            let secs = t.expiration_seconds.unwrap_or(0);
            s.push_str(&format!("    TokenExpirationSeconds:\t{secs}\n"));
        }
    }
    s
}

/// Go's `%v` of a `*bool`: `<nil>` when unset; kubectl prints an address otherwise, where we
/// print the value.
fn go_bool_ptr(b: Option<bool>) -> String {
    b.map_or("<nil>".to_string(), |b| b.to_string())
}

/// Fetch a pod and its events; describe it. A pod that is gone but whose events remain is
/// described by those events, as kubectl does.
pub async fn pod(
    ctx: &crate::commands::Ctx,
    ns: &str,
    name: &str,
    show_events: bool,
) -> anyhow::Result<String> {
    use crate::commands::events::about;
    let now = Timestamp::now();
    let p = match kube::api::Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await
    {
        Ok(p) => p,
        Err(kube::Error::Api(s)) if s.code == 404 && show_events => {
            let mut evs = about(ctx, ns, name, None, None).await;
            if evs.is_empty() {
                return Err(kube::Error::Api(s).into());
            }
            let mut w = Page::default();
            w.w(
                0,
                &format!("Pod '{name}': error '{}', but found events.\n", s.message),
            );
            text::events(&mut w, Some(&mut evs), now);
            return Ok(w.finish());
        }
        Err(e) => return Err(e.into()),
    };
    // A mirror pod (a static pod's API copy) has its events under the static pod's uid.
    let uid = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .or(p.metadata.uid.as_ref())
        .cloned();
    let mut evs = match show_events {
        true => Some(about(ctx, ns, name, None, uid.as_deref()).await),
        false => None,
    };
    Ok(describe(&p, evs.as_deref_mut(), now))
}
