#!/usr/bin/env bash
# Brings up a local one-node minik8s on loopback (etcd, apiserver, controller manager,
# scheduler, kubelet), applies a sample Deployment and Pod with kubectl, waits for them to run,
# and shows them, their logs and an exec into one of them.
# `hack/quickstart.sh down` stops what it started. Needs root. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root
STATE=/var/lib/minik8s/quickstart
mkdir -p "$STATE"
# the components get --server; a KUBECONFIG from the caller's shell would clash with it
unset KUBECONFIG

stop_all() {
  for f in kubelet scheduler controller apiserver etcd; do
    if [ -f "$STATE/$f.pid" ]; then
      kill "$(cat "$STATE/$f.pid")" 2>/dev/null || true
      rm -f "$STATE/$f.pid"
    fi
  done
}

# Containers outlive the kubelet on purpose (a restarted kubelet re-adopts them), so `down`
# removes them and their pod sandboxes explicitly: no process, mount or cgroup is left.
# The kubelet takes its pod range from the Node's spec.podCIDR (the controller's node IPAM).
remove_containers() {
  local rt=target/release/minik8s-runtime root="$STATE/node/runtime"
  [ -x "$rt" ] && [ -d "$root" ] || return 0
  for id in $("$rt" --root "$root" ps -q 2>/dev/null); do "$rt" --root "$root" rm -f "$id" >/dev/null 2>&1 || true; done
  for pod in $("$rt" --root "$root" sandbox ls 2>/dev/null | cut -f1); do
    "$rt" --root "$root" sandbox rm -f "$pod" >/dev/null 2>&1 || true
  done
}

if [ "${1:-}" = down ]; then
  stop_all
  remove_containers
  # the pod network: veths, the bridge (minik8s0, kept while pods ran) and our iptables chains
  [ -x target/release/minik8s-kubelet ] && target/release/minik8s-kubelet --root-dir "$STATE/node" --cleanup-network || true
  echo "minik8s: stopped"
  exit 0
fi

install_packages
stop_all
echo "minik8s: building"
cargo build --release -q -p minik8s-apiserver -p minik8s-controller -p minik8s-scheduler -p minik8s-kubelet

ETCD_PORT=$(free_port); ETCD_PEER=$(free_port); API_PORT=${API_PORT:-6443}
echo "minik8s: starting etcd on 127.0.0.1:$ETCD_PORT"
etcd --data-dir "$STATE/etcd" --name quickstart \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "quickstart=http://127.0.0.1:$ETCD_PEER" --log-level error \
  >"$STATE/etcd.log" 2>&1 &
echo $! >"$STATE/etcd.pid"

# The apiserver reaches the kubelet's API (logs, exec) with a token only the two share.
[ -f "$STATE/kubelet-token" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/kubelet-token"
echo "minik8s: starting the apiserver on 127.0.0.1:$API_PORT"
target/release/minik8s-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" --listen "127.0.0.1:$API_PORT" \
  --kubelet-token-file "$STATE/kubelet-token" >"$STATE/apiserver.log" 2>&1 &
echo $! >"$STATE/apiserver.pid"
wait_http "http://127.0.0.1:$API_PORT/readyz" 30 || { tail -20 "$STATE/apiserver.log"; die "apiserver did not become ready"; }

SERVER="http://127.0.0.1:$API_PORT"
echo "minik8s: starting the controller manager, the scheduler and a kubelet"
target/release/minik8s-controller --server "$SERVER" >"$STATE/controller.log" 2>&1 &
echo $! >"$STATE/controller.pid"
target/release/minik8s-scheduler --server "$SERVER" >"$STATE/scheduler.log" 2>&1 &
echo $! >"$STATE/scheduler.pid"
KUBELET_PORT=$(free_port)
target/release/minik8s-kubelet --server "$SERVER" --node-name "$(hostname)" --root-dir "$STATE/node" \
  --node-ip 127.0.0.1 --listen "127.0.0.1:$KUBELET_PORT" --auth-token-file "$STATE/kubelet-token" \
  >"$STATE/kubelet.log" 2>&1 &
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

set -x
kubectl get nodes -o wide
kubectl apply -f manifests/hello-deployment.yaml
kubectl apply -f manifests/hello-pod.yaml
kubectl rollout status deployment/hello --timeout=120s
kubectl wait --for=condition=Ready pod/hello --timeout=120s
kubectl get deployments,replicasets,pods -o wide
kubectl logs hello
kubectl exec hello -- sh -c 'echo "inside the pod: PID $$, hostname $(hostname)"; ps'
kubectl describe pod hello | tail -12
set +x
cat <<DONE

minik8s is up.  export KUBECONFIG=$STATE/kubeconfig   then try: kubectl get all
The container runtime on its own:  target/release/minik8s-runtime ps
Logs: $STATE/*.log    Stop: hack/quickstart.sh down
DONE
