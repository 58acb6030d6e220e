//! Defaulting: the values the apiserver writes into fields a client left out, so that what
//! `kubectl get -o yaml` shows is complete (`restartPolicy: Always`, `imagePullPolicy`,
//! `strategy: RollingUpdate 25%/25%`, ...). It mirrors `pkg/apis/{core,apps}/v1/defaults.go` plus
//! the default admission plugins that touch pods (Priority, DefaultTolerationSeconds).
//! Decoding into the typed k8s-openapi struct drops unknown fields, as the Go decoder does: run
//! `strict::unknown_fields` first. Metadata (uid, timestamps, generation) is not touched here.

use std::collections::BTreeMap;

use client::quantity;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, Lifecycle, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod,
    PodSecurityContext, PodSpec, PodStatus, Probe, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};

/// Fills defaults into `obj` (a JSON object of the resource named by its plural). Objects that do
/// not decode are left untouched: validation or strict decoding reports them.
pub fn apply_defaults(resource: &str, obj: &mut Value) {
    match resource {
        "pods" => with_typed(obj, default_pod),
        "deployments" => {
            let had_selector = obj.pointer("/spec/selector").is_some_and(|s| !s.is_null());
            with_typed(obj, default_deployment);
            forget_selector(obj, had_selector);
        }
        "replicasets" => {
            let had_selector = obj.pointer("/spec/selector").is_some_and(|s| !s.is_null());
            with_typed(obj, default_replicaset);
            forget_selector(obj, had_selector);
        }
        "namespaces" => with_typed(obj, default_namespace),
        "nodes" => with_typed(obj, default_node),
        "secrets" => default_secret(obj),
        "services" => with_typed(obj, super::services::default_service),
        "endpoints" => with_typed(obj, super::services::default_endpoints),
        "endpointslices" => with_typed(obj, super::services::default_endpoint_slice),
        // Events, leases and ConfigMaps have no defaulting in the real apiserver.
        _ => {}
    }
}

/// `SetDefaults_Secret`: a Secret without a `type` is `Opaque` (arbitrary user data).
fn default_secret(obj: &mut Value) {
    let untyped = obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if untyped && obj.is_object() {
        obj["type"] = Value::String("Opaque".into());
    }
}

fn with_typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    obj: &mut Value,
    f: impl FnOnce(&mut T),
) {
    // Deserialize from the borrowed tree: no copy of the object just to read it.
    let Ok(mut typed) = <T as serde::Deserialize>::deserialize(&*obj) else {
        return;
    };
    f(&mut typed);
    if let Ok(v) = serde_json::to_value(&typed) {
        *obj = v;
    }
}

/// k8s-openapi makes `spec.selector` a plain struct; the Go type is a pointer, so a missing
/// selector must stay missing for validation to answer `Required value`.
static DEFAULT_NOT_READY_TOLERATION_SECONDS: AtomicI64 = AtomicI64::new(300);
static DEFAULT_UNREACHABLE_TOLERATION_SECONDS: AtomicI64 = AtomicI64::new(300);

/// kube-apiserver's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`: how long a new pod stays on a node that went
/// NotReady or unreachable before the node lifecycle controller evicts it. Process-wide
/// (set once at start-up, like the admission plugin's configuration).
pub fn set_default_toleration_seconds(not_ready: i64, unreachable: i64) {
    DEFAULT_NOT_READY_TOLERATION_SECONDS.store(not_ready, Ordering::Relaxed);
    DEFAULT_UNREACHABLE_TOLERATION_SECONDS.store(unreachable, Ordering::Relaxed);
}

fn forget_selector(obj: &mut Value, had_selector: bool) {
    if !had_selector {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("selector");
        }
    }
}

