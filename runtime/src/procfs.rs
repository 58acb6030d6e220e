//! /proc inside a container shows the host's memory and CPUs: cgroups limit, they do not
//! virtualise /proc. Tools that size themselves from /proc/meminfo (JVMs, `free`) would then
//! overcommit. Like LXCFS but without FUSE, we generate `meminfo` and `cpuinfo` files from the
//! container's limits and bind-mount them over /proc/meminfo and /proc/cpuinfo (runc allows
//! exactly these bind targets). The figures are a snapshot taken when the container starts.

use std::fs;

/// A /proc/meminfo reporting `limit` bytes of memory and no swap.
pub fn meminfo(limit: u64) -> String {
    let host_kb = fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("MemTotal:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    });
    let kb = host_kb.map_or(limit / 1024, |h| h.min(limit / 1024));
    let mut out = String::new();
    for (k, v) in [
        ("MemTotal", kb),
        ("MemFree", kb),
        ("MemAvailable", kb),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Active", 0),
        ("Inactive", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Shmem", 0),
    ] {
        out.push_str(&format!("{:<16}{:>8} kB\n", format!("{k}:"), v));
    }
    out
}

/// The host's /proc/cpuinfo cut down to its first `cpus` processors.
pub fn cpuinfo(host: &str, cpus: usize) -> String {
    let blocks: Vec<&str> = host
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    let mut out = String::new();
    for b in blocks.iter().take(cpus.max(1)) {
        out.push_str(b.trim_end());
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_reports_the_limit() {
        let m = meminfo(64 << 20);
        assert!(m.starts_with("MemTotal:          65536 kB\n"), "{m}");
    }

    #[test]
    fn cpuinfo_keeps_n_processors() {
        let host = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n\nprocessor\t: 2\n\n";
        assert_eq!(cpuinfo(host, 2).matches("processor").count(), 2);
        assert_eq!(cpuinfo(host, 0).matches("processor").count(), 1);
    }
}
