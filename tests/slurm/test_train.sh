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
