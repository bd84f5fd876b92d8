# Recipe vittle (stage 2 + the Vittle bottleneck) end to end on a small store
# with images:
#  * 1 and 2 trainer ranks give the same losses and KL within the stated
#    tolerance (the KL is normalised over the whole global batch and the
#    noise is keyed by sample, so the objective does not depend on R);
#  * under mpirun -np 2, SIGKILL mid-run + --resume auto is bit-identical to
#    the uninterrupted 2-rank run (layer weights, their AdamW moments and the
#    noise all come back);
#  * checkpoints keep model.safetensors pure Hugging Face LLaVA and carry
#    vittle.safetensors + the layer's moments in optimizer.safetensors;
#  * KL and alpha are in metrics.jsonl (alpha_steps fixes the schedule's
#    horizon, then alpha holds); beta 0 trains; alpha_end 0 + beta 0
#    is bit-identical to stage2 (the extra parameters change nothing else in
#    the loop: clipping norm, AdamW, data order);
#  * validation and `vistune eval` run the inference form (mean, alpha_end);
#  * a bad vittle setting or an unknown vittle key is one line, exit 2.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
TOL=1e-5   # relative, stated in docs/training.md
rm -rf "$T"/*
export OMP_NUM_THREADS=1
"$VISTUNE" synth --out "$T/shapes" --count 48 --seed 4 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --val-fraction 0.25 --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
run_dir: $T/np1
recipe: vittle
seed: 3
data:
  store: $T/store
  system_prompt: ""
  seq_len: 96
train:
  steps: 16
  global_batch: 4
  micro_batch: 2
  lr: 3.0e-3
  warmup_steps: 1
  val_every: 0
checkpoint:
  every: 16
metrics:
  progress: never
  tensorboard: false
vittle:
  layer: 0
  beta_v: 0.5
  beta_t: 0.5
  prior: learnable
eval:
  limit: 4
  max_new_tokens: 4
YAML
run() { "$VISTUNE" train "$T/run.yaml" --set run_dir="$@"; }

# 1 rank (2 micro-batches of 2; validating at the last step) and 2 ranks
# (1 micro-batch of 2 each).
run "$T/np1" --set train.val_every=-1 --set train.val_items=4 --set train.val_max_new_tokens=4 2>"$T/np1.log" \
  || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
grep -q "recipe vittle, .* + [0-9]* method params" "$T/np1.log" || fail "no method params: $(head -3 "$T/np1.log")"
[ -n "${MPIEXEC:-}" ] || fail "no mpiexec"
"$MPIEXEC" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/np2" 2>"$T/np2.log" \
  || fail "2-rank run failed: $(tail -3 "$T/np2.log")"
$L close $TOL "$T/np2/metrics.jsonl" "$T/np1/metrics.jsonl" || fail "1 vs 2 ranks: losses differ"
python3 - "$T/np1/metrics.jsonl" "$T/np2/metrics.jsonl" <<'PY' || fail "KL metrics"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
a = [x for x in a if not x.get("eval")]
assert len(a) == len(b) == 16
for x, y in zip(a, b):
    for k in ("vittle/kl_v", "vittle/kl_t", "vittle/kl_loss", "vittle/alpha"):
        assert k in x and x[k] >= 0, (k, x)
        assert abs(x[k] - y[k]) <= 1e-4 * max(1e-6, abs(x[k])) + 1e-12, (k, x[k], y[k])
assert a[-1]["vittle/kl_v"] > 0 and a[-1]["vittle/kl_t"] > 0, a[-1]
assert a[0]["vittle/alpha"] < a[-1]["vittle/alpha"] < 0.5, "alpha schedule"
PY

# Checkpoint layout: pure HF model file; the layer and its moments beside it.
ck="$T/np2/checkpoints/ckpt-000000016"
python3 - "$ck" <<'PY' || fail "checkpoint layout"
import json, struct, sys
def names(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: v for k, v in h.items() if k != "__metadata__"}, h.get("__metadata__", {})
m, _ = names(sys.argv[1] + "/model.safetensors")
assert all(k.split(".")[0] in ("vision_tower", "multi_modal_projector", "language_model") for k in m), m.keys()
v, meta = names(sys.argv[1] + "/vittle.safetensors")
assert "vittle.head_v.fc1.weight" in v and "vittle.prior_t.logvar" in v, v.keys()
assert meta["vittle_layer"] == "0" and meta["vittle_prior"] == "learnable", meta
o, _ = names(sys.argv[1] + "/optimizer.safetensors")
assert "exp_avg.vittle" in o and "exp_avg_sq.vittle" in o, [k for k in o if "vittle" in k]
PY

# mpirun -np 2: SIGKILL both ranks after step 5 (checkpoint at 4), resume.
"$MPIEXEC" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/kill" --set checkpoint.every=4 2>"$T/kill.log" &
mpid=$!
wait_for_step "$T/kill" 5 $mpid
for p in $(pgrep -P $mpid || true); do kill -9 "$p" 2>/dev/null || true; done
wait $mpid 2>/dev/null || true
last=$($L steps "$T/kill/metrics.jsonl" | awk '{print $NF}')
[ "$last" -lt 16 ] || fail "the run finished before the kill (last step $last)"
"$MPIEXEC" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/kill" --set checkpoint.every=4 --resume auto \
  2>"$T/resume.log" \
  || fail "resume failed: $(tail -3 "$T/resume.log")"
grep -Eq "resumed from $T/kill/checkpoints/ckpt-0000000(04|08|12)" "$T/resume.log" || fail "no resume: $(head -3 "$T/resume.log")"
$L same "$T/kill/metrics.jsonl" "$T/np2/metrics.jsonl" || fail "SIGKILL + resume is not bit-identical"
cmp "$T/kill/checkpoints/ckpt-000000016/vittle.safetensors" "$ck/vittle.safetensors" || fail "resumed layer differs"

# beta 0: trains, KL still reported; alpha_end 0 + beta 0 == stage2 bit for bit.
run "$T/b0" --set vittle.beta_v=0 --set vittle.beta_t=0 2>"$T/b0.log" || fail "beta 0 failed: $(tail -3 "$T/b0.log")"
python3 - "$T/b0/metrics.jsonl" <<'PY' || fail "beta 0 metrics"
import json, math, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 16 and all(math.isfinite(x["loss"]) for x in r)
assert all(x["vittle/kl_loss"] == 0 for x in r) and r[-1]["vittle/kl_v"] > 0
PY
$L same "$T/b0/metrics.jsonl" "$T/np2/metrics.jsonl" >/dev/null && fail "beta 0 changed nothing"
# alpha over a fixed horizon of 8 steps: rises to alpha_end sigmoid(5) by step 8, then holds.
run "$T/h8" --set vittle.alpha_steps=8 2>"$T/h8.log" || fail "alpha_steps 8 failed: $(tail -3 "$T/h8.log")"
python3 - "$T/h8/metrics.jsonl" <<'PY' || fail "alpha_steps metrics"
import json, math, sys
a = [json.loads(l)["vittle/alpha"] for l in open(sys.argv[1])]
top = 0.5 / (1 + math.exp(-5))
assert len(a) == 16 and all(x < y for x, y in zip(a[:8], a[1:9])), a
assert all(abs(x - top) < 1e-6 for x in a[8:]), (a, top)
PY
run "$T/a0" --set vittle.alpha_end=0 --set vittle.beta_v=0 --set vittle.beta_t=0 2>"$T/a0.log" \
  || fail "alpha 0 failed: $(tail -3 "$T/a0.log")"
sed -e 's/^recipe: vittle/recipe: stage2/' -e '/^vittle:/,/^  prior:/d' "$T/run.yaml" > "$T/stage2.yaml"
"$VISTUNE" train "$T/stage2.yaml" --set run_dir="$T/s2" 2>"$T/s2.log" || fail "stage2 failed: $(tail -3 "$T/s2.log")"
$L same "$T/a0/metrics.jsonl" "$T/s2/metrics.jsonl" || fail "vittle with alpha 0, beta 0 differs from stage2"

# Inference form in validation (the 1-rank run's last step) and in
# `vistune eval` of its final checkpoint.
grep -q "validation at step 16: loss [0-9.]*, accuracy" "$T/np1.log" || fail "no validation: $(tail -3 "$T/np1.log")"
"$VISTUNE" eval "$T/run.yaml" --set run_dir="$T/np1" >"$T/eval.log" 2>&1 || fail "eval failed: $(tail -3 "$T/eval.log")"
grep -q "ckpt-000000016 has a Vittle layer after decoder block 0: inference form, alpha 0.5, no noise" "$T/eval.log" \
  || fail "eval did not load the layer: $(head -5 "$T/eval.log")"

# Config errors: one line, exit 2, naming the key.
expect_fail 2 "vittle.kl.*'textbok'" -- run "$T/bad" --set vittle.kl=textbok
expect_fail 2 "vittle.layer: 5 is outside the decoder's blocks 0..1" -- run "$T/bad" --set vittle.layer=5
printf 'recipe: vittle\ndata:\n  source: synthetic\nvittle:\n  alpha: 0.3\n' > "$T/bad.yaml"
expect_fail 2 "bad.yaml:5: unknown key 'vittle.alpha'" -- "$VISTUNE" train "$T/bad.yaml"
echo ok