/// Pod defaults on the typed object (for callers that already decoded it).
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    // SetDefaults_Pod: requests default to limits, on Pods only (not on templates).
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(res) = c.resources.as_mut() {
            if let Some(limits) = res.limits.clone() {
                let requests = res.requests.get_or_insert_with(BTreeMap::new);
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    // Priority admission plugin: no priorityClassName → priority 0, PreemptLowerPriority.
    if spec.priority_class_name.as_deref().unwrap_or("").is_empty() {
        spec.priority.get_or_insert(0);
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
    }
    // DefaultTolerationSeconds admission plugin: tolerate a NotReady/unreachable node for 300 s
    // (or the apiserver's --default-*-toleration-seconds).
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, seconds) in [
        (
            "node.kubernetes.io/not-ready",
            DEFAULT_NOT_READY_TOLERATION_SECONDS.load(Ordering::Relaxed),
        ),
        (
            "node.kubernetes.io/unreachable",
            DEFAULT_UNREACHABLE_TOLERATION_SECONDS.load(Ordering::Relaxed),
        ),
    ] {
        let tolerated = tolerations.iter().any(|t| {
            let effect_ok = matches!(t.effect.as_deref(), None | Some("") | Some("NoExecute"));
            let key_ok = t.key.as_deref() == Some(key)
                || (t.key.as_deref().unwrap_or("").is_empty()
                    && t.operator.as_deref() == Some("Exists"));
            effect_ok && key_ok
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
    // A pod that was never stored has no status yet: the registry starts it Pending.
    let qos = qos_class(spec);
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.phase.get_or_insert_with(|| "Pending".into());
    status.qos_class.get_or_insert(qos);
}

/// The QoS class the kubelet derives from requests and limits.
pub fn qos_class(spec: &PodSpec) -> String {
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let relevant = |m: &BTreeMap<String, Quantity>| {
            m.iter()
                .any(|(k, v)| (k == "cpu" || k == "memory") && !is_zero(v))
        };
        if relevant(&requests) || relevant(&limits) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            match (requests.get(r), limits.get(r)) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if !same_amount(q, l) => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

fn is_zero(q: &Quantity) -> bool {
    quantity::Quantity::try_from(q).is_ok_and(|q| q.is_zero())
}

fn same_amount(a: &Quantity, b: &Quantity) -> bool {
    match (
        quantity::Quantity::try_from(a),
        quantity::Quantity::try_from(b),
    ) {
        (Ok(a), Ok(b)) => a.compare(&b).is_eq(),
        _ => a.0 == b.0,
    }
}

/// SetDefaults_PodSpec and everything below it (containers, probes, ports, volumes).
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        let as_json = serde_json::to_value(&*v).unwrap_or_default();
        let sources = as_json
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").count())
            .unwrap_or(0);
        if sources == 0 {
            v.empty_dir = Some(Default::default());
        }
        if let Some(s) = v.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.config_map.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.downward_api.as_mut() {
            s.default_mode.get_or_insert(0o644);
            for item in s.items.iter_mut().flatten() {
                if let Some(f) = item.field_ref.as_mut() {
                    f.api_version.get_or_insert_with(|| "v1".into());
                }
            }
        }
        if let Some(p) = v.projected.as_mut() {
            p.default_mode.get_or_insert(0o644);
            for src in p.sources.iter_mut().flatten() {
                if let Some(t) = src.service_account_token.as_mut() {
                    t.expiration_seconds.get_or_insert(3600);
                }
            }
        }
        if let Some(h) = v.host_path.as_mut() {
            h.type_.get_or_insert_with(String::new);
        }
    }
}

/// SetDefaults_Container, ports, probes, env field references and resource canonicalization.
fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let policy = if image_tag(c.image.as_deref().unwrap_or("")) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.image_pull_policy = Some(policy.into());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(Lifecycle {
        post_start,
        pre_stop,
        ..
    }) = c.lifecycle.as_mut()
    {
        for handler in [post_start, pre_stop].into_iter().flatten() {
            if let Some(h) = handler.http_get.as_mut() {
                default_http_get(h);
            }
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|vf| vf.field_ref.as_mut()) {
            f.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    let res = c.resources.get_or_insert_with(Default::default);
    for list in [&mut res.limits, &mut res.requests].into_iter().flatten() {
        canonicalize_list(list);
    }
}

fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    h.path.get_or_insert_with(|| "/".into());
    h.scheme.get_or_insert_with(|| "HTTP".into());
}

/// SetDefaults_ResourceList: round up to milli precision; serialization then emits canonical form.
fn canonicalize_list(list: &mut BTreeMap<String, Quantity>) {
    for q in list.values_mut() {
        if let Ok(amount) = quantity::Quantity::try_from(&*q) {
            q.0 = amount.round_up(-3).canonical();
        }
    }
}

/// The tag of an image reference (`latest` when none), as `parsers.ParseImageName` sees it.
fn image_tag(image: &str) -> &str {
    match image.split_once('@') {
        // A digest pins the image: no tag means no `latest`.
        Some((name, _)) => tag_of(name).unwrap_or(""),
        None => tag_of(image).unwrap_or("latest"),
    }
}

fn tag_of(name: &str) -> Option<&str> {
    let last_segment_start = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    name[last_segment_start..]
        .rfind(':')
        .map(|i| &name[last_segment_start + i + 1..])
}

fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
    if ty == "RollingUpdate" {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_spec(spec.template.spec.get_or_insert_with(Default::default));
}

fn default_replicaset(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    if let Some(template) = spec.template.as_mut() {
        default_pod_spec(template.spec.get_or_insert_with(Default::default));
    }
}

fn default_namespace(ns: &mut Namespace) {
    // SetDefaults_Namespace: every named namespace carries its own name as a label.
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    // A namespace that was never stored has no phase yet: the registry's PrepareForCreate gives
    // it the `kubernetes` finalizer (the namespace controller removes it once emptied).
    let fresh = ns.status.as_ref().and_then(|s| s.phase.as_ref()).is_none();
    if fresh {
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        spec.finalizers
            .get_or_insert_with(|| vec!["kubernetes".into()]);
    }
    ns.status
        .get_or_insert_with(NamespaceStatus::default)
        .phase
        .get_or_insert_with(|| "Active".into());
}

fn default_node(node: &mut Node) {
    if let Some(status) = node.status.as_mut() {
        for list in [&mut status.capacity, &mut status.allocatable]
            .into_iter()
            .flatten()
        {
            canonicalize_list(list);
        }
        if status.allocatable.is_none() {
            status.allocatable = status.capacity.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_deployment_looks_like_kubectl_get_yaml() {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}
            }
        });
        apply_defaults("deployments", &mut d);
        let want = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "progressDeadlineSeconds": 600, "replicas": 1, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent", "name": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                        }],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30
                    }
                }
            }
        });
        assert_eq!(d, want);
    }

    #[test]
    fn pod_defaults_include_admission_plugins_and_requests_from_limits() {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"limits": {"cpu": "0.5", "memory": "64Mi"}},
                "livenessProbe": {"httpGet": {"port": 8080}}}]}
        });
        apply_defaults("pods", &mut p);
        let spec = &p["spec"];
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(spec["tolerations"][1]["tolerationSeconds"], 300);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "64Mi"})
        );
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
            "failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1})
        );
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("localhost:5000/app"), "latest");
        assert_eq!(image_tag("localhost:5000/app:v1"), "v1");
        assert_eq!(image_tag("app@sha256:abc"), "");
    }

    #[test]
    fn missing_selector_stays_missing() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply_defaults("deployments", &mut d);
        assert!(d["spec"].get("selector").is_none());
        assert_eq!(d["spec"]["replicas"], 1);
    }

    #[test]
    fn namespace_gets_finalizer_phase_and_name_label_once() {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
        apply_defaults("namespaces", &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        // Once stored and finalized, an update must not bring the finalizer back.
        ns["spec"] = json!({});
        apply_defaults("namespaces", &mut ns);
        assert!(ns["spec"].get("finalizers").is_none());
    }

    #[test]
    fn node_allocatable_defaults_to_capacity() {
        let mut n = json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2", "memory": "4096Mi"}}});
        apply_defaults("nodes", &mut n);
        assert_eq!(
            n["status"]["allocatable"],
            json!({"cpu": "2", "memory": "4Gi"})
        );
    }
}
