#!/usr/bin/env bash
# End to end: fixture stores -> vistune report -> every number in
# report.json recomputed from the raw scores by check_report.py (scipy, no
# vistune code) -> gate exit codes -> error cases -> a Chromium screenshot
# of report.html that must not be blank.
. "$VT_SOURCE_DIR/tests/integration/lib.sh"
fixture=$1
here=$(dirname "$0")
d=$VT_TEST_TMP
rm -rf "$d"/*
"$fixture" "$d"

# Without --gate a regression is reported but does not fail the command.
"$VISTUNE" report --results "$d/current" --previous "$d/previous" --baseline "$d/baseline" \
  --out "$d/out" > "$d/stdout.txt"
grep -q "regressions vs previous: 1" "$d/stdout.txt" || fail "headline: $(cat "$d/stdout.txt")"
for f in report.json report.md report.html; do [ -s "$d/out/$f" ] || fail "$f missing"; done
"$VT_TORCH_PYTHON" "$here/check_report.py" "$d/items.jsonl" "$d/out/report.json"

# A directory of part stores (one per array task) reports exactly the same.
"$VISTUNE" report --results "$d/current_parts" --previous "$d/previous" --baseline "$d/baseline" \
  --out "$d/out_parts" > /dev/null
cmp -s "$d/out/report.json" "$d/out_parts/report.json" || fail "part stores report differently"
mkdir -p "$d/empty_dir"
expect_fail 1 "empty_dir: no result store here" -- "$VISTUNE" report --results "$d/empty_dir" --out "$d/x0"

# With --gate: exit 4 against the regressed run, 0 against itself.
rc=0; "$VISTUNE" report --results "$d/current" --previous "$d/previous" --out "$d/g1" --gate \
  >/dev/null 2>"$d/gate.err" || rc=$?
[ "$rc" = 4 ] || fail "gate exit $rc, expected 4"
grep -q "gate failed: 1 cell" "$d/gate.err" || fail "gate message: $(cat "$d/gate.err")"
"$VISTUNE" report --results "$d/current" --previous "$d/current" --out "$d/g2" --gate >/dev/null \
  || fail "a run compared with itself failed the gate"

# Bad inputs: one line, non-zero, nothing written.
expect_fail 1 "no result store here" -- "$VISTUNE" report --results "$d/absent" --out "$d/x1"
[ ! -e "$d/x1" ] || fail "output written for a missing store"
mkdir -p "$d/corrupt" && head -c 8192 /dev/urandom > "$d/corrupt/data.mdb"
expect_fail 1 "corrupt: result store cannot open" -- "$VISTUNE" report --results "$d/corrupt" --out "$d/x2"
expect_fail 2 "--results and --out are required" -- "$VISTUNE" report --results "$d/current"
expect_fail 2 "--alpha '2'" -- "$VISTUNE" report --results "$d/current" --out "$d/x3" --alpha 2
expect_fail 1 "no results for checkpoint 'nope'" -- \
  "$VISTUNE" report --results "$d/current" --out "$d/x4" --checkpoint nope

# The page renders: headless Chromium screenshot, then a non-blank check.
if ! command -v chromium >/dev/null; then echo "chromium not installed: screenshot skipped"; exit 77; fi
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$d/chromium-profile" --window-size=1200,1600 \
  --screenshot="$d/report.png" "file://$d/out/report.html" >/dev/null 2>&1 || true
[ -s "$d/report.png" ] || fail "chromium wrote no screenshot"
"$VT_TORCH_PYTHON" "$here/check_png.py" "$d/report.png"
echo "1 passed, 0 failed"
