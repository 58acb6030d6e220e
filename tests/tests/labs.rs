//! The guided labs `docs/labs/NN-*.md`, executed so that they never rot: every lab runs through
//! `hack/labrun.py` (its commands in one bash session, each output compared with the one the
//! lab shows), one test per lab so that a failing lab names itself, with this build's binaries
//! first on PATH under their installed names (`MINIK8S_BIN`, as for `hack/quickstart.sh`).
//! The Chinese labs (`docs/labs/zh/`) are checked to run the very same steps, and the harness's
//! parser and matcher test themselves (`labrun.py --self-test`).
//!
//! Labs run one at a time (`LABS`): they share the runtime's default root, as a student's
//! commands do, and their cgroups and containers would show in each other's outputs. No other
//! test uses the default root (`/var/lib/minik8s/runtime`): each has a root of its own.
//! Read next: `hack/labrun.py` (the format), `tests/lab_network_doc.rs` (the network lab).

mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use cluster::skip_unless_root;

/// Held by every test that runs a lab.
static LABS: Mutex<()> = Mutex::new(());

/// How long one command of a lab may take before the harness kills it.
const STEP_TIMEOUT_S: &str = "60";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn labs_dir() -> PathBuf {
    repo().join("docs/labs")
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    LABS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This build's binaries under their installed names in a directory of their own, removed
/// with it; kubectl too when `KUBECTL` names one (otherwise the one on PATH).
fn bin_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("minik8s-labs-")
        .tempdir()
        .unwrap();
    cluster::link_binaries(dir.path());
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        std::os::unix::fs::symlink(k, dir.path().join("kubectl")).unwrap();
    }
    dir
}

/// `docs/labs/NN-*.md` (or under `zh/`), which must exist once.
fn lab_file(dir: &Path, nn: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{nn}-")) && name.ends_with(".md")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {}/{nn}-*.md, found {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

fn labrun(args: &[&std::ffi::OsStr]) -> Output {
    let bin = bin_dir();
    Command::new("python3")
        .arg(repo().join("hack/labrun.py"))
        .args(args)
        .current_dir(repo())
        .env("MINIK8S_BIN", bin.path())
        .env_remove("MINIK8S_RUNTIME_ROOT")
        .env_remove("MINIK8S_RUNTIME_CGROUP_PARENT")
        .stdin(Stdio::null())
        .output()
        .expect("run python3 hack/labrun.py")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lab `nn` as written, and its Chinese twin's steps the same.
/// The labs run containers under the runtime's default root, so under its default cgroup
/// parent, which the runtime never removes; this test removes it once the lab is over, also
/// on failure, if nothing is left below it (a student's own containers keep it).
struct DefaultCgroupParent;

impl Drop for DefaultCgroupParent {
    fn drop(&mut self) {
        runtime::cgroups::Hierarchy::host()
            .remove_if_empty(Path::new(runtime::DEFAULT_CGROUP_PARENT));
    }
}

fn run_lab(nn: &str) {
    let en = lab_file(&labs_dir(), nn);
    let zh = lab_file(&labs_dir().join("zh"), nn);
    let same = labrun(&["--same-steps".as_ref(), en.as_os_str(), zh.as_os_str()]);
    assert!(same.status.success(), "{}", text(&same));
    if skip_unless_root(&format!("lab {nn}")) {
        return;
    }
    let _one = one_at_a_time();
    let _parent = DefaultCgroupParent;
    let started = std::time::Instant::now();
    let out = labrun(&[
        "--step-timeout".as_ref(),
        STEP_TIMEOUT_S.as_ref(),
        en.as_os_str(),
    ]);
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{} does not run as written ({took:.1?}):\n{}",
        en.display(),
        text(&out)
    );
    eprintln!("{}: {took:.1?}", en.display());
}

macro_rules! labs {
    ($($test:ident => $nn:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_lab($nn);
            }
        )*

        /// Every `NN-*.md` lab has its test above.
        #[test]
        fn every_lab_has_a_test() {
            let tested = [$($nn),*];
            for entry in std::fs::read_dir(labs_dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let Some((nn, _)) = name.split_once('-') else { continue };
                if nn.len() == 2 && nn.bytes().all(|b| b.is_ascii_digit()) && name.ends_with(".md") {
                    assert!(tested.contains(&nn), "docs/labs/{name} has no test in tests/labs.rs");
                }
            }
        }
    };
}

labs! {
    lab01_a_container_is_a_process => "01",
    lab02_namespaces => "02",
    lab03_cgroups => "03",
    lab04_the_proc_problem => "04",
    lab05_the_root_filesystem => "05",
    lab06_images_and_layers => "06",
    lab07_volumes => "07",
    lab08_pods => "08",
    lab09_the_hard_way => "09",
    lab10_controllers => "10",
    lab11_scheduling => "11",
    lab12_node_failure => "12",
    lab13_the_map => "13",
}

#[test]
fn the_harness_tests_itself() {
    let out = labrun(&["--self-test".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The harness reports a wrong output, a wrong exit code and a step that passes, as the
/// grader's student sees them, and runs the cleanup after a failure.
#[test]
fn the_harness_reports_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("cleaned");
    let lab = dir.path().join("99-demo.md");
    let doc = format!(
        "# demo\n<!-- lab-cleanup: touch {} -->\n```console\n$ echo hello\nhello\n\
         $ echo pid 42\npid ... up\n$ false\n```\n",
        marker.display()
    );
    std::fs::write(&lab, doc).unwrap();
    let out = labrun(&[lab.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stdout.contains("ok 1: $ echo hello\n"), "{stdout}");
    assert!(stdout.contains("not ok 2: $ echo pid 42\n"), "{stdout}");
    assert!(stdout.contains("not ok 3: $ false\n"), "{stdout}");
    assert!(
        stdout.contains("# 1 of 3 steps as the lab says"),
        "{stdout}"
    );
    assert!(marker.exists(), "the cleanup did not run: {stdout}");
}
