//! `inspect --explain`: the facts of `inspect` told in sentences, for a student who knows the
//! concepts but not yet where the kernel keeps them. A container is a process (its host PID is
//! PID 1 in its own pid namespace), a set of namespaces (new ones, or joined from the pod's
//! sandbox, or the host's own when not isolated), a cgroup whose files hold the limits (a CFS
//! quota per period is a share of one CPU), an overlay of directories (the writable upper dir
//! on top, the image's layers, the shared init layer at the bottom) and the privileges it kept
//! (capabilities, a seccomp filter, masked paths). Rendering is a pure function of the inspect
//! document and the host's namespace inodes, so it is tested on a fixed document.
//! Read next: `inspect.rs` (where the facts come from).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use crate::capabilities::NAMES;
use crate::namespaces::Kind;
use crate::rootfs::RootSwitch;
use crate::spec::ContainerSpec;

/// The `Security` section of `inspect`: what the container's root may still do.
pub fn security(spec: &ContainerSpec) -> Value {
    let capabilities: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| spec.capabilities & (1u64 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    json!({
        "Capabilities": capabilities,
        "Seccomp": spec.seccomp.as_ref().map(|c| json!({ "Programs": c.programs.len() })),
        "NoNewPrivileges": spec.no_new_privs,
        "MaskedPaths": spec.rootfs.path_rules.masked,
        "ReadonlyPaths": spec.rootfs.path_rules.readonly,
        "RootSwitch": spec.rootfs.switch,
        "Privileged": spec.rootfs.privileged,
    })
}

/// The namespaces the container joined rather than created: kind → pinned file.
pub fn joined(spec: &ContainerSpec) -> Value {
    let m: serde_json::Map<String, Value> = spec
        .join_namespaces
        .iter()
        .map(|(k, p)| (k.proc_name().to_string(), json!(p)))
        .collect();
    Value::Object(m)
}

/// The PID the container's init has in its own pid namespace (the last of `NSpid`).
pub fn pid_inside(live: Option<i32>) -> Option<i32> {
    super::process_view(live?)?.ns_pids.last().copied()
}

/// The namespaces the runtime neither creates nor joins, `user` and `time`: the container
/// shares the host's unless something else made new ones. Kind → inode.
pub fn other_namespaces(live: Option<i32>) -> Value {
    let Some(pid) = live else {
        return json!({});
    };
    let m: serde_json::Map<String, Value> = OTHER_KINDS
        .iter()
        .filter_map(|k| Some((k.to_string(), json!(ns_inode(pid, k)?))))
        .collect();
    Value::Object(m)
}

/// Namespace kinds outside [`Kind::ALL`].
const OTHER_KINDS: [&str; 2] = ["user", "time"];

fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// The host's namespace inodes (this process's, as the CLI runs on the host), by kind.
pub fn host_namespaces() -> BTreeMap<String, u64> {
    let me = std::process::id() as i32;
    let kinds = Kind::ALL.iter().map(|k| k.proc_name());
    kinds
        .chain(OTHER_KINDS)
        .filter_map(|k| Some((k.to_string(), ns_inode(me, k)?)))
        .collect()
}

/// The inspect document `v` in sentences; `host` holds the host's namespace inodes.
pub fn render(v: &Value, host: &BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    process(&mut out, v);
    namespaces(&mut out, v, host);
    cgroup(&mut out, v);
    rootfs(&mut out, v);
    privileges(&mut out, v);
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn process(out: &mut String, v: &Value) {
    let id = s(&v["Id"]);
    let status = s(&v["State"]["status"]);
    let _ = writeln!(
        out,
        "Container {} ({}) from image {}: {status}.",
        &id[..id.len().min(12)],
        s(&v["Name"]),
        s(&v["Image"])
    );
    let args: Vec<&str> = v["Args"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    match (v["HostPid"].as_i64(), v["PidInside"].as_i64()) {
        (Some(host), Some(inside)) => {
            let _ = writeln!(
                out,
                "Process: host PID {host} is PID {inside} inside, running `{}`: one process \
                 with two numbers, one per pid namespace.",
                args.join(" ")
            );
        }
        (Some(host), None) => {
            let _ = writeln!(
                out,
                "Process: host PID {host}, running `{}`.",
                args.join(" ")
            );
        }
        _ => {
            let _ = writeln!(out, "Process: none running (`{}`).", args.join(" "));
        }
    }
}

fn namespaces(out: &mut String, v: &Value, host: &BTreeMap<String, u64>) {
    let inodes = |key: &str| -> BTreeMap<String, u64> {
        let m = v[key].as_object().cloned().unwrap_or_default();
        m.into_iter()
            .map(|(k, i)| (k, i.as_u64().unwrap_or(0)))
            .collect()
    };
    let mut ns = inodes("Namespaces");
    if ns.is_empty() {
        let _ = writeln!(
            out,
            "Namespaces: none to show (the container is not running)."
        );
        return;
    }
    ns.extend(inodes("OtherNamespaces"));
    let _ = writeln!(out, "Namespaces (ls -l /proc/{}/ns):", v["HostPid"]);
    for (kind, inode) in ns {
        let how = if let Some(p) = v["JoinedNamespaces"].get(&kind) {
            format!(
                "joined from the sandbox (inode {inode}, pinned at {})",
                s(p)
            )
        } else if host.get(&kind) == Some(&inode) {
            format!("the host's own (inode {inode}): not isolated")
        } else {
            format!("new (inode {inode})")
        };
        let _ = writeln!(out, "  {kind} namespace: {how}");
    }
}

fn cgroup(out: &mut String, v: &Value) {
    let version = s(&v["CgroupVersion"]);
    let _ = writeln!(out, "Cgroup {} ({version}):", s(&v["Cgroup"]));
    let r = &v["Resources"];
    let quota = &r["cpu_quota"];
    match (quota["quota_us"].as_u64(), quota["period_us"].as_u64()) {
        (Some(q), Some(p)) if p > 0 => {
            let pct = q as f64 * 100.0 / p as f64;
            let _ = writeln!(
                out,
                "  cpu: {q}/{p} µs = {} of one CPU (the CFS quota per period)",
                percent(pct)
            );
        }
        _ => {
            let _ = writeln!(out, "  cpu: no quota, all CPUs");
        }
    }
    let _ = match r["memory_bytes"].as_u64() {
        Some(m) => writeln!(
            out,
            "  memory: at most {} ({m} bytes), then the OOM killer",
            mib(m)
        ),
        None => writeln!(out, "  memory: no limit"),
    };
    let _ = match r["pids"].as_u64() {
        Some(p) => writeln!(out, "  pids: at most {p} processes (fork fails beyond)"),
        None => writeln!(out, "  pids: no limit"),
    };
    if let Some(files) = v["CgroupLimits"].as_object() {
        for (path, value) in files {
            let _ = writeln!(out, "    {path} = {}", s(value));
        }
    }
}

fn percent(p: f64) -> String {
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn rootfs(out: &mut String, v: &Value) {
    let o = &v["Overlay"];
    let _ = writeln!(out, "Root filesystem: an overlay, top first:");
    let _ = writeln!(
        out,
        "  rw     {}  (the upper dir: every write and whiteout; `diff` lists it)",
        s(&o["UpperDir"])
    );
    let lowers: Vec<&str> = o["LowerDirs"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let images = lowers
        .iter()
        .filter(|d| !d.ends_with("/init-layer"))
        .count();
    let mut n = images;
    for dir in &lowers {
        if dir.ends_with("/init-layer") {
            let _ = writeln!(
                out,
                "  init   {dir}  (mount points: /proc, /dev, /sys, /etc/hosts...; shared)"
            );
        } else {
            let hex = dir.rsplit('/').next().unwrap_or("");
            let _ = writeln!(
                out,
                "  image  {dir}  (layer {n} of {images}, sha256:{}, read-only)",
                &hex[..hex.len().min(12)]
            );
            n = n.saturating_sub(1);
        }
    }
    let _ = writeln!(out, "  work   {}  (overlayfs' scratch)", s(&o["WorkDir"]));
    if !o["MergedDir"].is_null() {
        let _ = writeln!(out, "  merged {}  (the container's /)", s(&o["MergedDir"]));
    }
}

fn privileges(out: &mut String, v: &Value) {
    let sec = &v["Security"];
    if sec.is_null() {
        return;
    }
    let caps: Vec<&str> = sec["Capabilities"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "Privileges of its root:");
    let _ = writeln!(
        out,
        "  capabilities: {} of {} ({})",
        caps.len(),
        NAMES.len(),
        caps.join(", ")
    );
    let _ = match sec["Seccomp"]["Programs"].as_u64() {
        Some(n) => writeln!(
            out,
            "  seccomp: a filter of {n} BPF program(s) checks every system call"
        ),
        None => writeln!(out, "  seccomp: unconfined, every system call allowed"),
    };
    let count = |k: &str| sec[k].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "  masked paths: {} (bound to /dev/null or an empty tmpfs), read-only paths: {}",
        count("MaskedPaths"),
        count("ReadonlyPaths")
    );
    let nnp = if sec["NoNewPrivileges"] == true {
        "set: no exec gains privileges"
    } else {
        "not set"
    };
    let _ = writeln!(out, "  no_new_privs: {nnp}");
    let chroot = serde_json::to_value(RootSwitch::Chroot).unwrap_or_default();
    let root = if sec["RootSwitch"] == chroot {
        "chroot(2): the host's root is still mounted above it (escapable)"
    } else {
        "pivot_root(2), the old root detached"
    };
    let _ = writeln!(out, "  root entered by {root}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "Id": "0123456789abcdef0123456789abcdef",
            "Name": "web",
            "Image": "busybox:latest",
            "State": { "status": "running" },
            "Args": ["sleep", "100"],
            "HostPid": 26385,
            "PidInside": 1,
            "Namespaces": { "ipc": 4026532801u64, "net": 4026532700u64, "pid": 4026532803u64, "user": 4026531837u64 },
            "JoinedNamespaces": { "net": "/run/minik8s/runtime/sandboxes/pod1/net" },
            "OtherNamespaces": { "time": 4026531834u64 },
            "CgroupVersion": "V1",
            "Cgroup": "minik8s/pod-0123456789ab/0123456789ab",
            "CgroupLimits": { "/sys/fs/cgroup/cpu/minik8s/x/cpu.cfs_quota_us": "20000" },
            "Resources": { "cpu_quota": { "quota_us": 20000, "period_us": 100000 }, "memory_bytes": 67108864u64, "pids": null },
            "Overlay": {
                "LowerDirs": ["/var/lib/minik8s/runtime/layers/d871d7d060e1aefe", "/var/lib/minik8s/runtime/layers/aaaabbbbcccc1111", "/var/lib/minik8s/runtime/init-layer"],
                "UpperDir": "/var/lib/minik8s/runtime/containers/01/0123/upper",
                "WorkDir": "/var/lib/minik8s/runtime/containers/01/0123/work",
                "MergedDir": "/proc/26385/root",
            },
            "Security": {
                "Capabilities": ["CHOWN", "KILL"],
                "Seccomp": { "Programs": 1 },
                "NoNewPrivileges": false,
                "MaskedPaths": ["/proc/kcore", "/proc/keys"],
                "ReadonlyPaths": ["/proc/bus"],
                "RootSwitch": "PivotRoot",
            },
        })
    }

    #[test]
    fn an_inspect_document_reads_as_sentences() {
        let host = BTreeMap::from([
            ("user".to_string(), 4026531837u64),
            ("time".to_string(), 4026531834u64),
        ]);
        let text = render(&sample(), &host);
        for line in [
            "Container 0123456789ab (web) from image busybox:latest: running.",
            "Process: host PID 26385 is PID 1 inside, running `sleep 100`",
            "  ipc namespace: new (inode 4026532801)",
            "  net namespace: joined from the sandbox (inode 4026532700, pinned at /run/minik8s/runtime/sandboxes/pod1/net)",
            "  user namespace: the host's own (inode 4026531837): not isolated",
            "  time namespace: the host's own (inode 4026531834): not isolated",
            "  cpu: 20000/100000 µs = 20% of one CPU (the CFS quota per period)",
            "  memory: at most 64 MiB (67108864 bytes), then the OOM killer",
            "  pids: no limit",
            "  rw     /var/lib/minik8s/runtime/containers/01/0123/upper",
            "  image  /var/lib/minik8s/runtime/layers/d871d7d060e1aefe  (layer 2 of 2, sha256:d871d7d060e1, read-only)",
            "  image  /var/lib/minik8s/runtime/layers/aaaabbbbcccc1111  (layer 1 of 2",
            "  init   /var/lib/minik8s/runtime/init-layer",
            "  merged /proc/26385/root  (the container's /)",
            "  capabilities: 2 of 41 (CHOWN, KILL)",
            "  seccomp: a filter of 1 BPF program(s)",
            "  masked paths: 2 (bound to /dev/null or an empty tmpfs), read-only paths: 1",
            "  root entered by pivot_root(2)",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_stopped_container_and_odd_quotas_still_read_well() {
        let mut v = sample();
        v["HostPid"] = Value::Null;
        v["Namespaces"] = json!({});
        v["Resources"]["cpu_quota"] = json!({ "quota_us": 150000, "period_us": 100000 });
        v["Security"]["RootSwitch"] = json!("Chroot");
        let text = render(&v, &BTreeMap::new());
        assert!(
            text.contains("Process: none running (`sleep 100`)"),
            "{text}"
        );
        assert!(text.contains("Namespaces: none to show"), "{text}");
        assert!(text.contains("= 150% of one CPU"), "{text}");
        assert!(text.contains("chroot(2)"), "{text}");
        assert_eq!(percent(33.333), "33.3%");
    }
}
