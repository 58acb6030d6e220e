#!/usr/bin/env bash
# Tries the README's two commands on a fresh Debian 12 machine, exactly as a new user would:
# a minimal Debian 12 root filesystem made with debootstrap from Debian's packages, run as a
# (privileged) Docker container (its own network, cgroup and PID namespaces), with this checkout
# copied in and the Rust toolchain as the one thing the user brings (copied from this
# machine's rustup). Inside, as root:
#
#   ./hack/quickstart.sh      then ROUNDS more times: down, quickstart again, every pod at
#                             RESTARTS 0 and nothing left from the round before
#   ./hack/test.sh
#
# Not part of CI (it builds everything from nothing: about half an hour on 2 cores). Needs
# root, Docker and debootstrap (installed if missing). Prints one PASS or FAIL line at the end.
#
#   hack/fresh-machine-test.sh [--rounds N] [--keep]
#
# The machine is a container rather than a VM because nothing here can boot one fast enough;
# what differs from a VM: PID 1 is Docker's tiny init (it reaps orphans, as systemd would),
# the node's state dir (/var/lib/minik8s) and the build are on volumes
# (Docker's storage driver here is fuse-overlayfs, under which overlayfs cannot mount), /run
# is a tmpfs as on a booted system, and the hostname has capitals (Fresh-Node) on purpose.
# The host's local CA certificates and pip configuration are copied in: they belong to this
# network (a TLS-intercepting egress proxy), as they would on any machine in it.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root

ROUNDS=10
KEEP=
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) die "usage: $0 [--rounds N] [--keep]" ;;
  esac
done

WORK=${MINIK8S_FRESH_DIR:-/var/tmp/minik8s-fresh}
IMAGE=minik8s-fresh:bookworm
NAME=minik8s-fresh-$$
command -v docker >/dev/null || die "docker is needed"
install_packages debootstrap

# The Debian mirror this machine's apt uses.
mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$m" ] || m=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "${m:-http://deb.debian.org/debian}"
}

