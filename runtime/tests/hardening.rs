//! Docker's default hardening, checked from inside busybox containers on the real kernel:
//! masked paths read nothing, read-only paths refuse writes (also below a submount, also when
//! the image makes `/proc` a symlink), `--privileged` lifts both; the device allowlist refuses
//! `mknod` of a block device and keeps `/dev/null` and friends usable; `no_new_privs` shows in
//! `/proc/self/status` when asked (`--security-opt no-new-privileges`, OCI
//! `process.noNewPrivileges`; the kubelet maps `allowPrivilegeEscalation: false` to it), also
//! in `exec`; the default seccomp profile (`Seccomp: 2`, no user namespace, no mount, yet
//! ordinary programs work), none when unconfined or privileged, a caller's profile and an OCI
//! bundle's `linux.seccomp` with their own actions. Run as root.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Run `script` in a busybox container with extra `flags`; stdout and stderr together.
fn sh(rt: &Rt, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = rt.run(&args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value after `key=` on its own line of `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

/// Bytes read from each masked file and entries of each masked directory, and whether writes
/// to read-only paths went through, as `key=value` lines.
const PATHS_SCRIPT: &str = r#"
for f in kcore keys timer_list sched_debug interrupts; do
  echo "$f=$(cat /proc/$f 2>/dev/null | wc -c)"
done
echo "firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l)"
echo "acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)"
if echo 1 > /proc/sysrq-trigger; then echo sysrq=written; else echo sysrq=refused; fi
if echo box > /proc/sys/kernel/hostname; then echo hostname=written; else echo hostname=refused; fi
if touch /proc/acpi/x; then echo acpi_write=written; else echo acpi_write=refused; fi
"#;

#[test]
fn masked_paths_read_nothing_and_readonly_paths_refuse_writes() {
    let rt = Rt::new("mask");
    let out = sh(&rt, &[], PATHS_SCRIPT);
    for f in ["kcore", "keys", "timer_list", "sched_debug", "interrupts"] {
        assert_eq!(field(&out, f), "0", "/proc/{f} readable:\n{out}");
    }
    assert_eq!(field(&out, "firmware"), "0", "{out}");
    assert_eq!(field(&out, "acpi"), "0", "{out}");
    assert_eq!(field(&out, "sysrq"), "refused", "{out}");
    assert_eq!(field(&out, "hostname"), "refused", "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(field(&out, "acpi_write"), "refused", "{out}");
}

#[test]
fn privileged_lifts_the_masks_and_the_readonly_paths() {
    let rt = Rt::new("maskpriv");
    // the hostname write stays in the container's own UTS namespace; sysrq is not touched
    let script = r#"
        echo "keys=$(cat /proc/keys 2>/dev/null | wc -c)"
        echo "firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l)"
        if echo box > /proc/sys/kernel/hostname; then echo hostname=$(hostname); fi
        echo "masks=$(grep -cE ' /proc/(keys|acpi|sys|bus) | /sys/firmware ' /proc/mounts)"
    "#;
    let out = sh(&rt, &["--privileged"], script);
    assert_eq!(field(&out, "hostname"), "box", "{out}");
    assert_eq!(field(&out, "masks"), "0", "{out}");
    if !read_empty("/proc/keys") {
        assert_ne!(field(&out, "keys"), "0", "{out}");
    }
    if fs::read_dir("/sys/firmware").is_ok_and(|mut d| d.next().is_some()) {
        assert_ne!(field(&out, "firmware"), "0", "{out}");
    }
}

fn read_empty(path: &str) -> bool {
    fs::read(path).map_or(true, |b| b.is_empty())
}

/// A bundle rootfs of busybox with the given extra directories.
fn bundle_rootfs(rootfs: &Path) {
    for d in ["bin", "dev", "sys", "etc", "tmp", "out", "realproc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "wc", "ls", "touch", "echo", "grep", "cut", "mknod", "head", "mkdir",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
}

/// An OCI bundle's own lists are applied exactly, resolved inside the rootfs (its `/proc` is an
/// absolute symlink, which the host would resolve to a path of its own), and a read-only path
/// stays read-only below a bind mount inside it.
#[test]
fn oci_rules_hold_through_symlinks_and_submounts() {
    let rt = Rt::new("maskoci");
    let bundle = TempDir::new("maskbundle");
    let out = TempDir::new("maskout");
    let sub = TempDir::new("masksub");
    let rootfs = bundle.path().join("rootfs");
    bundle_rootfs(&rootfs);
    std::os::unix::fs::symlink("/realproc", rootfs.join("proc")).unwrap();
    fs::create_dir_all(rootfs.join("data/sub")).unwrap();
    fs::create_dir_all(rootfs.join("secretdir/inner")).unwrap();
    fs::write(rootfs.join("secret.txt"), "secret").unwrap();
    let script = r#"
        echo "keys=$(cat /proc/keys 2>/dev/null | wc -c)"
        echo "secret=$(cat /secret.txt | wc -c)"
        echo "secretdir=$(ls -A /secretdir | wc -l)"
        if touch /data/x; then echo data=written; else echo data=refused; fi
        if touch /data/sub/x; then echo sub=written; else echo sub=refused; fi
        if touch /tmp/x; then echo tmp=written; else echo tmp=refused; fi
        echo "nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)"
        if mknod /tmp/sda b 8 0; then echo mknod_block=made; else echo mknod_block=refused; fi
        echo "zero=$(head -c 4 /dev/zero | wc -c)"
    "#;
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", format!("({script}) > /out/report 2>&1")],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind", "rw"]},
            {"destination": "/data/sub", "type": "bind", "source": sub.path(), "options": ["rbind", "rw"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
            "maskedPaths": ["/proc/keys", "/secret.txt", "/secretdir"],
            "readonlyPaths": ["/data"],
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        }
    });
    fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let id = format!("mask-{}", rand_hex());
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    let done = rt.wait_for(20, || rt.ok(&["state", &id]).contains("\"stopped\""));
    let report = fs::read_to_string(out.path().join("report")).unwrap_or_default();
    rt.ok(&["delete", "-f", &id]);
    assert!(done, "still running: {report}");
    assert_eq!(field(&report, "keys"), "0", "{report}");
    assert_eq!(field(&report, "secret"), "0", "{report}");
    assert_eq!(field(&report, "secretdir"), "0", "{report}");
    assert_eq!(field(&report, "data"), "refused", "{report}");
    assert_eq!(field(&report, "sub"), "refused", "{report}");
    assert_eq!(field(&report, "tmp"), "written", "{report}");
    assert_eq!(field(&report, "nnp"), "1", "{report}");
    // "deny all" in the bundle, and still a working /dev (runc's allowed devices)
    assert_eq!(field(&report, "mknod_block"), "refused", "{report}");
    assert_eq!(field(&report, "zero"), "4", "{report}");
    assert!(!sub.path().join("x").exists());
}

/// Device checks as `key=value` lines: mknod of a block and of character devices, the use of
/// `/dev`'s devices and of a node made for a device outside the allowlist (`/dev/mem`).
const DEVICES_SCRIPT: &str = r#"
if mknod /tmp/sda b 8 0; then echo mknod_block=made; else echo mknod_block=refused; fi
if mknod /tmp/null c 1 3 && echo x > /tmp/null; then echo mknod_null=usable; else echo mknod_null=refused; fi
if mknod /tmp/mem c 1 1; then
  if head -c 1 /tmp/mem > /dev/null; then echo mem=readable; else echo mem=refused; fi
fi
echo "zero=$(head -c 4 /dev/zero | wc -c)"
echo "urandom=$(head -c 4 /dev/urandom | wc -c)"
echo "full=$(head -c 4 /dev/full | wc -c)"
if echo x > /dev/null; then echo null=writable; fi
"#;

fn assert_default_devices(out: &str) {
    assert_eq!(field(out, "mknod_block"), "refused", "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(field(out, "mknod_null"), "usable", "{out}");
    assert_eq!(field(out, "mem"), "refused", "{out}");
    for f in ["zero", "urandom", "full"] {
        assert_eq!(field(out, f), "4", "/dev/{f}:\n{out}");
    }
    assert_eq!(field(out, "null"), "writable", "{out}");
}

#[test]
fn the_device_allowlist_refuses_block_devices_and_keeps_dev_null_usable() {
    let rt = Rt::new("devices");
    assert_default_devices(&sh(&rt, &[], DEVICES_SCRIPT));
    // a pod container and `exec` are held by the same rules
    rt.ok(&["sandbox", "create", "devpod"]);
    let id = rt.ok_line(&["run", "-d", "--sandbox", "devpod", "busybox", "sleep", "60"]);
    let exec = rt.run(&["exec", &id, "sh", "-c", DEVICES_SCRIPT]);
    assert_default_devices(&format!(
        "{}{}",
        String::from_utf8_lossy(&exec.stdout),
        String::from_utf8_lossy(&exec.stderr)
    ));
    let info = rt.inspect(&id);
    rt.ok(&["rm", "-f", &id]);
    rt.ok(&["sandbox", "rm", "-f", "devpod"]);
    assert_eq!(leftovers(&rt.root, &info), Vec::<String>::new());
    // privileged: every device
    let out = sh(&rt, &["--privileged"], DEVICES_SCRIPT);
    assert_eq!(field(&out, "mknod_block"), "made", "{out}");
}

/// The v2 device program, tested on a hybrid host as `cgroup_view.rs` tests the v2 view: the
/// unified hierarchy bound over `/sys/fs/cgroup` in a private mount namespace, where the
/// runtime finds cgroup v2. The kernel runs a cgroup's device programs on the unified
/// hierarchy whatever the v1 controllers do. A v2 host runs the test above on v2 instead.
#[test]
fn the_v2_device_program_holds_on_the_unified_hierarchy() {
    use runtime::cgroups::{Hierarchy, Version};
    let unified = Path::new("/sys/fs/cgroup/unified");
    if Hierarchy::host().version == Version::V2 {
        eprintln!("skipped: a v2 host runs the device test on v2 already");
        return;
    }
    if !unified.join("cgroup.controllers").exists() {
        eprintln!("skipped: a v1 host without the unified hierarchy has no cgroup v2");
        return;
    }
    let rt = Rt::new("devv2");
    let _parent = UnifiedParent(unified.join(&rt.cgroup_parent));
    let inner = rt.cmd(&["run", "--rm", "busybox", "sh", "-c", DEVICES_SCRIPT]);
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup && exec "$@""#)
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_default_devices(&text);
    assert!(
        rt.wait_for(20, || rt.no_containers()),
        "--rm left the container"
    );
}

/// Removes, on drop, a cgroup parent made in the unified hierarchy of a hybrid host, deepest
/// levels first.
struct UnifiedParent(std::path::PathBuf);

impl Drop for UnifiedParent {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    remove(&e.path());
                }
            }
            let _ = fs::remove_dir(dir);
        }
        remove(&self.0);
    }
}

/// `NoNewPrivs` of the container's shell, and of an `exec` into it.
fn no_new_privs(rt: &Rt, flags: &[&str]) -> (String, String) {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sleep", "60"]);
    let id = rt.ok_line(&args);
    let status = |pid: &str| {
        rt.ok(&[
            "exec",
            &id,
            "sh",
            "-c",
            &format!("grep NoNewPrivs /proc/{pid}/status"),
        ])
        .trim()
        .trim_start_matches("NoNewPrivs:")
        .trim()
        .to_string()
    };
    let got = (status("1"), status("self"));
    rt.ok(&["rm", "-f", &id]);
    got
}

#[test]
fn no_new_privs_only_when_asked() {
    let rt = Rt::new("nnp");
    assert_eq!(no_new_privs(&rt, &[]), ("0".into(), "0".into()));
    let on = ("1".to_string(), "1".to_string());
    assert_eq!(
        no_new_privs(&rt, &["--security-opt", "no-new-privileges"]),
        on
    );
    assert_eq!(
        no_new_privs(&rt, &["--security-opt", "no-new-privileges:true"]),
        on
    );
    assert_eq!(no_new_privs(&rt, &["--no-new-privileges"]), on);
    let bad = rt.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=x",
        "busybox",
        "true",
    ]);
    assert!(!bad.status.success());
}

/// What the default seccomp profile refuses and what still works, as `key=value` lines: the
/// filter mode, a user namespace (which needs no capability, so only the filter refuses it),
/// a mount, then ordinary programs: a shell pipeline, ps, a loopback HTTP exchange.
const SECCOMP_SCRIPT: &str = r#"
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)"
if unshare -U true; then echo userns=made; else echo userns=refused; fi
mkdir -p /mnt
if mount -t tmpfs none /mnt; then echo mount=done; else echo mount=refused; fi
echo "ls=$(ls /bin | grep -cx sh)"
echo "ps=$(ps | grep -c 'ps')"
mkdir -p /www && echo hello > /www/index.html
httpd -p 127.0.0.1:8080 -h /www
echo "wget=$(wget -q -O - http://127.0.0.1:8080/index.html)"
"#;

#[test]
fn the_default_seccomp_profile_refuses_namespaces_and_mounts() {
    let rt = Rt::new("seccomp");
    let out = sh(&rt, &[], SECCOMP_SCRIPT);
    assert_eq!(field(&out, "seccomp"), "2", "{out}");
    assert_eq!(field(&out, "userns"), "refused", "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(field(&out, "mount"), "refused", "{out}");
    assert_eq!(field(&out, "ls"), "1", "{out}");
    assert_ne!(field(&out, "ps"), "0", "{out}");
    assert_eq!(field(&out, "wget"), "hello", "{out}");
    // the capability Docker conditions the mount rules on lifts them
    let out = sh(&rt, &["--cap-add", "SYS_ADMIN"], SECCOMP_SCRIPT);
    assert_eq!(field(&out, "seccomp"), "2", "{out}");
    assert_eq!(field(&out, "mount"), "done", "{out}");
}

#[test]
fn unconfined_and_privileged_containers_have_no_filter_and_exec_shares_it() {
    let rt = Rt::new("seccompoff");
    let mode = "grep '^Seccomp:' /proc/self/status | cut -f2";
    let out = sh(&rt, &["--security-opt", "seccomp=unconfined"], mode);
    assert_eq!(out.trim(), "0", "{out}");
    assert_eq!(sh(&rt, &["--privileged"], mode).trim(), "0");
    // with no_new_privs the filter is loaded last, and still loaded
    let out = sh(&rt, &["--security-opt", "no-new-privileges"], mode);
    assert_eq!(out.trim(), "2", "{out}");
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "60"]);
    let exec = rt.ok(&["exec", &id, "sh", "-c", mode]);
    rt.ok(&["rm", "-f", &id]);
    assert_eq!(exec.trim(), "2");
}

#[test]
fn a_seccomp_profile_of_the_callers_applies_its_own_actions() {
    let rt = Rt::new("seccompfile");
    let dir = TempDir::new("seccompprofile");
    let profile = dir.path().join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = sh(
        &rt,
        &["--security-opt", &opt],
        "mkdir /tmp/x; unshare -U true && echo userns",
    );
    assert!(out.contains("Permission denied"), "{out}");
    // the default profile is replaced, not added to
    if fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|n| n.trim() != "0") {
        assert!(out.contains("userns"), "{out}");
    }
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    let refused = rt.run(&["run", "--rm", "--security-opt", &opt, "busybox", "true"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SCMP_ACT_NOTIFY"));
}

/// An OCI bundle's `config.json` with `linux.seccomp` = `seccomp`, whose process writes what
/// `script` prints to `/out/report`.
fn seccomp_bundle(bundle: &Path, out: &Path, script: &str, seccomp: serde_json::Value) {
    bundle_rootfs(&bundle.join("rootfs"));
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", format!("({script}) > /out/report 2>&1")],
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
            "seccomp": seccomp,
        }
    });
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
}

/// A bundle's `linux.seccomp` is applied with its own actions; an action the runtime cannot
/// carry out fails the create instead of being dropped.
#[test]
fn an_oci_bundle_gets_its_own_seccomp_profile() {
    let rt = Rt::new("seccompoci");
    let bundle = TempDir::new("seccompbundle");
    let out = TempDir::new("seccompout");
    let script = r#"
        echo "seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)"
        if mkdir /tmp/x; then echo mkdir=made; else echo mkdir=refused; fi
    "#;
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    seccomp_bundle(bundle.path(), out.path(), script, profile);
    let id = format!("seccomp-{}", rand_hex());
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    let done = rt.wait_for(20, || rt.ok(&["state", &id]).contains("\"stopped\""));
    let report = fs::read_to_string(out.path().join("report")).unwrap_or_default();
    rt.ok(&["delete", "-f", &id]);
    assert!(done, "still running: {report}");
    assert_eq!(field(&report, "seccomp"), "2", "{report}");
    assert_eq!(field(&report, "mkdir"), "refused", "{report}");
    assert!(report.contains("Permission denied"), "{report}");

    let bundle = TempDir::new("seccompnotify");
    let notify = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    seccomp_bundle(bundle.path(), out.path(), "true", notify);
    let id = format!("seccomp-{}", rand_hex());
    let create = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let _ = rt.run(&["delete", "-f", &id]);
    assert!(!create.status.success());
    assert!(String::from_utf8_lossy(&create.stderr).contains("SCMP_ACT_NOTIFY"));
}
