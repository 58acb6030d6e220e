//! `minikctl inspect pod NAME`: one pod's containers as the kernel of its node holds them.
//!
//! The kubelet answers `/inspect/{ns}/{pod}` for its own pods (reached through
//! `nodes/{node}/proxy`); the API adds what only it knows, the etcd key the pod lives under
//! and its `resourceVersion` (the etcd revision of its last write). The text view reads top
//! down as the pod is built: the sandbox that pins net, ipc and uts and holds the pod's
//! address, then per container its process, namespaces (shared or its own), cgroup limits
//! next to usage, overlay layers and what the container changed, and its volumes.
//! Read next: `node.rs`; the facts come from `kubelet/src/inspect.rs`.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};

use crate::printer::emit;
use crate::printer::style::emit_keyed;

use super::{aligned, bytes, field, kubelet_get, Ctx, Format};

/// Fetch the pod (for its node, etcd key and resourceVersion) and its kubelet's view; print.
pub(super) async fn run(
    ctx: &Ctx,
    name: &str,
    container: Option<&str>,
    output: Option<Format>,
) -> anyhow::Result<()> {
    let ns = ctx.namespace.as_str();
    let p = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await?;
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .with_context(|| format!("pod {name} is not scheduled to a node yet"))?;
    let mut view = kubelet_get(ctx, &node, &format!("/inspect/{ns}/{name}")).await?;
    if let Some(c) = container {
        only_container(&mut view, name, c)?;
    }
    let api = json!({
        "etcdKey": format!("/registry/pods/{ns}/{name}"),
        "resourceVersion": p.metadata.resource_version,
        "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
    });
    match output {
        Some(Format::Json) => {
            view["api"] = api;
            emit(&format!("{}\n", serde_json::to_string_pretty(&view)?))?;
        }
        None => emit_keyed(&pod_text(&view, &api))?,
    }
    Ok(())
}

/// `-c C`: keep only container `c` in the view; an error (kubectl's wording) if it has none.
fn only_container(view: &mut Value, pod: &str, c: &str) -> anyhow::Result<()> {
    let list = view["containers"]
        .as_array_mut()
        .with_context(|| format!("the kubelet's view of pod {pod} lists no containers"))?;
    list.retain(|x| x["name"] == c);
    anyhow::ensure!(!list.is_empty(), "container {c} is not valid for pod {pod}");
    Ok(())
}

/// The text view of a pod inspection.
fn pod_text(v: &Value, api: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    out.push_str(&field(
        "Pod",
        &format!("{}/{}", s(&v["namespace"]), s(&v["name"])),
    ));
    out.push_str(&field("UID", &s(&v["uid"])));
    out.push_str(&field("Node", &s(&v["nodeName"])));
    out.push_str(&field("Phase", &s(&api["phase"])));
    out.push_str(&field(
        "etcd key",
        &format!(
            "{} (resourceVersion {})",
            s(&api["etcdKey"]),
            s(&api["resourceVersion"])
        ),
    ));
    out.push_str(&network_text(&v["network"]));
    out.push_str(&sandbox_text(&v["sandbox"]));
    for c in v["containers"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&container_text(c));
    }
    out
}

