# vistune train --recipe ross on a tiny real store (synth -> ingest), under
# mpiexec -n 2 when MPIEXEC is set: the CE and the reported ross_loss are
# finite and fall; the CE equals stage 2's for the first two steps (the
# zero-initialised denoiser sends no gradient into the decoder on step 1) and
# differs afterwards (it does from step 2 on: the reconstruction gradient
# reaches the decoder); checkpoints hold ross.safetensors (the denoiser, not
# in model.safetensors) and its AdamW moments; 2 ranks give the 1-rank
# losses within 1e-5; SIGKILL of one rank at random steps then --resume auto
# gives bit-identical CE and ross_loss curves; bad ross: keys are one line.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
common() {
  cat <<YAML
seed: 5
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 96
train:
  steps: 12
  global_batch: 8
  micro_batch: 2
  lr: 3.0e-3
  warmup_steps: 0
  allreduce_bucket_mb: 0.01   # many buckets: most start reducing during backward (ROSS adds into the decoder inside it)
checkpoint:
  every: 3
  keep_last: 2
metrics:
  progress: never
YAML
}
{ echo "recipe: ross"; common; printf 'ross:\n  width: 32\n  depth: 1\n  heads: 4\n  draws: 2\n'; } > "$T/run.yaml"
{ echo "recipe: stage2"; common; } > "$T/stage2.yaml"
NP=()
[ -n "${MPIEXEC:-}" ] && NP=("$MPIEXEC" "${MPIEXEC_NUMPROC_FLAG:--n}" 2)
run() { "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }
run_bg() { exec "${NP[@]}" "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }

# Reference run (2 ranks when MPI is there).
run "$T/ref" 2>"$T/ref.log" || fail "ross run failed: $(tail -3 "$T/ref.log")"
grep -q "recipe ross" "$T/ref.log" || fail "no start line"
"$VISTUNE" train "$T/stage2.yaml" --set run_dir="$T/stage2" 2>"$T/stage2.log" \
  || fail "stage2 run failed: $(tail -3 "$T/stage2.log")"
python3 - "$T/ref/metrics.jsonl" "$T/stage2/metrics.jsonl" <<'PY' || fail "bad metrics"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = [json.loads(l) for l in open(sys.argv[2])]
ce = [r["loss"] for r in rows]
vm = [r["ross_loss"] for r in rows]
assert len(rows) == 12 and all(math.isfinite(x) for x in ce + vm), rows
assert ce[-1] < ce[0], ce
# zero init: the first loss is the mean of eps^2 (~1); it must fall clearly
assert 0.9 < vm[0] < 1.1, vm
assert sum(vm[-4:]) / 4 < 0.98 * vm[0], vm
# same seed, same data: CE equals stage 2's while the denoiser's output
# layer is still zero, then the reconstruction gradient changes the decoder
for s in (0, 1):
    assert abs(ce[s] - base[s]["loss"]) <= 1e-6 * abs(ce[s]), (s, ce[s], base[s]["loss"])
assert all(abs(ce[s] - base[s]["loss"]) > 1e-6 for s in range(3, 12)), (ce, [b["loss"] for b in base])
print("ross_loss", " ".join("%.4f" % v for v in vm))
PY
ck=$T/ref/checkpoints/ckpt-000000012
for f in COMPLETE model.safetensors optimizer.safetensors ross.safetensors; do
  [ -f "$ck/$f" ] || fail "checkpoint lacks $f"
done
python3 - "$ck" <<'PY' || fail "checkpoint contents"
import json, struct, sys
def header(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))
d = sys.argv[1]
ross, model, opt = (header(f"{d}/{n}.safetensors") for n in ("ross", "model", "optimizer"))
assert ross["__metadata__"]["vistune_method"] == "ross", ross["__metadata__"]
names = [k for k in ross if k != "__metadata__"]
assert "ross.final.linear.weight" in names and "ross.blocks.0.attn.qkv.weight" in names, names
assert not any(k.startswith("ross.") for k in model), "denoiser leaked into model.safetensors"
assert "exp_avg.ross" in opt and "exp_avg_sq.ross" in opt, sorted(opt)[:5]
PY

# One rank gives the same losses within 1e-5 (the noise is keyed by sample).
if [ ${#NP[@]} -gt 0 ]; then
  "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/np1" 2>"$T/np1.log" || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
  $L close 1e-5 "$T/np1/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "1 vs 2 ranks: CE differs"
fi

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
python3 - "$T/kill/metrics.jsonl" "$T/ref/metrics.jsonl" <<'PY' || fail "SIGKILL + resume: ross_loss is not bit-identical"
import json, sys
def curve(p):
    return {d["step"]: repr(d["ross_loss"]) for d in map(json.loads, open(p))}
a, b = curve(sys.argv[1]), curve(sys.argv[2])
assert a == b, [(s, a.get(s), b.get(s)) for s in sorted(b) if a.get(s) != b[s]]
PY

# Config errors: one line naming the key, exit 2.
expect_fail 2 "ross.variant" -- "$VISTUNE" train "$T/run.yaml" --set ross.variant=diffuse
expect_fail 2 "ross.target" -- "$VISTUNE" train "$T/run.yaml" --set ross.target=latents
expect_fail 2 "ross.widht" -- "$VISTUNE" train "$T/run.yaml" --set ross.widht=8
expect_fail 2 "ross.heads" -- "$VISTUNE" train "$T/run.yaml" --set ross.heads=5
echo ok
