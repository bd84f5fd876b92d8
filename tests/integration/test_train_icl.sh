# vistune train --recipe icl (MMICT: M-Hub + <eoc> in front of the frozen
# LLaVA model, k = 2 same-group demonstrations per query read through the
# dataset) on a tiny real store (synth -> ingest), under mpiexec -n 2 when
# MPIEXEC is set: the CE is finite and falls; checkpoints hold
# mhub.safetensors and icl.safetensors and their AdamW moments; 2 ranks give
# the 1-rank losses within 1e-5; SIGKILL at random steps then --resume auto
# gives a bit-identical CE curve; k = 0 (the hub-prompt baseline) trains
# too and differs from k = 2; selection: similar trains, rank-invariant;
# bad icl: keys are one line, exit 2.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
recipe: icl
seed: 5
model:
  text_config:
    max_position_embeddings: 512
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 96
icl:
  k: 2
  selection: random
  queries: 8
  width: 32
  layers: 1
  heads: 4
  max_text: 48
train:
  steps: 12
  global_batch: 8
  micro_batch: 2
  lr: 1.0e-2
  warmup_steps: 0
checkpoint:
  every: 3
  keep_last: 2
metrics:
  progress: never
YAML
NP=()
[ -n "${MPIEXEC:-}" ] && NP=("$MPIEXEC" "${MPIEXEC_NUMPROC_FLAG:--n}" 2)
run() { "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }
run_bg() { exec "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }

run "$T/ref" 2>"$T/ref.log" || fail "icl run failed: $(tail -3 "$T/ref.log")"
grep -q "recipe icl" "$T/ref.log" || fail "no start line"
python3 - "$T/ref/metrics.jsonl" <<'PY' || fail "bad metrics"
import json, math, sys
ce = [json.loads(l)["loss"] for l in open(sys.argv[1])]
assert len(ce) == 12 and all(math.isfinite(x) for x in ce), ce
assert sum(ce[-3:]) / 3 < 0.99 * sum(ce[:3]) / 3, ce
print("icl k=2 CE", " ".join("%.4f" % v for v in ce))
PY
ck=$T/ref/checkpoints/ckpt-000000012
for f in COMPLETE model.safetensors optimizer.safetensors mhub.safetensors icl.safetensors; do
  [ -f "$ck/$f" ] || fail "checkpoint lacks $f"
done
python3 - "$ck" <<'PY' || fail "checkpoint contents"
import json, struct, sys
def header(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))
d = sys.argv[1]
hub, icl, opt = (header(f"{d}/{n}.safetensors") for n in ("mhub", "icl", "optimizer"))
assert hub["__metadata__"]["vistune_method"] == "mmict", hub["__metadata__"]
assert "mhub.queries" in hub and "mhub.out.weight" in hub, sorted(hub)[:5]
assert icl["icl.eoc"]["shape"] == [64], icl
for g in ("mhub", "icl.eoc"):
    assert f"exp_avg.{g}" in opt and f"exp_avg_sq.{g}" in opt, sorted(opt)
PY

# k = 0: the hub-prompt baseline (no demonstrations) trains and differs.
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/k0" --set icl.k=0 2>"$T/k0.log" \
  || fail "k=0 run failed: $(tail -3 "$T/k0.log")"
python3 - "$T/k0/metrics.jsonl" "$T/ref/metrics.jsonl" <<'PY' || fail "k=0 metrics"
import json, math, sys
k0 = [json.loads(l)["loss"] for l in open(sys.argv[1])]
k2 = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(k0) == 12 and all(math.isfinite(x) for x in k0), k0
assert sum(k0[-3:]) / 3 < 0.995 * sum(k0[:3]) / 3, k0
assert any(abs(a - b) > 1e-4 for a, b in zip(k0, k2)), (k0, k2)
print("icl k=0 CE", " ".join("%.4f" % v for v in k0))
PY

# selection: similar (demonstrations by cosine of mean image features, index
# built at the first step) trains, differs from random selection, and gives
# the same losses on 1 rank and on 2 (every rank builds the same index).
"${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/sim" --set icl.selection=similar --set train.steps=4 \
  2>"$T/sim.log" || fail "similar run failed: $(tail -3 "$T/sim.log")"
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/sim1" --set icl.selection=similar --set train.steps=4 \
  2>"$T/sim1.log" || fail "1-rank similar run failed: $(tail -3 "$T/sim1.log")"
$L close 1e-5 "$T/sim1/metrics.jsonl" "$T/sim/metrics.jsonl" || fail "similar: 1 vs N ranks differ"
python3 - "$T/sim/metrics.jsonl" "$T/ref/metrics.jsonl" <<'PY' || fail "similar metrics"
import json, math, sys
sim = [json.loads(l)["loss"] for l in open(sys.argv[1])]
rnd = [json.loads(l)["loss"] for l in open(sys.argv[2])][:4]
assert len(sim) == 4 and all(math.isfinite(x) for x in sim), sim
assert any(abs(a - b) > 1e-4 for a, b in zip(sim, rnd)), (sim, rnd)
print("icl similar CE", " ".join("%.4f" % v for v in sim))
PY

# One rank gives the same losses within 1e-5 (demonstrations are keyed by sample).
if [ ${#NP[@]} -gt 0 ]; then
  "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/np1" 2>"$T/np1.log" || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
  $L close 1e-5 "$T/np1/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "1 vs 2 ranks: CE differs"
fi

# SIGKILL (one rank of the job, or the process) at random steps, resume auto.
rm -rf "$T/kill"
for kill_at in $((RANDOM % 3 + 2)) $((RANDOM % 3 + 6)) $((RANDOM % 2 + 10)); do
  run_bg "$T/kill" --resume auto 2>>"$T/kill.log" &
  pid=$!
  for _ in $(seq 1500); do
    last=$(tail -n1 "$T/kill/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\),.*/\1/p' || true)
    [ -n "$last" ] && [ "$last" -ge "$kill_at" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  victim=$(pgrep -P $pid | tail -n1 || true)   # a rank under mpiexec, else vistune itself
  kill -9 "${victim:-$pid}" 2>/dev/null || true
  wait $pid 2>/dev/null || true
  sleep 0.2
done
run "$T/kill" --resume auto 2>>"$T/kill.log" || fail "final resume failed: $(tail -3 "$T/kill.log")"
grep -q "resumed from" "$T/kill.log" || fail "no resume happened"
$L same "$T/kill/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "SIGKILL + resume: CE is not bit-identical"

# Config errors: one line naming the key, exit 2.
expect_fail 2 "icl.selection" -- "$VISTUNE" train "$T/run.yaml" --set icl.selection=nearest
expect_fail 2 "icl.k" -- "$VISTUNE" train "$T/run.yaml" --set icl.k=-1
expect_fail 2 "icl.kk" -- "$VISTUNE" train "$T/run.yaml" --set icl.kk=2
expect_fail 2 "icl.heads" -- "$VISTUNE" train "$T/run.yaml" --set icl.heads=5
echo ok
