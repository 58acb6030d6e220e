//! Metrics in the Prometheus text format (`/metrics`): pod start latency (first seen →
//! Running reported) and pod sync duration as histograms, and running containers as a gauge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram of seconds.
#[derive(Default)]
pub struct Histogram {
    inner: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut g = self.inner.lock().expect("metrics lock");
        if g.0.is_empty() {
            g.0 = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                g.0[i] += 1;
            }
        }
        g.1 += s;
        g.2 += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let g = self.inner.lock().expect("metrics lock");
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "{name}_bucket{{le=\"{b}\"}} {}\n",
                g.0.get(i).copied().unwrap_or(0)
            ));
        }
        out.push_str(&format!(
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}\n",
            g.2, g.1, g.2
        ));
    }
}

/// The kubelet's metrics.
#[derive(Default)]
pub struct Metrics {
    pub pod_start: Histogram,
    pub pod_sync: Histogram,
    pub running_containers: AtomicU64,
}

impl Metrics {
    pub fn observe_start(&self, d: Duration) {
        self.pod_start.observe(d);
    }
    pub fn observe_sync(&self, d: Duration) {
        self.pod_sync.observe(d);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.pod_start.render(
            "kubelet_pod_start_duration_seconds",
            "Time from the kubelet first seeing a pod to reporting it Running.",
            &mut out,
        );
        self.pod_sync.render(
            "kubelet_pod_worker_duration_seconds",
            "Duration of one pod worker pass.",
            &mut out,
        );
        out.push_str(&format!(
            "# HELP kubelet_running_containers Containers currently running.\n# TYPE kubelet_running_containers gauge\nkubelet_running_containers {}\n",
            self.running_containers.load(Ordering::Relaxed)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_start(Duration::from_millis(80));
        m.observe_start(Duration::from_secs(3));
        let t = m.render();
        assert!(t.contains("kubelet_pod_start_duration_seconds_bucket{le=\"0.1\"} 1"));
        assert!(t.contains("kubelet_pod_start_duration_seconds_bucket{le=\"5\"} 2"));
        assert!(t.contains("kubelet_pod_start_duration_seconds_count 2"));
    }
}
