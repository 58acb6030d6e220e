//! seccomp(2) filters: a BPF program the kernel runs on every system call of the container,
//! which answers allow, fail with an errno, or kill. Docker gives every container a default
//! profile that refuses the calls that reach past the container's namespaces (mount, unshare,
//! setns, kexec_load, the kernel keyring, ...); Kubernetes asks for it with
//! `seccompProfile: {type: RuntimeDefault}` and otherwise runs pods `Unconfined`.
//!
//! A profile is written in the OCI `linux.seccomp` format ([`Profile`]: `defaultAction`,
//! `syscalls[{names, action, errnoRet, args}]`) plus Docker's conditions on a rule
//! (`includes`/`excludes` of `caps`, `arches`, `minKernel`). [`compile`] keeps the rules that
//! hold for the container (a call Docker conditions on CAP_SYS_ADMIN stays allowed to a
//! container that holds it, as Docker filters its profile by the capability set) and turns
//! them into BPF with `seccompiler` (pure Rust, from Firecracker: no libseccomp on the node).
//!
//! seccompiler builds programs with one action on a match and one otherwise, while a profile
//! has a default and one action per rule. A profile therefore becomes a stack of programs, and
//! the kernel, which runs every installed program, keeps the most severe answer (kill > trap >
//! errno > trace > log > allow; seccomp(2)): a main program allows every call that some rule
//! names and gives the default to the rest, and one program per other action gives that action
//! to its rules' calls and allows the rest. They are loaded in that order, the main program
//! last (an allowlist may not allow seccomp(2) itself). The default profile stacks two
//! programs (EPERM rules, and `clone3`'s ENOSYS); an allowlist with a few errno rules two or
//! three.
//!
//! The default profile (`default.json`) is a *denylist*: the syscalls of Docker's
//! "significant syscalls blocked by the default profile", each group under the capability
//! Docker conditions it on, with `clone` refused only when its flags ask for a new namespace
//! and `clone3` answered ENOSYS (its flags sit behind a pointer, out of a filter's reach, and
//! libc then falls back to `clone`). Docker's own profile is an allowlist of some 350 calls;
//! a denylist refuses the same significant calls, lets a container use system calls newer
//! than the list (which an allowlist would refuse until updated) and keeps the program short,
//! which is paid on every system call. What it misses are calls Docker refuses only by not
//! listing them: those a new kernel adds are allowed here until named.
//!
//! Architectures: a profile's `architectures` lists the ABIs its rules cover. On x86_64,
//! Docker's (and our default) lists `SCMP_ARCH_X86` beside the native one, so a 32-bit
//! program (`int $0x80`, `AUDIT_ARCH_I386`) runs under the same rules by its own numbering
//! (`i386.rs`): seccompiler builds programs for the native ABI only, with an architecture
//! check that kills anything else, so each program gets an i386 tail compiled from the same
//! rules with the i386 numbers, which the check jumps to instead of killing ([`with_i386`]).
//! Without `SCMP_ARCH_X86` an i386 call kills the process, as libseccomp's default for an
//! architecture not in the filter. x32 calls (numbers from 0x40000000 on the native
//! architecture) always fail with EPERM: x32 is off in most kernels, and libseccomp would
//! need its own numbering for them.
//! A profile's `flags` are passed to seccomp(2): `SECCOMP_FILTER_FLAG_LOG` (log what is not
//! allowed), `SECCOMP_FILTER_FLAG_SPEC_ALLOW` (keep speculative store bypass unmitigated),
//! `SECCOMP_FILTER_FLAG_TSYNC` (a no-op: the init is single-threaded); any other flag, and
//! `listenerPath` (a seccomp notify agent), are refused at create.
//! Compiled at `create` ([`Compiled`], in `config.json`), loaded by the init and by `exec`
//! ([`load`]) without setting no_new_privs: the init loads it while it still holds
//! CAP_SYS_ADMIN, or after no_new_privs when that was asked (see `process.rs`).

use std::collections::BTreeMap;

