//! The arithmetic of a rolling update, as pure functions over replica counts.
//!
//! `maxSurge` bounds how many pods may exist above `spec.replicas` (rounded up from a percent),
//! `maxUnavailable` how many may be missing from availability (rounded down). The new
//! ReplicaSet grows into the surge room; old ReplicaSets shrink only while enough pods stay
//! available. Repeating these two steps as pods become ready completes the rollout.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One ReplicaSet as the rollout math sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas` (never above `spec.replicas`).
    pub available: i32,
}

/// Resolve an int-or-percent against `total`; percents round up or down.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, default: &str, round_up: bool) -> i32 {
    let v = v.cloned().unwrap_or(IntOrString::String(default.into()));
    match v {
        IntOrString::Int(i) => i.max(0),
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = pct * total as i64;
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// (maxSurge, maxUnavailable) for the Deployment; both 0 would deadlock, so unavailable
/// becomes 1 then (as upstream `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ru = spec
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), replicas, "25%", true);
    let unavailable = scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
        "25%",
        false,
    );
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// The new ReplicaSet's size this step: grow into the surge room, never past `replicas`.
pub fn new_rs_replicas(replicas: i32, max_surge: i32, new: Counts, all_replicas: i32) -> i32 {
    if new.replicas >= replicas {
        return replicas;
    }
    let room = replicas + max_surge - all_replicas;
    if room <= 0 {
        return new.replicas;
    }
    new.replicas + room.min(replicas - new.replicas)
}

/// How far to shrink each old ReplicaSet (same order as `olds`, oldest first) this step.
pub fn old_rs_scale_down(
    replicas: i32,
    max_unavailable: i32,
    new: Counts,
    olds: &[Counts],
) -> Vec<i32> {
    let mut out: Vec<i32> = olds.iter().map(|o| o.replicas).collect();
    let all: i32 = new.replicas + olds.iter().map(|o| o.replicas).sum::<i32>();
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return out;
    }
    // First drop old pods that are not available anyway: that costs no availability.
    for (i, o) in olds.iter().enumerate() {
        let unhealthy = (o.replicas - o.available).min(budget);
        if unhealthy > 0 {
            out[i] -= unhealthy;
            budget -= unhealthy;
        }
    }
    // Then available ones, as long as at least minAvailable pods stay available.
    let available: i32 = new.available
        + olds
            .iter()
            .zip(&out)
            .map(|(o, r)| o.available.min(*r))
            .sum::<i32>();
    let mut excess = (available - min_available).min(budget);
    for r in out.iter_mut() {
        if excess <= 0 {
            break;
        }
        let d = (*r).min(excess);
        *r -= d;
        excess -= d;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_round_surge_up_and_unavailable_down() {
        let p = IntOrString::String("25%".into());
        assert_eq!(scaled_value(Some(&p), 10, "25%", true), 3);
        assert_eq!(scaled_value(Some(&p), 10, "25%", false), 2);
        assert_eq!(
            scaled_value(Some(&IntOrString::Int(4)), 10, "25%", false),
            4
        );
        assert_eq!(scaled_value(None, 1, "25%", true), 1);
        assert_eq!(scaled_value(None, 1, "25%", false), 0);
    }

    #[test]
    fn a_rollout_never_exceeds_surge_nor_unavailability() {
        // 10 replicas, surge 3, unavailable 2; pods become available one step later.
        let (replicas, surge, unavail) = (10, 3, 2);
        let mut new = Counts {
            replicas: 0,
            available: 0,
        };
        let mut old = [Counts {
            replicas: 10,
            available: 10,
        }];
        for _ in 0..50 {
            let all = new.replicas + old[0].replicas;
            new.replicas = new_rs_replicas(replicas, surge, new, all);
            assert!(new.replicas + old[0].replicas <= replicas + surge);
            old[0].replicas = old_rs_scale_down(replicas, unavail, new, &old)[0];
            old[0].available = old[0].available.min(old[0].replicas);
            assert!(new.available + old[0].available >= replicas - unavail);
            new.available = new.replicas;
        }
        assert_eq!((new.replicas, old[0].replicas), (10, 0));
    }
}
