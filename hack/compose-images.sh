#!/usr/bin/env bash
# Builds the image docker-compose.yml runs, with no network access and no base image: the
# engine here can pull nothing, so the image is made FROM scratch out of files of this machine.
#
#   hack/compose-images.sh            build the release binaries, then the image minik8s:dev
#   MINIK8S_BIN=DIR hack/...          take the binaries from DIR instead of building them
#   MINIK8S_IMAGE=name:tag hack/...   another tag (the compose file reads $MINIK8S_IMAGE too)
#
# One image holds every program of the cluster; each compose service runs one of them:
#   /usr/local/bin   minik8s-{apiserver,controller,scheduler,kubelet,runtime}, minikctl,
#                    etcd and etcdctl (Debian's etcd-server and etcd-client)
#   /bin/busybox     busybox-static with its applets linked in /bin: the services' `sh -c`
#                    lines, and the file the kubelet's runtime builds the pods' `busybox`
#                    image from (runtime/src/image.rs reads /bin/busybox), so pods need no
#                    registry either
#   /usr/sbin        iptables (the nft variant, as the host's Docker uses): the pod network's
#                    FORWARD rules (runtime/src/network/iptables.rs), with its extensions
#   /etc             passwd, group, nsswitch.conf, protocols, services (no CA bundle: the
#                    cluster trusts its own CA only, pinned by its hash when a node joins)
#   /lib, /usr/lib   every shared library these programs load, found with ldd, and the
#                    dynamic loader
# Needs root only to install the Debian packages that are missing. The image carries the label
# org.minik8s.compose=1; rebuilding a tag removes the image it named before.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

IMAGE=${MINIK8S_IMAGE:-minik8s:dev}
OURS=(minik8s-apiserver minik8s-controller minik8s-scheduler minik8s-kubelet minik8s-runtime minikctl)
PACKAGES=(etcd-server etcd-client busybox-static iptables)

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"

start=$(date +%s)
if [ -n "${MINIK8S_BIN:-}" ]; then
  BIN=$MINIK8S_BIN
else
  find_rust
  say "building the release binaries"
  as_build_user cargo build --release --quiet -p minik8s-apiserver -p minik8s-controller \
    -p minik8s-scheduler -p minik8s-kubelet -p minik8s-runtime -p minik8s-cli
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
for b in "${OURS[@]}"; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: build it or point MINIK8S_BIN at it"
done
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} != 0 ]; then
  need_root
  apt_install "${missing[@]}"
fi

ctx=$(mktemp -d /tmp/minik8s-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root"/{bin,sbin,usr/local/bin,usr/sbin,etc,tmp,run,root,var/lib/minik8s,var/lib/etcd}
chmod 1777 "$root/tmp"
chmod 700 "$root/var/lib/etcd"

# Copy a file to the same path under the image's root, following symlinks.
put() { mkdir -p "$root$(dirname "$2")"; cp -L "$1" "$root$2"; }

# The shared libraries an ELF file needs, and the loader, at their paths on this machine.
# A static binary has none (ldd says "not a dynamic executable" and fails).
libs_of() {
  { ldd "$1" 2>/dev/null || true; } | awk '
    $2 == "=>" && $3 ~ /^\// { print $3 }
    $1 ~ /^\// { print $1 }'
}

elves=()
for b in "${OURS[@]}"; do
  # without their debug info (line tables: most of their size), when binutils is there
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$root/usr/local/bin/$b" "$BIN/$b"
  else
    put "$BIN/$b" "/usr/local/bin/$b"
  fi
  elves+=("$BIN/$b")
done
for b in etcd etcdctl; do put "/usr/bin/$b" "/usr/local/bin/$b"; elves+=("/usr/bin/$b"); done
put /bin/busybox /bin/busybox
for applet in $(/bin/busybox --list-full); do
  [ -e "$root/$applet" ] || { mkdir -p "$root/$(dirname "$applet")"; ln -s /bin/busybox "$root/$applet"; }
done
# iptables: one multi-call binary named by argv[0], and extensions it dlopens
nft=/usr/sbin/xtables-nft-multi
put "$nft" "$nft"
elves+=("$nft")
for name in iptables iptables-save iptables-restore iptables-nft iptables-nft-save iptables-nft-restore; do
  rm -f "$root/usr/sbin/$name" "$root/sbin/$name"
  ln -s xtables-nft-multi "$root/usr/sbin/$name"
done
xt=$(dirname "$(readlink -f "$(ldd "$nft" | awk '/libxtables/ {print $3}')")")/xtables
[ -d "$xt" ] || die "iptables' extensions are not in $xt"
mkdir -p "$root$xt"
cp -L "$xt"/*.so "$root$xt/"
elves+=("$xt"/*.so)
for elf in "${elves[@]}"; do
  for lib in $(libs_of "$elf"); do
    [ -e "$root$lib" ] || put "$lib" "$lib"
  done
done

# What glibc and the programs read from /etc (Docker mounts resolv.conf, hosts, hostname)
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
for f in /etc/protocols /etc/services /etc/ethertypes; do
  if [ -e "$f" ]; then put "$f" "$f"; fi
done

cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /
CMD ["/bin/sh"]
EOF
say "building $IMAGE ($(du -sh "$root" | cut -f1) of files)"
old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# the legacy builder's deprecation notice is noise here: its output only on failure
out=$(docker build --quiet --network none --label org.minik8s.compose=1 -t "$IMAGE" "$ctx" 2>&1) ||
  die "docker build failed: $out"
# check it runs: every program and the shell, without a network
docker run --rm --network none "$IMAGE" sh -c \
  'minikctl --version && minik8s-kubelet --version && etcd --version | head -1 && iptables --version' \
  >/dev/null || die "$IMAGE was built but its programs do not run"
# the image this tag named before, unless a container still uses it: no dangling copies
new=$(docker image inspect --format '{{.Id}}' "$IMAGE")
[ -z "$old" ] || [ "$old" = "$new" ] || docker image rm "$old" >/dev/null 2>&1 || true
say "built $IMAGE in $(($(date +%s) - start))s"
