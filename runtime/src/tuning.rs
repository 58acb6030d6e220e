//! The finer cgroup settings an OCI bundle may ask for (`linux.resources` beyond the CPU,
//! memory and pids limits and the device allowlist of [`Resources`](super::cgroups::Resources)):
//! memory details (soft limit, memory+swap, kernel and TCP buffers, swappiness, the OOM
//! killer), the CFS period alone, realtime CPU time, memory nodes, block I/O weights and
//! throttles (`blkio`), hugepage limits (`hugetlb`) and the network class and priorities
//! (`net_cls`, `net_prio`). Each becomes a write into the container's cgroup ([`Write`]), in
//! the file the host's layout has for it, as runc writes them; what the layout has no file
//! for (cgroup v2 has no network controller, no swappiness, no OOM-killer switch; a host
//! without a hugepage size) is refused with an error naming the setting, never dropped. The
//! `blkio`, `hugetlb` and `net_*` hierarchies are joined only by containers that set them
//! ([`Tuning::v1_controllers`]), so that the common path creates no cgroup more. This module
//! only plans the writes; `cgroups.rs` makes them (`Hierarchy::apply`).

use serde::{Deserialize, Serialize};

/// A block device's I/O weight (10..1000), for the cgroup and for its children (`leaf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

/// Which of a block device's four throttles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Throttle {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

impl Throttle {
    /// The v1 file (`blkio.throttle.<name>_device`) and the v2 `io.max` key.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Throttle::ReadBps => ("blkio.throttle.read_bps_device", "rbps"),
            Throttle::WriteBps => ("blkio.throttle.write_bps_device", "wbps"),
            Throttle::ReadIops => ("blkio.throttle.read_iops_device", "riops"),
            Throttle::WriteIops => ("blkio.throttle.write_iops_device", "wiops"),
        }
    }
}

/// A block device's throttle: at most `rate` bytes or operations per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub kind: Throttle,
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// The finer settings; all unset by default (the common path has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The CFS period without a quota.
    pub cpu_period_us: Option<u64>,
    /// Realtime CPU time per period (v1 `cpu.rt_runtime_us`, `cpu.rt_period_us`).
    pub rt_runtime_us: Option<i64>,
    pub rt_period_us: Option<u64>,
    /// Memory nodes, in the kernel's list format.
    pub cpuset_mems: Option<String>,
    /// Soft limit (v2 `memory.low`).
    pub memory_reservation: Option<i64>,
    /// Memory plus swap (v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max` is the swap
    /// part alone); -1 unlimited.
    pub memory_swap: Option<i64>,
    pub kernel_memory: Option<i64>,
    pub kernel_tcp_memory: Option<i64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: bool,
    pub blkio_weight: Option<u16>,
    pub blkio_leaf_weight: Option<u16>,
    pub weight_devices: Vec<WeightDevice>,
    pub throttle_devices: Vec<ThrottleDevice>,
    /// Hugepage size as the kernel names it (`2MB`, `1GB`) and the limit in bytes.
    pub hugepage_limits: Vec<(String, u64)>,
    pub net_class_id: Option<u32>,
    /// Interface name and priority.
    pub net_priorities: Vec<(String, u32)>,
}

/// One write of a setting: the v1 controller whose directory holds the file (none on v2), the
/// file and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
}

fn write(controller: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
    Write {
        controller,
        file: file.into(),
        value: value.to_string(),
    }
}

impl Tuning {
    pub fn is_empty(&self) -> bool {
        *self == Tuning::default()
    }

