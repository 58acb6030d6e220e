//! An OCI bundle's `linux.namespaces`, applied exactly, on the real kernel: only the listed
//! kinds are new, the others the runtime's own; a path is joined whatever its kind, and a path
//! of another kind refused; a user namespace gets the bundle's ID mappings. What runtime-tools'
//! `linux_ns_*` and `linux_uid_mappings` programs found wrong. Run as root.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

/// A bundle rootfs of busybox.
fn bundle_rootfs(rootfs: &Path) {
    for d in ["bin", "dev", "proc", "sys", "etc", "tmp", "out"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "sleep", "hostname", "id", "grep", "readlink", "stat", "tty",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
}

/// Write a bundle whose process runs `script` with `/out` bound to `out`, and `linux` merged
/// into its `linux` section.
fn write_bundle(bundle: &Path, out: &Path, script: &str, linux: serde_json::Value) {
    bundle_rootfs(&bundle.join("rootfs"));
    let mut config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]},
        ],
        "linux": {},
    });
    config["linux"] = linux;
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
}

/// A created (not started) container: its init's pid; deleted on drop.
struct Created<'a> {
    rt: &'a Rt,
    id: String,
    pid: i32,
}

impl<'a> Created<'a> {
    fn new(rt: &'a Rt, bundle: &Path) -> Self {
        let id = format!("ns-{}", rand_hex());
        // the container keeps create's stdio (as with runc): none here, or reading it to its
        // end would wait for the container
        let status = rt
            .cmd(&["create", "--bundle", bundle.to_str().unwrap(), &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "create {bundle:?}");
        let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
        let pid = state["pid"].as_i64().unwrap() as i32;
        Created { rt, id, pid }
    }
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        let _ = self.rt.run(&["delete", "-f", &self.id]);
    }
}

