//! OCI runtime-spec conformance: what the opencontainers runtime-tools validation suite found
//! wrong, as regular tests. Each builds a bundle of the host's static busybox, drives the
//! binary's OCI commands (`create`, `start`, `state`, `delete`) and checks what the container
//! saw; the `Rt` guard removes containers, cgroups and the root, `TempDir` the bundle.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;

use common::{rand_hex, Rt, TempDir};
use serde_json::{json, Value};

/// A bundle rootfs of busybox and its applets.
fn busybox_rootfs(rootfs: &Path) {
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "id", "grep", "cut", "sed", "stat", "true", "false", "sleep", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
}

/// The runtime-tools generator's default mounts, which a conforming bundle lists itself.
fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ])
}

/// A bundle in a new temp dir whose process runs `script`; `edit` adjusts the config.
fn bundle(script: &str, edit: impl FnOnce(&mut Value)) -> TempDir {
    let dir = TempDir::new("ocibundle");
    busybox_rootfs(&dir.path().join("rootfs"));
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"],
            },
        },
        "root": {"path": "rootfs"},
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"},
                           {"type": "ipc"}, {"type": "uts"}],
        },
    });
    edit(&mut config);
    fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    dir
}

/// `create` with stdout and stderr in files (as the suite does), `start`, wait for the end;
/// returns what the container printed on stdout, and `delete`s it.
fn run_bundle(rt: &Rt, bundle: &TempDir) -> String {
    let id = format!("oci-{}", rand_hex());
    let out = bundle.path().join("stdout");
    let err = bundle.path().join("stderr");
    let create = rt
        .cmd(&["create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(Stdio::from(fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(fs::File::create(&err).unwrap()))
        .status()
        .unwrap();
    let stderr = || fs::read_to_string(&err).unwrap_or_default();
    assert!(create.success(), "create: {}", stderr());
    rt.ok(&["start", &id]);
    let done = rt.wait_for(20, || rt.ok(&["state", &id]).contains("\"stopped\""));
    rt.ok(&["delete", "-f", &id]);
    assert!(done, "still running: {}", stderr());
    fs::read_to_string(&out).unwrap()
}

/// The value of `key=` in `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// runc's pass-through: the container's stdout and stderr are `create`'s own (the suite reads
/// the in-container checker's report there); before, they went to the runtime's log only.
#[test]
fn create_hands_its_stdio_to_the_container() {
    let rt = Rt::new("ocistdio");
    let b = bundle("echo to-stdout; echo to-stderr >&2", |_| {});
    let out = run_bundle(&rt, &b);
    // an OCI id may be shorter than the 12 characters `ps` shows of an id
    let short = bundle("true", |_| {});
    rt.ok(&["create", "--bundle", short.path().to_str().unwrap(), "c1"]);
    let ps = rt.ok(&["ps", "-a"]);
    rt.ok(&["delete", "-f", "c1"]);
    assert!(ps.contains("c1"), "{ps}");
    assert_eq!(out, "to-stdout\n");
    let err = fs::read_to_string(b.path().join("stderr")).unwrap();
    assert!(err.contains("to-stderr"), "{err}");
}

/// A non-root `process.user` used to reopen the root-owned exec fifo after the switch: EACCES
/// and a `start` that hung or failed. The handshake now happens before the switch.
#[test]
fn a_non_root_user_is_started() {
    let rt = Rt::new("ociuser");
    for _ in 0..3 {
        let b = bundle("echo uid=$(id -u) gid=$(id -g) groups=$(id -G)", |c| {
            c["process"]["user"] = json!({"uid": 10, "gid": 10, "additionalGids": [5, 7]});
        });
        let out = run_bundle(&rt, &b);
        assert!(out.contains("uid=10 gid=10"), "{out}");
        assert!(out.contains("groups=10 5 7"), "{out}");
    }
}

/// `process.rlimits`, `oomScoreAdj`, `umask`, `domainname` and every capability set, ambient
/// included, for a non-root user; before, only the bounding set was applied and the rest
/// dropped.
#[test]
fn rlimits_oom_score_and_capability_sets_apply() {
    let rt = Rt::new("ociproc");
    let script = r#"
        echo "nofile=$(ulimit -n)"
        echo "core=$(ulimit -c)"
        echo "oom=$(cat /proc/self/oom_score_adj)"
        echo "umask=$(umask)"
        echo "domain=$(cat /proc/sys/kernel/domainname)"
        for s in CapEff CapPrm CapInh CapAmb CapBnd; do
            echo "$s=$(grep "^$s:" /proc/self/status | cut -f2)"
        done
    "#;
    let b = bundle(script, |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "umask": 0o027});
        c["domainname"] = json!("example.org");
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1234, "hard": 1234},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        ]);
        c["process"]["oomScoreAdj"] = json!(512);
        let net = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "effective": net, "permitted": net, "inheritable": net, "ambient": net,
        });
    });
    let out = run_bundle(&rt, &b);
    assert_eq!(field(&out, "nofile"), "1234", "{out}");
    assert_eq!(field(&out, "core"), "0", "{out}");
    assert_eq!(field(&out, "oom"), "512", "{out}");
    assert_eq!(field(&out, "umask"), "0027", "{out}");
    assert_eq!(field(&out, "domain"), "example.org", "{out}");
    // CAP_NET_BIND_SERVICE is bit 10, CAP_KILL bit 5
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(field(&out, set), "0000000000000400", "{set}: {out}");
    }
    assert_eq!(field(&out, "CapBnd"), "0000000000000420", "{out}");
}