    /// The optional v1 hierarchies these settings need the container to have a cgroup in.
    pub fn v1_controllers(&self) -> Vec<&'static str> {
        let blkio = self.blkio_weight.is_some()
            || self.blkio_leaf_weight.is_some()
            || !self.weight_devices.is_empty()
            || !self.throttle_devices.is_empty();
        [
            (blkio, "blkio"),
            (!self.hugepage_limits.is_empty(), "hugetlb"),
            (self.net_class_id.is_some(), "net_cls"),
            (!self.net_priorities.is_empty(), "net_prio"),
        ]
        .into_iter()
        .filter_map(|(wanted, c)| wanted.then_some(c))
        .collect()
    }

    /// The v1 writes, in order (after the common limits: the memory limit must be in place
    /// before memory+swap). `bfq`: the host schedules block I/O with BFQ, whose weight files
    /// are `blkio.bfq.*` (as runc picks them).
    pub fn v1_writes(&self, bfq: bool) -> Vec<Write> {
        let mut out = Vec::new();
        let mut put = |c, f: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(write(c, f, v));
            }
        };
        let s = |v: Option<i64>| v.map(|v| v.to_string());
        put(
            "cpu",
            "cpu.cfs_period_us",
            self.cpu_period_us.map(|v| v.to_string()),
        );
        put(
            "cpu",
            "cpu.rt_period_us",
            self.rt_period_us.map(|v| v.to_string()),
        );
        put("cpu", "cpu.rt_runtime_us", s(self.rt_runtime_us));
        put("cpuset", "cpuset.mems", self.cpuset_mems.clone());
        put(
            "memory",
            "memory.soft_limit_in_bytes",
            s(self.memory_reservation),
        );
        put("memory", "memory.memsw.limit_in_bytes", s(self.memory_swap));
        put(
            "memory",
            "memory.kmem.limit_in_bytes",
            s(self.kernel_memory),
        );
        put(
            "memory",
            "memory.kmem.tcp.limit_in_bytes",
            s(self.kernel_tcp_memory),
        );
        put(
            "memory",
            "memory.swappiness",
            self.swappiness.map(|v| v.to_string()),
        );
        put(
            "memory",
            "memory.oom_control",
            self.disable_oom_killer.then(|| "1".into()),
        );
        let (weight, weight_device) = match bfq {
            true => ("blkio.bfq.weight", "blkio.bfq.weight_device"),
            false => ("blkio.weight", "blkio.weight_device"),
        };
        put("blkio", weight, self.blkio_weight.map(|w| w.to_string()));
        put(
            "blkio",
            "blkio.leaf_weight",
            self.blkio_leaf_weight.map(|w| w.to_string()),
        );
        for d in &self.weight_devices {
            let line = |w: Option<u16>| w.map(|w| format!("{}:{} {w}", d.major, d.minor));
            put("blkio", weight_device, line(d.weight));
            put("blkio", "blkio.leaf_weight_device", line(d.leaf_weight));
        }
        for t in &self.throttle_devices {
            let line = format!("{}:{} {}", t.major, t.minor, t.rate);
            put("blkio", t.kind.names().0, Some(line));
        }
        for (size, limit) in &self.hugepage_limits {
            let file = format!("hugetlb.{size}.limit_in_bytes");
            put("hugetlb", &file, Some(limit.to_string()));
        }
        put(
            "net_cls",
            "net_cls.classid",
            self.net_class_id.map(|v| v.to_string()),
        );
        for (name, priority) in &self.net_priorities {
            put(
                "net_prio",
                "net_prio.ifpriomap",
                Some(format!("{name} {priority}")),
            );
        }
        out
    }

    /// The v2 writes, or the first setting v2 has no file for. `memory_limit`: the common
    /// memory limit, which v2's swap limit does not include.
    pub fn v2_writes(&self, memory_limit: Option<u64>) -> Result<Vec<Write>, &'static str> {
        let refused = [
            (
                self.rt_runtime_us.is_some() || self.rt_period_us.is_some(),
                "cpu.realtime*",
            ),
            (self.kernel_memory.is_some(), "memory.kernel"),
            (self.kernel_tcp_memory.is_some(), "memory.kernelTCP"),
            (self.swappiness.is_some(), "memory.swappiness"),
            (self.disable_oom_killer, "memory.disableOOMKiller"),
            (self.blkio_leaf_weight.is_some(), "blockIO.leafWeight"),
            (
                self.weight_devices.iter().any(|d| d.leaf_weight.is_some()),
                "blockIO.weightDevice.leafWeight",
            ),
            (
                self.net_class_id.is_some() || !self.net_priorities.is_empty(),
                "network",
            ),
        ];
        if let Some((_, setting)) = refused.iter().find(|(set, _)| *set) {
            return Err(setting);
        }
        let mut out = Vec::new();
        if let Some(p) = self.cpu_period_us {
            out.push(write("", "cpu.max", format!("max {p}")));
        }
        if let Some(m) = &self.cpuset_mems {
            out.push(write("", "cpuset.mems", m));
        }
        if let Some(r) = self.memory_reservation {
            out.push(write("", "memory.low", r));
        }
        if let Some(swap) = self.memory_swap {
            // v2 limits the swap alone: memory+swap minus the memory limit
            let value = match (swap, memory_limit) {
                (-1, _) | (_, None) => "max".to_string(),
                (s, Some(l)) => (s - l as i64).max(0).to_string(),
            };
            out.push(write("", "memory.swap.max", value));
        }
        if let Some(w) = self.blkio_weight {
            out.push(write("", "io.weight", weight_v2(w)));
        }
        for d in &self.weight_devices {
            if let Some(w) = d.weight {
                let line = format!("{}:{} {}", d.major, d.minor, weight_v2(w));
                out.push(write("", "io.weight", line));
            }
        }
        for t in &self.throttle_devices {
            let line = format!("{}:{} {}={}", t.major, t.minor, t.kind.names().1, t.rate);
            out.push(write("", "io.max", line));
        }
        for (size, limit) in &self.hugepage_limits {
            out.push(write("", format!("hugetlb.{size}.max"), limit));
        }
        Ok(out)
    }
}

