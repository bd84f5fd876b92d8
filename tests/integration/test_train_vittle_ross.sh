# Recipe vittle_ross (stage 2 + Vittle's bottleneck + ROSS's denoiser in
# one run) end to end on a small store with images:
#  * it trains: CE, both KLs and ross_loss are finite, ross_loss falls;
#  * the methods compose without touching each other: with ross.weight 0 it
#    is bit-identical to recipe vittle (losses, model and layer files), and
#    with alpha_end 0 and beta 0 to recipe ross (losses, model and denoiser);
#  * 1 and 2 trainer ranks give the same losses within 1e-5;
#  * under mpirun -np 2, SIGKILL mid-run + --resume auto is bit-identical to
#    the uninterrupted run (both layers, both moment groups, both noises);
#  * checkpoints keep model.safetensors pure Hugging Face LLaVA, with
#    vittle.safetensors, ross.safetensors and both groups' moments beside it;
#  * `vistune eval` runs the inference form (the bottleneck's mean; no
#    denoiser);
#  * a bad key in either section is one line, exit 2.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
TOL=1e-5
rm -rf "$T"/*
export OMP_NUM_THREADS=1
[ -n "${MPIEXEC:-}" ] || fail "no mpiexec"
"$VISTUNE" synth --out "$T/shapes" --count 48 --seed 4 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --val-fraction 0.25 --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
recipe: vittle_ross
seed: 3
data:
  store: $T/store
  system_prompt: ""
  seq_len: 96
train:
  steps: 12
  global_batch: 4
  micro_batch: 2
  lr: 3.0e-3
  warmup_steps: 1
  val_every: 0
checkpoint:
  every: 4
metrics:
  progress: never
  tensorboard: false
vittle:
  layer: 0
  beta_v: 0.5
  beta_t: 0.5
ross:
  width: 32
  depth: 1
  heads: 4
  draws: 2
eval:
  limit: 4
  max_new_tokens: 4
YAML
train() { local np=$1 yaml=$2 dir=$3; shift 3; "$MPIEXEC" -n "$np" "$VISTUNE" train "$yaml" --set run_dir="$dir" "$@"; }

# The reference: 2 ranks, 1 micro-batch each.
train 2 "$T/run.yaml" "$T/ref" 2>"$T/ref.log" || fail "2-rank run failed: $(tail -3 "$T/ref.log")"
grep -q "recipe vittle_ross, .* + [0-9]* method params" "$T/ref.log" || fail "no start line: $(head -3 "$T/ref.log")"
python3 - "$T/ref/metrics.jsonl" <<'PY' || fail "metrics"
import json, math, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 12, len(r)
for x in r:
    for k in ("loss", "vittle/kl_v", "vittle/kl_t", "vittle/alpha", "ross_loss"):
        assert k in x and math.isfinite(x[k]), (k, x)
assert r[-1]["vittle/kl_v"] > 0 and r[-1]["vittle/kl_t"] > 0, r[-1]
vm = [x["ross_loss"] for x in r]
assert 0.9 < vm[0] < 1.1 and sum(vm[-3:]) / 3 < 0.98 * vm[0], vm
PY
ck=$T/ref/checkpoints/ckpt-000000012
python3 - "$ck" <<'PY' || fail "checkpoint layout"
import json, struct, sys
def names(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return {k for k in json.loads(f.read(n)) if k != "__metadata__"}
m = names(sys.argv[1] + "/model.safetensors")
assert all(k.split(".")[0] in ("vision_tower", "multi_modal_projector", "language_model") for k in m), m
assert "vittle.head_v.fc1.weight" in names(sys.argv[1] + "/vittle.safetensors")
assert any(k.startswith("ross.") for k in names(sys.argv[1] + "/ross.safetensors"))
o = names(sys.argv[1] + "/optimizer.safetensors")
for g in ("vittle", "ross"):
    assert f"exp_avg.{g}" in o and f"exp_avg_sq.{g}" in o, (g, sorted(o))
PY

# 1 rank, 2 micro-batches of 2.
train 1 "$T/run.yaml" "$T/np1" 2>"$T/np1.log" || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
$L close $TOL "$T/np1/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "1 vs 2 ranks: losses differ"

# Composition: each method switched off leaves exactly the other recipe.
same_run() { # what, run dir A, run dir B, files...
  local what=$1 a=$2 b=$3; shift 3
  $L same "$a/metrics.jsonl" "$b/metrics.jsonl" || fail "$what: losses differ"
  for f in "$@"; do
    python3 "$VT_SOURCE_DIR/tests/tools/same_tensors.py" "$a/checkpoints/ckpt-000000012/$f" \
      "$b/checkpoints/ckpt-000000012/$f" || fail "$what: $f differs"
  done
}
train 2 "$T/run.yaml" "$T/w0" --set ross.weight=0 2>"$T/w0.log" || fail "ross.weight 0: $(tail -3 "$T/w0.log")"
# the single-method recipes refuse the other's section: the same file without it
without() { awk -v s="$1:" '/^[a-z_]+:/ { skip = ($1 == s) } !skip' "$T/run.yaml"; }
without ross | sed 's/^recipe: vittle_ross/recipe: vittle/' > "$T/vittle.yaml"
without vittle | sed 's/^recipe: vittle_ross/recipe: ross/' > "$T/ross.yaml"
train 2 "$T/vittle.yaml" "$T/vittle" 2>"$T/vittle.log" || fail "vittle: $(tail -3 "$T/vittle.log")"
same_run "vittle_ross with ross.weight 0 vs vittle" "$T/w0" "$T/vittle" model.safetensors vittle.safetensors
train 2 "$T/run.yaml" "$T/b0" --set vittle.alpha_end=0 --set vittle.beta_v=0 --set vittle.beta_t=0 2>"$T/b0.log" \
  || fail "alpha 0, beta 0: $(tail -3 "$T/b0.log")"
train 2 "$T/ross.yaml" "$T/ross" 2>"$T/ross.log" || fail "ross: $(tail -3 "$T/ross.log")"
same_run "vittle_ross with alpha_end 0, beta 0 vs ross" "$T/b0" "$T/ross" model.safetensors ross.safetensors

# mpirun -np 2: SIGKILL both ranks after step 6 (checkpoint at 4), resume.
# mpiexec itself in the background (not through a shell function), so that
# $! is mpiexec and its children are the ranks
"$MPIEXEC" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/kill" 2>"$T/kill.log" &
mpid=$!
wait_for_step "$T/kill" 6 $mpid
for p in $(pgrep -P $mpid || true); do kill -9 "$p" 2>/dev/null || true; done
wait $mpid 2>/dev/null || true
last=$($L steps "$T/kill/metrics.jsonl" | awk '{print $NF}')
[ "$last" -lt 12 ] || fail "the run finished before the kill (last step $last)"
train 2 "$T/run.yaml" "$T/kill" --resume auto 2>"$T/resume.log" || fail "resume failed: $(tail -3 "$T/resume.log")"
grep -Eq "resumed from $T/kill/checkpoints/ckpt-0000000(04|08)" "$T/resume.log" || fail "no resume: $(head -3 "$T/resume.log")"
same_run "SIGKILL + resume" "$T/kill" "$T/ref" model.safetensors vittle.safetensors ross.safetensors

# Inference form: the bottleneck's mean, no denoiser.
"$VISTUNE" eval "$T/run.yaml" --set run_dir="$T/ref" >"$T/eval.log" 2>&1 || fail "eval failed: $(tail -3 "$T/eval.log")"
grep -q "ckpt-000000012 has a Vittle layer after decoder block 0: inference form" "$T/eval.log" \
  || fail "eval did not load the layer: $(head -5 "$T/eval.log")"

# Config errors name the key, in either section.
bad() { "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/bad" "$@"; }
expect_fail 2 "unknown key 'ross.widht'" -- bad --set ross.widht=8
expect_fail 2 "vittle.layer: 5 is outside the decoder's blocks 0..1" -- bad --set vittle.layer=5
echo ok