/// `mounts` as listed (type, source, options), `linux.devices` with their type, numbers, mode
/// and owner, `linux.rootfsPropagation`, `linux.sysctl` in the container's namespaces;
/// before, only bind mounts were taken from the list, the rest silently dropped.
#[test]
fn mounts_devices_and_sysctls_come_from_the_config() {
    let rt = Rt::new("ocifs");
    let script = r#"
        echo "shm=$(grep ' /dev/shm ' /proc/self/mountinfo | cut -d' ' -f6) $(grep ' /dev/shm ' /proc/self/mountinfo | sed 's/.* - //')"
        echo "scratch=$(grep ' /scratch ' /proc/self/mountinfo | cut -d' ' -f6) $(grep ' /scratch ' /proc/self/mountinfo | sed 's/.* - //')"
        echo "dev=$(stat -c '%F %t:%T %a %u:%g' /dev/mynull)"
        echo "fifo=$(stat -c '%F %a' /dev/myfifo)"
        while read -r _ _ _ _ point _ tag _; do
            [ "$point" = / ] && echo "root=$tag"
        done < /proc/self/mountinfo
        echo "forward=$(cat /proc/sys/net/ipv4/ip_forward)"
        echo "shmmni=$(cat /proc/sys/kernel/shmmni)"
    "#;
    let b = bundle(script, |c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(
            json!({"destination": "/scratch", "type": "tmpfs", "source": "scratchfs",
                           "options": ["noexec", "size=1m", "mode=700"]}),
        );
        c["linux"]["devices"] = json!([
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o620, "uid": 5, "gid": 6},
            {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o600},
        ]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000"});
        c["linux"]["rootfsPropagation"] = json!("shared");
    });
    let out = run_bundle(&rt, &b);
    let shm = field(&out, "shm");
    assert!(shm.starts_with("rw,nosuid,nodev,noexec"), "{out}");
    assert!(
        shm.contains("tmpfs shm") && shm.contains("size=65536k"),
        "{out}"
    );
    let scratch = field(&out, "scratch");
    assert!(
        scratch.contains("noexec") && scratch.contains("tmpfs scratchfs"),
        "{out}"
    );
    assert_eq!(
        field(&out, "dev"),
        "character special file 1:3 620 5:6",
        "{out}"
    );
    assert_eq!(field(&out, "fifo"), "fifo 600", "{out}");
    assert!(field(&out, "root").starts_with("shared:"), "{out}");
    assert_eq!(field(&out, "forward"), "1", "{out}");
    assert_eq!(field(&out, "shmmni"), "1000", "{out}");
}

/// Every hook runs, in order, with the state on stdin; a failing `poststart` or `poststop` is
/// only a warning.
#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let rt = Rt::new("ocihooks");
    let log = TempDir::new("ocihooklog");
    // startContainer's path and files are the container's: the log is bound at /hooklog
    let hook = |name: &str| {
        let dir = match name {
            "startContainer" => "/hooklog".into(),
            _ => log.path().display().to_string(),
        };
        let line = format!("read -r s; echo \"{name} $s\" >> {dir}/hooks");
        json!({"path": "/bin/sh", "args": ["sh", "-c", line], "timeout": 5})
    };
    let fail = json!({"path": "/bin/false", "args": ["false"]});
    let b = bundle("echo ran >> /tmp/ran", |c| {
        c["annotations"] = json!({"org.example": "yes"});
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/hooklog",
            "type": "bind", "source": log.path(), "options": ["rbind", "rw"]}));
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [hook("startContainer")],
            "poststart": [fail.clone(), hook("poststart")],
            "poststop": [fail, hook("poststop")],
        });
    });
    run_bundle(&rt, &b);
    let lines = fs::read_to_string(log.path().join("hooks")).unwrap_or_default();
    let order: Vec<&str> = lines.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{lines}"
    );
    for l in lines.lines() {
        let (name, state) = l.split_once(' ').unwrap();
        let state: Value = serde_json::from_str(state).unwrap();
        assert_eq!(state["annotations"]["org.example"], "yes", "{l}");
        assert_eq!(state["bundle"], b.path().to_str().unwrap(), "{l}");
        let status = match name {
            "prestart" | "createRuntime" | "createContainer" => "created",
            "poststop" => "stopped",
            _ => "running",
        };
        assert_eq!(state["status"], status, "{l}");
        if name != "poststop" {
            assert!(state["pid"].as_i64().unwrap() > 1, "{l}");
        }
    }
}

