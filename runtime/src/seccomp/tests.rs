//! The compiled filters on the real kernel, each in a forked child that sets no_new_privs
//! (so no root is needed) and reports through its exit code.

use super::*;

fn default_caps() -> u64 {
    capabilities::mask(false, &[], &[]).unwrap()
}

/// Load `compiled` in a child and run `call` there: its errno (0 for success).
fn errno_under(compiled: &Compiled, call: fn() -> libc::c_long) -> i32 {
    let programs: Vec<Vec<sock_filter>> = compiled
        .programs
        .iter()
        .map(|p| decode(p).unwrap())
        .collect();
    // SAFETY: the child only makes system calls on memory prepared before the fork, then
    // _exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            for p in &programs {
                let fprog = libc::sock_fprog {
                    len: p.len() as u16,
                    filter: p.as_ptr() as *mut libc::sock_filter,
                };
                // SAFETY: as in `load`: the kernel copies the live program.
                let rc = unsafe {
                    libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog)
                };
                if rc != 0 {
                    // SAFETY: _exit ends the child at once.
                    unsafe { libc::_exit(200) };
                }
            }
            let code = if call() < 0 {
                nix::Error::last_raw()
            } else {
                0
            };
            // SAFETY: _exit ends the child at once.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status), "child died: {status:#x}");
            libc::WEXITSTATUS(status)
        }
        _ => panic!("fork failed"),
    }
}

fn unshare_user() -> libc::c_long {
    // SAFETY: unshare with a flag only (the child is about to exit).
    unsafe { libc::unshare(libc::CLONE_NEWUSER) as libc::c_long }
}

fn keyctl() -> libc::c_long {
    // SAFETY: KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), no pointers.
    unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) }
}

fn kexec_load() -> libc::c_long {
    // SAFETY: kexec_load with no segments: refused before anything is read.
    unsafe { libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0) }
}

fn clone_newuser() -> libc::c_long {
    // SAFETY: a raw clone without CLONE_VM: the child (if any) exits at once.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWUSER | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // SAFETY: _exit ends the clone's child.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn getpid() -> libc::c_long {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() as libc::c_long }
}

#[test]
fn the_default_profile_refuses_what_docker_refuses() {
    let compiled = compile(&Profile::runtime_default(), default_caps()).unwrap();
    assert_eq!(errno_under(&compiled, unshare_user), libc::EPERM);
    assert_eq!(errno_under(&compiled, keyctl), libc::EPERM);
    assert_eq!(errno_under(&compiled, kexec_load), libc::EPERM);
    assert_eq!(errno_under(&compiled, clone_newuser), libc::EPERM);
    assert_eq!(errno_under(&compiled, getpid), 0);
}

#[test]
fn capabilities_lift_the_rules_docker_conditions_on_them() {
    let admin = default_caps() | 1 << capabilities::number("SYS_ADMIN").unwrap();
    let base = compile(&Profile::runtime_default(), default_caps()).unwrap();
    let lifted = compile(&Profile::runtime_default(), admin).unwrap();
    assert!(lifted.programs[0].len() < base.programs[0].len());
    // the keyring stays refused whatever the capabilities
    assert_eq!(errno_under(&lifted, keyctl), libc::EPERM);
}

#[test]
fn an_allowlist_stacks_a_program_per_action() {
    let profile = Profile::parse(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
            {"names": ["getpid", "exit", "exit_group", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ]}"#,
    )
    .unwrap();
    let compiled = compile(&profile, 0).unwrap();
    assert_eq!(compiled.programs.len(), 2);
    assert_eq!(errno_under(&compiled, getpid), 0);
    assert_eq!(errno_under(&compiled, keyctl), libc::EACCES);
    assert_eq!(errno_under(&compiled, kexec_load), libc::ENOSYS);
}

#[test]
fn unsupported_actions_are_refused_never_dropped() {
    let notify = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#;
    assert!(matches!(
        compile(&Profile::parse(notify).unwrap(), 0),
        Err(SeccompError::UnsupportedAction { .. })
    ));
    assert!(Profile::parse(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#).is_err());
    assert!(Profile::parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#
    )
    .is_err());
}

#[test]
fn privileged_and_unconfined_have_no_filter() {
    assert!(for_container(&Policy::Unconfined, false, 0)
        .unwrap()
        .is_none());
    assert!(for_container(&Policy::RuntimeDefault, true, 0)
        .unwrap()
        .is_none());
    assert!(for_container(&Policy::RuntimeDefault, false, 0)
        .unwrap()
        .is_some());
    assert_eq!(parse_version("6.1.0-18-amd64"), (6, 1));
    assert_eq!(parse_version("5.15"), (5, 15));
}
