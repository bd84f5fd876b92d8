#!/usr/bin/env bash
# Evaluation end to end on a real (tiny, briefly trained) checkpoint:
#   synth -> ingest -> train -> `vistune eval` (one process: the reference)
#   -> `vistune sched` with 3 workers, one killed with SIGKILL mid-task:
#      every planned task has exactly one result, equal to the reference's;
#   -> a rerun does no work; -> the report and its gate; -> bad inputs.
. "$(dirname "$0")/lib.sh"
cd "$VT_TEST_TMP" && rm -rf ./* && mkdir -p logs
export OMP_NUM_THREADS=1

"$VISTUNE" synth --out synth --count 96 --seed 3 --size 32 > /dev/null
"$VISTUNE" ingest --json synth/data.json --images synth --out store --size 32 --lossless \
  --val-fraction 0.25 --threads 1 > /dev/null
cat > run.yaml <<'YAML'
run_dir: run
recipe: stage2
seed: 5
data:
  source: store
  store: store
  system_prompt: ""
  seq_len: 160
train:
  steps: 6
  global_batch: 4
  lr: 3.0e-3
  threads: 1
checkpoint:
  every: 6
metrics:
  log_every: 3
  tensorboard: false
eval:
  split: val
  shifts: [gaussian_noise, char_swap]
  severities: [1, 5]
  shards: 2
  batch_size: 4
  max_new_tokens: 4
  lease_seconds: 2
YAML
"$VISTUNE" train run.yaml > logs/train.txt 2>&1 || { cat logs/train.txt; fail "training failed"; }

# Reference: one process, every task.
"$VISTUNE" eval run.yaml --results ref > logs/eval.txt 2>&1 || { cat logs/eval.txt; fail "eval failed"; }
grep -q "^eval: 10 tasks run, 0 already done" logs/eval.txt || fail "eval summary: $(tail -1 logs/eval.txt)"
"$VISTUNE" eval run.yaml --results ref > logs/eval2.txt 2>&1
grep -q "^eval: 0 tasks run, 10 already done" logs/eval2.txt || fail "eval rerun did work: $(tail -1 logs/eval2.txt)"

# The scheduler serves only (--dispatch-only); worker 1 joins alone and is
# killed with SIGKILL as soon as it runs a task, so its lease must expire;
# worker 2 joins after that and does everything, the orphaned task included.
# (With a working dispatcher process or both workers at once, a loaded machine
# could finish every task before worker 1 has loaded the model.)
"$VISTUNE" sched run.yaml --dispatch-only --results sched --bind tcp://127.0.0.1:* --endpoint-file ep \
  > logs/sched.txt 2>&1 &
sched=$!
VT_LOG_LEVEL=debug "$VISTUNE" sched run.yaml --worker --connect @ep > logs/w1.txt 2>&1 &
w1=$!
for _ in $(seq 3000); do grep -q "running" logs/w1.txt 2>/dev/null && break; sleep 0.02; done
grep -q "running" logs/w1.txt || { cat logs/w1.txt logs/sched.txt; fail "worker 1 never started a task"; }
kill -9 "$w1" 2>/dev/null || true
wait "$w1" 2>/dev/null || true
"$VISTUNE" sched run.yaml --worker --connect @ep > logs/w2.txt 2>&1 || fail "worker 2 failed: $(tail -3 logs/w2.txt)"
wait "$sched" || { cat logs/sched.txt; fail "sched failed"; }
grep -q "sched worker: 10 tasks done" logs/w2.txt || fail "worker 2: $(tail -1 logs/w2.txt)"
grep -q "10 tasks planned, 0 already done, 10 stored" logs/sched.txt || fail "sched summary: $(tail -1 logs/sched.txt)"
grep -Eq "[1-9][0-9]* leases expired" logs/sched.txt || fail "the killed worker's lease did not expire: $(tail -1 logs/sched.txt)"

# Exactly the reference's results: compare the reports' cells.
"$VISTUNE" report --results ref --out rep_ref > /dev/null
"$VISTUNE" report --results sched --out rep_sched > /dev/null
"$VT_TORCH_PYTHON" - rep_ref/report.json rep_sched/report.json <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda c: (c["shift"], c["severity"])
ca, cb = sorted(a["cells"], key=key), sorted(b["cells"], key=key)
assert [(key(c), c["n"], c["accuracy"]) for c in ca] == [(key(c), c["n"], c["accuracy"]) for c in cb], "results differ"
assert len(ca) == 5 and sum(c["n"] for c in ca if c["severity"] == 0) > 0
print(f"sched == eval on {len(ca)} cells")
PY

# A rerun of the schedule does no work.
"$VISTUNE" sched run.yaml --results sched > logs/sched2.txt 2>&1 || fail "sched rerun failed"
grep -q "10 tasks planned, 10 already done, 0 stored" logs/sched2.txt || fail "sched rerun: $(tail -1 logs/sched2.txt)"

# Gate: comparing the run with itself passes.
"$VISTUNE" report --results sched --previous ref --out rep_gate --gate > /dev/null || fail "gate failed on identical runs"

# Bad inputs: one clear line, non-zero.
expect_fail 1 "no complete checkpoint" -- "$VISTUNE" eval run.yaml --set run_dir=nowhere
sed 's/shifts: \[gaussian_noise, char_swap\]/shifts: [gausian_noise]/' run.yaml > bad_shift.yaml
expect_fail 2 "eval.shifts\\[0\\]: unknown shift 'gausian_noise'" -- "$VISTUNE" eval bad_shift.yaml
expect_fail 2 "exclude each other" -- "$VISTUNE" sched run.yaml --dispatch-only --worker --connect @ep
expect_fail 2 "no items in split 'test'" -- "$VISTUNE" eval run.yaml --set eval.split=test --results x1
mkdir -p badckpt && echo garbage > badckpt/COMPLETE
expect_fail 1 "badckpt" -- "$VISTUNE" eval run.yaml --checkpoint badckpt --results x2
mkdir -p corrupt && head -c 8192 /dev/urandom > corrupt/data.mdb
expect_fail 1 "corrupt: result store" -- "$VISTUNE" eval run.yaml --results corrupt
echo "eval/sched: 1 passed, 0 failed"