fn ns(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// `unshare --fork` holding new namespaces; killed on drop.
struct Unshared(Child);

impl Unshared {
    fn new(flags: &[&str]) -> Self {
        let child = Command::new("unshare")
            .args(flags)
            .args(["--fork", "--kill-child", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        // unshare has switched once its namespaces differ from ours
        let start = std::time::Instant::now();
        while ns(&pid, "mnt") == ns("self", "mnt")
            && start.elapsed() < std::time::Duration::from_secs(5)
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Unshared(child)
    }
}

impl Drop for Unshared {
    fn drop(&mut self) {
        // SIGKILL to unshare, which (--kill-child) takes its sleep with it
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn only_the_listed_namespaces_are_new_the_others_are_the_runtimes() {
    let rt = Rt::new("nslisted");
    let bundle = TempDir::new("nsbundle");
    let out = TempDir::new("nsout");
    write_bundle(
        bundle.path(),
        out.path(),
        "sleep 100",
        serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "mount"}]}),
    );
    let c = Created::new(&rt, bundle.path());
    let pid = c.pid.to_string();
    for kind in ["net", "ipc", "uts", "cgroup", "user"] {
        assert_eq!(
            ns(&pid, kind),
            ns("self", kind),
            "{kind} should be the runtime's"
        );
    }
    for kind in ["pid", "mnt"] {
        assert_ne!(ns(&pid, kind), ns("self", kind), "{kind} should be new");
    }
}

#[test]
fn a_namespace_path_is_joined_for_mount_and_pid_too() {
    let rt = Rt::new("nspath");
    let bundle = TempDir::new("nsbundle");
    let out = TempDir::new("nsout");
    let holder = Unshared::new(&["--mount", "--pid", "--uts"]);
    let hp = holder.0.id();
    write_bundle(
        bundle.path(),
        out.path(),
        "sleep 100",
        serde_json::json!({"namespaces": [
            {"type": "pid", "path": format!("/proc/{hp}/ns/pid_for_children")},
            {"type": "mount", "path": format!("/proc/{hp}/ns/mnt")},
            {"type": "uts", "path": format!("/proc/{hp}/ns/uts")},
        ]}),
    );
    let c = Created::new(&rt, bundle.path());
    let pid = c.pid.to_string();
    assert_eq!(ns(&pid, "mnt"), ns(&hp.to_string(), "mnt"));
    assert_eq!(
        ns(&pid, "pid"),
        ns(&hp.to_string(), "pid_for_children"),
        "pid namespace"
    );
    assert_eq!(ns(&pid, "uts"), ns(&hp.to_string(), "uts"));
    assert_ne!(ns(&pid, "uts"), ns("self", "uts"));
}

#[test]
fn a_namespace_path_of_another_kind_is_refused() {
    let rt = Rt::new("nswrong");
    let bundle = TempDir::new("nsbundle");
    let out = TempDir::new("nsout");
    for (kind, wrong) in [("pid", "net"), ("network", "ipc"), ("mount", "uts")] {
        let mut namespaces =
            vec![serde_json::json!({"type": kind, "path": format!("/proc/self/ns/{wrong}")})];
        if kind != "mount" {
            namespaces.push(serde_json::json!({"type": "mount"}));
        }
        let _ = fs::remove_dir_all(bundle.path().join("rootfs"));
        write_bundle(
            bundle.path(),
            out.path(),
            "true",
            serde_json::json!({ "namespaces": namespaces }),
        );
        let id = format!("wrong-{}", rand_hex());
        let res = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(
            !res.status.success(),
            "{kind} with a {wrong} path was accepted"
        );
        assert!(err.contains(&format!("is a {wrong} namespace")), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one readable line: {err}");
    }
    assert!(rt.no_containers());
}

#[test]
fn a_user_namespace_gets_the_bundles_id_mappings() {
    let rt = Rt::new("nsuser");
    let bundle = TempDir::new("nsbundle");
    let out = TempDir::new("nsout");
    // the container's root is uid 1000 outside: let it write its report
    fs::set_permissions(out.path(), fs::Permissions::from_mode(0o777)).unwrap();
    write_bundle(
        bundle.path(),
        out.path(),
        "cat /proc/self/uid_map > /out/uid; cat /proc/self/gid_map > /out/gid; sleep 100",
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}, {"type": "uts"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 2000}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 3000}],
        }),
    );
    let c = Created::new(&rt, bundle.path());
    assert_ne!(ns(&c.pid.to_string(), "user"), ns("self", "user"));
    rt.ok(&["start", &c.id]);
    let gid = out.path().join("gid");
    assert!(rt.wait_for(10, || fs::metadata(&gid).is_ok_and(|m| m.len() > 0)));
    let fields = |f: &str| -> Vec<String> {
        fs::read_to_string(out.path().join(f))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(fields("uid"), ["0", "1000", "2000"]);
    assert_eq!(fields("gid"), ["0", "1000", "3000"]);
    let status = fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("1000"),
        "{uid_line}"
    );
}

/// What a process in the container reports of its credentials: its uid map, `id`, its
/// effective capabilities and its user namespace.
const CREDENTIALS: &str = "cat /proc/self/uid_map; id; grep CapEff /proc/self/status; \
                           readlink /proc/self/ns/user";

