#!/usr/bin/env bash
# The nightly template's self-resubmission with the real evaluation: on a
# briefly trained tiny checkpoint, generation 1 resubmits itself with --begin
# and --dependency=singleton before working, runs `vistune sched --checkpoint
# latest` into its night directory and `vistune report --gate`; generation 2
# starts only after the begin time and after generation 1 ended, reports
# against generation 1's results (same checkpoint: no regression, gate 0) and
# honours the stop file (no third generation).
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP" && rm -rf ./*
tiny_data
{ tiny_run 6 6; cat <<'YAML'
slurm:
  job_name: vt-nightly-test
  time: "2"
  nightly: {begin: now+4, train: false}
YAML
} > run.yaml
"$VISTUNE" train run.yaml > train.txt 2>&1 || { cat train.txt; fail "training failed"; }
g1=$("$VISTUNE" submit nightly run.yaml --now) || fail "submit"
# Once generation 2 is queued, ask the chain to stop.
for _ in $(seq 1 600); do
  g2=$(squeue -h -n vt-nightly-test -o %i | grep -vx "$g1" | head -n1 || true)
  [ -n "$g2" ] && break
  sleep 0.1
done
[ -n "${g2:-}" ] || fail "generation 1 did not resubmit"
touch logs/vt-nightly-test.stop
wait_done "$g1" 100
wait_done "$g2" 100
log=logs/vt-nightly-test-$g1.out
cat "$log" "logs/vt-nightly-test-$g2.out"
for g in "$g1" "$g2"; do
  [ "$(job_field "$g" JobState)" = COMPLETED ] || fail "$g: $(job_field "$g" JobState) $(job_field "$g" ExitCode)"
done
grep -q "next run is job $g2 (begin now+4)" "$log" || fail "g1 log names g2"
grep -q "stop file .* exists, not resubmitting" "logs/vt-nightly-test-$g2.out" || fail "g2 ignored the stop file"
[ "$(squeue -h -n vt-nightly-test | wc -l)" = 0 ] || fail "a third generation is queued"
# singleton + begin: g2 started after g1 ended and about 4 s (whole seconds) after it was submitted.
ts() { date -d "$(job_field "$1" "$2")" +%s; }
[ "$(ts "$g2" StartTime)" -ge "$(ts "$g1" EndTime)" ] || fail "generations overlapped"
[ "$(ts "$g2" StartTime)" -ge $(( $(ts "$g2" SubmitTime) + 3 )) ] || fail "begin not honoured"  # 1 s for rounding
n1=$(ls -d nightly/*-"$g1") n2=$(ls -d nightly/*-"$g2") || fail "night directories"
for g in "$g1" "$g2"; do
  grep -q "^sched: [1-9][0-9]* tasks planned, 0 already done, [1-9][0-9]* stored.*results in .*nightly/.*-$g/results" \
    "logs/vt-nightly-test-$g.out" || fail "sched of $g"
  grep -q "report in .*-$g/report, gate exit code 0" "logs/vt-nightly-test-$g.out" || fail "gate of $g"
done
[ -s "$n1/report/report.json" ] && [ -s "$n2/report/report.json" ] || fail "reports missing"
! grep -q "regressions vs previous" "logs/vt-nightly-test-$g1.out" || fail "g1 had a previous night"
grep -q "regressions vs previous: 0" "logs/vt-nightly-test-$g2.out" || fail "g2 did not compare with g1"
# g2's comparison is against g1's results: the same checkpoint gives the same cells.
"$VT_TORCH_PYTHON" - "$n1/report/report.json" "$n2/report/report.json" <<'PY' || fail "nights differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda c: (c["shift"], c["severity"])
ca, cb = sorted(a["cells"], key=key), sorted(b["cells"], key=key)
assert [(key(c), c["n"], c["accuracy"]) for c in ca] == [(key(c), c["n"], c["accuracy"]) for c in cb]
print(f"two nights, {len(ca)} equal cells")
PY
