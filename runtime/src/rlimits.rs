//! Resource limits (setrlimit(2)): how many files a process may open, how large its core dumps
//! or its stack may grow. An OCI bundle sets them in `process.rlimits`; the init applies them
//! while it is still root, since raising a hard limit takes CAP_SYS_RESOURCE. Without them the
//! container keeps the limits it inherits, as with runc.

use serde::{Deserialize, Serialize};

/// The limits of getrlimit(2), by their runtime-spec names (`RLIMIT_NOFILE`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// Every resource with its name and its number (`linux/resource.h`).
const RESOURCES: [(Resource, &str, u32); 16] = [
    (Resource::As, "RLIMIT_AS", libc::RLIMIT_AS),
    (Resource::Core, "RLIMIT_CORE", libc::RLIMIT_CORE),
    (Resource::Cpu, "RLIMIT_CPU", libc::RLIMIT_CPU),
    (Resource::Data, "RLIMIT_DATA", libc::RLIMIT_DATA),
    (Resource::Fsize, "RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    (Resource::Locks, "RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    (Resource::Memlock, "RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    (Resource::Msgqueue, "RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    (Resource::Nice, "RLIMIT_NICE", libc::RLIMIT_NICE),
    (Resource::Nofile, "RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    (Resource::Nproc, "RLIMIT_NPROC", libc::RLIMIT_NPROC),
    (Resource::Rss, "RLIMIT_RSS", libc::RLIMIT_RSS),
    (Resource::Rtprio, "RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    (Resource::Rttime, "RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    (
        Resource::Sigpending,
        "RLIMIT_SIGPENDING",
        libc::RLIMIT_SIGPENDING,
    ),
    (Resource::Stack, "RLIMIT_STACK", libc::RLIMIT_STACK),
];

impl Resource {
    /// The resource called `name` (`RLIMIT_NOFILE`); none for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        RESOURCES.iter().find(|r| r.1 == name).map(|r| r.0)
    }

    fn entry(self) -> &'static (Resource, &'static str, u32) {
        RESOURCES
            .iter()
            .find(|r| r.0 == self)
            .expect("every resource is listed")
    }
}

/// One limit: soft (what applies) and hard (how far the soft one may be raised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// Why a limit could not be set.
#[derive(Debug, thiserror::Error)]
#[error("setrlimit {name} to {soft}:{hard}: {errno}")]
pub struct RlimitError {
    name: &'static str,
    soft: u64,
    hard: u64,
    errno: nix::Error,
}

/// Set every limit on the calling process (which passes them on to what it execs).
pub fn apply(limits: &[Rlimit]) -> Result<(), RlimitError> {
    for l in limits {
        let (_, name, number) = *l.resource.entry();
        let lim = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: setrlimit(2) reads the rlimit struct, which lives for the call.
        if unsafe { libc::setrlimit(number as _, &lim) } != 0 {
            return Err(RlimitError {
                name,
                soft: l.soft,
                hard: l.hard,
                errno: nix::Error::last(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_resources_and_unknown_ones_to_none() {
        assert_eq!(Resource::from_name("RLIMIT_NOFILE"), Some(Resource::Nofile));
        assert_eq!(Resource::from_name("RLIMIT_RTTIME"), Some(Resource::Rttime));
        assert_eq!(Resource::from_name("RLIMIT_TEST"), None);
        assert_eq!(Resource::Stack.entry().2, libc::RLIMIT_STACK);
    }
}
