#!/usr/bin/env bash
# The train template runs real `vistune train` as a 2-task job (srun
# --mpi=pmix) on a tiny store: the job completes, both ranks train, rank 0
# logs every step, and the run ends with a complete checkpoint that
# `--resume auto` accepts.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP" && rm -rf ./*
tiny_data
{ tiny_run 6 3; cat <<'YAML'
slurm:
  job_name: vt-train-test
  time: "10"          # far from the limit: the default warning (USR1 300 s early) must not come
  trainers_per_node: 2
YAML
} > run.yaml
id=$("$VISTUNE" submit train run.yaml) || fail "submit"
wait_done "$id" 110
log=logs/vt-train-test-$id.out
cat "$log"
[ "$(job_field "$id" JobState)" = COMPLETED ] || fail "state $(job_field "$id" JobState)"
[ "$(job_field "$id" Restarts)" = 0 ] || fail "restarted"
grep -q "step exit code 0" "$log" || fail "step exit code"
[ "$(losses run/metrics.jsonl | awk '{print $1}' | tr '\n' ' ')" = "1 2 3 4 5 6 " ] || fail "metrics: $(cat run/metrics.jsonl)"
# The last checkpoint is complete (COMPLETE marker) and is what --resume auto
# picks: resuming a finished run trains no further step.
ck=$(ls -d run/checkpoints/*6 2>/dev/null | head -n1)
[ -n "$ck" ] && [ -e "$ck/COMPLETE" ] || fail "no complete final checkpoint: $(ls run/checkpoints)"
grep -q "2 trainer rank(s)" "$log" || fail "not 2 ranks"
"$VISTUNE" train run.yaml --resume auto > resume.txt 2>&1 || { cat resume.txt; fail "resume of the finished run"; }
grep -q "resumed from .*ckpt-0*6\|already at step 6 of 6: nothing to do" resume.txt || fail "resume: $(cat resume.txt)"

# The time-limit warning at the very start: USR1 to the batch shell as soon
# as it has printed its first line, while srun and the ranks are starting.
# Nothing dies of it: the ranks ignore USR1 until vistune's handler is in,
# the script repeats it, the step checkpoints and exits 3, the job requeues
# itself and the second run finishes.
{ tiny_run 60 30 4 early; cat <<'YAML'
slurm:
  job_name: vt-train-early
  time: "10"
  trainers_per_node: 2
YAML
} > early.yaml
id=$("$VISTUNE" submit train early.yaml) || fail "submit early"
log=logs/vt-train-early-$id.out
for _ in $(seq 1200); do grep -q "job $id start" "$log" 2>/dev/null && break; sleep 0.05; done
scancel --batch --signal=USR1 "$id" || fail "scancel"
for _ in $(seq 900); do [ "$(job_field "$id" Restarts)" -ge 1 ] 2>/dev/null && break; sleep 0.1; done
wait_done "$id" 120
cat "$log"
[ "$(job_field "$id" JobState)" = COMPLETED ] || fail "early signal: state $(job_field "$id" JobState)"
[ "$(job_field "$id" Restarts)" = 1 ] || fail "early signal: restarts $(job_field "$id" Restarts)"
grep -q "User defined signal" "$log" && fail "a process died of the early USR1"
[ "$(grep -c "step exit code 3" "$log")" = 1 ] || fail "early signal: the first run did not checkpoint and exit 3"
[ "$(losses early/metrics.jsonl | awk '{print $1}' | tail -n1)" = 60 ] || fail "early signal: the run did not finish"
echo "early USR1: checkpoint, requeue, finished"
