#!/usr/bin/env bash
# Brings up a local one-node minik8s on loopback (etcd, apiserver, controller manager,
# scheduler, kubelet), applies a sample Deployment and Pod with minikctl (built here beside
# the components), waits for them to run, shows them, their logs and an exec into one of them,
# and ends with `minikctl inspect pod`: the pod down to the kernel of its node. Run it as
# root, or with sudo (the build then runs as you). Installs what is missing.
#
#   hack/quickstart.sh                  build, start, run the sample workload
#   hack/quickstart.sh down             stop everything and remove the cluster's data
#   hack/quickstart.sh down --keep-data stop everything, keep etcd's data and the node's images
#
# Settings (environment): MINIK8S_STATE (state dir, /var/lib/minik8s/quickstart), API_PORT
# (6443), MINIK8S_BIN (a directory holding already built minik8s-* binaries and minikctl: no build),
# MINIK8S_BRIDGE (the pod bridge, minik8s0), MINIK8S_POD_CIDR (the node's pod range; default:
# assigned by the controller's node IPAM from 10.244.0.0/16), MINIK8S_CGROUP_ROOT (the cgroup
# the node's pod cgroups go under, minik8s).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root
STATE=${MINIK8S_STATE:-$MINIK8S_VAR/quickstart}
BIN=${MINIK8S_BIN:-target/release}
BRIDGE=${MINIK8S_BRIDGE:-minik8s0}
# read by the kubelet (--cgroup-root) and by the runtime's CLI (--cgroup-parent)
export MINIK8S_CGROUP_ROOT=${MINIK8S_CGROUP_ROOT:-minik8s}
export MINIK8S_RUNTIME_CGROUP_PARENT=$MINIK8S_CGROUP_ROOT
COMPONENTS=(kubelet scheduler controller apiserver etcd)

# The pid in $STATE/NAME.pid, if that process is still the one we started (its binary's name
# is in its command line), so a recycled pid is never signalled.
our_pid() {
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$1"* ]] && echo "$pid"
}

# Is process $1 still running? An exited one stays a zombie until the init reaps it, which
# a container's PID 1 may never do.
running() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' 2>/dev/null <"/proc/$1/status") || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# SIGTERM every component (the kubelet and the leader-elected ones release what they hold),
# wait up to 10 s for each, then SIGKILL what is left.
stop_all() {
  local c pid
  for c in "${COMPONENTS[@]}"; do
    pid=$(our_pid "$c") || { rm -f "$STATE/$c.pid"; continue; }
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STATE/$c.pid"
  done
}

# Containers outlive the kubelet on purpose (a restarted kubelet re-adopts them), so `down`
# removes them and their pod sandboxes explicitly: no process, mount or cgroup is left.
remove_containers() {
  local rt=$BIN/minik8s-runtime root="$STATE/node/runtime"
  [ -x "$rt" ] && [ -d "$root" ] || return 0
  for id in $("$rt" --root "$root" ps -q 2>/dev/null); do "$rt" --root "$root" rm -f "$id" >/dev/null 2>&1 || true; done
  for pod in $("$rt" --root "$root" sandbox ls 2>/dev/null | cut -f1); do
    "$rt" --root "$root" sandbox rm -f "$pod" >/dev/null 2>&1 || true
  done
}

# The runtime's state on tmpfs for the node's root (see state_dir_for in runtime/src/lib.rs).
runtime_state_dirs() {
  local root="$STATE/node/runtime" hash
  [ -d "$root" ] || return 0
  hash=$(printf %s "$(realpath "$root")" | sha256sum | cut -c1-16)
  for base in /run/minik8s /dev/shm/minik8s; do
    [ -d "$base/runtime-$hash" ] && echo "$base/runtime-$hash"
  done
  return 0
}

down() {
  local keep=${1:-}
  [ -z "$keep" ] || [ "$keep" = --keep-data ] || die "usage: $0 down [--keep-data]"
  stop_all
  remove_containers
  # the pod network (veths, the bridge, our iptables chains) and the node's cgroup root
  [ -x "$BIN/minik8s-kubelet" ] && [ -d "$STATE/node" ] \
    && "$BIN/minik8s-kubelet" --root-dir "$STATE/node" --cleanup >/dev/null 2>&1 || true
  if [ -z "$keep" ]; then
    local d
    for d in $(runtime_state_dirs); do rm -rf "$d"; done
    rm -rf "$STATE"
    say "stopped; the cluster's data is removed"
  else
    say "stopped; the cluster's data is kept in $STATE"
  fi
}

case "${1:-}" in
  down) down "${2:-}"; exit 0 ;;
  "") ;;
  *) die "usage: $0 [down [--keep-data]]" ;;
esac

