//! Restarting containers: the pod's `restartPolicy` says whether an exited container runs
//! again (Always; OnFailure: only after a non-zero exit; Never), and CrashLoopBackOff says
//! when: at once after the first exit, then after a delay that starts at the kubelet's base
//! (`--backoff-base`, 10 s) and doubles with every crash up to five minutes. While a container
//! waits out its delay its status is `waiting: CrashLoopBackOff`.
//! Read `pod_worker/containers.rs` for where the worker applies both.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// The pod's `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Every exited container runs again (the default).
    #[default]
    Always,
    /// Only a container that exited non-zero runs again.
    OnFailure,
    /// No container runs again; an init container that fails fails the pod.
    Never,
}

impl RestartPolicy {
    /// The policy of `pod` (an unknown value counts as the default, Always).
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Would this policy run a container that exited with `exit_code` again?
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Never => false,
            Self::OnFailure => exit_code != 0,
            Self::Always => true,
        }
    }
}

/// One container's CrashLoopBackOff.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Delay applied to the next crash (zero: restart at once).
    delay: Duration,
    /// When the current wait ends (set at the first pass that sees the crash).
    until: Option<Instant>,
    /// The BackOff event of the current wait was posted.
    reported: bool,
}

/// What [`Backoff::poll`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart now.
    Restart,
    /// Wait `remaining` more (the whole wait is `delay`); `first` is true once per wait, for
    /// the BackOff event.
    Wait {
        delay: Duration,
        remaining: Duration,
        first: bool,
    },
}

impl Backoff {
    /// An exited container is due to restart at `now`: restart it, or wait. Restarting moves
    /// the delay on: `base` after the first crash, doubled after each later one up to `max`.
    pub fn poll(&mut self, now: Instant, base: Duration, max: Duration) -> Verdict {
        let until = *self.until.get_or_insert(now + self.delay);
        if now < until {
            let first = !self.reported;
            self.reported = true;
            return Verdict::Wait {
                delay: self.delay,
                remaining: until - now,
                first,
            };
        }
        self.delay = if self.delay.is_zero() {
            base
        } else {
            (self.delay * 2).min(max)
        };
        self.until = None;
        self.reported = false;
        Verdict::Restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    #[test]
    fn policy_from_the_spec_and_what_it_restarts() {
        let pod = |p: Option<&str>| Pod {
            spec: Some(PodSpec {
                restart_policy: p.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(RestartPolicy::of(&pod(None)), RestartPolicy::Always);
        assert_eq!(
            RestartPolicy::of(&pod(Some("OnFailure"))),
            RestartPolicy::OnFailure
        );
        assert_eq!(RestartPolicy::of(&pod(Some("Never"))), RestartPolicy::Never);
        let table = [
            (RestartPolicy::Always, [true, true]),
            (RestartPolicy::OnFailure, [false, true]),
            (RestartPolicy::Never, [false, false]),
        ];
        for (policy, [after_0, after_1]) in table {
            assert_eq!(policy.restarts(0), after_0, "{policy:?} after exit 0");
            assert_eq!(policy.restarts(1), after_1, "{policy:?} after exit 1");
        }
    }

    #[test]
    fn delay_doubles_from_base_to_max() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(35));
        let mut b = Backoff::default();
        let mut now = Instant::now();
        assert_eq!(
            b.poll(now, base, max),
            Verdict::Restart,
            "first crash: at once"
        );
        let mut delays = Vec::new();
        for _ in 0..4 {
            let Verdict::Wait { delay, first, .. } = b.poll(now, base, max) else {
                panic!("a later crash waits");
            };
            assert!(first);
            assert!(matches!(
                b.poll(now, base, max),
                Verdict::Wait { first: false, .. }
            ));
            delays.push(delay.as_secs());
            now += delay;
            assert_eq!(b.poll(now, base, max), Verdict::Restart);
        }
        assert_eq!(delays, [10, 20, 35, 35]);
    }
}