/// A blkio weight (10..1000) as an `io.weight` (1..10000), runc's conversion.
fn weight_v2(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_that_need_them_join_the_optional_hierarchies() {
        assert!(Tuning::default().v1_controllers().is_empty());
        let t = Tuning {
            blkio_weight: Some(500),
            hugepage_limits: vec![("2MB".into(), 1 << 30)],
            net_class_id: Some(255),
            ..Tuning::default()
        };
        assert_eq!(t.v1_controllers(), ["blkio", "hugetlb", "net_cls"]);
    }

    #[test]
    fn v2_refuses_what_it_has_no_file_for_and_converts_the_rest() {
        let t = Tuning {
            swappiness: Some(10),
            ..Tuning::default()
        };
        assert_eq!(t.v2_writes(None), Err("memory.swappiness"));
        let t = Tuning {
            blkio_weight: Some(1000),
            memory_swap: Some(3 << 20),
            throttle_devices: vec![ThrottleDevice {
                kind: Throttle::WriteIops,
                major: 8,
                minor: 0,
                rate: 100,
            }],
            ..Tuning::default()
        };
        let files: Vec<(String, String)> = t
            .v2_writes(Some(1 << 20))
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        let pair = |f: &str, v: &str| (f.to_string(), v.to_string());
        assert_eq!(
            files,
            [
                pair("memory.swap.max", "2097152"),
                pair("io.weight", "10000"),
                pair("io.max", "8:0 wiops=100"),
            ]
        );
    }

    #[test]
    fn v1_writes_go_to_runcs_files_in_order() {
        let t = Tuning {
            memory_swap: Some(100),
            weight_devices: vec![WeightDevice {
                major: 8,
                minor: 0,
                weight: Some(500),
                leaf_weight: Some(300),
            }],
            hugepage_limits: vec![("2MB".into(), 4096)],
            net_priorities: vec![("lo".into(), 10)],
            ..Tuning::default()
        };
        let files: Vec<String> = t
            .v1_writes(true)
            .into_iter()
            .map(|w| format!("{}/{}={}", w.controller, w.file, w.value))
            .collect();
        assert_eq!(
            files,
            [
                "memory/memory.memsw.limit_in_bytes=100",
                "blkio/blkio.bfq.weight_device=8:0 500",
                "blkio/blkio.leaf_weight_device=8:0 300",
                "hugetlb/hugetlb.2MB.limit_in_bytes=4096",
                "net_prio/net_prio.ifpriomap=lo 10",
            ]
        );
    }
}
