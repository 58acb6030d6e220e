//! The official Python `kubernetes` client against our apiserver (`tests/python/`).
//! `hack/test.sh` installs it into a virtualenv and points `MINIK8S_PYTHON` at its interpreter.

mod common;

use common::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_works() {
    let python = std::env::var("MINIK8S_PYTHON").unwrap_or_else(|_| "python3".into());
    let c = Cluster::start().await;
    let script = format!(
        "{}/tests/python/client_smoke.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(c.url())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kubernetes'"),
        "the Python client is not installed for {python}: run hack/test.sh (it installs it) or set MINIK8S_PYTHON"
    );
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client: ok"));
}
