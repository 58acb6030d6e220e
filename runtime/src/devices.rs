//! The device allowlist: which device nodes a container may create (`mknod`), read and write.
//! A device node is only a name for a (type, major, minor) triple, and `CAP_MKNOD` (one of
//! Docker's default capabilities) lets root in the container make any: without an allowlist
//! `mknod /tmp/sda b 8 0` would hand it the node's disk. The devices cgroup checks every open
//! and mknod of a device against the container's rules, whatever the name or the filesystem.
//!
//! Rules are applied in order, each allowing or denying an access (`r`ead, `w`rite, `m`knod)
//! to a type (`a`ll, `c`har, `b`lock) and major:minor (`*` for any). The default
//! ([`default_rules`]) is Docker's but for one line: deny everything, then allow `mknod` of
//! any character device (harmless alone: opening it is what is checked) and the use of the
//! few devices of the container's `/dev` (`null`, `zero`, `full`, `random`, `urandom`, `tty`,
//! `console`, `ptmx`, the pty slaves, `net/tun`). Docker also allows `mknod` of any block
//! device (`b *:* m`), whose node then cannot be opened; we refuse the `mknod` itself, so a
//! disk's node never appears in a container at all. `--privileged` has no rules (the
//! parent's: everything), an OCI bundle its `linux.resources.devices` (`oci.rs`).
//!
//! - cgroup v1: the `devices` hierarchy; a new cgroup copies its parent's rules, then each
//!   rule is one line written to `devices.deny` or `devices.allow` ([`apply_v1`]).
//! - cgroup v2 has no devices file: the rules become a small eBPF program of type
//!   `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the container's cgroup ([`attach_v2`]). The
//!   kernel runs it at each device access with the type, access and major:minor; it returns
//!   1 to allow. It checks rules last to first and the first match decides (what v1's
//!   in-order application amounts to); no match allows, as the v1 root does.
//!
//! Read next: `cgroups.rs`, whose `apply` calls these with the container's rules.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which devices a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// `a`: every device, character and block.
    All,
    /// `c`: character devices (`/dev/null`, ttys).
    Char,
    /// `b`: block devices (disks).
    Block,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            Self::All => 'a',
            Self::Char => 'c',
            Self::Block => 'b',
        }
    }
}

/// Read access (`r`); the bits are those of the v2 program's `BPF_DEVCG_ACC_*` shifted down.
pub const READ: u8 = 0b010;
/// Write access (`w`).
pub const WRITE: u8 = 0b100;
/// Creating the node (`m`).
pub const MKNOD: u8 = 0b001;

/// One allow or deny rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None`: any major.
    pub major: Option<u32>,
    /// `None`: any minor.
    pub minor: Option<u32>,
    /// [`READ`] | [`WRITE`] | [`MKNOD`].
    pub access: u8,
}

impl DeviceRule {
    /// An allow rule for `kind major:minor` (`None`: `*`).
    pub const fn allow(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> Self {
        Self {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The rule as a line of v1's `devices.allow`/`devices.deny`: `c 1:3 rwm`, `a`.
    pub fn v1_line(&self) -> String {
        if self.kind == DeviceKind::All && self.major.is_none() && self.minor.is_none() {
            return "a".to_string();
        }
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!(
            "{} {}:{} {access}",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )
    }
}

/// Read, write and mknod.
pub const RWM: u8 = READ | WRITE | MKNOD;

/// The default rules: deny all, then mknod of character devices and the use of `/dev`'s
/// devices (Docker's, without its `b *:* m`: see the module doc).
pub fn default_rules() -> Vec<DeviceRule> {
    use DeviceKind::{All, Char};
    let dev = |major, minor| DeviceRule::allow(Char, Some(major), minor, RWM);
    vec![
        DeviceRule {
            allow: false,
            kind: All,
            major: None,
            minor: None,
            access: RWM,
        },
        DeviceRule::allow(Char, None, None, MKNOD),
        dev(1, Some(3)),    // null
        dev(1, Some(5)),    // zero
        dev(1, Some(7)),    // full
        dev(1, Some(8)),    // random
        dev(1, Some(9)),    // urandom
        dev(5, Some(0)),    // tty
        dev(5, Some(1)),    // console
        dev(5, Some(2)),    // ptmx
        dev(136, None),     // pts/*
        dev(10, Some(200)), // net/tun
    ]
}

/// Why the device rules could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    /// Writing a rule to `devices.allow`/`devices.deny` failed (v1).
    #[error("write {line:?} to {path:?}: {source}")]
    Write {
        path: PathBuf,
        line: String,
        #[source]
        source: std::io::Error,
    },
    /// Opening the cgroup directory to attach the program to failed (v2).
    #[error("open cgroup {path:?}: {errno}")]
    OpenCgroup { path: PathBuf, errno: nix::Error },
    /// The kernel refused the device program (v2).
    #[error("load the device program ({insns} instructions): {errno}")]
    Load { insns: usize, errno: nix::Error },
    /// Attaching the program to the cgroup failed (v2).
    #[error("attach the device program to {path:?}: {errno}")]
    Attach { path: PathBuf, errno: nix::Error },
}

/// cgroup v1: write `rules`, in order, into the devices cgroup `dir`.
pub fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<(), DevicesError> {
    for rule in rules {
        let path = dir.join(if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        let line = rule.v1_line();
        std::fs::write(&path, &line).map_err(|source| {
            tracing::debug!(?path, line, %source, "device rule refused");
            DevicesError::Write { path, line, source }
        })?;
    }
    Ok(())
}

/// One eBPF instruction (`struct bpf_insn`): opcode, registers, offset, immediate.
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    fn encode(self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.dst | (self.src << 4));
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.imm.to_le_bytes());
    }
}

