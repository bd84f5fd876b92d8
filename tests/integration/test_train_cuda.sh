# vistune train on the CUDA backend (train.backend: cuda) against the CPU
# backend on the same store and seed: a single process and 2 ranks sharing
# one GPU (gradients staged through the host for MPI) give the CPU losses
# within float32 round-off, and the checkpoint exports. A method recipe asks
# for the CPU backend in one line (checked with or without a GPU). Skipped
# (77) where no CUDA device is visible.
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
expect_fail 2 "train.backend cuda: recipe 'vittle' runs on the CPU backend only" -- \
  "$VISTUNE" train "$T/run.yaml" --set recipe=vittle --set train.backend=cuda

rc=0
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/gpu1" --set train.backend=cuda 2>"$T/gpu1.log" || rc=$?
if [ $rc != 0 ] && grep -q "no CUDA device visible" "$T/gpu1.log"; then
  echo "skip: no CUDA device"; exit 77
fi
[ $rc = 0 ] || fail "cuda run failed: $(tail -3 "$T/gpu1.log")"
grep -q "CUDA device 0" "$T/gpu1.log" || fail "no device line: $(head -5 "$T/gpu1.log")"
"$VISTUNE" train "$T/run.yaml" --set run_dir="$T/cpu" 2>"$T/cpu.log" || fail "cpu run failed: $(tail -3 "$T/cpu.log")"
${MPIEXEC:-mpiexec} -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/gpu2" --set train.backend=cuda \
  2>"$T/gpu2.log" || fail "2-rank cuda run failed: $(tail -3 "$T/gpu2.log")"
python3 - "$T/cpu/metrics.jsonl" "$T/gpu1/metrics.jsonl" "$T/gpu2/metrics.jsonl" <<'PY' || fail "losses differ"
import json, sys
runs = [[json.loads(l)["loss"] for l in open(p)] for p in sys.argv[1:]]
cpu = runs[0]
assert len(cpu) == 8, cpu
for name, got in zip(["cuda x1", "cuda x2"], runs[1:]):
    worst = max(abs(a - b) / abs(a) for a, b in zip(cpu, got))
    print(f"{name}: worst relative loss difference to CPU over 8 steps {worst:.2e}")
    assert len(got) == 8 and worst <= 1e-4, (cpu, got)
PY
[ -f "$T/gpu1/checkpoints/ckpt-000000008/COMPLETE" ] || fail "no complete checkpoint from the cuda run"
echo ok
