#!/usr/bin/env bash
# Checkpoint-and-requeue with real `vistune train` (2 tasks) and a 1-minute
# limit: the batch shell traps USR1 (--signal=B:USR1@55; slurmctld checks
# every 30 s, so it comes 5-35 s into the run; 700 steps take > 35 s even on
# an idle machine), forwards it to the step's tasks (repeating it until they
# have their handler: a slow start-up must not lose or die of it), both
# ranks agree on a checkpoint
# and exit 3, the script requeues the job and the requeued run resumes from
# that checkpoint and finishes (the test raises the requeued job's limit so
# that on a slow machine it is not signalled again: one restart, bounded time). Its losses are bit-identical to an uninterrupted
# 2-task job of the same config (a second job with a longer limit, run at the
# same time).
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP" && rm -rf ./*
tiny_data
steps=${VT_REQUEUE_STEPS:-700}
{ tiny_run "$steps" 1000 8; cat <<'YAML'
slurm:
  job_name: vt-requeue-test
  time: "1"
  signal_seconds: 55
  trainers_per_node: 2
YAML
} > run.yaml
{ tiny_run "$steps" 1000 8 ref; cat <<'YAML'
slurm:
  job_name: vt-requeue-ref
  time: "3"
  signal_seconds: 30
  trainers_per_node: 2
YAML
} > ref.yaml
start=$(date +%s)
id=$("$VISTUNE" submit train run.yaml) || fail "submit"
ref=$("$VISTUNE" submit train ref.yaml) || fail "submit reference"
for _ in $(seq 1 900); do
  [ "$(job_field "$id" Restarts)" -ge 1 ] 2>/dev/null && break
  case "$(job_field "$id" JobState)" in COMPLETED|FAILED|TIMEOUT|CANCELLED|"") break ;; esac
  sleep 0.1
done
[ "$(job_field "$id" Restarts)" -ge 1 ] 2>/dev/null && scontrol update JobId="$id" TimeLimit=10
wait_done "$id" 360
log=logs/vt-requeue-test-$id.out
cat "$log"
[ "$(job_field "$id" JobState)" = COMPLETED ] || fail "state $(job_field "$id" JobState)"
restarts=$(job_field "$id" Restarts)
[ "$restarts" = 1 ] || fail "restarts: $restarts (0: training ended before the signal?)"
grep -q "time limit near, asking the step to checkpoint" "$log" || fail "no USR1 in the batch shell"
[ "$(grep -c "step exit code 3" "$log")" = "$restarts" ] || fail "not every signalled run exited 3"
grep -q "requeueing job $id" "$log" || fail "no requeue"
grep -q "restart 1 nodes" "$log" || fail "no second run"
[ "$(grep -c "step exit code 0" "$log")" = 1 ] || fail "the last run did not finish"
[ "$(grep -c "vistune-train: job $id start" "$log")" = $((restarts + 1)) ] || fail "runs != restarts + 1"
ck=$(ls run/checkpoints | grep -v "$steps\$" | head -n1)
[ -n "$ck" ] && [ -e "run/checkpoints/$ck/COMPLETE" ] || fail "no complete checkpoint from the signal: $(ls run/checkpoints)"
echo "$restarts requeue(s), first signal checkpoint $ck; checkpoint + requeue + finish took $(( $(date +%s) - start )) s"
wait_done "$ref" 300
[ "$(job_field "$ref" JobState)" = COMPLETED ] || { cat "logs/vt-requeue-ref-$ref.out"; fail "reference: $(job_field "$ref" JobState)"; }
losses run/metrics.jsonl > a.txt
losses ref/metrics.jsonl > b.txt
[ "$(wc -l < a.txt)" = "$steps" ] || fail "requeued run logged $(wc -l < a.txt) of $steps steps"
cmp a.txt b.txt || { diff a.txt b.txt | head; fail "losses differ from the uninterrupted run"; }
echo "losses of $steps steps bit-identical to the uninterrupted run"