use base64::Engine;
use seccompiler::{sock_filter, SeccompAction, TargetArch};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::capabilities;

mod i386;

/// Docker's default profile, in effect (see the module doc).
pub const DEFAULT_PROFILE: &str = include_str!("default.json");

/// EPERM, the errno of an `SCMP_ACT_ERRNO` rule without `errnoRet` (as runc answers).
const EPERM: u32 = 1;

/// Why a profile could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not valid JSON of the OCI seccomp format.
    #[error("parse seccomp profile: {0}")]
    Parse(#[source] serde_json::Error),
    /// An action the runtime cannot carry out (`SCMP_ACT_NOTIFY` needs a listener).
    #[error("seccomp action {action:?} is not supported")]
    UnsupportedAction { action: &'static str },
    /// A filter flag the runtime does not pass on (`SECCOMP_FILTER_FLAG_NEW_LISTENER`, ...).
    #[error("seccomp flag {flag:?} is not supported (only SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW and SECCOMP_FILTER_FLAG_TSYNC are)")]
    UnsupportedFlag { flag: String },
    /// `listenerPath`: a seccomp notify agent, which the runtime does not talk to.
    #[error("seccomp listenerPath {path:?} is not supported (no SCMP_ACT_NOTIFY agents)")]
    Listener { path: String },
    /// The host's architecture has no seccompiler backend.
    #[error("seccomp filters are not supported on {arch}")]
    UnsupportedArch { arch: &'static str },
    /// seccompiler refused the rules (too many instructions, a bad argument index).
    #[error("compile seccomp profile: {0}")]
    Compile(#[source] seccompiler::Error),
    /// `config.json` holds a program that does not decode.
    #[error("compiled seccomp filter in config.json is corrupt")]
    Corrupt,
    /// seccomp(SECCOMP_SET_MODE_FILTER) failed.
    #[error("load seccomp filter: {errno}")]
    Load { errno: nix::Error },
}

/// Which filter a container runs under, as Kubernetes names the choices.
#[derive(Debug, Clone, Default)]
pub enum Policy {
    /// No filter (Docker's `seccomp=unconfined`, Kubernetes' default).
    #[default]
    Unconfined,
    /// The runtime's default profile ([`DEFAULT_PROFILE`]).
    RuntimeDefault,
    /// A profile of the caller's (`seccomp=PROFILE.json`, an OCI bundle's `linux.seccomp`, a
    /// kubelet `Localhost` profile).
    Profile(Box<Profile>),
}

/// A seccomp profile: OCI's `linux.seccomp` with Docker's rule conditions.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// libseccomp's names (`SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`): the ABIs the rules cover.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// seccomp(2) filter flags by name (`SECCOMP_FILTER_FLAG_LOG`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// A seccomp notify agent's socket: refused.
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

/// One rule: `action` for the calls `names` when every one of `args` holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    /// Docker's: the rule holds only if all of these do.
    #[serde(default)]
    pub includes: Conditions,
    /// Docker's: the rule holds only if none of these does.
    #[serde(default)]
    pub excludes: Conditions,
}

/// Docker's conditions on a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    /// Capabilities (`CAP_SYS_ADMIN`): included if the container holds all, excluded if any.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Go architecture names (`amd64`, `arm64`).
    #[serde(default)]
    pub arches: Vec<String>,
    /// A kernel version `MAJOR.MINOR` at least which the rule holds (or, excluded, not).
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// A comparison of one system call argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

/// What the kernel does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    /// Fail with `errnoRet` (EPERM if absent).
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    /// SIGSYS to the caller.
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    /// Notify a ptrace tracer (`errnoRet` is the message); ENOSYS without one.
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    /// Allow and log.
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Ask a user-space listener: not supported (no listener), refused at create.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// libseccomp's comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `arg & value == valueTwo`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

impl Profile {
    /// Parse a profile from JSON.
    pub fn parse(json: &str) -> Result<Self, SeccompError> {
        serde_json::from_str(json).map_err(SeccompError::Parse)
    }

    /// The runtime's default profile.
    pub fn runtime_default() -> Self {
        Self::parse(DEFAULT_PROFILE).expect("the default profile is valid")
    }
}

/// The stack of BPF programs to load, each as base64 of its 8-byte instructions (it goes into
/// `config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    pub programs: Vec<String>,
    /// seccomp(2) flags for every program (`SECCOMP_FILTER_FLAG_*`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The flags of `names`, or the first one we do not pass on.
fn filter_flags(names: &[String]) -> Result<u32, SeccompError> {
    names.iter().try_fold(0, |flags, name| {
        let flag = match name.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => libc::SECCOMP_FILTER_FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG" => libc::SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            _ => return Err(SeccompError::UnsupportedFlag { flag: name.clone() }),
        };
        Ok(flags | flag as u32)
    })
}

/// The filter of a container: none when unconfined or privileged (as Docker's `--privileged`),
/// else `policy`'s profile compiled for the container's `capabilities`.
pub fn for_container(
    policy: &Policy,
    privileged: bool,
    capabilities: u64,
) -> Result<Option<Compiled>, SeccompError> {
    match policy {
        _ if privileged => Ok(None),
        Policy::Unconfined => Ok(None),
        Policy::RuntimeDefault => compile(&Profile::runtime_default(), capabilities).map(Some),
        Policy::Profile(p) => compile(p, capabilities).map(Some),
    }
}

/// [`for_container`], with the default profile's filter kept in `cache_dir` (the runtime's
/// state directory, on tmpfs) once compiled for a capability set: compiling it (rules filtered
/// by the capabilities, two programs, each with its i386 tail) was the largest part of the
/// CPU a start spends before forking, and its result is the same every time. A file is
/// named after the capability mask and the binary that wrote it (its inode and mtime), so a
/// new build of the runtime compiles afresh; a file that does not parse is compiled over.
/// Other policies are compiled every time (a profile file may change).
pub fn for_container_cached(
    policy: &Policy,
    privileged: bool,
    capabilities: u64,
    cache_dir: &std::path::Path,
) -> Result<Option<Compiled>, SeccompError> {
    let key = match policy {
        Policy::RuntimeDefault if !privileged => default_cache_key(capabilities),
        _ => None,
    };
    let Some(key) = key else {
        return for_container(policy, privileged, capabilities);
    };
    let path = cache_dir.join("seccomp").join(key);
    if let Some(cached) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        return Ok(Some(cached));
    }
    let compiled = compile(&Profile::runtime_default(), capabilities)?;
    if let Err(error) = write_whole(&path, &serde_json::to_vec(&compiled).expect("serializable")) {
        tracing::debug!(?path, %error, "seccomp filter not cached");
    }
    Ok(Some(compiled))
}

