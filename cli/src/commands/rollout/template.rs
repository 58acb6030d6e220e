//! Pod templates of a Deployment's revisions: compared, and printed as kubectl prints them.
//!
//! Each ReplicaSet a Deployment owns carries the pod template of one revision, plus a
//! `pod-template-hash` label the controller added so that the ReplicaSets' pods never overlap.
//! Two templates are therefore *the same revision* when they are equal once that label is
//! removed (kubectl's `equalIgnoreHash`, on Go's semantic equality, where an empty list or
//! map equals a missing one). `rollout history --revision=N` prints a template the way
//! `kubectl describe` does (`DescribePodTemplate`): a `PrefixWriter` straight into a buffer,
//! so its tabs stay tabs. Read next: `history.rs`, which uses both.

use std::fmt::Write;

use serde_json::{Map, Value};

/// The label the Deployment controller adds to each ReplicaSet's template and selector.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// An annotation `describe` leaves out (it is the whole object again).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Longer annotations are printed on lines of their own, shortened.
const MAX_ANNOTATION_LEN: usize = 140;

/// `template` without the `pod-template-hash` label (kubectl removes it before rolling back).
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// kubectl's `equalIgnoreHash`: equal once the hash label is removed, an empty list, map or
/// a null counting as absent.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalized(&without_hash(a)) == normalized(&without_hash(b))
}

/// `value` with nulls, empty objects and empty arrays removed, recursively.
fn normalized(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| normalized(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| normalized(v).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// kubectl's `PrefixWriter` levels: two spaces each.
fn indent(level: usize) -> String {
    "  ".repeat(level)
}

/// Go's `%v` of a JSON scalar (a missing one prints as its zero value).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn flag(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The map's entries sorted by key (`serde_json` keeps them sorted already, without
/// `preserve_order`; sort anyway, kubectl does).
fn sorted(map: &Value) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.as_object().into_iter().flatten().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// kubectl's `DescribePodTemplate`, for `rollout history --revision=N`.
pub fn describe(template: &Value) -> String {
    let mut w = String::new();
    let meta = &template["metadata"];
    let spec = &template["spec"];
    w.push_str("Pod Template:\n");
    labels(&mut w, "  Labels", &meta["labels"]);
    if meta["annotations"]
        .as_object()
        .is_some_and(|a| !a.is_empty())
    {
        annotations(&mut w, "  Annotations", &meta["annotations"]);
    }
    if let Some(sa) = spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        let _ = writeln!(w, "{}Service Account:\t{sa}", indent(1));
    }
    if !items(&spec["initContainers"]).is_empty() {
        containers(&mut w, "Init Containers", items(&spec["initContainers"]));
    }
    containers(&mut w, "Containers", items(&spec["containers"]));
    volumes(&mut w, items(&spec["volumes"]));
    if let Some(pc) = spec["priorityClassName"].as_str().filter(|s| !s.is_empty()) {
        let _ = writeln!(w, "{}Priority Class Name:\t{pc}", indent(1));
    }
    labels(&mut w, "  Node-Selectors", &spec["nodeSelector"]);
    tolerations(&mut w, "  Tolerations", items(&spec["tolerations"]));
    w
}

/// `printLabelsMultiline`: `Labels:\tk=v` and further pairs on lines of their own.
fn labels(w: &mut String, title: &str, labels: &Value) {
    let _ = write!(w, "{title}:\t");
    let entries = sorted(labels);
    if entries.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i != 0 {
            w.push('\t');
        }
        let _ = writeln!(w, "{k}={}", text(v));
    }
}

/// `printAnnotationsMultiline`: long or multi-line values below their key, shortened.
fn annotations(w: &mut String, title: &str, annotations: &Value) {
    let _ = write!(w, "{title}:\t");
    let entries: Vec<_> = sorted(annotations)
        .into_iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .collect();
    if entries.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i != 0 {
            w.push('\t');
        }
        let value = text(v);
        let value = value.strip_suffix('\n').unwrap_or(&value);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            let _ = writeln!(w, "{k}:");
            for line in value.split('\n') {
                let _ = writeln!(w, "\t  {}", shorten(line, MAX_ANNOTATION_LEN - 2));
            }
        } else {
            let _ = writeln!(w, "{k}: {value}");
        }
    }
}

