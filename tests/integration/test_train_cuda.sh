# vistune train on the CUDA backend (train.backend: cuda) against the CPU
# backend on the same store and seed, for stage2, vittle, ross and
# vittle_ross (their layers and parameter groups on the device): a single process and 2 ranks sharing
# one GPU (gradients staged through the host for MPI) give the CPU losses
# within float32 round-off, and the checkpoint exports. A recipe without a
# CUDA path asks for the CPU backend in one line (checked with or without a
# GPU). Skipped (77) where no CUDA device is visible.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
run_dir: $T/run
recipe: stage2
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 96
train:
  steps: 8
  global_batch: 8
  lr: 3.0e-3
  warmup_steps: 2
  val_every: 0
checkpoint:
  every: 8
metrics:
  progress: never
YAML
expect_fail 2 "train.backend cuda: recipe 'autoencoder' runs on the CPU backend only \\(stage1, stage2, ross, vittle, vittle_ross" -- \
  "$VISTUNE" train "$T/run.yaml" --set recipe=autoencoder --set train.backend=cuda

rc=0
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/gpu1" --set train.backend=cuda 2>"$T/gpu1.log" || rc=$?
if [ $rc != 0 ] && grep -q "no CUDA device visible" "$T/gpu1.log"; then
  echo "skip: no CUDA device"; exit 77
fi
[ $rc = 0 ] || fail "cuda run failed: $(tail -3 "$T/gpu1.log")"
grep -q "CUDA device 0" "$T/gpu1.log" || fail "no device line: $(head -5 "$T/gpu1.log")"
# same_losses KEY CPU_RUN GPU_RUN...: every step's KEY within 1e-4 relative
# to max(|value|, FLOOR) (FLOOR from the environment, default 0): a KL near
# 0 (the bottleneck at initialisation) is a difference of O(1) float32
# terms, so its relative error is not small even when its error is.
same_losses() {
  python3 - "$@" <<'PY' || fail "$1 differs between CPU and CUDA"
import json, os, sys
key, paths = sys.argv[1], sys.argv[2:]
floor = float(os.environ.get("FLOOR", "1e-12"))
runs = [[json.loads(l)[key] for l in open(p)] for p in paths]
cpu = runs[0]
assert len(cpu) == 8, cpu
for path, got in zip(paths[1:], runs[1:]):
    worst = max(abs(a - b) / max(abs(a), floor) for a, b in zip(cpu, got))
    print(f"{path}: worst relative {key} difference to CPU over 8 steps {worst:.2e}")
    assert len(got) == 8 and worst <= 1e-4, (cpu, got)
PY
}
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/cpu" 2>"$T/cpu.log" || fail "cpu run failed: $(tail -3 "$T/cpu.log")"
${MPIEXEC:-mpiexec} -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/gpu2" --set train.backend=cuda \
  2>"$T/gpu2.log" || fail "2-rank cuda run failed: $(tail -3 "$T/gpu2.log")"
same_losses loss "$T/cpu/metrics.jsonl" "$T/gpu1/metrics.jsonl" "$T/gpu2/metrics.jsonl"

# vittle: the bottleneck's heads, mix and KL on the device; the same noise
# (drawn on the host) and the same KL normalisers as on the CPU
V=(--set recipe=vittle)
"$VISTUNE" train "$T/run.yaml" "${V[@]}" --set run_dir="$T/vcpu" 2>"$T/vcpu.log" || fail "vittle cpu: $(tail -3 "$T/vcpu.log")"
"$VISTUNE" train "$T/run.yaml" "${V[@]}" --set run_dir="$T/vgpu1" --set train.backend=cuda 2>"$T/vgpu1.log" ||
  fail "vittle cuda: $(tail -3 "$T/vgpu1.log")"
${MPIEXEC:-mpiexec} -n 2 "$VISTUNE" train "$T/run.yaml" "${V[@]}" --set run_dir="$T/vgpu2" --set train.backend=cuda \
  2>"$T/vgpu2.log" || fail "vittle 2-rank cuda: $(tail -3 "$T/vgpu2.log")"
same_losses loss "$T/vcpu/metrics.jsonl" "$T/vgpu1/metrics.jsonl" "$T/vgpu2/metrics.jsonl"
for key in vittle/kl_v vittle/kl_t; do
  FLOOR=1e-3 same_losses "$key" "$T/vcpu/metrics.jsonl" "$T/vgpu1/metrics.jsonl" "$T/vgpu2/metrics.jsonl"
done
[ -f "$T/vgpu1/checkpoints/ckpt-000000008/vittle.safetensors" ] || fail "no vittle.safetensors from the cuda run"
# resume on the device from the CPU run's step-8 checkpoint with 4 more steps
"$VISTUNE" train "$T/run.yaml" "${V[@]}" --set run_dir="$T/vcpu" --set train.steps=12 --set train.backend=cuda \
  --resume auto 2>"$T/vres.log" || fail "vittle cuda resume from a cpu checkpoint: $(tail -3 "$T/vres.log")"

# ross (ROSS-D, the default, and ROSS-R): the denoiser on the device; the
# same timesteps and noise (drawn on the host) as on the CPU
sed 's/^recipe: stage2/recipe: ross/' "$T/run.yaml" > "$T/ross.yaml"
printf 'ross:\n  depth: 1\n' >> "$T/ross.yaml"
for variant in denoise regress; do
  R=(--set ross.variant=$variant)
  "$VISTUNE" train "$T/ross.yaml" "${R[@]}" --set run_dir="$T/r$variant-cpu" 2>"$T/r$variant-cpu.log" ||
    fail "ross $variant cpu: $(tail -3 "$T/r$variant-cpu.log")"
  ${MPIEXEC:-mpiexec} -n 2 "$VISTUNE" train "$T/ross.yaml" "${R[@]}" --set run_dir="$T/r$variant-gpu2" \
    --set train.backend=cuda 2>"$T/r$variant-gpu2.log" || fail "ross $variant 2-rank cuda: $(tail -3 "$T/r$variant-gpu2.log")"
  for key in loss ross_loss; do
    same_losses "$key" "$T/r$variant-cpu/metrics.jsonl" "$T/r$variant-gpu2/metrics.jsonl"
  done
done

# vittle_ross: both layers in one run on the device, both losses as on the CPU
sed 's/^recipe: ross/recipe: vittle_ross/' "$T/ross.yaml" > "$T/both.yaml"
"$VISTUNE" train "$T/both.yaml" --set run_dir="$T/both-cpu" 2>"$T/both-cpu.log" ||
  fail "vittle_ross cpu: $(tail -3 "$T/both-cpu.log")"
${MPIEXEC:-mpiexec} -n 2 "$VISTUNE" train "$T/both.yaml" --set run_dir="$T/both-gpu2" --set train.backend=cuda \
  2>"$T/both-gpu2.log" || fail "vittle_ross 2-rank cuda: $(tail -3 "$T/both-gpu2.log")"
for key in loss ross_loss; do same_losses "$key" "$T/both-cpu/metrics.jsonl" "$T/both-gpu2/metrics.jsonl"; done
for key in vittle/kl_v vittle/kl_t; do FLOOR=1e-3 same_losses "$key" "$T/both-cpu/metrics.jsonl" "$T/both-gpu2/metrics.jsonl"; done
[ -f "$T/gpu1/checkpoints/ckpt-000000008/COMPLETE" ] || fail "no complete checkpoint from the cuda run"
echo ok