/// The cache file's name for the default profile under `capabilities`; none when the binary
/// cannot be identified.
fn default_cache_key(capabilities: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    Some(format!(
        "default-{capabilities:x}-{}-{}.{}.json",
        exe.ino(),
        exe.mtime(),
        exe.mtime_nsec()
    ))
}

/// Write `bytes` to `path` under a temporary name first, so that a concurrent reader sees the
/// whole file or none.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// One program of the stack: `action` for the calls of `calls` (each a chain of rules, any of
/// which matching suffices; an empty chain always matches), `otherwise` for the rest.
struct Stage {
    action: SeccompAction,
    otherwise: SeccompAction,
    calls: BTreeMap<String, Option<Vec<Vec<Arg>>>>,
}

impl Stage {
    fn new(action: SeccompAction, otherwise: SeccompAction) -> Self {
        Self {
            action,
            otherwise,
            calls: BTreeMap::new(),
        }
    }

    /// Add `names` under `conditions` (`None`: unconditionally, which wins over conditions).
    fn add(&mut self, names: &[String], conditions: Option<&Vec<Arg>>) {
        for name in names {
            let chain = self.calls.entry(name.clone()).or_insert(Some(Vec::new()));
            match (chain, conditions) {
                (Some(rules), Some(c)) => rules.push(c.clone()),
                (chain, None) => *chain = None,
                (None, Some(_)) => {}
            }
        }
    }

