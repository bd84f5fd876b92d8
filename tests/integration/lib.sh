# Shared helpers for integration scripts (sourced). Every script runs with
# `set -euo pipefail`, gets $VISTUNE and a private $VT_TEST_TMP from ctest.
set -euo pipefail
: "${VISTUNE:?run through ctest (VISTUNE unset)}"
: "${VT_TEST_TMP:?run through ctest (VT_TEST_TMP unset)}"
mkdir -p "$VT_TEST_TMP"

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_fail CODE PATTERN -- CMD...: CMD must exit with CODE and print exactly
# one line on stderr that matches the extended regex PATTERN.
expect_fail() {
  local code=$1 pattern=$2; shift 3
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code (stderr: $err)"
  [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "'$*' printed more than one line: $err"
  grep -Eq -- "$pattern" <<< "$err" || fail "'$*' said '$err', expected /$pattern/"
}

# wait_for_step RUN_DIR STEP PID: returns once RUN_DIR/metrics.jsonl has
# logged a step >= STEP, PID has exited, or 30 s have passed (a test that
# kills a training run mid-way waits here for the point it kills at).
wait_for_step() {
  local dir=$1 step=$2 pid=$3 last
  for _ in $(seq 1500); do
    last=$(tail -n1 "$dir/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\),.*/\1/p' || true)
    [ -n "$last" ] && [ "$last" -ge "$step" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.02
  done
}
