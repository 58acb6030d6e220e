//! A pod's containers as `describe` lists them, under a Pod and under a pod template alike.
//!
//! For each container the spec says what was asked (image, command and args, ports, limits
//! and requests, probes, environment, mounts) and, for a running pod, the status says what
//! happened: the container's *state* (Waiting with a reason such as `ContainerCreating`,
//! Running since a time, or Terminated with an exit code), its last termination, whether it
//! is Ready and how often the kubelet restarted it. A template has no status, so only the
//! spec part shows. This is kubectl's `describeContainers`, line for line.
//! Read next: `workload.rs`, whose pod templates use it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStatus, EnvVar, Pod, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::text::{bool_word, resources, time, Page};

/// `Containers:` and each container (`describeContainers`); `space` is the indentation of
/// the heading (`"  "` inside a pod template), `pod` resolves `fieldRef` environment values.
pub fn containers(
    w: &mut Page,
    label: &str,
    list: &[Container],
    statuses: Option<&Vec<ContainerStatus>>,
    pod: Option<&Pod>,
    space: &str,
) {
    let none = if list.is_empty() { " <none>" } else { "" };
    w.w(0, &format!("{space}{label}:{none}\n"));
    let by_name: BTreeMap<&str, &ContainerStatus> = statuses
        .into_iter()
        .flatten()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let pod_json = pod.and_then(|p| serde_json::to_value(p).ok());
    for c in list {
        let status = by_name.get(c.name.as_str()).copied();
        basic_info(w, c, status, space);
        command(w, c);
        if let Some(s) = status {
            state(w, "State", s.state.as_ref());
            if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                state(w, "Last State", Some(last));
            }
            w.w(2, &format!("Ready:\t{}\n", bool_word(s.ready)));
            w.w(2, &format!("Restart Count:\t{}\n", s.restart_count));
        }
        resources(w, c.resources.as_ref(), 2);
        probes(w, c);
        env_from(w, c);
        env(w, c, pod_json.as_ref());
        mounts(w, c);
    }
}

/// Name, container ID, image, ports (`describeContainerBasicInfo`).
fn basic_info(w: &mut Page, c: &Container, status: Option<&ContainerStatus>, space: &str) {
    let indent = if space.is_empty() { "" } else { " " };
    w.w(1, &format!("{indent}{}:\n", c.name));
    if let Some(s) = status {
        let id = s.container_id.as_deref().unwrap_or_default();
        w.w(2, &format!("Container ID:\t{id}\n"));
    }
    w.w(
        2,
        &format!("Image:\t{}\n", c.image.as_deref().unwrap_or_default()),
    );
    if let Some(s) = status {
        w.w(2, &format!("Image ID:\t{}\n", s.image_id));
    }
    let ports = c.ports.as_deref().unwrap_or_default();
    let show = |f: fn(&ContainerPort) -> i32| {
        ports
            .iter()
            .map(|p| {
                let proto = p.protocol.as_deref().unwrap_or_default();
                format!("{}/{proto}", f(p))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (one, many, text) in [
        ("Port", "Ports", show(|p| p.container_port)),
        (
            "Host Port",
            "Host Ports",
            show(|p| p.host_port.unwrap_or(0)),
        ),
    ] {
        if text.contains(',') {
            w.w(2, &format!("{many}:\t{text}\n"));
        } else {
            let text = if text.is_empty() { "<none>" } else { &text };
            w.w(2, &format!("{one}:\t{text}\n"));
        }
    }
    let seccomp = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if let Some(p) = seccomp {
        w.w(2, &format!("SeccompProfile:\t{}\n", p.type_));
        if p.type_ == "Localhost" {
            let profile = p.localhost_profile.as_deref().unwrap_or_default();
            w.w(3, &format!("LocalhostProfile:\t{profile}\n"));
        }
    }
}

/// `Command:` and `Args:`, a line per word (and per line of a word).
fn command(w: &mut Page, c: &Container) {
    for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
        let Some(words) = words.as_ref().filter(|w| !w.is_empty()) else {
            continue;
        };
        w.w(2, &format!("{title}:\n"));
        for line in words.iter().flat_map(|word| word.split('\n')) {
            w.w(3, &format!("{line}\n"));
        }
    }
}

/// `State:` (or `Last State:`) and its details (`describeStatus`).
fn state(w: &mut Page, name: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        w.w(2, &format!("{name}:\tRunning\n"));
        w.w(3, &format!("Started:\t{}\n", time(r.started_at.as_ref())));
    } else if let Some(wt) = &state.waiting {
        w.w(2, &format!("{name}:\tWaiting\n"));
        if let Some(r) = wt.reason.as_deref().filter(|r| !r.is_empty()) {
            w.w(3, &format!("Reason:\t{r}\n"));
        }
    } else if let Some(t) = &state.terminated {
        w.w(2, &format!("{name}:\tTerminated\n"));
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            w.w(3, &format!("Reason:\t{r}\n"));
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            w.w(3, &format!("Message:\t{m}\n"));
        }
        w.w(3, &format!("Exit Code:\t{}\n", t.exit_code));
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            w.w(3, &format!("Signal:\t{sig}\n"));
        }
        w.w(3, &format!("Started:\t{}\n", time(t.started_at.as_ref())));
        w.w(3, &format!("Finished:\t{}\n", time(t.finished_at.as_ref())));
    } else {
        w.w(2, &format!("{name}:\tWaiting\n"));
    }
}