/// A failing `prestart`, `createRuntime` or `createContainer` hook fails `create` (the last
/// one runs in the init, which `create` now waits for), the container is gone and its command
/// never ran.
#[test]
fn a_failing_create_hook_fails_create() {
    let rt = Rt::new("ociprefail");
    for phase in ["prestart", "createRuntime", "createContainer"] {
        let b = bundle("echo ran > /ran", |c| {
            c["hooks"] = json!({phase: [{"path": "/bin/false", "args": ["false"]}]});
        });
        let id = format!("oci-{}", rand_hex());
        let create = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        let gone = !rt.run(&["state", &id]).status.success();
        let _ = rt.run(&["delete", "-f", &id]);
        assert!(!create.status.success(), "{phase}: create succeeded");
        assert!(gone, "{phase}: the container is left");
        let err = String::from_utf8_lossy(&create.stderr);
        assert!(err.contains(&format!("{phase} hook")), "{phase}: {err}");
        assert!(!b.path().join("rootfs/ran").exists(), "{phase}");
        assert!(rt.no_containers(), "{phase}");
    }
}

/// A failed `create` leaves no container, and deleting one that does not exist is what it is
/// with runc 1.1.5: `delete --force` succeeds quietly (runtime-tools cleans up with it after a
/// failed create), plain `delete` fails with one line; a second `delete` of a deleted one too.
#[test]
fn delete_of_a_missing_container_is_runcs() {
    let rt = Rt::new("ocidelmissing");
    let b = bundle("true", |c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/false", "args": ["false"]}]});
    });
    let failed = format!("oci-{}", rand_hex());
    let create = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &failed]);
    assert!(!create.status.success());
    let ok = bundle("sleep 100", |_| {});
    let deleted = format!("oci-{}", rand_hex());
    rt.ok(&["create", "--bundle", ok.path().to_str().unwrap(), &deleted]);
    rt.ok(&["delete", "--force", &deleted]);
    for id in [&failed, &deleted, &"never-created".to_string()] {
        let force = rt.run(&["delete", "--force", id]);
        let err = String::from_utf8_lossy(&force.stderr);
        assert!(force.status.success(), "delete --force {id}: {err}");
        assert_eq!(err, "", "delete --force {id}");
        let plain = rt.run(&["delete", id]);
        let err = String::from_utf8_lossy(&plain.stderr);
        assert!(!plain.status.success(), "delete {id}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("no such container: {id}")), "{err}");
    }
    assert!(rt.no_containers());
}

/// Settings the runtime cannot honour are refused with a one-line error at create.
#[test]
fn unsupported_settings_are_refused() {
    let rt = Rt::new("ocirefuse");
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit); 5] = [
        ("ociVersion", |c| c["ociVersion"] = json!("invalid")),
        ("AppArmor", |c| {
            c["process"]["apparmorProfile"] = json!("acme")
        }),
        ("vm.swappiness", |c| {
            c["linux"]["sysctl"] = json!({"vm.swappiness": "10"})
        }),
        ("CAP_TEST", |c| {
            c["process"]["capabilities"]["bounding"] = json!(["CAP_TEST"])
        }),
        (
            "timeout",
            |c| c["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
        ),
    ];
    for (what, edit) in cases {
        let b = bundle("true", edit);
        let id = format!("oci-{}", rand_hex());
        let out = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} accepted");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    assert!(rt.no_containers());
}

/// Until `start`, an OCI container's init is `minik8s-runtime init` (comm `minik8s-init`), as
/// runc's is `runc init`: it used to show its shim's title, `minik8s-runtime-shim ID`, which
/// made two shims of one container in `ps`. Its shim keeps its own; `start` execs the command.
#[test]
fn a_created_containers_init_has_a_name_of_its_own_until_start() {
    let rt = Rt::new("oci-init-name");
    let b = bundle("exec sleep 30", |_| {});
    let id = format!("oci-{}", rand_hex());
    let out = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{out:?}");
    let state: Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let read = |pid: i64, f: &str| {
        String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/{f}")).unwrap()).into_owned()
    };
    assert_eq!(read(pid, "cmdline"), "minik8s-runtime init\0");
    assert_eq!(read(pid, "comm"), "minik8s-init\n");
    let shim = rt.inspect(&id)["State"]["shim_pid"].as_i64().unwrap();
    assert!(
        read(shim, "cmdline").starts_with("minik8s-runtime-shim"),
        "{:?}",
        read(shim, "cmdline")
    );
    assert_eq!(read(shim, "comm"), "minik8s-shim\n");
    rt.ok(&["start", &id]);
    assert!(rt.wait_for(10, || read(pid, "comm") == "sleep\n"));
    assert_eq!(read(pid, "cmdline"), "sleep\x0030\0");
    rt.ok(&["delete", "-f", &id]);
}
