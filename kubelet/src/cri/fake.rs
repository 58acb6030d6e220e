//! An in-memory [`ContainerRuntime`] for unit tests, as raft-rs keeps `MemStorage` beside its
//! real storage: no process is started, no namespace made. Containers go Created → Running on
//! start; the test then decides how they end ([`FakeRuntime::exit`],
//! [`FakeRuntime::oom_kill`]) or that they never start ([`FakeRuntime::fail_start`]). Every
//! call is recorded ([`Call`], naming containers by their runtime name), so a test asserts
//! what the kubelet did in which order. Read `pod_worker/tests.rs` for its use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use runtime::ContainerError;

use super::{
    ContainerInfo, ContainerRuntime, ContainerStats, CreateOptions, CriError, ExecOutput,
    ImageRecord, KernelView, SandboxOptions, SandboxStatus, SandboxView, State, Status,
};
use crate::container_config::parse_runtime_name;

/// One call the fake runtime received; containers are named by their runtime name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    RunSandbox { uid: String },
    RemoveSandbox { uid: String },
    PullImage { image: String },
    CreateContainer { name: String },
    StartContainer { name: String },
    StopContainer { name: String, grace: Duration },
    RemoveContainer { name: String },
    Exec { name: String, command: Vec<String> },
}

/// A container of the fake runtime.
#[derive(Debug, Clone)]
struct Container {
    name: String,
    state: State,
}

#[derive(Debug, Default)]
struct Inner {
    /// By id.
    containers: BTreeMap<String, Container>,
    sandboxes: BTreeSet<String>,
    /// The options each sandbox was created with, by uid.
    sandbox_options: BTreeMap<String, SandboxOptions>,
    images: BTreeSet<String>,
    /// Kubernetes container name → the message its starts fail with.
    start_failures: HashMap<String, String>,
    exec_output: Option<ExecOutput>,
    calls: Vec<Call>,
    next_id: u64,
}

/// The in-memory runtime (see the module doc).
#[derive(Debug, Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

fn now() -> Option<String> {
    Some(jiff::Timestamp::now().to_string())
}

/// A cgroup with no files: the fake makes none.
fn fake_cgroup(name: &str) -> runtime::container::CgroupView {
    runtime::container::CgroupView {
        version: runtime::cgroups::Version::V2,
        path: PathBuf::from("minik8s-fake").join(name),
        dirs: Vec::new(),
        limits: Vec::new(),
        usage: Default::default(),
    }
}

fn not_found(id: &str) -> CriError {
    ContainerError::NotFound { id: id.into() }.into()
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake runtime lock")
    }

    /// Change the state of the container named `name`.
    fn set(&self, name: &str, f: impl FnOnce(&mut State)) {
        let mut g = self.lock();
        let c = g
            .containers
            .values_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no fake container named {name}"));
        f(&mut c.state);
    }

    /// A container that runs already, as a previous kubelet left it.
    pub fn add_running(&self, name: &str) {
        let mut g = self.lock();
        g.next_id += 1;
        let id = format!("fake{:04}", g.next_id);
        let state = State {
            status: Status::Running,
            started_at: now(),
            ..State::default()
        };
        g.containers.insert(
            id,
            Container {
                name: name.into(),
                state,
            },
        );
    }

    /// A sandbox that exists already.
    pub fn add_sandbox(&self, uid: &str) {
        self.lock().sandboxes.insert(uid.into());
    }

    /// The command of `name` exits with `code`.
    pub fn exit(&self, name: &str, code: i32) {
        self.set(name, |st| {
            st.status = Status::Stopped;
            st.exit_code = Some(code);
            st.finished_at = now();
        });
    }

    /// The kernel's OOM killer ends `name` (SIGKILL: exit code 137).
    pub fn oom_kill(&self, name: &str) {
        self.set(name, |st| {
            st.status = Status::Stopped;
            st.exit_code = Some(137);
            st.oom_killed = true;
            st.finished_at = now();
        });
    }

    /// Every start of the pod container `container` fails with `message` (as a command that
    /// is not in the image does).
    pub fn fail_start(&self, container: &str, message: &str) {
        self.lock()
            .start_failures
            .insert(container.into(), message.into());
    }

    /// What every exec answers (default: success, no output).
    pub fn set_exec_output(&self, output: ExecOutput) {
        self.lock().exec_output = Some(output);
    }

    /// The state of the container named `name`.
    pub fn state_of(&self, name: &str) -> Option<State> {
        let g = self.lock();
        let c = g.containers.values().find(|c| c.name == name)?;
        Some(c.state.clone())
    }

    /// Names of the containers that exist, sorted.
    pub fn names(&self) -> Vec<String> {
        let g = self.lock();
        let mut v: Vec<String> = g.containers.values().map(|c| c.name.clone()).collect();
        v.sort();
        v
    }

    /// Ids of the sandboxes that exist.
    pub fn sandboxes(&self) -> Vec<String> {
        self.lock().sandboxes.iter().cloned().collect()
    }

    /// The calls so far, which are forgotten.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The options sandbox `uid` was last created with (its hostname, its resolver).
    pub fn sandbox_options(&self, uid: &str) -> Option<SandboxOptions> {
        self.lock().sandbox_options.get(uid).cloned()
    }

    /// The name of container `id` (recorded in calls).
    fn name_of(g: &Inner, id: &str) -> Result<String, CriError> {
        g.containers
            .get(id)
            .map(|c| c.name.clone())
            .ok_or_else(|| not_found(id))
    }
}

