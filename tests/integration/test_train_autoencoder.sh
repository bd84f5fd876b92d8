# vistune train --recipe autoencoder (the per-patch KL-autoencoder, ROSS's
# latent teacher) on a tiny real store (synth -> ingest), under mpiexec -n 2
# when MPIEXEC is set: the reconstruction loss falls, `loss` is recon +
# beta kl, checkpoints hold autoencoder.safetensors and its AdamW moments and
# nothing of the LLaVA model moves; 1 rank gives the 2-rank losses within
# 1e-5; SIGKILL at random steps then --resume auto is bit-identical; bad
# autoencoder: keys are one line. Then `ross` with target: latents and that
# checkpoint as its teacher trains (finite ross_loss that falls, targets of
# latent_dim channels), and a missing / wrong teacher is one clear line.
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
  global_batch: 8
  micro_batch: 2
  lr: 3.0e-3
  warmup_steps: 0
checkpoint:
  every: 4
  keep_last: 2
metrics:
  progress: never
YAML
}
{ echo "recipe: autoencoder"; common | sed 's/^train:$/train:\n  steps: 16/';
  printf 'autoencoder:\n  latent_dim: 8\n  hidden: 64\n  beta: 1.0e-3\n'; } > "$T/ae.yaml"
NP=()
[ -n "${MPIEXEC:-}" ] && NP=("$MPIEXEC" "${MPIEXEC_NUMPROC_FLAG:--n}" 2)
run() { "${NP[@]}" "$VISTUNE" train "$T/ae.yaml" --set run_dir="$1" "${@:2}"; }
run_bg() { exec "${NP[@]}" "$VISTUNE" train "$T/ae.yaml" --set run_dir="$1" "${@:2}"; }

run "$T/ref" 2>"$T/ref.log" || fail "autoencoder run failed: $(tail -3 "$T/ref.log")"
grep -q "recipe autoencoder" "$T/ref.log" || fail "no start line"
grep -q "(0 trainable)" "$T/ref.log" || fail "the LLaVA model is not frozen: $(grep 'recipe autoencoder' "$T/ref.log")"
python3 - "$T/ref/metrics.jsonl" <<'PY' || fail "bad metrics"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rec = [r["recon_loss"] for r in rows]
kl = [r["kl"] for r in rows]
tot = [r["loss"] for r in rows]
assert len(rows) == 16 and all(math.isfinite(x) for x in rec + kl + tot), rows
for r, k, t in zip(rec, kl, tot):
    assert abs(t - (r + 1e-3 * k)) <= 1e-6 * t, (t, r, k)
assert sum(rec[-4:]) / 4 < 0.7 * rec[0], rec
print("recon_loss", " ".join("%.4f" % v for v in rec))
print("kl", " ".join("%.3f" % v for v in kl))
PY
ck=$T/ref/checkpoints/ckpt-000000016
for f in COMPLETE model.safetensors optimizer.safetensors autoencoder.safetensors; do
  [ -f "$ck/$f" ] || fail "checkpoint lacks $f"
