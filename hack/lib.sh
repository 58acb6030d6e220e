# Shared by quickstart.sh and test.sh: install what is missing, find free ports.
# Sourced, not run.

# Debian/Ubuntu packages the project needs on a node (and in CI).
MINIK8S_PACKAGES=(etcd-server protobuf-compiler libprotobuf-dev busybox-static iproute2 iptables skopeo docker-registry runc curl ca-certificates python3-venv)

die() { echo "minik8s: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs packages and creates namespaces and cgroups)"
}

# Install the packages that are not installed yet (one apt-get update, only if needed).
install_packages() {
  local missing=()
  for p in "${MINIK8S_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "minik8s: installing ${missing[*]}"
    apt-get update -qq
    # docker-registry's package starts a service on :5000; tests start their own on loopback.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
  command -v cargo >/dev/null 2>&1 || {
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  }
  command -v cargo >/dev/null 2>&1 || die "no Rust toolchain: install one with rustup (https://rustup.rs), Rust >= 1.89"
  [ -x /usr/bin/kubectl ] || command -v kubectl >/dev/null 2>&1 \
    || die "kubectl not found: install kubectl v1.32 (https://kubernetes.io/docs/tasks/tools/)"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until URL answers 200 (up to $2 seconds).
wait_http() {
  local url=$1 secs=${2:-30}
  for _ in $(seq $((secs * 10))); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# The official Python Kubernetes client, in a virtualenv (tests check the server against its
# strict models). Sets MINIK8S_PYTHON to the interpreter.
install_python_client() {
  local venv=/var/lib/minik8s/pyclient
  if ! "$venv/bin/python" -c 'import kubernetes' >/dev/null 2>&1; then
    echo "minik8s: installing the Python kubernetes client into $venv"
    mkdir -p /var/lib/minik8s
    python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install -q kubernetes || die "pip install kubernetes failed"
  fi
  export MINIK8S_PYTHON="$venv/bin/python"
}
