# vistune train --recipe icl (MMICT: M-Hub + <eoc> in front of the frozen
# LLaVA model, k = 2 same-group demonstrations per query read through the
# dataset) on a tiny real store (synth -> ingest), under mpiexec -n 2 when
# MPIEXEC is set: the CE is finite and falls; checkpoints hold
# mhub.safetensors and icl.safetensors and their AdamW moments; 2 ranks give
# the 1-rank losses within 1e-5; SIGKILL at random steps then --resume auto
# gives a bit-identical CE curve; k = 0 (the hub-prompt baseline) trains
# too and differs from k = 2; selection: similar trains, rank-invariant;
# bad icl: keys are one line, exit 2.
# Validation with demonstrations (recipe hook validate): val/loss, val/acc,
# per task and per group land in metrics.jsonl; 1 rank = 2 ranks; k = 0 and
# k = 2 differ. icl.mode vanilla (raw projected demonstration image tokens +
# their text, projector + <eoc> trained) trains, is rank-invariant, and at
# k = 0 equals stage2 with the decoder frozen bit for bit (losses and
# validation); train.init_from starts a run from another recipe's weights.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --val-fraction 0.25 --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
recipe: icl
seed: 5
model:
  text_config:
    max_position_embeddings: 512
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 160
train:
  steps: 12
  global_batch: 8
  micro_batch: 2
  lr: 1.0e-2
  warmup_steps: 0
  val_items: 6
  val_max_new_tokens: 6
checkpoint:
  every: 3
  keep_last: 2
metrics:
  progress: never
YAML
cp "$T/run.yaml" "$T/stage2.yaml"   # the same run without the icl section, for recipe stage2
sed 's/^model:$/model:\n  freeze:\n    language_model: true/' "$T/run.yaml" > "$T/stage2-frozen.yaml"
cat >> "$T/run.yaml" <<YAML
icl:
  k: 2
  selection: random
  queries: 8
  width: 32
  layers: 1
  heads: 4
  max_text: 48