/// Go's `shorten`: the first `max` bytes and `...`.
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `describeContainers` without statuses (a template has none).
fn containers(w: &mut String, label: &str, containers: &[Value]) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    let _ = writeln!(w, "  {label}:{none}");
    for c in containers {
        container_basics(w, c);
        command(w, c);
        resources(w, &c["resources"]);
        probes(w, c);
        if !items(&c["envFrom"]).is_empty() {
            env_from(w, items(&c["envFrom"]));
        }
        env(w, items(&c["env"]));
        mounts(w, items(&c["volumeMounts"]));
    }
}

/// Name, image, ports and host ports (`80/TCP`), and a sidecar's restart policy.
fn container_basics(w: &mut String, c: &Value) {
    let (l1, l2) = (indent(1), indent(2));
    let _ = writeln!(w, "{l1} {}:", text(&c["name"]));
    let _ = writeln!(w, "{l2}Image:\t{}", text(&c["image"]));
    let ports = items(&c["ports"]);
    let port_list = |field: &str| {
        ports
            .iter()
            .map(|p| format!("{}/{}", int(&p[field]), text(&p["protocol"])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (single, plural, list) in [
        ("Port", "Ports", port_list("containerPort")),
        ("Host Port", "Host Ports", port_list("hostPort")),
    ] {
        if list.contains(',') {
            let _ = writeln!(w, "{l2}{plural}:\t{list}");
        } else {
            let shown = if list.is_empty() { "<none>" } else { &list };
            let _ = writeln!(w, "{l2}{single}:\t{shown}");
        }
    }
    if let Some(policy) = c["restartPolicy"].as_str() {
        let _ = writeln!(w, "{l2}Restart Policy:\t{policy}");
    }
}

/// `Command:` and `Args:`, one line per word (and per line of a multi-line word).
fn command(w: &mut String, c: &Value) {
    for (field, title) in [("command", "Command"), ("args", "Args")] {
        let words = items(&c[field]);
        if words.is_empty() {
            continue;
        }
        let _ = writeln!(w, "{}{title}:", indent(2));
        for word in words {
            for line in text(word).split('\n') {
                let _ = writeln!(w, "{}{line}", indent(3));
            }
        }
    }
}

/// `Limits:` and `Requests:`, resources sorted by name.
fn resources(w: &mut String, resources: &Value) {
    for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
        let entries = sorted(&resources[field]);
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(w, "{}{title}:", indent(2));
        for (name, q) in entries {
            let _ = writeln!(w, "{}{name}:\t{}", indent(3), text(q));
        }
    }
}

/// `Liveness:`, `Readiness:`, `Startup:`, as kubectl's `DescribeProbe` words them.
fn probes(w: &mut String, c: &Value) {
    for (field, title) in [
        ("livenessProbe", "Liveness"),
        ("readinessProbe", "Readiness"),
        ("startupProbe", "Startup"),
    ] {
        if c[field].is_object() {
            let _ = writeln!(w, "{}{title}:\t{}", indent(2), probe(&c[field]));
        }
    }
}

fn probe(p: &Value) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        int(&p["initialDelaySeconds"]),
        int(&p["timeoutSeconds"]),
        int(&p["periodSeconds"]),
        int(&p["successThreshold"]),
        int(&p["failureThreshold"]),
    );
    if let Some(cmd) = p["exec"]["command"].as_array() {
        let words: Vec<String> = cmd.iter().map(text).collect();
        return format!("exec [{}] {attrs}", words.join(" "));
    }
    if p["httpGet"].is_object() {
        let h = &p["httpGet"];
        let scheme = text(&h["scheme"]).to_lowercase();
        let host = text(&h["host"]);
        let port = text(&h["port"]);
        let host = match (port.is_empty(), host.contains(':')) {
            (true, _) => host,
            (false, true) => format!("[{host}]:{port}"),
            (false, false) => format!("{host}:{port}"),
        };
        return format!("http-get {scheme}://{host}{} {attrs}", text(&h["path"]));
    }
    if p["tcpSocket"].is_object() {
        let t = &p["tcpSocket"];
        return format!(
            "tcp-socket {}:{} {attrs}",
            text(&t["host"]),
            text(&t["port"])
        );
    }
    if p["grpc"].is_object() {
        let g = &p["grpc"];
        return format!(
            "grpc <pod>:{} {} {attrs}",
            int(&g["port"]),
            text(&g["service"])
        );
    }
    format!("unknown {attrs}")
}