/// The opcodes used (`linux/bpf.h`, `linux/bpf_common.h`).
mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
    pub const LOAD_WORD: u8 = 0x61;
    /// `BPF_ALU | BPF_AND | BPF_K`: dst &= imm (32 bits).
    pub const AND_IMM: u8 = 0x54;
    /// `BPF_ALU | BPF_RSH | BPF_K`: dst >>= imm (32 bits).
    pub const RSH_IMM: u8 = 0x74;
    /// `BPF_ALU64 | BPF_MOV | BPF_X`: dst = src.
    pub const MOV_REG: u8 = 0xbf;
    /// `BPF_ALU64 | BPF_MOV | BPF_K`: dst = imm.
    pub const MOV_IMM: u8 = 0xb7;
    /// `BPF_JMP | BPF_JNE | BPF_K`: if dst != imm, skip off instructions.
    pub const JNE_IMM: u8 = 0x55;
    /// `BPF_JMP | BPF_JEQ | BPF_K`: if dst == imm, skip off instructions.
    pub const JEQ_IMM: u8 = 0x15;
    /// `BPF_JMP | BPF_EXIT`: return r0.
    pub const EXIT: u8 = 0x95;
}

/// `BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR`: the device type in the low half of
/// `access_type`.
fn type_code(kind: DeviceKind) -> Option<i32> {
    match kind {
        DeviceKind::All => None,
        DeviceKind::Block => Some(1),
        DeviceKind::Char => Some(2),
    }
}

