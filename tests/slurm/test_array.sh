#!/usr/bin/env bash
# The eval template as a job array of 3 real `vistune eval` workers, at most 2
# at a time, on a briefly trained tiny checkpoint: each array task writes its
# own part store, every planned task id has exactly one result across the
# parts, and the parts together equal a one-process evaluation.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP" && rm -rf ./*
tiny_data
{ tiny_run 6 6; cat <<'YAML'
slurm:
  time: "2"
  eval: {array: 3, max_parallel: 2}
YAML
} > run.yaml
"$VISTUNE" train run.yaml > train.txt 2>&1 || { cat train.txt; fail "training failed"; }
"$VISTUNE" eval run.yaml --results ref > ref.txt 2>&1 || { cat ref.txt; fail "reference eval failed"; }
total=$(sed -n 's/^eval: \([0-9]*\) tasks run, 0 already done.*/\1/p' ref.txt)
[ -n "$total" ] && [ "$total" -gt 3 ] || fail "reference: $(tail -1 ref.txt)"

id=$("$VISTUNE" submit eval run.yaml) || fail "submit failed"
for _ in $(seq 1 900); do
  [ -z "$(squeue -h -r -j "$id" 2>/dev/null)" ] && break
  sleep 0.1
done
[ -z "$(squeue -h -r -j "$id" 2>/dev/null)" ] || fail "array $id still queued"
for i in 0 1 2; do
  log=logs/vistune-eval-${id}_$i.out
  cat "$log"
  grep -q "shard $i/3 start" "$log" || fail "log of task $i"
  grep -q "shard $i exit code 0" "$log" || fail "exit of task $i"
  grep -q "^eval: [1-9][0-9]* tasks run, 0 already done.*results in .*run/results/part-$i\$" "$log" ||
    fail "task $i did not write its part"
done
[ "$(ls run/results)" = "$(printf 'part-0\npart-1\npart-2')" ] || fail "parts: $(ls run/results)"
# Each part holds exactly its shard's tasks: rerunning a shard finds all of
# them done (shard i takes plan tasks i, i+3, ...); the counts add up to the plan.
sum=0
for i in 0 1 2; do
  "$VISTUNE" eval run.yaml --shard "$i" --num-shards 3 > again.txt 2>&1 || { cat again.txt; fail "rerun $i"; }
  n=$(sed -n 's/^eval: 0 tasks run, \([0-9]*\) already done.*/\1/p' again.txt)
  [ -n "$n" ] || fail "shard $i rerun did work: $(tail -1 again.txt)"
  [ "$n" = $(( (total - i + 2) / 3 )) ] || fail "shard $i holds $n tasks"
  sum=$((sum + n))
done
[ "$sum" = "$total" ] || fail "parts hold $sum of $total tasks"
# No task in two parts (report fails on an item seen twice) and the same
# scores as the one-process run.
"$VISTUNE" report --results run/results --out rep_parts > /dev/null || fail "report over the parts"
"$VISTUNE" report --results ref --out rep_ref > /dev/null || fail "report over the reference"
"$VT_TORCH_PYTHON" - rep_ref/report.json rep_parts/report.json <<'PY' || fail "parts differ from the reference"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda c: (c["shift"], c["severity"])
ca, cb = sorted(a["cells"], key=key), sorted(b["cells"], key=key)
assert [(key(c), c["n"], c["accuracy"]) for c in ca] == [(key(c), c["n"], c["accuracy"]) for c in cb], "results differ"
print(f"array parts == one-process eval on {len(ca)} cells")
PY