/// `Environment Variables from:` (ConfigMaps and Secrets, with their prefix).
fn env_from(w: &mut String, sources: &[Value]) {
    let _ = writeln!(w, "{}Environment Variables from:", indent(2));
    for s in sources {
        let (from, r) = if s["configMapRef"].is_object() {
            ("ConfigMap", &s["configMapRef"])
        } else if s["secretRef"].is_object() {
            ("Secret", &s["secretRef"])
        } else {
            ("", &Value::Null)
        };
        let (name, optional) = (text(&r["name"]), flag(&r["optional"]));
        let l3 = indent(3);
        match s["prefix"].as_str().filter(|p| !p.is_empty()) {
            None => {
                let _ = writeln!(w, "{l3}{name}\t{from}\tOptional: {optional}");
            }
            Some(prefix) => {
                let _ = writeln!(
                    w,
                    "{l3}{name}\t{from} with prefix '{prefix}'\tOptional: {optional}"
                );
            }
        }
    }
}

/// `Environment:`: values (a multi-line value continues on tab-indented lines) and where a
/// `valueFrom` takes its value (a template has no pod to resolve a field of).
fn env(w: &mut String, vars: &[Value]) {
    let none = if vars.is_empty() { "\t<none>" } else { "" };
    let _ = writeln!(w, "{}Environment:{none}", indent(2));
    let l3 = indent(3);
    for e in vars {
        let name = text(&e["name"]);
        let from = &e["valueFrom"];
        if !from.is_object() {
            for (i, line) in text(&e["value"]).split('\n').enumerate() {
                if i == 0 {
                    let _ = writeln!(w, "{l3}{name}:\t{line}");
                } else {
                    let _ = writeln!(w, "{l3}\t{line}");
                }
            }
            continue;
        }
        let line = if from["fieldRef"].is_object() {
            let f = &from["fieldRef"];
            format!(
                "{name}:\t ({}:{})",
                text(&f["apiVersion"]),
                text(&f["fieldPath"])
            )
        } else if from["resourceFieldRef"].is_object() {
            let resource = text(&from["resourceFieldRef"]["resource"]);
            format!("{name}:\t{} ({resource})", resource_value(&resource))
        } else if from["secretKeyRef"].is_object() {
            let s = &from["secretKeyRef"];
            format!(
                "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}",
                text(&s["key"]),
                text(&s["name"]),
                flag(&s["optional"])
            )
        } else if from["configMapKeyRef"].is_object() {
            let c = &from["configMapKeyRef"];
            format!(
                "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}",
                text(&c["key"]),
                text(&c["name"]),
                flag(&c["optional"])
            )
        } else {
            continue;
        };
        let _ = writeln!(w, "{l3}{line}");
    }
}

/// A `resourceFieldRef` without a limit reads the node's allocatable (kubectl's words).
fn resource_value(resource: &str) -> &'static str {
    match resource {
        "limits.cpu" | "limits.memory" => "node allocatable",
        _ => "",
    }
}

/// `Mounts:` sorted by path: `/data from scratch (rw,path="sub")`.
fn mounts(w: &mut String, mounts: &[Value]) {
    let none = if mounts.is_empty() { "\t<none>" } else { "" };
    let _ = writeln!(w, "{}Mounts:{none}", indent(2));
    let mut mounts: Vec<&Value> = mounts.iter().collect();
    mounts.sort_by_key(|m| text(&m["mountPath"]));
    for m in mounts {
        let mut flags = vec![if flag(&m["readOnly"]) { "ro" } else { "rw" }.to_string()];
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            flags.push(format!("path={sub:?}"));
        }
        let _ = writeln!(
            w,
            "{}{} from {} ({})",
            indent(3),
            text(&m["mountPath"]),
            text(&m["name"]),
            flags.join(",")
        );
    }
}

