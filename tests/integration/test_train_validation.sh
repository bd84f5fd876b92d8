# vistune train with held-out validation on a store with a val split:
# val/loss, val/acc, val/acc/<task> and val/group_{acc,n}/<group> land in metrics.jsonl at every
# train.val_every steps and at the last one, the final summary prints the
# per-type table; validation does not change training (losses bit-identical
# to a run without it, and after resuming from a mid-run checkpoint); a store
# whose train split is empty and a seq_len without room to answer are one
# clear line each.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
rm -rf "$T"/*
export OMP_NUM_THREADS=1
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 4 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --val-fraction 0.25 --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
run_dir: $T/a
recipe: stage2
seed: 2
data:
  store: $T/store
  system_prompt: ""
  seq_len: 160
train:
  steps: 6
  global_batch: 8
  micro_batch: 4
  lr: 3.0e-3
  warmup_steps: 1
  val_every: 4
  val_items: 10
  val_max_new_tokens: 8
checkpoint:
  every: 3
metrics:
  progress: never
  tensorboard: false
YAML
"$VISTUNE" train "$T/run.yaml" 2>"$T/a.log" || fail "train failed: $(tail -3 "$T/a.log")"
grep -q "held-out accuracy at step 6" "$T/a.log" || fail "no per-type table: $(tail -5 "$T/a.log")"
grep -Eq "^.*  all +10 +[0-9.]+%   loss [0-9.]+" "$T/a.log" || fail "no 'all' row: $(tail -5 "$T/a.log")"
python3 - "$T/a/metrics.jsonl" "$T/store" <<'PY' || fail "bad validation metrics"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if r.get("eval")]
assert [r["step"] for r in ev] == [4, 6], ev
for r in ev:
    assert math.isfinite(r["val/loss"]) and r["val/loss"] > 0, r
    assert 0 <= r["val/acc"] <= 1, r
    per = [k for k in r if k.startswith("val/acc/")]
    assert per, r
    assert all(0 <= r[k] <= 1 for k in per), r
    # per task group: accuracy and item count (the counts add up to val_items)
    gacc = [k for k in r if k.startswith("val/group_acc/")]
    assert gacc and all(0 <= r[k] <= 1 for k in gacc), r
    assert sum(r[k] for k in r if k.startswith("val/group_n/")) == 10, r
assert len([r for r in rows if not r.get("eval")]) == 6
PY
# Without validation: the same training losses, bit for bit.
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/b" --set train.val_every=0 2>"$T/b.log" ||
  fail "train without validation failed: $(tail -3 "$T/b.log")"
grep -q "validation at step" "$T/b.log" && fail "val_every 0 still validated"
$L same "$T/a/metrics.jsonl" "$T/b/metrics.jsonl" || fail "validation changed the training losses"
# Resumed from step 3 (validation at 4 and 6 again): same losses from there.
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/c" --resume "$T/a/checkpoints/ckpt-000000003" 2>"$T/c.log" ||
  fail "resume failed: $(tail -3 "$T/c.log")"
[ "$($L steps "$T/c/metrics.jsonl")" = "4 5 6" ] || fail "resumed steps: $($L steps "$T/c/metrics.jsonl")"
$L close 0 "$T/c/metrics.jsonl" "$T/a/metrics.jsonl" || fail "resumed losses differ"
python3 - "$T/a/metrics.jsonl" "$T/c/metrics.jsonl" <<'PY' || fail "resumed validation differs"
import json, sys
ev = lambda p: [json.loads(l) for l in open(p) if '"eval":true' in l]
assert ev(sys.argv[1]) == ev(sys.argv[2]), (ev(sys.argv[1]), ev(sys.argv[2]))
PY
# Bad inputs.
expect_fail 2 "val_max_new_tokens" -- "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/d" --set train.val_max_new_tokens=160
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/allval" --size 32 --lossless \
  --val-fraction 1 --threads 1 >/dev/null 2>&1
expect_fail 2 "no sample in the train split" -- "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/e" --set data.store="$T/allval"
echo ok