/// The program for `rules`. The context (`struct bpf_cgroup_dev_ctx`, in r1) holds
/// `access_type` (access << 16 | type), `major`, `minor`; the prologue puts type in r2, access
/// in r3, major in r4, minor in r5. Each rule, last first, is a block whose tests jump to the
/// next block on a mismatch and otherwise return the rule's verdict. An allow rule matches an
/// access it covers entirely, a deny rule one it covers in part.
fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    use op::*;
    let mut p = vec![
        Insn::new(LOAD_WORD, 2, 1, 0, 0),
        Insn::new(AND_IMM, 2, 0, 0, 0xffff),
        Insn::new(LOAD_WORD, 3, 1, 0, 0),
        Insn::new(RSH_IMM, 3, 0, 0, 16),
        Insn::new(LOAD_WORD, 4, 1, 4, 0),
        Insn::new(LOAD_WORD, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // the block: tests that each jump past it on a mismatch, then the verdict
        let mut tests: Vec<Insn> = Vec::new();
        if let Some(t) = type_code(rule.kind) {
            tests.push(Insn::new(JNE_IMM, 2, 0, 0, t));
        }
        let access = i32::from(rule.access & RWM);
        tests.push(Insn::new(MOV_REG, 1, 3, 0, 0));
        if rule.allow {
            // requested & !allowed must be empty
            tests.push(Insn::new(AND_IMM, 1, 0, 0, !access & i32::from(RWM)));
            tests.push(Insn::new(JNE_IMM, 1, 0, 0, 0));
        } else {
            // requested & denied must not be empty
            tests.push(Insn::new(AND_IMM, 1, 0, 0, access));
            tests.push(Insn::new(JEQ_IMM, 1, 0, 0, 0));
        }
        if let Some(major) = rule.major {
            tests.push(Insn::new(JNE_IMM, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            tests.push(Insn::new(JNE_IMM, 5, 0, 0, minor as i32));
        }
        tests.push(Insn::new(MOV_IMM, 0, 0, 0, i32::from(rule.allow)));
        tests.push(Insn::new(EXIT, 0, 0, 0, 0));
        let len = tests.len();
        for (i, insn) in tests.iter_mut().enumerate() {
            if insn.code == JNE_IMM || insn.code == JEQ_IMM {
                insn.off = (len - i - 1) as i16;
            }
        }
        p.extend(tests);
    }
    p.push(Insn::new(op::MOV_IMM, 0, 0, 0, 1));
    p.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    p
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the ancestors' cgroups run too, and all must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// bpf(2) with `attr`.
fn bpf<T>(cmd: libc::c_long, attr: &T) -> Result<libc::c_long, nix::Error> {
    // SAFETY: bpf reads `size_of::<T>()` bytes of a `union bpf_attr` prefix from a valid
    // pointer that outlives the call (and the buffers it points to, owned by the caller).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(r)
}

/// cgroup v2: load the program for `rules` and attach it to the cgroup `dir`. No rules, no
/// program (a privileged container). The attachment keeps the program; it goes with the
/// cgroup.
pub fn attach_v2(dir: &Path, rules: &[DeviceRule]) -> Result<(), DevicesError> {
    if rules.is_empty() {
        return Ok(());
    }
    let insns = program(rules);
    let mut code = Vec::with_capacity(insns.len() * 8);
    for i in &insns {
        i.encode(&mut code);
    }
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"minik8sdev");
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &load).map_err(|errno| DevicesError::Load {
        insns: insns.len(),
        errno,
    })?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| DevicesError::OpenCgroup {
        path: dir.to_owned(),
        errno,
    })?;
    let attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &attach).map_err(|errno| DevicesError::Attach {
        path: dir.to_owned(),
        errno,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_as_v1_lines() {
        let lines: Vec<String> = default_rules().iter().map(|r| r.v1_line()).collect();
        assert_eq!(lines[..3], ["a", "c *:* m", "c 1:3 rwm"]);
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert!(lines.contains(&"c 10:200 rwm".to_string()));
    }

    /// Run the program on one access the way the kernel would, to check its logic.
    fn verdict(rules: &[DeviceRule], kind: DeviceKind, access: u8, major: u32, minor: u32) -> i64 {
        let prog = program(rules);
        let ctx = [
            (u32::from(access) << 16) | type_code(kind).unwrap() as u32,
            major,
            minor,
        ];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let (d, s) = (i.dst as usize, i.src as usize);
            match i.code {
                op::LOAD_WORD => r[d] = i64::from(ctx[i.off as usize / 4]),
                op::AND_IMM => r[d] = (r[d] as u32 & i.imm as u32) as i64,
                op::RSH_IMM => r[d] = ((r[d] as u32) >> i.imm) as i64,
                op::MOV_REG => r[d] = r[s],
                op::MOV_IMM => r[d] = i64::from(i.imm),
                op::JNE_IMM if r[d] != i64::from(i.imm) => pc += i.off as usize,
                op::JEQ_IMM if r[d] == i64::from(i.imm) => pc += i.off as usize,
                op::JNE_IMM | op::JEQ_IMM => {}
                op::EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_v2_program_follows_the_allowlist() {
        use DeviceKind::{Block, Char};
        let rules = default_rules();
        assert_eq!(verdict(&rules, Char, READ | WRITE, 1, 3), 1, "/dev/null");
        assert_eq!(verdict(&rules, Char, READ, 1, 9), 1, "/dev/urandom");
        assert_eq!(verdict(&rules, Char, READ | WRITE, 136, 4), 1, "/dev/pts/4");
        assert_eq!(verdict(&rules, Char, MKNOD, 1, 3), 1, "mknod c 1:3");
        assert_eq!(verdict(&rules, Block, MKNOD, 8, 0), 0, "mknod b 8:0");
        assert_eq!(verdict(&rules, Block, READ, 8, 0), 0, "read /dev/sda");
        assert_eq!(verdict(&rules, Char, READ, 1, 1), 0, "read /dev/mem");
        assert_eq!(verdict(&rules, Char, WRITE, 4, 1), 0, "write /dev/tty1");
        assert_eq!(verdict(&[], Block, READ, 8, 0), 1, "no rules");
    }
}
