//! The compiled filters on the real kernel, each in a forked child that sets no_new_privs
//! (so no root is needed) and reports through its exit code.

use super::*;

fn default_caps() -> u64 {
    capabilities::mask(false, &[], &[]).unwrap()
}

/// Load `compiled` in a child and run `call` there: its errno (0 for success).
fn errno_under(compiled: &Compiled, call: fn() -> libc::c_long) -> i32 {
    match status_under(compiled, call) {
        Ok(code) => code,
        Err(signal) => panic!("child killed by signal {signal}"),
    }
}

/// Load `compiled` in a child and run `call` there: its errno (0 for success), or the signal
/// that killed it.
fn status_under(compiled: &Compiled, call: fn() -> libc::c_long) -> Result<i32, i32> {
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
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        compiled.flags,
                        &fprog,
                    )
                };
                if rc != 0 {
                    // SAFETY: _exit ends the child at once.
                    unsafe { libc::_exit(200) };
                }
            }
            let rc = call();
            let code = match rc {
                // an i386 call returns -1000 - errno (see `int80`)
                rc if rc <= -1000 => (-rc - 1000) as i32,
                rc if rc < 0 => nix::Error::last_raw(),
                _ => 0,
            };
            // SAFETY: _exit ends the child at once.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if libc::WIFSIGNALED(status) {
                return Err(libc::WTERMSIG(status));
            }
            assert!(libc::WIFEXITED(status), "child died: {status:#x}");
            Ok(libc::WEXITSTATUS(status))
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

/// An i386 system call from this 64-bit process (`int $0x80`: the kernel takes it with i386
/// numbers and `AUDIT_ARCH_I386`, as from a 32-bit program), returning -1000 - errno on
/// failure.
#[cfg(target_arch = "x86_64")]
fn int80(nr: i64, a: i64, b: i64) -> libc::c_long {
    let ret: i64;
    // SAFETY: a system call with integer arguments only; rbx is LLVM's, so it is swapped in and
    // back out around the call.
    unsafe {
        std::arch::asm!(
            "xchg rbx, {a}",
            "int 0x80",
            "xchg rbx, {a}",
            a = inout(reg) a => _,
            inlateout("rax") nr => ret,
            in("rcx") b,
        );
    }
    // the result is eax: -errno on failure, told apart from libc's -1 for `status_under`
    match libc::c_long::from(ret as i32) {
        r if r < 0 => r - 1000,
        r => r,
    }
}

#[cfg(target_arch = "x86_64")]
fn i386_getpid() -> libc::c_long {
    int80(20, 0, 0)
}

#[cfg(target_arch = "x86_64")]
fn i386_unshare_user() -> libc::c_long {
    int80(310, i64::from(libc::CLONE_NEWUSER), 0)
}

#[cfg(target_arch = "x86_64")]
fn i386_keyctl() -> libc::c_long {
    int80(288, 0, -3)
}

/// Docker's profile covers 32-bit programs (its `architectures` list x86): so does ours, by the
/// i386 numbers; a profile that lists no x86 kills them, as libseccomp does.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_calls_meet_the_same_rules_when_the_profile_lists_x86() {
    let compiled = compile(&Profile::runtime_default(), default_caps()).unwrap();
    assert_eq!(status_under(&compiled, i386_getpid), Ok(0));
    assert_eq!(status_under(&compiled, i386_unshare_user), Ok(libc::EPERM));
    assert_eq!(status_under(&compiled, i386_keyctl), Ok(libc::EPERM));
    // the native rules are as before
    assert_eq!(errno_under(&compiled, unshare_user), libc::EPERM);
    assert_eq!(errno_under(&compiled, getpid), 0);
    // without a filter the i386 unshare works (so the EPERM above is the filter's)
    let none = Compiled::default();
    assert_eq!(status_under(&none, i386_unshare_user), Ok(0));

    let native_only = Profile::parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let compiled = compile(&native_only, 0).unwrap();
    assert_eq!(status_under(&compiled, i386_getpid), Err(libc::SIGSYS));
    assert_eq!(errno_under(&compiled, getpid), 0);
}

#[test]
fn filter_flags_are_passed_on_and_a_listener_is_refused() {
    let with = |extra: &str| {
        Profile::parse(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", {extra} "syscalls": [
                {{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}}]}}"#
        ))
        .unwrap()
    };
    let log = compile(
        &with(r#""flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],"#),
        0,
    )
    .unwrap();
    assert_eq!(
        log.flags,
        (libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW) as u32
    );
    assert_eq!(errno_under(&log, keyctl), libc::EPERM);
    let tsync = compile(&with(r#""flags": ["SECCOMP_FILTER_FLAG_TSYNC"],"#), 0).unwrap();
    assert_eq!(errno_under(&tsync, keyctl), libc::EPERM);
    assert_eq!(compile(&with(""), 0).unwrap().flags, 0);
    assert!(matches!(
        compile(
            &with(r#""flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"],"#),
            0
        ),
        Err(SeccompError::UnsupportedFlag { .. })
    ));
    let listener = with(r#""listenerPath": "/run/agent.sock", "listenerMetadata": "x","#);
    let err = compile(&listener, 0).unwrap_err();
    assert!(matches!(err, SeccompError::Listener { .. }), "{err}");
    assert!(err.to_string().contains("/run/agent.sock"), "{err}");
}

#[test]
fn the_default_filter_is_compiled_once_per_capability_set_and_cached() {
    /// A directory of this test's own, removed however the test ends.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = Dir(std::env::temp_dir().join(format!("seccomp-cache-{}", crate::random_hex(6))));
    let caps = default_caps();
    let direct = for_container(&Policy::RuntimeDefault, false, caps).unwrap();
    let first = for_container_cached(&Policy::RuntimeDefault, false, caps, dir.path()).unwrap();
    assert_eq!(first, direct);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("seccomp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // what is read back is what the file says: a changed file shows through
    let marked = Compiled {
        programs: vec!["AAAAAAAAAAA=".into()],
        flags: 0,
    };
    std::fs::write(&files[0], serde_json::to_vec(&marked).unwrap()).unwrap();
    let again = for_container_cached(&Policy::RuntimeDefault, false, caps, dir.path()).unwrap();
    assert_eq!(again, Some(marked));
    // a file that does not parse is compiled over
    std::fs::write(&files[0], b"{half").unwrap();
    let over = for_container_cached(&Policy::RuntimeDefault, false, caps, dir.path()).unwrap();
    assert_eq!(over, direct);
    // another capability set, another file; privileged and unconfined: no filter, no file
    let all = capabilities::mask(true, &[], &[]).unwrap();
    for_container_cached(&Policy::RuntimeDefault, false, all, dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("seccomp"))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(
        for_container_cached(&Policy::RuntimeDefault, true, caps, dir.path()).unwrap(),
        None
    );
    assert_eq!(
        for_container_cached(&Policy::Unconfined, false, caps, dir.path()).unwrap(),
        None
    );
}