impl ContainerRuntime for FakeRuntime {
    fn run_sandbox(&self, uid: &str, opts: &SandboxOptions) -> Result<SandboxStatus, CriError> {
        let mut g = self.lock();
        g.calls.push(Call::RunSandbox { uid: uid.into() });
        g.sandboxes.insert(uid.into());
        g.sandbox_options.insert(uid.into(), opts.clone());
        drop(g);
        self.sandbox_status(uid)
    }

    fn sandbox_status(&self, uid: &str) -> Result<SandboxStatus, CriError> {
        if !self.lock().sandboxes.contains(uid) {
            return Err(ContainerError::SandboxNotFound { id: uid.into() }.into());
        }
        Ok(SandboxStatus {
            id: uid.into(),
            netns: PathBuf::from("/fake/sandboxes").join(uid).join("net"),
        })
    }

    fn remove_sandbox(&self, uid: &str) -> Result<(), CriError> {
        let mut g = self.lock();
        g.calls.push(Call::RemoveSandbox { uid: uid.into() });
        g.sandboxes.remove(uid);
        Ok(())
    }

    fn list_sandboxes(&self) -> Vec<String> {
        self.sandboxes()
    }

    fn image_present(&self, image: &str) -> bool {
        self.lock().images.contains(image)
    }

    fn pull_image(&self, image: &str) -> Result<(), CriError> {
        let mut g = self.lock();
        g.calls.push(Call::PullImage {
            image: image.into(),
        });
        g.images.insert(image.into());
        Ok(())
    }

    fn create_container(&self, opts: &CreateOptions) -> Result<String, CriError> {
        let mut g = self.lock();
        let name = opts.name.clone().unwrap_or_default();
        if g.containers.values().any(|c| c.name == name) {
            return Err(ContainerError::NameInUse { name }.into());
        }
        g.calls.push(Call::CreateContainer { name: name.clone() });
        g.next_id += 1;
        let id = format!("fake{:04}", g.next_id);
        let state = State::default();
        g.containers.insert(id.clone(), Container { name, state });
        Ok(id)
    }