fn network_text(n: &Value) -> String {
    if n.is_null() {
        return field("Network", "loopback only (the node has no pod network)");
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let mut out = field(
        "Pod IP",
        &format!("{} in {}", s(&n["podIP"]), s(&n["cidr"])),
    );
    out.push_str(&field(
        "Bridge",
        &format!(
            "{} (gateway {}, mtu {})",
            s(&n["bridge"]),
            s(&n["gateway"]),
            s(&n["mtu"])
        ),
    ));
    out.push_str(&field(
        "veth pair",
        &format!(
            "{} (ifindex {}, on {}) <-> {} in the pod (ifindex {})",
            s(&n["hostVeth"]),
            s(&n["hostVethIndex"]),
            s(&n["hostVethMaster"]),
            s(&n["podInterface"]),
            s(&n["peerIndex"])
        ),
    ));
    out
}

fn sandbox_text(sb: &Value) -> String {
    if sb.is_null() {
        return field("Sandbox", "none");
    }
    let ns: Vec<String> = sb["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| format!("{}:[{}]", n[0].as_str().unwrap_or("?"), n[2]))
        .collect();
    let mut out = field("Sandbox", &format!("pinned {}", ns.join(" ")));
    if let Some(p) = sb["pause"].as_object() {
        out.push_str(&field("  pause", &process(&Value::Object(p.clone()))));
    }
    out.push_str(&field(
        "  pod cgroup",
        sb["cgroup"]["path"].as_str().unwrap_or("-"),
    ));
    out
}

/// `host pid 5099: sleep 1000`.
fn process(p: &Value) -> String {
    let cmd: Vec<&str> = p["cmdline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!("host pid {}: {}", p["hostPid"], cmd.join(" "))
}

fn container_text(c: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let kind = if c["initContainer"] == true {
        "Init container"
    } else {
        "Container"
    };
    let id: String = s(&c["id"]).chars().take(12).collect();
    let state = s(&c["state"]["status"]);
    let mut out = format!(
        "{kind} {} (id {id}, attempt {}, {state})\n",
        s(&c["name"]),
        c["attempt"]
    );
    out.push_str(&field(
        "  image",
        &format!("{} ({})", s(&c["image"]), s(&c["imageDigest"])),
    ));
    let k = &c["kernel"];
    if k.is_null() {
        out.push_str("  (no container in the runtime yet)\n");
        return out;
    }
    match k["init"].as_object() {
        Some(_) => out.push_str(&field("  process", &process(&k["init"]))),
        None => out.push_str(&field("  process", "not running")),
    }
    if !k["pidOne"].is_null() {
        let me = k["pidOne"]["hostPid"] == k["init"]["hostPid"];
        let who = if me {
            "itself".to_string()
        } else {
            process(&k["pidOne"])
        };
        out.push_str(&field("  PID 1 inside", &who));
    }
    out.push_str(&namespaces_text(k));
    out.push_str(&cgroup_text(&k["cgroup"]));
    out.push_str(&rootfs_text(&k["rootfs"]));
    out.push_str(&volumes_text(&c["volumes"]));
    out
}

fn namespaces_text(k: &Value) -> String {
    let mut out = String::from("  namespaces:\n");
    for n in k["namespaces"].as_array().into_iter().flatten() {
        let kind = n["kind"].as_str().unwrap_or("?");
        let from = match n["sharedFrom"].as_str() {
            Some(p) => format!("shared with the pod (sandbox {p})"),
            None => "own".into(),
        };
        out.push_str(&format!(
            "    {:<8}{:<22}{from}\n",
            kind,
            format!("{kind}:[{}]", n["inode"])
        ));
    }
    out
}

fn cgroup_text(cg: &Value) -> String {
    let version = cg["version"].as_str().unwrap_or("?");
    let mut out = field(
        "  cgroup",
        &format!("{} ({version})", cg["path"].as_str().unwrap_or("-")),
    );
    let usage = &cg["usage"];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for l in cg["limits"].as_array().into_iter().flatten() {
        let path = l["path"].as_str().unwrap_or("");
        let file = path.rsplit('/').next().unwrap_or(path);
        let used = match file.split('.').next() {
            Some("memory") => format!(
                "usage {}",
                bytes(usage["memory_usage_bytes"].as_i64().unwrap_or(0))
            ),
            Some("pids") => format!("current {}", usage["pids_current"]),
            Some("cpu") if matches!(file, "cpu.cfs_quota_us" | "cpu.max") => {
                format!(
                    "used {:.3}s of CPU",
                    usage["cpu_usage_ns"].as_f64().unwrap_or(0.0) / 1e9
                )
            }
            _ => String::new(),
        };
        rows.push(vec![
            format!("    {file}"),
            l["value"].as_str().unwrap_or("").to_string(),
            used,
        ]);
    }
    if usage["oom_kills"].as_u64().unwrap_or(0) > 0 {
        rows.push(vec![
            "    oom kills".into(),
            usage["oom_kills"].to_string(),
            String::new(),
        ]);
    }
    out.push_str(&aligned(&rows));
    out
}

fn rootfs_text(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = field("  rootfs", "overlay (top layer first)");
    for l in r["layers"].as_array().into_iter().flatten() {
        out.push_str(&field("    image layer", &s(l)));
    }
    out.push_str(&field("    init layer", &s(&r["initLayer"])));
    out.push_str(&field("    upperdir", &s(&r["upperdir"])));
    out.push_str(&field("    workdir", &s(&r["workdir"])));
    let upper = r["upper"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let changed: Vec<String> = upper
        .iter()
        .filter(|e| e["kind"] != "directory")
        .map(|e| match e["kind"].as_str() {
            Some("file") => format!(
                "{} (file, {})",
                s(&e["path"]),
                bytes(e["size"].as_i64().unwrap_or(0))
            ),
            Some("whiteout") => format!("{} (deleted: whiteout)", s(&e["path"])),
            kind => format!("{} ({})", s(&e["path"]), kind.unwrap_or("?")),
        })
        .collect();
    let more = if r["upperTruncated"] == true {
        " …"
    } else {
        ""
    };
    let text = if changed.is_empty() {
        "nothing".into()
    } else {
        changed.join(", ")
    };
    out.push_str(&field("    changed", &format!("{text}{more}")));
    out
}

fn volumes_text(vols: &Value) -> String {
    let rows: Vec<Vec<String>> = vols
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let mode = if v["readOnly"] == true { "ro" } else { "rw" };
            vec![
                format!("    {}", v["name"].as_str().unwrap_or("?")),
                v["mountPath"].as_str().unwrap_or("?").to_string(),
                format!("<- {} ({mode})", v["hostPath"].as_str().unwrap_or("-")),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!("  volumes:\n{}", aligned(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_container_keeps_one_or_refuses() {
        let mut v = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        only_container(&mut v, "web", "b").unwrap();
        assert_eq!(v["containers"], json!([{"name": "b"}]));
        let err = only_container(&mut v, "web", "zz").unwrap_err();
        assert_eq!(err.to_string(), "container zz is not valid for pod web");
        assert!(only_container(&mut json!({}), "web", "a").is_err());
    }

    #[test]
    fn the_text_view_names_the_kernel_facts() {
        let v = json!({"namespace": "default", "name": "web", "uid": "u1", "nodeName": "n1",
            "network": null, "sandbox": null,
            "containers": [{"name": "c", "initContainer": false, "id": "abcdef0123456789", "attempt": 0,
                "image": "busybox", "imageDigest": "sha256:1", "state": {"status": "running"},
                "volumes": [{"name": "data", "mountPath": "/data", "readOnly": false, "hostPath": "/var/x"}],
                "kernel": {"init": {"hostPid": 42, "cmdline": ["sleep", "1"], "nsPids": [42, 1]},
                    "pidOne": {"hostPid": 42, "cmdline": ["sleep", "1"], "nsPids": [42, 1]},
                    "namespaces": [{"kind": "net", "inode": 4026532001u64, "sharedFrom": "/run/sb/net"},
                                   {"kind": "pid", "inode": 4026532002u64, "sharedFrom": null}],
                    "cgroup": {"version": "V2", "path": "minik8s/u1/abc", "limits": [
                        {"path": "/sys/fs/cgroup/minik8s/u1/abc/memory.max", "value": "67108864"}],
                        "usage": {"memory_usage_bytes": 1048576, "pids_current": 1, "cpu_usage_ns": 0, "oom_kills": 0}},
                    "rootfs": {"layers": ["sha256:aa"], "initLayer": "/r/init-layer", "upperdir": "/u", "workdir": "/w",
                        "upper": [{"path": "/etc/group", "kind": "whiteout", "size": 0}], "upperTruncated": false}}}]});
        let api = json!({"etcdKey": "/registry/pods/default/web", "resourceVersion": "7", "phase": "Running"});
        let text = pod_text(&v, &api);
        for want in [
            "/registry/pods/default/web (resourceVersion 7)",
            "host pid 42: sleep 1",
            "PID 1 inside:   itself",
            "net:[4026532001]",
            "shared with the pod",
            "pid:[4026532002]",
            "memory.max",
            "usage 1Mi",
            "/etc/group (deleted: whiteout)",
            "<- /var/x (rw)",
            "loopback only",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }
}
