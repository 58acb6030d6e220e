#!/usr/bin/env bash
# Brings up a local multi-node lab with `minikctl cluster up`: etcd and the control plane in
# one network namespace, each node's kubelet (with its Service proxy and DNS server) in a
# namespace of its own on the lab's switch, every node joining through a bootstrap token as a
# real machine would. Then it applies the
# sample Deployment and Pod with minikctl, shows the pods spread over the nodes, their logs
# and an exec into one, and ends with `minikctl inspect pod`: the pod down to the kernel of
# its node. Run it as root, or with sudo (the build then runs as you). Installs what is
# missing.
#
#   hack/quickstart.sh          build, bring the lab up, run the sample workload
#   hack/quickstart.sh down     take the lab down: nothing of it is left
#
# Settings (environment): MINIK8S_LAB (the lab's name, lab: context minik8s-lab), MINIK8S_NODES
# (2), MINIK8S_BIN (a directory holding already built minik8s-* binaries and minikctl: no
# build), MINIK8S_LAB_DIR (where labs keep their state, /var/lib/minik8s/labs), KUBECONFIG
# (the file the lab's context is merged into, else ~/.kube/config).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root
LAB=${MINIK8S_LAB:-lab}
NODES=${MINIK8S_NODES:-2}
BIN=${MINIK8S_BIN:-target/release}

case "${1:-}" in
  down)
    [ -x "$BIN/minikctl" ] || die "$BIN/minikctl is missing"
    exec "$BIN/minikctl" cluster down --name "$LAB" ;;
  "") ;;
  *) die "usage: $0 [down]" ;;
esac

install_packages "${NODE_PACKAGES[@]}"
find_kubectl
if [ -z "${MINIK8S_BIN:-}" ]; then
  find_rust
  say "building (release; the first build takes a few minutes)"
  as_build_user cargo build --release -p minik8s-apiserver -p minik8s-controller \
    -p minik8s-scheduler -p minik8s-kubelet -p minik8s-proxy -p minik8s-dns \
    -p minik8s-runtime -p minik8s-cli
  return_target
fi
for c in minik8s-apiserver minik8s-controller minik8s-scheduler minik8s-kubelet minik8s-proxy \
  minik8s-dns minikctl; do
  [ -x "$BIN/$c" ] || die "$BIN/$c is missing"
done
MINIKCTL=$(realpath -s "$BIN/minikctl")

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
# A lab of this name left up by an earlier run is taken down first: the quickstart starts empty.
"$MINIKCTL" cluster down --name "$LAB" >/dev/null 2>&1 || true
minikctl cluster up --name "$LAB" --nodes "$NODES" --bin-dir "$(realpath "$BIN")"
minikctl get nodes -o wide
minikctl apply -f manifests/hello-deployment.yaml
minikctl apply -f manifests/hello-service.yaml
minikctl apply -f manifests/hello-pod.yaml
minikctl rollout status deployment/hello --timeout=120s
kubectl wait --for=condition=Ready pod/hello --timeout=120s
# the NODE column: the scheduler spreads the Deployment's pods over the nodes
minikctl get deployments,replicasets,pods -o wide
minikctl logs hello
minikctl exec hello -- sh -c 'echo "inside the pod: PID $$, hostname $(hostname)"; ps'
minikctl describe pod hello | tail -12
# The Service: a ClusterIP and the ready pods behind it (the EndpointSlice controller's
# work); from a pod, its name resolves through the cluster DNS and each request goes to one
# of the pods (the node's proxy). A few tries: the proxy programs the endpoints within
# milliseconds of the pods turning Ready, but not before.
minikctl get service,endpointslices -o wide
minikctl exec hello -- sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do
  timeout 3 wget -qO- http://web && timeout 3 wget -qO- http://web.default.svc.cluster.local \
    && exit 0
  sleep 1; done; exit 1'
# What no other tool shows: the pod's process, namespaces, cgroup, layers and volumes, as the
# kernel of its node holds them (from the kubelet, through the apiserver's nodes/proxy).
minikctl inspect pod hello
cat <<DONE

minik8s is up: lab $LAB, $NODES nodes, context minik8s-$LAB.  Try: $MINIKCTL get pods -o wide
  (your own kubectl works too), $MINIKCTL cluster status --name $LAB, ip netns list
Stop: hack/quickstart.sh down   (or: $MINIKCTL cluster down --name $LAB)
DONE