/// `Liveness:`, `Readiness:`, `Startup:` (`describeContainerProbe`).
fn probes(w: &mut Page, c: &Container) {
    for (title, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            w.w(2, &format!("{title}:\t{}\n", describe_probe(p)));
        }
    }
}

/// `http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`.
fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(0),
        p.success_threshold.unwrap_or(0),
        p.failure_threshold.unwrap_or(0)
    );
    let port = |p: &IntOrString| match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    if let Some(e) = &p.exec {
        let cmd = e.command.as_deref().unwrap_or_default().join(" ");
        return format!("exec [{cmd}] {attrs}");
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or_default().to_lowercase();
        let host = h.host.as_deref().unwrap_or_default();
        let path = h.path.as_deref().unwrap_or_default();
        let hostport = match port(&h.port) {
            p if p.is_empty() => host.to_string(),
            p if host.contains(':') => format!("[{host}]:{p}"),
            p => format!("{host}:{p}"),
        };
        let scheme = if scheme.is_empty() {
            String::new()
        } else {
            format!("{scheme}:")
        };
        return format!("http-get {scheme}//{hostport}{path} {attrs}");
    }
    if let Some(t) = &p.tcp_socket {
        let host = t.host.as_deref().unwrap_or_default();
        return format!("tcp-socket {host}:{} {attrs}", port(&t.port));
    }
    if let Some(g) = &p.grpc {
        let service = g.service.as_deref().unwrap_or_default();
        return format!("grpc <pod>:{} {service} {attrs}", g.port);
    }
    format!("unknown {attrs}")
}

/// `Environment Variables from:` (`describeContainerEnvFrom`).
fn env_from(w: &mut Page, c: &Container) {
    let Some(list) = c.env_from.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    w.w(2, "Environment Variables from:\n");
    for e in list {
        let (from, name, optional) = if let Some(r) = &e.config_map_ref {
            ("ConfigMap", r.name.clone(), r.optional.unwrap_or(false))
        } else if let Some(r) = &e.secret_ref {
            ("Secret", r.name.clone(), r.optional.unwrap_or(false))
        } else {
            ("", String::new(), false)
        };
        match e.prefix.as_deref().filter(|p| !p.is_empty()) {
            None => w.w(3, &format!("{name}\t{from}\tOptional: {optional}\n")),
            Some(p) => w.w(
                3,
                &format!("{name}\t{from} with prefix '{p}'\tOptional: {optional}\n"),
            ),
        }
    }
}

/// `Environment:`, a variable a line, where a reference says where its value comes from
/// (`describeContainerEnvVars`).
fn env(w: &mut Page, c: &Container, pod: Option<&Value>) {
    let list = c.env.as_deref().unwrap_or_default();
    let none = if list.is_empty() { "\t<none>" } else { "" };
    w.w(2, &format!("Environment:{none}\n"));
    for e in list {
        let Some(from) = &e.value_from else {
            let value = e.value.as_deref().unwrap_or_default();
            for (i, line) in value.split('\n').enumerate() {
                match i {
                    0 => w.w(3, &format!("{}:\t{line}\n", e.name)),
                    _ => w.w(3, &format!("\t{line}\n")),
                }
            }
            continue;
        };
        if let Some(f) = &from.field_ref {
            let value = pod
                .map(|p| field_value(p, &f.field_path))
                .unwrap_or_default();
            let api = f.api_version.as_deref().unwrap_or_default();
            w.w(
                3,
                &format!("{}:\t{value} ({api}:{})\n", e.name, f.field_path),
            );
        } else if let Some(r) = &from.resource_field_ref {
            let value = resource_value(c, e);
            w.w(3, &format!("{}:\t{value} ({})\n", e.name, r.resource));
        } else if let Some(k) = &from.secret_key_ref {
            w.w(
                3,
                &format!(
                    "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    e.name,
                    k.key,
                    k.name,
                    k.optional.unwrap_or(false)
                ),
            );
        } else if let Some(k) = &from.config_map_key_ref {
            w.w(
                3,
                &format!(
                    "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    e.name,
                    k.key,
                    k.name,
                    k.optional.unwrap_or(false)
                ),
            );
        }
    }
}

