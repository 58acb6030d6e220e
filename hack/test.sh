#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests on a real etcd, the real kernel
# (namespaces, cgroups, overlayfs) and the real kubectl. Needs root. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root
install_packages
install_python_client
echo "minik8s: building and running the test suite"
# Tests start their own etcd, apiserver and registry processes on free loopback ports.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# (errexit off around it: a failing run must still reach the summary line below)
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line that counts every test binary's results.
awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, i}' "$log"
exit "$status"