/// `Volumes:` with the kinds minik8s runs (emptyDir, hostPath) and those kubectl names
/// often (configMap, secret); any other kind is `<unknown>`, as kubectl prints an unknown one.
fn volumes(w: &mut String, volumes: &[Value]) {
    if volumes.is_empty() {
        w.push_str("  Volumes:\t<none>\n");
        return;
    }
    w.push_str("  Volumes:\n");
    let (l1, l2) = (indent(1), indent(2));
    for v in volumes {
        let _ = writeln!(w, "{l1} {}:", text(&v["name"]));
        let body = if v["emptyDir"].is_object() {
            let e = &v["emptyDir"];
            let limit = e["sizeLimit"]
                .as_str()
                .filter(|l| !l.is_empty() && !l.trim_start_matches('0').is_empty())
                .unwrap_or("<unset>");
            format!(
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{limit}\n",
                text(&e["medium"])
            )
        } else if v["hostPath"].is_object() {
            let h = &v["hostPath"];
            let ty = h["type"].as_str().unwrap_or("<none>");
            format!(
                "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{ty}\n",
                text(&h["path"])
            )
        } else if v["configMap"].is_object() {
            let c = &v["configMap"];
            format!(
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                text(&c["name"]),
                flag(&c["optional"])
            )
        } else if v["secret"].is_object() {
            let s = &v["secret"];
            format!(
                "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                text(&s["secretName"]),
                flag(&s["optional"])
            )
        } else {
            let _ = writeln!(w, "{l1}<unknown>");
            continue;
        };
        let _ = write!(w, "{l2}{body}");
    }
}

/// `printPodTolerationsMultiline`: `key=value:Effect op=Exists for 300s`.
fn tolerations(w: &mut String, title: &str, tolerations: &[Value]) {
    let _ = write!(w, "{title}:\t");
    if tolerations.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, t) in tolerations.iter().enumerate() {
        if i != 0 {
            w.push('\t');
        }
        let (key, value, effect) = (text(&t["key"]), text(&t["value"]), text(&t["effect"]));
        w.push_str(&key);
        if !value.is_empty() {
            let _ = write!(w, "={value}");
        }
        if !effect.is_empty() {
            let _ = write!(w, ":{effect}");
        }
        if t["operator"] == "Exists" && value.is_empty() {
            let space = if key.is_empty() && effect.is_empty() {
                ""
            } else {
                " "
            };
            let _ = write!(w, "{space}op=Exists");
        }
        if let Some(s) = t["tolerationSeconds"].as_i64() {
            let _ = write!(w, " for {s}s");
        }
        w.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "main", "image": image, "env": []}]},
        })
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let deployment = template("busybox", None);
        let rs = template("busybox", Some("abc123"));
        assert!(equal_ignore_hash(&deployment, &rs));
        let mut with_nulls = template("busybox", None);
        with_nulls["metadata"]["annotations"] = json!({});
        with_nulls["spec"]["volumes"] = Value::Null;
        assert!(equal_ignore_hash(&with_nulls, &rs));
        assert!(!equal_ignore_hash(&template("busybox:1.36", None), &rs));
        assert_eq!(without_hash(&rs), deployment);
    }

    #[test]
    fn describes_a_template_as_kubectl_does() {
        let t = json!({
            "metadata": {
                "labels": {"app": "web", POD_TEMPLATE_HASH: "abc"},
                "annotations": {"kubernetes.io/change-cause": "set image", LAST_APPLIED: "{}"},
            },
            "spec": {"containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
            }], "volumes": [{"name": "scratch", "emptyDir": {}}]},
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
            \x20 Node-Selectors:\t<none>\n\
            \x20 Tolerations:\t<none>\n";
        assert_eq!(describe(&t), want);
    }

    #[test]
    fn describes_empty_parts_with_none() {
        let out = describe(&json!({"metadata": {}, "spec": {}}));
        assert_eq!(
            out,
            "Pod Template:\n  Labels:\t<none>\n  Containers: <none>\n  Volumes:\t<none>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
    }

    #[test]
    fn tolerations_and_probes_read_like_kubectls() {
        let mut w = String::new();
        let ts = [
            json!({"operator": "Exists"}),
            json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
        ];
        tolerations(&mut w, "  Tolerations", &ts);
        assert_eq!(
            w,
            "  Tolerations:\top=Exists\n\tk:NoExecute op=Exists for 300s\n\tk=v:NoSchedule\n"
        );
        let p = json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                       "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3});
        assert_eq!(
            probe(&p),
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
        assert_eq!(shorten("abcdef", 3), "abc...");
    }
}
