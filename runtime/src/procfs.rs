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

/// The host's /proc/cpuinfo cut down to its first `cpus` processors (at least one), each shown
/// as a core of its own in one package, as lxcfs shows them: `siblings` and `cpu cores` (x86's
/// topology lines, which the kernel fills from the host's package) say how many processors
/// the file lists, and `core id` is the processor's index, so that tools deriving threads and
/// cores from them (`lscpu`, a JVM) agree with the `processor` entries.
pub fn cpuinfo(host: &str, cpus: usize) -> String {
    let blocks: Vec<&str> = host
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .take(cpus.max(1))
        .collect();
    let shown = blocks.len();
    let mut out = String::new();
    for (index, b) in blocks.iter().enumerate() {
        for line in b.trim_end().lines() {
            let key = line.split(':').next().unwrap_or("").trim_end();
            match key {
                "siblings" | "cpu cores" => out.push_str(&with_value(line, shown)),
                "core id" => out.push_str(&with_value(line, index)),
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// `line` (`key<tabs>: value`) with another value, its key and spacing kept.
fn with_value(line: &str, value: usize) -> String {
    match line.split_once(':') {
        Some((key, _)) => format!("{key}: {value}"),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_reports_the_limit() {
        let m = meminfo(64 << 20);
        assert!(m.starts_with("MemTotal:          65536 kB\n"), "{m}");
    }

    /// Two x86 processors of the host's one package, as this lab VM's kernel prints them.
    const HOST_X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nphysical id\t: 0\n\
        siblings\t: 2\ncore id\t\t: 0\ncpu cores\t: 2\napicid\t\t: 0\nflags\t\t: fpu\n\n\
        processor\t: 1\nvendor_id\t: GenuineIntel\nphysical id\t: 0\nsiblings\t: 2\n\
        core id\t\t: 1\ncpu cores\t: 2\napicid\t\t: 1\nflags\t\t: fpu\n\n";

    /// The values of `key` in a cpuinfo text, in order.
    fn values<'a>(cpuinfo: &'a str, key: &str) -> Vec<&'a str> {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim_end() == key)
            .map(|(_, v)| v.trim())
            .collect()
    }

    #[test]
    fn siblings_and_cpu_cores_agree_with_the_processors_shown() {
        let one = cpuinfo(HOST_X86, 1);
        assert_eq!(values(&one, "processor"), ["0"], "{one}");
        assert_eq!(values(&one, "siblings"), ["1"], "{one}");
        assert_eq!(values(&one, "cpu cores"), ["1"], "{one}");
        assert_eq!(values(&one, "core id"), ["0"], "{one}");
        assert!(
            one.contains("siblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\n"),
            "{one}"
        );
        assert!(one.ends_with("flags\t\t: fpu\n\n"), "{one}");
        // as many as the host has: the host's own text
        assert_eq!(cpuinfo(HOST_X86, 2), HOST_X86);
        assert_eq!(cpuinfo(HOST_X86, 8), HOST_X86);
        // a hyperthreaded host's siblings of one core become two cores
        let ht = HOST_X86.replace("core id\t\t: 1", "core id\t\t: 0");
        let two = cpuinfo(&ht, 2);
        assert_eq!(values(&two, "core id"), ["0", "1"], "{two}");
        assert_eq!(values(&two, "siblings"), ["2", "2"], "{two}");
    }

    #[test]
    fn cpuinfo_keeps_n_processors() {
        let host = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n\nprocessor\t: 2\n\n";
        assert_eq!(cpuinfo(host, 2).matches("processor").count(), 2);
        assert_eq!(cpuinfo(host, 0).matches("processor").count(), 1);
    }
}
