//! Which kubectl the tests run. The tests drive the real kubectl, as a user would, so that
//! what it asks of the API (discovery, server-side apply, tables, protobuf) is what we serve;
//! `hack/test.sh` makes sure a recent one is there. Read next: `Cluster::kubectl_command` in
//! `cluster.rs`, which aims it at a test's apiserver.

use std::path::PathBuf;

/// The kubectl the tests run: `$KUBECTL` if set (hack/test.sh sets it to a kubectl it checked
/// is 1.30 or newer), else `kubectl` on `PATH`.
pub fn kubectl() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        return PathBuf::from(k);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("kubectl"))
        .find(|k| k.is_file())
        .unwrap_or_else(|| {
            panic!("no kubectl on PATH and KUBECTL not set (hack/test.sh installs one)")
        })
}