    fn start_container(&self, id: &str) -> Result<(), CriError> {
        let mut g = self.lock();
        let name = Self::name_of(&g, id)?;
        g.calls.push(Call::StartContainer { name: name.clone() });
        let failure = parse_runtime_name(&name)
            .and_then(|(_, container, _)| g.start_failures.get(&container).cloned());
        let st = &mut g.containers.get_mut(id).expect("looked up").state;
        match failure {
            Some(message) => {
                st.status = Status::Stopped;
                st.exit_code = Some(128);
                st.error = Some(message.clone());
                st.finished_at = now();
                Err(ContainerError::StartFailed { code: 128, message }.into())
            }
            None => {
                st.status = Status::Running;
                st.started_at = now();
                Ok(())
            }
        }
    }

    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let mut g = self.lock();
        let name = Self::name_of(&g, id)?;
        g.calls.push(Call::StopContainer { name, grace });
        let st = &mut g.containers.get_mut(id).expect("looked up").state;
        if st.status != Status::Stopped {
            // the command honours SIGTERM
            st.status = Status::Stopped;
            st.exit_code = Some(143);
            st.finished_at = now();
        }
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let mut g = self.lock();
        let name = Self::name_of(&g, id)?;
        g.calls.push(Call::RemoveContainer { name });
        g.containers.remove(id);
        Ok(())
    }

    fn container_state(&self, id: &str) -> Result<State, CriError> {
        let g = self.lock();
        let c = g.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(c.state.clone())
    }

    fn container_info(&self, id: &str) -> Result<ContainerInfo, CriError> {
        let g = self.lock();
        let c = g.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(ContainerInfo {
            id: id.into(),
            name: c.name.clone(),
            image_digest: "sha256:fake".into(),
            log_path: PathBuf::from("/fake/logs").join(id),
        })
    }

    fn list_containers(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    fn find_container(&self, name: &str) -> Option<String> {
        let g = self.lock();
        let (id, _) = g.containers.iter().find(|(_, c)| c.name == name)?;
        Some(id.clone())
    }

    fn container_stats(&self, id: &str) -> Option<ContainerStats> {
        self.lock()
            .containers
            .contains_key(id)
            .then(ContainerStats::default)
    }

    fn inspect_container(&self, id: &str) -> Result<KernelView, CriError> {
        let name = Self::name_of(&self.lock(), id)?;
        Ok(KernelView {
            init: None,
            pid_one: None,
            namespaces: Vec::new(),
            cgroup: fake_cgroup(&name),
            rootfs: runtime::container::RootfsView {
                layers: Vec::new(),
                init_layer: None,
                lowerdirs: Vec::new(),
                upperdir: PathBuf::from("/fake/upper").join(&name),
                workdir: PathBuf::from("/fake/work").join(&name),
                merged: PathBuf::from("/fake/merged").join(&name),
                mount_options: None,
                upper: Vec::new(),
                upper_truncated: false,
            },
            mounts: Vec::new(),
            volumes: Vec::new(),
        })
    }

    fn inspect_sandbox(&self, uid: &str) -> Result<SandboxView, CriError> {
        self.sandbox_status(uid)?;
        Ok(SandboxView {
            id: uid.into(),
            hostname: uid.into(),
            pause: None,
            namespaces: Vec::new(),
            cgroup: fake_cgroup(uid),
        })
    }

    fn list_images(&self) -> Vec<ImageRecord> {
        self.lock()
            .images
            .iter()
            .map(|name| ImageRecord {
                name: name.clone(),
                manifest: format!("sha256:{}", "0".repeat(64)),
            })
            .collect()
    }

    fn helper_command(&self) -> Command {
        // the fake has no helper binary: a command that fails
        Command::new("/nonexistent/minik8s-fake-helper")
    }

    fn exec_sync(&self, id: &str, command: &[String], _timeout: Duration) -> ExecOutput {
        let mut g = self.lock();
        let Ok(name) = Self::name_of(&g, id) else {
            return ExecOutput {
                success: false,
                output: format!("no such container: {id}"),
            };
        };
        g.calls.push(Call::Exec {
            name,
            command: command.to_vec(),
        });
        g.exec_output.clone().unwrap_or(ExecOutput {
            success: true,
            output: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_run_exit_and_fail_to_start_as_told() {
        let rt = FakeRuntime::new();
        rt.fail_start("bad", "executable file not found in $PATH: \"nope\"");
        let opts = |name: &str| CreateOptions {
            name: Some(name.into()),
            ..Default::default()
        };
        let good = rt.create_container(&opts("uid_app_0")).unwrap();
        rt.start_container(&good).unwrap();
        assert_eq!(rt.container_state(&good).unwrap().status, Status::Running);
        rt.exit("uid_app_0", 3);
        assert_eq!(rt.container_state(&good).unwrap().exit_code, Some(3));

        let bad = rt.create_container(&opts("uid_bad_0")).unwrap();
        assert!(rt.start_container(&bad).is_err());
        let st = rt.container_state(&bad).unwrap();
        assert_eq!((st.status, st.started_at), (Status::Stopped, None));

        assert!(rt.create_container(&opts("uid_app_0")).is_err());
        assert_eq!(
            rt.take_calls(),
            vec![
                Call::CreateContainer {
                    name: "uid_app_0".into()
                },
                Call::StartContainer {
                    name: "uid_app_0".into()
                },
                Call::CreateContainer {
                    name: "uid_bad_0".into()
                },
                Call::StartContainer {
                    name: "uid_bad_0".into()
                },
            ]
        );
    }
}