# Stop what runs inside, remove the container, then any cgroup our runtime left in the
# container's part of the host's hierarchy (Docker cannot remove a cgroup that has children).
cleanup() {
  local id
  id=$(docker inspect -f '{{.Id}}' "$NAME" 2>/dev/null) || id=
  [ -z "$id" ] || docker exec "$NAME" bash -lc 'cd /src && ./hack/quickstart.sh down' >/dev/null 2>&1 || true
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  [ -z "$id" ] || find /sys/fs/cgroup/*/docker/"$id" /sys/fs/cgroup/system.slice/docker-"$id".scope \
    -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  [ -n "$KEEP" ] || { docker rmi -f "$IMAGE" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"/{home,src,var}
start=$(date +%s)

say "debootstrap: a minimal Debian 12 (bookworm) from $(mirror)"
debootstrap --variant=minbase bookworm "$WORK/rootfs" "$(mirror)" >"$WORK/debootstrap.log" 2>&1 \
  || { tail "$WORK/debootstrap.log"; die "debootstrap failed"; }
cp -a /usr/local/share/ca-certificates/. "$WORK/rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$WORK/rootfs/etc/pip.conf"
tar -C "$WORK/rootfs" -c . | docker import - "$IMAGE" >/dev/null
rm -rf "$WORK/rootfs"

say "copying the checkout (tracked files as they are now) and the Rust toolchain"
git ls-files -z | tar --null -T - -c | tar -x -C "$WORK/src"
find_rust
toolchain=$(rustup show active-toolchain | awk '{print $1}')
mkdir -p "$WORK/home/.rustup/toolchains" "$WORK/home/.cargo"
cp -a "$RUSTUP_HOME/toolchains/$toolchain" "$WORK/home/.rustup/toolchains/"
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" >"$WORK/home/.rustup/settings.toml"
cp -a "$CARGO_HOME/bin" "$WORK/home/.cargo/"
printf 'export PATH="$HOME/.cargo/bin:$PATH"\n' >"$WORK/home/.cargo/env"
printf '. "$HOME/.cargo/env"\n' >"$WORK/home/.profile"

# What runs inside: the README's commands, word for word, then the rounds.
cat >"$WORK/src/.fresh-machine-rounds.sh" <<'INSIDE'
set -euo pipefail
cd /src
rounds=$1
KUBECTL=/src/target/release/minikctl   # the lab's context is current in ~/.kube/config
restarts() {
  "$KUBECTL" get pods \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[*].restartCount}{"\n"}{end}'
}
for i in $(seq "$rounds"); do
  ./hack/quickstart.sh down
  [ ! -e /var/lib/minik8s/labs/lab ] || { echo "round $i: down left /var/lib/minik8s/labs/lab"; exit 1; }
  ./hack/quickstart.sh >/tmp/quickstart.out 2>&1 || { cat /tmp/quickstart.out; echo "round $i: quickstart failed"; exit 1; }
  out=$(restarts)
  echo "round $i: $(echo "$out" | tr '\n' ';')"
  if echo "$out" | awk '{for (i = 2; i <= NF; i++) if ($i != 0) bad = 1} END {exit !bad}'; then
    echo "round $i: a pod restarted"; exit 1
  fi
  # an object of this round, which the next round (after down) must not see
  if "$KUBECTL" get namespaces -o name | grep -q '^namespace/round-'; then
    echo "round $i: the cluster still has a namespace of the round before"; exit 1
  fi
  "$KUBECTL" create namespace "round-$i" >/dev/null
done
./hack/quickstart.sh down
INSIDE

# Privileged, but by parts: --privileged asks for every capability, and where the engine
# itself lacks one (this VM's bounding set has no CAP_SYS_RESOURCE) runc refuses to start.
# The rest of what --privileged gives: no seccomp or AppArmor confinement, /proc/sys writable,
# and (remounted at "boot" below) /sys and the cgroup mounts writable.
PRIVILEGED=(--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --security-opt systempaths=unconfined)
bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
(( bounding >> 24 & 1 )) || PRIVILEGED+=(--cap-drop SYS_RESOURCE)

say "starting the fresh machine"
docker run -d --init --name "$NAME" --hostname Fresh-Node "${PRIVILEGED[@]}" --cgroupns private \
  --shm-size 4g --tmpfs /run:exec --tmpfs /tmp:exec \
  -v "$WORK/home:/root" -v "$WORK/src:/src" -v "$WORK/var:/var/lib/minik8s" \
  -e HOME=/root -e TERM=dumb "$IMAGE" sleep infinity >/dev/null
docker exec "$NAME" bash -c 'mount -o remount,bind,rw /sys &&
  for m in $(awk "\$3 == \"cgroup\" || \$3 == \"cgroup2\" {print \$2}" /proc/mounts); do
    mount -o remount,bind,rw "$m" || exit 1
  done' || die "could not make /sys and the cgroup mounts writable in the container"

# A login shell as root: PATH from /root/.profile, as after rustup's installer.
inside() { docker exec "$NAME" bash -lc "$1"; }

result=PASS
step() {
  local name=$1 cmd=$2 t0=$(date +%s)
  say "fresh machine: $name"
  if inside "$cmd" >"$WORK/$name.log" 2>&1; then
    say "fresh machine: $name passed in $(( $(date +%s) - t0 )) s"
  else
    tail -40 "$WORK/$name.log"
    say "fresh machine: $name FAILED after $(( $(date +%s) - t0 )) s (log: $WORK/$name.log)"
    result=FAIL
    KEEP=1
  fi
}
step quickstart 'cd /src && ./hack/quickstart.sh'
[ $result = PASS ] && step rounds "bash /src/.fresh-machine-rounds.sh $ROUNDS"
[ $result = PASS ] && step test 'cd /src && ./hack/test.sh'
[ $result = PASS ] && grep -E '^(round|[0-9]+ passed)' "$WORK"/{rounds,test}.log
echo "fresh machine test: $result in $(( $(date +%s) - start )) s ($ROUNDS quickstart rounds)"
[ $result = PASS ]
