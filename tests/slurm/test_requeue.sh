#!/usr/bin/env bash
# The train template's checkpoint-and-requeue loop with a 1-minute limit: the
# batch shell traps USR1 (--signal=B:USR1@55), forwards it to the 2-task step,
# the step checkpoints and exits 3, the script requeues the job, and the
# requeued run finishes from the checkpoint before any time limit.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP"
rm -rf logs ckpt
cat > run.yaml <<YAML
slurm:
  job_name: vt-requeue-test
  time: "1"
  signal_seconds: 55
  trainers_per_node: 2
  vistune: $VT_SOURCE_DIR/tests/slurm/step.sh
YAML
start=$(date +%s)
id=$("$VISTUNE" submit train run.yaml) || fail "submit"
for _ in $(seq 1 1800); do
  [ "$(job_field "$id" JobState)" = COMPLETED ] && [ "$(job_field "$id" Restarts)" -ge 1 ] && break
  case "$(job_field "$id" JobState)" in FAILED|TIMEOUT|CANCELLED) break ;; esac
  sleep 0.1
done
log=logs/vt-requeue-test-$id.out
cat "$log"
[ "$(job_field "$id" JobState)" = COMPLETED ] || fail "state $(job_field "$id" JobState)"
[ "$(job_field "$id" Restarts)" = 1 ] || fail "restarts $(job_field "$id" Restarts)"
grep -q "time limit near, asking the step to checkpoint" "$log" || fail "no USR1 in the batch shell"
[ "$(grep -c 'USR1, checkpoint written, exit 3' "$log")" = 2 ] || fail "both tasks should get USR1"
grep -q "requeueing job $id" "$log" || fail "no requeue"
grep -q "restart 1 nodes" "$log" || fail "no second run"
[ "$(grep -c 'resumed from restart 0, finishing' "$log")" = 2 ] || fail "second run did not resume"
grep -q "step exit code 0" "$log" || fail "second run did not finish"
echo "checkpoint + requeue + finish took $(( $(date +%s) - start )) s"
