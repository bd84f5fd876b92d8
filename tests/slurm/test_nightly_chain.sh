#!/usr/bin/env bash
# The nightly template's self-resubmission: generation 1 resubmits itself with
# --begin and --dependency=singleton before working; generation 2 starts only
# after the begin time and after generation 1 ended, evaluates into its own
# night directory, reports against generation 1's results with the gate (whose
# code is the job's exit code), and honours the stop file (no third generation).
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP"
rm -rf logs nightly gate.*
cat > run.yaml <<YAML
slurm:
  job_name: vt-nightly-test
  time: "1"
  vistune: $VT_SOURCE_DIR/tests/slurm/step.sh
  nightly: {begin: now+4, train: false}
YAML
g1=$("$VISTUNE" submit nightly run.yaml --now) || fail "submit"
# Once generation 2 is queued, ask the chain to stop and make its gate fail.
for _ in $(seq 1 300); do
  g2=$(squeue -h -n vt-nightly-test -o %i | grep -vx "$g1" | head -n1 || true)
  [ -n "$g2" ] && break
  sleep 0.1
done
[ -n "${g2:-}" ] || fail "generation 1 did not resubmit"
touch logs/vt-nightly-test.stop
echo 4 > "gate.$g2"
wait_done "$g1" 60
wait_done "$g2" 90
log=logs/vt-nightly-test-$g1.out
cat "$log" "logs/vt-nightly-test-$g2.out"
[ "$(job_field "$g1" JobState)" = COMPLETED ] || fail "g1: $(job_field "$g1" JobState)"
[ "$(job_field "$g2" JobState)" = FAILED ] || fail "g2 should fail its gate: $(job_field "$g2" JobState)"
[ "$(job_field "$g2" ExitCode)" = 4:0 ] || fail "g2 exit code $(job_field "$g2" ExitCode)"
grep -q "next run is job $g2 (begin now+4)" "$log" || fail "g1 log names g2"
grep -q "stop file .* exists, not resubmitting" "logs/vt-nightly-test-$g2.out" || fail "g2 ignored the stop file"
[ "$(squeue -h -n vt-nightly-test | wc -l)" = 0 ] || fail "a third generation is queued"
# singleton + begin: g2 started after g1 ended and about 4 s (whole seconds) after it was submitted.
ts() { date -d "$(job_field "$1" "$2")" +%s; }
[ "$(ts "$g2" StartTime)" -ge "$(ts "$g1" EndTime)" ] || fail "generations overlapped"
[ "$(ts "$g2" StartTime)" -ge $(( $(ts "$g2" SubmitTime) + 3 )) ] || fail "begin not honoured"  # 1 s for rounding
n1=$(ls -d nightly/*-"$g1") n2=$(ls -d nightly/*-"$g2") || fail "night directories"
grep -qx "sched $VT_TEST_TMP/run.yaml --checkpoint latest --results $VT_TEST_TMP/$n1/results" "$n1/results/args" ||
  fail "g1 evaluation: $(cat "$n1/results/args")"
[ "$(cat "$n1/report/args")" = "--results $VT_TEST_TMP/$n1/results --out $VT_TEST_TMP/$n1/report --gate" ] ||
  fail "g1 report (no previous night): $(cat "$n1/report/args")"
[ "$(cat "$n2/report/args")" = "--results $VT_TEST_TMP/$n2/results --out $VT_TEST_TMP/$n2/report --gate --previous $VT_TEST_TMP/$n1/results" ] ||
  fail "g2 report against g1: $(cat "$n2/report/args")"
