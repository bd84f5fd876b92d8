# vistune train on a real (tiny) sample store: synth -> ingest -> a few
# stage1 steps with images through the dataset source; the loss is finite
# and falls, images/s is reported, and the checkpoint's weights export in
# the HF layout; a missing store is one clear line.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
run_dir: $T/run
recipe: stage1
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 96
train:
  steps: 6
  global_batch: 8
  lr: 1.0e-2
  warmup_steps: 0
checkpoint:
  every: 6
metrics:
  progress: never
YAML
"$VISTUNE" train "$T/run.yaml" 2>"$T/log" || fail "train failed: $(tail -3 "$T/log")"
grep -q "recipe stage1" "$T/log" || fail "no start line"
python3 - "$T/run/metrics.jsonl" <<'PY' || fail "bad metrics"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loss = [r["loss"] for r in rows]
assert len(rows) == 6 and all(math.isfinite(x) for x in loss), loss
assert loss[-1] < loss[0], loss
assert all(r["images_per_s"] > 0 for r in rows), rows
PY
ck=$T/run/checkpoints/ckpt-000000006
for f in COMPLETE meta.pb model.safetensors config.json optimizer.safetensors; do
  [ -f "$ck/$f" ] || fail "checkpoint lacks $f"
done
expect_fail 2 "data.store: required" -- "$VISTUNE" train "$T/run.yaml" --set data.store=
echo ok
