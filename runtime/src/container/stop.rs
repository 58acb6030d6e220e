//! Ending a container: `kill` signals its init, `stop` asks politely (SIGTERM), waits the
//! grace period, then SIGKILLs, and `remove` deletes a container that no longer runs (killing
//! it first when forced). Read next: `inspect.rs`.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{alive, ContainerError, State, Status};
use crate::{logs, Runtime};

impl Runtime {
    /// Send `signal` to the container's init.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), ContainerError> {
        let st = self.state(id)?;
        match (st.status, st.pid) {
            (Status::Running | Status::Created, Some(pid)) if alive(pid) => {
                kill(Pid::from_raw(pid), signal).map_err(|errno| ContainerError::Signal {
                    signal,
                    pid,
                    errno,
                })
            }
            (status, _) => Err(ContainerError::WrongState {
                id: id.to_string(),
                status,
            }),
        }
    }

    /// Wait until the shim recorded the exit, up to `timeout`.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<State, ContainerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.state(id)?;
            if st.status == Status::Stopped || Instant::now() >= deadline {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; waits for the exit to be recorded.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<State, ContainerError> {
        let st = self.state(id)?;
        if st.status == Status::Stopped {
            return Ok(st);
        }
        let Some(pid) = st.pid else {
            return Ok(st);
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let st = self.wait_stopped(id, grace)?;
        if st.status == Status::Stopped {
            return Ok(st);
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let st = self.wait_stopped(id, Duration::from_secs(10))?;
        if st.status != Status::Stopped && !alive(pid) {
            // no shim to record it: record it ourselves
            let mut st = st;
            st.status = Status::Stopped;
            st.exit_code = Some(137);
            st.finished_at = Some(logs::now());
            self.write_state(id, &st)?;
            return Ok(st);
        }
        Ok(st)
    }

    /// Remove a container: with `force` a running one is killed first. Idempotent on cgroups.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let st = self.state(id)?;
        if st.status == Status::Running
            || (st.status == Status::Created && st.pid.is_some_and(alive))
        {
            if !force {
                return Err(ContainerError::WrongState {
                    id: id.to_string(),
                    status: st.status,
                });
            }
            self.stop(id, Duration::ZERO)?;
        }
        let spec = self.spec(id)?;
        self.cleanup(&spec)
    }
}