/// A downward API field of the pod (`metadata.name`, `status.podIP`, `metadata.labels['a']`).
fn field_value(pod: &Value, path: &str) -> String {
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    let v = if let Some(k) = map_key("metadata.labels") {
        &pod["metadata"]["labels"][k]
    } else if let Some(k) = map_key("metadata.annotations") {
        &pod["metadata"]["annotations"][k]
    } else {
        let pointer = format!("/{}", path.replace('.', "/"));
        pod.pointer(&pointer).unwrap_or(&Value::Null)
    };
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A `resourceFieldRef`'s value: the container's limit or request over the divisor, rounded
/// up; an unset CPU or memory limit is `node allocatable`.
fn resource_value(c: &Container, e: &EnvVar) -> String {
    let Some(r) = e
        .value_from
        .as_ref()
        .and_then(|f| f.resource_field_ref.as_ref())
    else {
        return String::new();
    };
    let (list, name) = match r.resource.split_once('.') {
        Some(("limits", n)) => (c.resources.as_ref().and_then(|r| r.limits.as_ref()), n),
        Some(("requests", n)) => (c.resources.as_ref().and_then(|r| r.requests.as_ref()), n),
        _ => return String::new(),
    };
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        client::quantity::Quantity::try_from(q).ok()
    };
    let amount = list.and_then(|l| l.get(name)).and_then(parse);
    let divisor = r.divisor.as_ref().and_then(parse);
    let value = match (name, amount) {
        (_, None) => 0,
        ("cpu", Some(a)) => {
            let d = divisor
                .map(|d| d.millis())
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            (a.millis() + d - 1) / d
        }
        (_, Some(a)) => {
            let d = divisor.map(|d| d.value()).filter(|d| *d > 0).unwrap_or(1);
            (a.value() + d - 1) / d
        }
    };
    if value == 0 && (r.resource == "limits.cpu" || r.resource == "limits.memory") {
        return "node allocatable".to_string();
    }
    value.to_string()
}

/// `Mounts:`, sorted by path, `rw` or `ro` (`describeContainerVolumes`).
fn mounts(w: &mut Page, c: &Container) {
    let mut list: Vec<_> = c.volume_mounts.iter().flatten().collect();
    let none = if list.is_empty() { "\t<none>" } else { "" };
    w.w(2, &format!("Mounts:{none}\n"));
    list.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    for m in list {
        let mut flags = vec![if m.read_only == Some(true) {
            "ro"
        } else {
            "rw"
        }
        .to_string()];
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            flags.push(format!("path={sub:?}"));
        }
        w.w(
            3,
            &format!("{} from {} ({})\n", m.mount_path, m.name, flags.join(",")),
        );
    }
    let mut devices: Vec<_> = c.volume_devices.iter().flatten().collect();
    if !devices.is_empty() {
        w.w(2, &format!("Devices:{none}\n"));
        devices.sort_by(|a, b| a.device_path.cmp(&b.device_path));
        for d in devices {
            w.w(3, &format!("{} from {}\n", d.device_path, d.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_like_kubectls() {
        let p: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
        }))
        .unwrap();
        assert_eq!(
            describe_probe(&p),
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
    }

    #[test]
    fn downward_fields_come_from_the_pod() {
        let pod = serde_json::json!({"metadata": {"name": "web", "labels": {"app": "x"}}});
        assert_eq!(field_value(&pod, "metadata.name"), "web");
        assert_eq!(field_value(&pod, "metadata.labels['app']"), "x");
        assert_eq!(field_value(&pod, "status.podIP"), "");
    }
}
