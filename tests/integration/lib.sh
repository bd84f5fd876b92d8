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