/// `exec` into a container with a user namespace of its own joins it, after the namespaces
/// the host's root made for it: the exec'd process sees what the init sees, as root inside and
/// as a mapped non-zero user, and runs as the mapped host user outside.
#[test]
fn exec_joins_the_containers_user_namespace() {
    for (uid, host_uid) in [(0, 1000), (1000, 2000)] {
        let rt = Rt::new("nsuserexec");
        let bundle = TempDir::new("nsbundle");
        let out = TempDir::new("nsout");
        fs::set_permissions(out.path(), fs::Permissions::from_mode(0o777)).unwrap();
        write_bundle(
            bundle.path(),
            out.path(),
            &format!("({CREDENTIALS}) > /out/init; sleep 100"),
            serde_json::json!({
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"},
                               {"type": "uts"}, {"type": "ipc"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 2000}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 2000}],
            }),
        );
        let mut config: serde_json::Value =
            serde_json::from_slice(&fs::read(bundle.path().join("config.json")).unwrap()).unwrap();
        config["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid});
        let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_CHROOT"]);
        config["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps,
        });
        fs::write(
            bundle.path().join("config.json"),
            serde_json::to_vec(&config).unwrap(),
        )
        .unwrap();
        let c = Created::new(&rt, bundle.path());
        rt.ok(&["start", &c.id]);
        let init = out.path().join("init");
        assert!(rt.wait_for(10, || fs::read_to_string(&init)
            .is_ok_and(|s| s.contains("user:["))));
        let init = fs::read_to_string(&init).unwrap();
        let exec = rt.run(&[
            "exec",
            &c.id,
            "sh",
            "-c",
            &format!("{CREDENTIALS}; sleep 0.2"),
        ]);
        let stdout = String::from_utf8_lossy(&exec.stdout);
        assert!(
            exec.status.success(),
            "uid {uid}: {}",
            String::from_utf8_lossy(&exec.stderr)
        );
        assert_eq!(stdout, init, "uid {uid}: exec'd process against the init");
        assert!(init.contains(&format!("uid={uid}")), "{init}");
        // root inside keeps the bundle's capabilities, another user none
        assert_eq!(
            init.contains("CapEff:\t0000000000000000"),
            uid != 0,
            "{init}"
        );
        assert!(
            init.split_whitespace().take(3).eq(["0", "1000", "2000"]),
            "{init}"
        );
        // `exec -t`: the pty, made before the user namespace is joined, is the user's inside
        let tty = rt.run(&["exec", "-t", &c.id, "sh", "-c", "stat -c %u $(tty)"]);
        assert!(
            tty.status.success(),
            "uid {uid}: exec -t: {}",
            String::from_utf8_lossy(&tty.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&tty.stdout).trim(), uid.to_string());
        // outside, the exec'd process is the mapped host user
        let mut exec = rt
            .cmd(&["exec", &c.id, "sleep", "5"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut host_uid_seen = None;
        rt.wait_for(5, || {
            host_uid_seen = exec_sleep_uid(c.pid);
            host_uid_seen.is_some()
        });
        let _ = exec.kill();
        let _ = exec.wait();
        assert_eq!(host_uid_seen, Some(host_uid), "uid {uid}");
    }
}

/// The host uid of a `sleep 5` in the container of init `pid` that is not the init's own
/// child (an exec'd one: its parent is `minik8s-runtime exec`, outside the container).
fn exec_sleep_uid(init: i32) -> Option<u32> {
    let init_pidns = fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let same_ns = fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? == init_pidns;
        if pid == init || !same_ns || cmdline != b"sleep\x005\x00" {
            return None;
        }
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    })
}

#[test]
fn a_bundle_without_namespaces_shares_the_runtimes_and_delete_leaves_no_mount() {
    let rt = Rt::new("nsnone");
    let bundle = TempDir::new("nsbundle");
    let out = TempDir::new("nsout");
    let mounts = || fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = mounts()
        .lines()
        .filter(|l| l.contains(rt.state.to_str().unwrap()))
        .count();
    write_bundle(
        bundle.path(),
        out.path(),
        "sleep 100",
        serde_json::json!({"namespaces": []}),
    );
    let c = Created::new(&rt, bundle.path());
    let pid = c.pid.to_string();
    for kind in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"] {
        assert_eq!(
            ns(&pid, kind),
            ns("self", kind),
            "{kind} should be the runtime's"
        );
    }
    // its root is the bundle's, entered by chroot(2) below mounts made in ours
    assert!(fs::metadata(format!("/proc/{pid}/root/bin/busybox")).is_ok());
    drop(c);
    let left: Vec<String> = mounts()
        .lines()
        .filter(|l| l.contains(rt.state.to_str().unwrap()))
        .map(String::from)
        .collect();
    assert_eq!(left.len(), before, "mounts left after delete: {left:#?}");
    assert!(
        bundle.path().join("rootfs/bin/busybox").exists(),
        "the bundle's rootfs was removed with the container"
    );
}