YAML
NP=()
[ -n "${MPIEXEC:-}" ] && NP=("$MPIEXEC" "${MPIEXEC_NUMPROC_FLAG:--n}" 2)
run() { "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }
run_bg() { exec "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }

run "$T/ref" 2>"$T/ref.log" || fail "icl run failed: $(tail -3 "$T/ref.log")"
grep -q "recipe icl" "$T/ref.log" || fail "no start line"
python3 - "$T/ref/metrics.jsonl" <<'PY' || fail "bad metrics"
import json, math, sys
ce = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"eval"' not in l]
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
k0 = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"eval"' not in l]
k2 = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"eval"' not in l]
assert len(k0) == 12 and all(math.isfinite(x) for x in k0), k0
assert sum(k0[-3:]) / 3 < 0.997 * sum(k0[:3]) / 3, k0
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
sim = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"eval"' not in l]
rnd = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"eval"' not in l][:4]
assert len(sim) == 4 and all(math.isfinite(x) for x in sim), sim
assert any(abs(a - b) > 1e-4 for a, b in zip(sim, rnd)), (sim, rnd)
print("icl similar CE", " ".join("%.4f" % v for v in sim))
PY

# One rank gives the same losses within 1e-5 (demonstrations are keyed by sample).
if [ ${#NP[@]} -gt 0 ]; then
  "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/np1" 2>"$T/np1.log" || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
  $L close 1e-5 "$T/np1/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "1 vs 2 ranks: CE differs"
fi

# Validation with demonstrations: the last step's eval line (rank 0), the
# same with 1 rank as with 2, and k = 0 differs from k = 2.
one=$T/ref
[ ${#NP[@]} -gt 0 ] && one=$T/np1
python3 - "$T/ref/metrics.jsonl" "$one/metrics.jsonl" "$T/k0/metrics.jsonl" <<'PY' || fail "icl validation"
import json, math, sys
def ev(p):
    e = [json.loads(l) for l in open(p) if '"eval"' in l]
    assert len(e) == 1 and e[0]["step"] == 12, e
    return e[0]
ref, one, k0 = (ev(p) for p in sys.argv[1:])
assert math.isfinite(ref["val/loss"]) and 0 <= ref["val/acc"] <= 1, ref
assert [k for k in ref if k.startswith("val/acc/")], ref
assert sum(ref[k] for k in ref if k.startswith("val/group_n/")) == 6, ref
for k in ref:
    assert k in one and abs(ref[k] - one[k]) <= 1e-4 * max(1, abs(ref[k])), (k, ref[k], one.get(k))
assert abs(ref["val/loss"] - k0["val/loss"]) > 1e-4, (ref, k0)
print("icl val k=2 loss %.4f acc %.3f, k=0 loss %.4f" % (ref["val/loss"], ref["val/acc"], k0["val/loss"]))
PY

# icl.mode vanilla: trains (projector + <eoc>), no hub file, 1 rank = 2 ranks.
"${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/van" --set icl.mode=vanilla --set train.steps=6 \
  --set icl.max_text=24 --set train.lr=3e-3 2>"$T/van.log" || fail "vanilla run failed: $(tail -3 "$T/van.log")"
grep -q "validation at step 6" "$T/van.log" || fail "vanilla: no validation"
vk=$T/van/checkpoints/ckpt-000000006
[ -f "$vk/icl.safetensors" ] && [ ! -f "$vk/mhub.safetensors" ] || fail "vanilla checkpoint: icl.safetensors only"
python3 - "$T/van/metrics.jsonl" <<'PY' || fail "vanilla metrics"
import json, math, sys
ce = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"eval"' not in l]
assert len(ce) == 6 and all(math.isfinite(x) for x in ce), ce
assert sum(ce[-2:]) / 2 < 0.99 * sum(ce[:2]) / 2, ce
print("icl vanilla CE", " ".join("%.4f" % v for v in ce))
PY
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/van1" --set icl.mode=vanilla --set train.steps=6 \
  --set icl.max_text=24 --set train.lr=3e-3 2>"$T/van1.log" || fail "1-rank vanilla failed: $(tail -3 "$T/van1.log")"
$L close 1e-5 "$T/van1/metrics.jsonl" "$T/van/metrics.jsonl" || fail "vanilla: 1 vs N ranks differ"

# vanilla at k = 0 is stage2 with only the projector training: same losses
# and the same validation, bit for bit (the plumbing adds nothing).
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/van0" --set icl.mode=vanilla --set icl.k=0 --set train.steps=4 \
  2>"$T/van0.log" || fail "vanilla k=0 failed: $(tail -3 "$T/van0.log")"
"$VISTUNE" train "$T/stage2-frozen.yaml" --set run_dir="$T/st2" --set recipe=stage2 --set train.steps=4 \
  2>"$T/st2.log" || fail "stage2 frozen failed: $(tail -3 "$T/st2.log")"
$L same "$T/van0/metrics.jsonl" "$T/st2/metrics.jsonl" || fail "vanilla k=0 != stage2 (frozen decoder)"
python3 - "$T/van0/metrics.jsonl" "$T/st2/metrics.jsonl" <<'PY' || fail "vanilla k=0 validation != stage2's"
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"eval"' in l] for p in sys.argv[1:])
assert a == b and len(a) == 1, (a, b)
PY

# train.init_from: a stage2 run starting from the vanilla run's weights
# (recipe icl) at step 0; its first loss is not the fresh model's.
"$VISTUNE" train "$T/stage2.yaml" --set run_dir="$T/init" --set recipe=stage2 --set train.steps=1 \
  --set train.val_items=0 --set train.init_from="$vk" 2>"$T/init.log" || fail "init_from failed: $(tail -3 "$T/init.log")"
grep -q "initial weights from" "$T/init.log" || fail "init_from: no log line"
"$VISTUNE" train "$T/stage2.yaml" --set run_dir="$T/noinit" --set recipe=stage2 --set train.steps=1 \
  --set train.val_items=0 2>"$T/noinit.log" || fail "stage2 fresh failed: $(tail -3 "$T/noinit.log")"
$L same "$T/init/metrics.jsonl" "$T/noinit/metrics.jsonl" >/dev/null && fail "init_from changed nothing"
expect_fail 1 "train.init_from" -- "$VISTUNE" train "$T/stage2.yaml" --set run_dir="$T/bad" --set train.init_from="$T/nope"

# SIGKILL (one rank of the job, or the process) at random steps, resume auto.
rm -rf "$T/kill"
for kill_at in $((RANDOM % 3 + 2)) $((RANDOM % 3 + 6)) $((RANDOM % 2 + 10)); do
  run_bg "$T/kill" --resume auto 2>>"$T/kill.log" &
  pid=$!
  wait_for_step "$T/kill" $kill_at $pid
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
expect_fail 2 "icl.mode" -- "$VISTUNE" train "$T/run.yaml" --set icl.mode=raw
sed 's/^model:$/model:\n  freeze:\n    language_model: false/' "$T/run.yaml" > "$T/van-bad.yaml"
expect_fail 2 "vanilla" -- "$VISTUNE" train "$T/van-bad.yaml" --set icl.mode=vanilla
echo ok