    /// seccompiler's JSON for this program.
    fn json(&self) -> Value {
        let filter: Vec<Value> = self
            .calls
            .iter()
            .flat_map(|(name, chain)| match chain {
                None => vec![json!({"syscall": name})],
                Some(rules) => rules
                    .iter()
                    .map(|args| json!({"syscall": name, "args": conditions(args)}))
                    .collect(),
            })
            .collect();
        json!({
            "mismatch_action": action_json(&self.otherwise),
            "match_action": action_json(&self.action),
            "filter": filter,
        })
    }
}

/// Compile `profile` for a container holding `capabilities` (see the module doc).
pub fn compile(profile: &Profile, capabilities: u64) -> Result<Compiled, SeccompError> {
    if let Some(path) = profile.listener_path.as_ref().filter(|p| !p.is_empty()) {
        return Err(SeccompError::Listener { path: path.clone() });
    }
    let flags = filter_flags(&profile.flags)?;
    let arch = std::env::consts::ARCH;
    let target = TargetArch::try_from(arch).map_err(|_| SeccompError::UnsupportedArch { arch })?;
    let default = action(
        profile.default_action,
        profile.default_errno_ret.unwrap_or(EPERM),
    )?;
    let kernel = kernel_version();
    let mut main = Stage::new(SeccompAction::Allow, default.clone());
    let mut others: Vec<Stage> = Vec::new();
    for rule in profile
        .syscalls
        .iter()
        .filter(|r| applies(r, capabilities, kernel))
    {
        let act = action(rule.action, rule.errno_ret.unwrap_or(EPERM))?;
        if act == default {
            continue;
        }
        let conditions = (!rule.args.is_empty()).then(|| rule.args.clone());
        main.add(&rule.names, conditions.as_ref());
        if act == SeccompAction::Allow {
            continue;
        }
        let stage = match others.iter().position(|s| s.action == act) {
            Some(i) => &mut others[i],
            None => {
                others.push(Stage::new(act, SeccompAction::Allow));
                others.last_mut().expect("just pushed")
            }
        };
        stage.add(&rule.names, conditions.as_ref());
    }
    // the main program last: it may refuse seccomp(2) itself, which loads the others
    let mut stages: Vec<Stage> = others;
    if default != SeccompAction::Allow {
        stages.push(main);
    }
    // before `build`, which drops the names the native ABI lacks (vm86 is i386's alone)
    let i386 = match target == TargetArch::x86_64
        && profile.architectures.iter().any(|a| a == "SCMP_ARCH_X86")
    {
        true => Some(
            stages
                .iter()
                .map(i386_program)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        false => None,
    };
    let mut programs = build(&mut stages, target)?;
    if let Some(tails) = i386 {
        for (program, tail) in programs.iter_mut().zip(tails) {
            with_i386(program, tail);
        }
    }
    Ok(Compiled {
        programs: programs.iter().map(|p| encode(p)).collect(),
        flags,
    })
}

/// BPF for each stage, dropping call names the host's architecture lacks (a profile names
/// the calls of several; runc ignores unknown names the same way).
fn build(stages: &mut [Stage], target: TargetArch) -> Result<Vec<Vec<sock_filter>>, SeccompError> {
    loop {
        let doc: serde_json::Map<String, Value> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{i:04}"), s.json()))
            .collect();
        let text = Value::Object(doc).to_string();
        match seccompiler::compile_from_json(text.as_bytes(), target) {
            Ok(map) => {
                let mut named: Vec<_> = map.into_iter().collect();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                let mut programs: Vec<Vec<sock_filter>> =
                    named.into_iter().map(|(_, p)| p).collect();
                if let Some(last) = programs.last_mut() {
                    refuse_x32(last, target);
                }
                return Ok(programs);
            }
            Err(seccompiler::Error::JsonFrontend(e)) if unknown_name(&e).is_some() => {
                let name = unknown_name(&e).unwrap_or_default();
                tracing::debug!(syscall = %name, "not a system call of this architecture");
                for s in stages.iter_mut() {
                    s.calls.remove(&name);
                }
            }
            Err(e) => return Err(SeccompError::Compile(e)),
        }
    }
}

/// The call name seccompiler did not know, if that is the error.
fn unknown_name(e: &impl std::fmt::Debug) -> Option<String> {
    // seccompiler's frontend error is not public; its Debug is `SyscallName("name", arch)`
    let text = format!("{e:?}");
    let rest = text.strip_prefix("SyscallName(\"")?;
    Some(rest[..rest.find('"')?].to_string())
}

/// x86_64's x32 ABI numbers its calls from 0x40000000: they would slip past rules written for
/// the native numbers, so the last program refuses them right after loading the number.
fn refuse_x32(program: &mut Vec<sock_filter>, target: TargetArch) {
    const LOAD_NR: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    if target != TargetArch::x86_64 || program.get(3).is_none_or(|i| i.code != LOAD_NR) {
        return;
    }
    let errno = u32::from(SeccompAction::Errno(EPERM));
    let guard = [
        sock_filter {
            code: JGE,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        },
        sock_filter {
            code: RET,
            jt: 0,
            jf: 0,
            k: errno,
        },
    ];
    program.splice(4..4, guard);
}

/// `stage` for the i386 ABI: seccompiler's program from the i386 numbers of its calls (those
/// i386 has), built for x86_64 and then checking for `AUDIT_ARCH_I386` instead.
fn i386_program(stage: &Stage) -> Result<Vec<sock_filter>, SeccompError> {
    use seccompiler::{
        SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (name, chain) in &stage.calls {
        let Some(nr) = i386::number(name) else {
            continue;
        };
        let mut list = Vec::new();
        for args in chain.iter().flatten() {
            let conditions = args
                .iter()
                .map(|a| {
                    let (op, val) = match a.op {
                        Op::Ne => (SeccompCmpOp::Ne, a.value),
                        Op::Lt => (SeccompCmpOp::Lt, a.value),
                        Op::Le => (SeccompCmpOp::Le, a.value),
                        Op::Eq => (SeccompCmpOp::Eq, a.value),
                        Op::Ge => (SeccompCmpOp::Ge, a.value),
                        Op::Gt => (SeccompCmpOp::Gt, a.value),
                        Op::MaskedEq => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
                    };
                    SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, val)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SeccompError::Compile(seccompiler::Error::Backend(e)))?;
            list.push(
                SeccompRule::new(conditions)
                    .map_err(|e| SeccompError::Compile(seccompiler::Error::Backend(e)))?,
            );
        }
        rules.insert(nr, list);
    }
    let filter = SeccompFilter::new(
        rules,
        stage.otherwise.clone(),
        stage.action.clone(),
        TargetArch::x86_64,
    )
    .map_err(|e| SeccompError::Compile(seccompiler::Error::Backend(e)))?;
    let mut program: Vec<sock_filter> = seccompiler::BpfProgram::try_from(filter)
        .map_err(|e| SeccompError::Compile(seccompiler::Error::Backend(e)))?;
    if let Some(check) = program.get_mut(1) {
        check.k = AUDIT_ARCH_I386;
    }
    Ok(program)
}

/// `AUDIT_ARCH_I386` of `linux/audit.h`.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// Append the i386 `tail` to a native `program`, whose architecture check (`ld arch; jeq
/// native, +1; ret kill`) then jumps to the tail instead of killing; the tail's own check
/// kills any other architecture.
fn with_i386(program: &mut Vec<sock_filter>, tail: Vec<sock_filter>) {
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const JA: u16 = 0x05; // BPF_JMP | BPF_JA
    let shaped = program.len() > 3 && program[1].code == JEQ && program[2].code == RET;
    if !shaped || tail.len() < 3 {
        return;
    }
    let start = program.len();
    program[2] = sock_filter {
        code: JA,
        jt: 0,
        jf: 0,
        k: (start - 3) as u32,
    };
    program.extend(tail);
}

/// An action as seccompiler's JSON writes it.
fn action_json(action: &SeccompAction) -> Value {
    match action {
        SeccompAction::Allow => json!("allow"),
        SeccompAction::Errno(e) => json!({"errno": e}),
        SeccompAction::KillThread => json!("kill_thread"),
        SeccompAction::KillProcess => json!("kill_process"),
        SeccompAction::Log => json!("log"),
        SeccompAction::Trace(m) => json!({"trace": m}),
        SeccompAction::Trap => json!("trap"),
    }
}

/// seccompiler's action for a profile's.
fn action(action: Action, errno: u32) -> Result<SeccompAction, SeccompError> {
    Ok(match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno => SeccompAction::Errno(errno),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Trace => SeccompAction::Trace(errno),
        Action::Log => SeccompAction::Log,
        Action::Notify => {
            return Err(SeccompError::UnsupportedAction {
                action: "SCMP_ACT_NOTIFY",
            })
        }
    })
}

/// seccompiler's conditions (all must hold) for a rule's arguments, compared as 64-bit values
/// as libseccomp does.
fn conditions(args: &[Arg]) -> Value {
    args.iter()
        .map(|a| {
            let (op, val) = match a.op {
                Op::Ne => (json!("ne"), a.value),
                Op::Lt => (json!("lt"), a.value),
                Op::Le => (json!("le"), a.value),
                Op::Eq => (json!("eq"), a.value),
                Op::Ge => (json!("ge"), a.value),
                Op::Gt => (json!("gt"), a.value),
                Op::MaskedEq => (json!({"masked_eq": a.value}), a.value_two),
            };
            json!({"index": a.index, "type": "qword", "op": op, "val": val})
        })
        .collect()
}

/// Whether Docker's conditions keep `rule` for this container and host.
fn applies(rule: &SyscallRule, capabilities: u64, kernel: (u32, u32)) -> bool {
    let holds = |c: &String| capabilities::number(c).is_some_and(|n| capabilities & (1 << n) != 0);
    let arch = go_arch();
    let at_least = |v: &Option<String>| v.as_deref().map(|v| kernel >= parse_version(v));
    rule.includes.caps.iter().all(holds)
        && !rule.excludes.caps.iter().any(holds)
        && (rule.includes.arches.is_empty() || rule.includes.arches.iter().any(|a| a == arch))
        && !rule.excludes.arches.iter().any(|a| a == arch)
        && at_least(&rule.includes.min_kernel) != Some(false)
        && at_least(&rule.excludes.min_kernel) != Some(true)
}

/// The Go name of the host's architecture, as Docker's `arches` write it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `MAJOR.MINOR` of a kernel release such as `6.1.0-18-amd64`.
fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname()
        .map(|u| parse_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

fn encode(program: &[sock_filter]) -> String {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for i in program {
        bytes.extend_from_slice(&i.code.to_le_bytes());
        bytes.extend_from_slice(&[i.jt, i.jf]);
        bytes.extend_from_slice(&i.k.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(program: &str) -> Result<Vec<sock_filter>, SeccompError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(program)
        .map_err(|_| SeccompError::Corrupt)?;
    if bytes.is_empty() || bytes.len() % 8 != 0 || bytes.len() / 8 > usize::from(u16::MAX) {
        return Err(SeccompError::Corrupt);
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Install the programs on the calling thread. Needs CAP_SYS_ADMIN or no_new_privs, which this
/// does not set (the caller orders its privilege drop around it).
pub fn load(compiled: &Compiled) -> Result<(), SeccompError> {
    let programs = compiled
        .programs
        .iter()
        .map(|p| decode(p))
        .collect::<Result<Vec<_>, _>>()?;
    for program in &programs {
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(2) copies the program from `fprog`, whose pointer and length describe
        // `program` (sock_filter has libc's layout), both alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                compiled.flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::Load {
                errno: nix::Error::last(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