done
python3 - "$ck" "$T/ref/checkpoints/ckpt-000000012" <<'PY' || fail "checkpoint contents"
import json, struct, sys
def header(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n
d = sys.argv[1]
ae, _ = header(f"{d}/autoencoder.safetensors")
opt, _ = header(f"{d}/optimizer.safetensors")
assert ae["__metadata__"]["vistune_method"] == "autoencoder", ae["__metadata__"]
assert ae["autoencoder.encoder.fc1.weight"]["shape"] == [64, 192], ae["autoencoder.encoder.fc1.weight"]
assert ae["autoencoder.encoder.out.weight"]["shape"] == [16, 64]
assert ae["autoencoder.decoder.out.weight"]["shape"] == [192, 64]
assert "exp_avg.autoencoder" in opt and "exp_avg_sq.autoencoder" in opt, sorted(opt)[:5]
# the LLaVA weights do not move (frozen, unused): same tensor bytes (the
# header's metadata names the step)
def data(p):
    h, off = header(p)
    raw = open(p, "rb").read()[off:]
    return {k: raw[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = data(f"{d}/model.safetensors"), data(f"{sys.argv[2]}/model.safetensors")
assert a.keys() == b.keys() and len(a) > 10, (len(a), len(b))
assert a == b, [k for k in a if a[k] != b[k]][:5]
PY

if [ ${#NP[@]} -gt 0 ]; then
  "$VISTUNE" train "$T/ae.yaml" --set run_dir="$T/np1" 2>"$T/np1.log" || fail "1-rank run failed: $(tail -3 "$T/np1.log")"
  $L close 1e-5 "$T/np1/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "1 vs 2 ranks: loss differs"
fi

rm -rf "$T/kill"
for kill_at in $((RANDOM % 3 + 2)) $((RANDOM % 3 + 7)) $((RANDOM % 2 + 12)); do
  run_bg "$T/kill" --resume auto 2>>"$T/kill.log" &
  pid=$!
  wait_for_step "$T/kill" $kill_at $pid
  victim=$(pgrep -P $pid | tail -n1 || true)
  kill -9 "${victim:-$pid}" 2>/dev/null || true
  wait $pid 2>/dev/null || true
  sleep 0.2
done
run "$T/kill" --resume auto 2>>"$T/kill.log" || fail "final resume failed: $(tail -3 "$T/kill.log")"
grep -q "resumed from" "$T/kill.log" || fail "no resume happened"
$L same "$T/kill/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "SIGKILL + resume: loss is not bit-identical"
python3 - "$T/kill/metrics.jsonl" "$T/ref/metrics.jsonl" <<'PY' || fail "SIGKILL + resume: recon_loss/kl not bit-identical"
import json, sys
def curve(p):
    return {d["step"]: (repr(d["recon_loss"]), repr(d["kl"])) for d in map(json.loads, open(p))}
a, b = curve(sys.argv[1]), curve(sys.argv[2])
assert a == b, [(s, a.get(s), b.get(s)) for s in sorted(b) if a.get(s) != b[s]]
PY
cmp "$T/kill/checkpoints/ckpt-000000016/autoencoder.safetensors" "$ck/autoencoder.safetensors" \
  || fail "SIGKILL + resume: final autoencoder differs"

expect_fail 2 "autoencoder.latent_dim" -- "$VISTUNE" train "$T/ae.yaml" --set autoencoder.latent_dim=0
expect_fail 2 "autoencoder.beta" -- "$VISTUNE" train "$T/ae.yaml" --set autoencoder.beta=-1
expect_fail 2 "autoencoder.hiden" -- "$VISTUNE" train "$T/ae.yaml" --set autoencoder.hiden=8

# ROSS with the autoencoder's latent means as targets.
{ echo "recipe: ross"; common | sed 's/^train:$/train:\n  steps: 12/';
  printf 'ross:\n  width: 32\n  depth: 1\n  heads: 4\n  draws: 2\n  target: latents\n  teacher: %s\n' "$ck"; } \
  > "$T/ross.yaml"
"${NP[@]}" "$VISTUNE" train "$T/ross.yaml" --set run_dir="$T/ross" 2>"$T/ross.log" \
  || fail "ross latents run failed: $(tail -3 "$T/ross.log")"
python3 - "$T/ross/metrics.jsonl" "$T/ross/checkpoints/ckpt-000000012" <<'PY' || fail "ross latents metrics"
import json, math, struct, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
vm = [r["ross_loss"] for r in rows]
ce = [r["loss"] for r in rows]
assert len(rows) == 12 and all(math.isfinite(x) for x in vm + ce), rows
assert 0.9 < vm[0] < 1.1, vm      # zero-init prediction: mean eps^2
assert sum(vm[-4:]) / 4 < 0.98 * vm[0], vm
with open(f"{sys.argv[2]}/ross.safetensors", "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
assert h["ross.final.linear.weight"]["shape"] == [8, 32], h["ross.final.linear.weight"]   # latent_dim targets
assert h["ross.x_embed.weight"]["shape"] == [32, 8], h["ross.x_embed.weight"]
print("ross_loss (latents)", " ".join("%.4f" % v for v in vm))
PY
expect_fail 2 "ross.teacher.*not a directory" -- "$VISTUNE" train "$T/ross.yaml" --set ross.teacher="$T/nowhere"
expect_fail 2 "ross.teacher.*no autoencoder.safetensors" -- "$VISTUNE" train "$T/ross.yaml" --set ross.teacher="$T/store"
grep -v '^  teacher:' "$T/ross.yaml" > "$T/ross_noteacher.yaml"
expect_fail 2 "ross.target: latents needs ross.teacher" -- "$VISTUNE" train "$T/ross_noteacher.yaml"
echo ok
