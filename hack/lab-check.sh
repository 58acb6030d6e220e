#!/usr/bin/env bash
# Grades lab N of docs/labs/ on this machine, as rubber-docker grades its levels: runs the
# lab's commands in order (hack/labrun.py), compares each output with the one the lab shows,
# and says how many steps behave as the lab says.
#
# Usage: hack/lab-check.sh [--zh] [-v] N      (as root; N = 1..13)
#   --zh   run the Chinese version (docs/labs/zh/), the same commands and outputs
#   -v     show every step's output, not only the failing ones'
# The lab's binaries come from $MINIK8S_BIN, else target/debug (build them first:
# `cargo build -p minik8s-runtime -p minik8s-cli`, or what the lab's README row says).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=docs/labs
args=()
while [ $# -gt 1 ]; do
  case $1 in
    --zh) dir=docs/labs/zh ;;
    -v|--verbose) args+=(--verbose) ;;
    *) echo "usage: hack/lab-check.sh [--zh] [-v] N" >&2; exit 2 ;;
  esac
  shift
done
n=${1:-}
case $n in
  ''|*[!0-9]*) echo "usage: hack/lab-check.sh [--zh] [-v] N   (N = a lab's number, 1..13)" >&2; exit 2 ;;
esac
nn=$(printf '%02d' "$((10#$n))")
shopt -s nullglob
labs=("$dir/$nn"-*.md)
if [ ${#labs[@]} -ne 1 ]; then
  echo "lab $n: no single $dir/$nn-*.md (found ${#labs[@]})" >&2
  exit 2
fi
lab=${labs[0]}
echo "lab $n: $lab"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
python3 hack/labrun.py ${args[@]+"${args[@]}"} "$lab" | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(sed -n 's/^# \([0-9]* of [0-9]*\) steps as the lab says$/\1/p' "$log")
echo "lab $n: ${summary:-0 of ?} steps as the lab says"
exit "$status"