install_packages "${NODE_PACKAGES[@]}"
find_kubectl
mkdir -p "$STATE"
stop_all
if [ -z "${MINIK8S_BIN:-}" ]; then
  find_rust
  say "building (release; the first build takes a few minutes)"
  as_build_user cargo build --release -p minik8s-apiserver -p minik8s-controller \
    -p minik8s-scheduler -p minik8s-kubelet -p minik8s-runtime -p minik8s-cli
  return_target
fi
for c in minik8s-apiserver minik8s-controller minik8s-scheduler minik8s-kubelet minik8s-runtime minikctl; do
  [ -x "$BIN/$c" ] || die "$BIN/$c is missing"
done
MINIKCTL=$(realpath -s "$BIN/minikctl")

ETCD_PORT=$(free_port); ETCD_PEER=$(free_port); API_PORT=${API_PORT:-6443}
# Another server on the API port would answer for ours: kubectl would drive the wrong cluster.
port_free "$API_PORT" || die "127.0.0.1:$API_PORT is in use (another cluster?); stop it, or set API_PORT"
say "starting etcd on 127.0.0.1:$ETCD_PORT"
etcd --data-dir "$STATE/etcd" --name quickstart \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "quickstart=http://127.0.0.1:$ETCD_PEER" --log-level error \
  >"$STATE/etcd.log" 2>&1 &
echo $! >"$STATE/etcd.pid"

# The apiserver reaches the kubelet's API (logs, exec) with a token only the two share.
[ -f "$STATE/kubelet-token" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/kubelet-token"
say "starting the apiserver on 127.0.0.1:$API_PORT"
"$BIN/minik8s-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --listen "127.0.0.1:$API_PORT" \
  --kubelet-token-file "$STATE/kubelet-token" >"$STATE/apiserver.log" 2>&1 &
echo $! >"$STATE/apiserver.pid"
wait_http "http://127.0.0.1:$API_PORT/readyz" 30 && our_pid apiserver >/dev/null \
  || { tail -20 "$STATE/apiserver.log"; die "apiserver did not become ready"; }

SERVER="http://127.0.0.1:$API_PORT"
# Node names are DNS subdomains: lowercase, as the kubelet makes them from the hostname.
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
say "starting the controller manager, the scheduler and a kubelet (node $NODE)"
"$BIN/minik8s-controller" --server "$SERVER" >"$STATE/controller.log" 2>&1 &
echo $! >"$STATE/controller.pid"
"$BIN/minik8s-scheduler" --server "$SERVER" >"$STATE/scheduler.log" 2>&1 &
echo $! >"$STATE/scheduler.pid"
KUBELET_PORT=$(free_port)
POD_CIDR=()
[ -z "${MINIK8S_POD_CIDR:-}" ] || POD_CIDR=(--pod-cidr "$MINIK8S_POD_CIDR")
"$BIN/minik8s-kubelet" --server "$SERVER" --node-name "$NODE" --root-dir "$STATE/node" \
  --node-ip 127.0.0.1 --listen "127.0.0.1:$KUBELET_PORT" --auth-token-file "$STATE/kubelet-token" \
  --bridge-name "$BRIDGE" "${POD_CIDR[@]}" >"$STATE/kubelet.log" 2>&1 &
echo $! >"$STATE/kubelet.pid"

cat >"$STATE/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{name: minik8s, cluster: {server: "http://127.0.0.1:$API_PORT"}}]
users: [{name: admin, user: {}}]
contexts: [{name: minik8s, context: {cluster: minik8s, user: admin, namespace: default}}]
current-context: minik8s
KUBECONFIG
export KUBECONFIG="$STATE/kubeconfig"

# Echo a minikctl or kubectl command, then run it. kubectl is used for `wait` only, which
# minikctl does not have.
minikctl() {
  echo "+ minikctl$(printf " %q" "$@")" >&2
  "$MINIKCTL" "$@"
}
kubectl() {
  echo "+ kubectl$(printf " %q" "$@")" >&2
  "$KUBECTL" "$@"
}
minikctl get nodes -o wide
minikctl apply -f manifests/hello-deployment.yaml
minikctl apply -f manifests/hello-pod.yaml
minikctl rollout status deployment/hello --timeout=120s
kubectl wait --for=condition=Ready pod/hello --timeout=120s
minikctl get deployments,replicasets,pods -o wide
minikctl logs hello
minikctl exec hello -- sh -c 'echo "inside the pod: PID $$, hostname $(hostname)"; ps'
minikctl describe pod hello | tail -12
# What no other tool shows: the pod's process, namespaces, cgroup, layers and volumes, as the
# kernel of its node holds them (from the kubelet, through the apiserver's nodes/proxy).
minikctl inspect pod hello
cat <<DONE

minik8s is up.  export KUBECONFIG=$KUBECONFIG   then try: $MINIKCTL get pods
                (or: $MINIKCTL inspect node $NODE; your own kubectl works too)
The container runtime on its own:  $BIN/minik8s-runtime --root $STATE/node/runtime ps
Logs: $STATE/*.log    Stop: hack/quickstart.sh down   (--keep-data keeps the cluster's data)
DONE
