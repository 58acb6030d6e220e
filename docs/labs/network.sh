#!/usr/bin/env bash
# The executable twin of docs/labs/network.md, "The network across nodes": the doc's commands,
# in its order, with the facts the doc teaches checked on the way (the pod's address is in its
# node's podCIDR, its veth is on the node's bridge, the node routes the other node's podCIDR
# via the other node's address, the ping crosses, the traceroute shows the two routers).
# tests/tests/lab_network_doc.rs runs it on a fresh lab and checks that every command of the
# doc's ```sh blocks is here, so the two cannot drift apart.
#
#   LAB=lab docs/labs/network.sh
#
# LAB names the lab (default: lab); kubectl and minikctl come from PATH, or from $KUBECTL and
# $MINIKCTL. If the lab is not up, the script brings it up and takes it down at the end; a lab
# that was already up is left up. The pods a and b are deleted at the end either way.
# Run as root (`ip -n` enters the lab's network namespaces). Exits non-zero on the first fact
# that does not hold.
set -euo pipefail

LAB=${LAB:-lab}
KUBECTL=${KUBECTL:-kubectl}
MINIKCTL=${MINIKCTL:-minikctl}
# the doc's commands say `kubectl` and `minikctl`: these make them mean the chosen binaries
kubectl() { command "$KUBECTL" "$@"; }
minikctl() { command "$MINIKCTL" "$@"; }

step() { printf '\n=== %s\n' "$*"; }
fail() {
    printf 'network.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
# show what a command printed, then check it holds a fixed string
expect() {
    local what=$1 text=$2 want=$3
    printf '%s\n' "$text"
    grep -qF -- "$want" <<<"$text" || fail "$what: no \"$want\" in the output above"
}

made_lab=no
cleanup() {
    local rc=$?
    kubectl delete pod a b --ignore-not-found >/dev/null 2>&1 || true
    if [ "$made_lab" = yes ]; then
        minikctl cluster down --name $LAB || true
    fi
    exit $rc
}
trap cleanup EXIT

step "0. The lab"
if ! minikctl cluster status --name $LAB >/dev/null 2>&1; then
    made_lab=yes
    minikctl cluster up --name $LAB
fi
minikctl cluster status --name $LAB
kubectl get nodes -o custom-columns='NAME:.metadata.name,INTERNAL-IP:.status.addresses[?(@.type=="InternalIP")].address,POD-CIDR:.spec.podCIDR'

step "1. Two pods, one on each node"
# a previous run's, if it was interrupted
kubectl delete pod a b --ignore-not-found --grace-period=0 --force >/dev/null 2>&1
kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: a
spec:
  nodeName: $LAB-node-1
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: b
spec:
  nodeName: $LAB-node-2
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
EOF
kubectl wait --for=condition=Ready pod/a pod/b --timeout=60s
kubectl get pods -o wide
A=$(kubectl get pod a -o jsonpath='{.status.podIP}')
B=$(kubectl get pod b -o jsonpath='{.status.podIP}')
NODE1_CIDR=$(kubectl get node $LAB-node-1 -o jsonpath='{.spec.podCIDR}')
NODE2_CIDR=$(kubectl get node $LAB-node-2 -o jsonpath='{.spec.podCIDR}')
NODE2_IP=$(kubectl get node $LAB-node-2 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
echo "a=$A b=$B node-1 pods=$NODE1_CIDR node-2 pods=$NODE2_CIDR node-2=$NODE2_IP"
[ -n "$A" ] && [ -n "$B" ] && [ -n "$NODE1_CIDR" ] && [ -n "$NODE2_CIDR" ] && [ -n "$NODE2_IP" ] ||
    fail "a pod IP, a podCIDR or node-2's InternalIP is empty"
[ "$NODE1_CIDR" != "$NODE2_CIDR" ] || fail "both nodes have the podCIDR $NODE1_CIDR"
# the first three octets of a /24: the pod's address lies in its node's range
[ "${A%.*}" = "${NODE1_CIDR%.*}" ] || fail "a's IP $A is not in node-1's podCIDR $NODE1_CIDR"
[ "${B%.*}" = "${NODE2_CIDR%.*}" ] || fail "b's IP $B is not in node-2's podCIDR $NODE2_CIDR"
GATEWAY1=${NODE1_CIDR%.*}.1

step "2. Inside pod a: eth0, its address, its routes"
ETH0=$(kubectl exec a -- ip addr show dev eth0)
expect "a's addresses" "$ETH0" "inet $A/"
# `eth0@if4`: the other end of a's veth is interface 4 of node-1's namespace
PEER=$(sed -n 's/.*eth0@if\([0-9]*\).*/\1/p' <<<"$ETH0")
[ -n "$PEER" ] || fail "a's eth0 does not name its peer (eth0@ifN)"
expect "a's routes" "$(kubectl exec a -- ip route)" "default via $GATEWAY1 dev eth0"
expect "a's route to b" "$(kubectl exec a -- ip route get $B)" "via $GATEWAY1 dev eth0"

step "3. On node-1: the bridge and the host end of a's veth"
expect "node-1's bridge" "$(ip -n minik8s-$LAB-node-1 addr show minik8s0)" "inet $GATEWAY1/"
expect "the veths on node-1's bridge" "$(ip -n minik8s-$LAB-node-1 link show master minik8s0)" "$PEER: "

step "4. On node-1: the route to node-2's pods"
ip -n minik8s-$LAB-node-1 route
expect "the kubelet's routes on node-1" "$(ip -n minik8s-$LAB-node-1 route show proto 77)" "$NODE2_CIDR via $NODE2_IP dev eth0"
expect "node-1's route to b" "$(ip -n minik8s-$LAB-node-1 route get $B)" "via $NODE2_IP dev eth0"

step "5. The switch"
ip -n minik8s-$LAB-switch addr show switch0
expect "the switch's ports" "$(ip -n minik8s-$LAB-switch link show master switch0)" "node-2@"

step "6. The ping, and the way it takes"
expect "the ping from a to b" "$(kubectl exec a -- ping -c 3 $B)" "3 packets received"
TRACE=$(kubectl exec a -- traceroute -n -q 1 -w 1 -m 5 $B)
printf '%s\n' "$TRACE"
# hop 1 is node-1's bridge, hop 2 node-2's eth0, hop 3 pod b itself
grep -qE "^ *1 +$GATEWAY1 " <<<"$TRACE" || fail "the first hop is not node-1's bridge $GATEWAY1"
grep -qE "^ *2 +$NODE2_IP " <<<"$TRACE" || fail "the second hop is not node-2 ($NODE2_IP)"
grep -qE "^ *3 +$B " <<<"$TRACE" || fail "the third hop is not b ($B)"

step "7. Who knew whose MAC address"
kubectl exec a -- ip neigh
expect "node-1's neighbours on the switch" "$(ip -n minik8s-$LAB-node-1 neigh show dev eth0)" "$NODE2_IP lladdr"
bridge -n minik8s-$LAB-switch fdb show br switch0 dynamic

step "8. Cleaning up"
kubectl delete pod a b
# the lab itself: `minikctl cluster down --name $LAB` (done here on exit if this script made it)

echo
echo "network.sh: every step of docs/labs/network.md holds on lab $LAB"
