#!/usr/bin/env bash
# Trainer benchmark: the same ~12M-parameter LLaVA (stage 2: vision frozen)
# trained for the same steps on the same batch by vistune's CPU backend and by
# PyTorch (float32, same threads), in one run. Prints both step times, their
# ratio (vistune / PyTorch: below 1 = vistune faster), vistune's achieved
# GFLOP/s and OpenBLAS sgemm's peak measured in the same run.
#   tests/bench/bench_trainer.sh [BUILD_DIR] [--smoke] [--threads T] [--steps N]
#                                [--backend cpu|cuda] [--preset small|gpu]
# BUILD_DIR defaults to $VT_BINARY_DIR or ./build. --smoke: a tiny model, 2
# steps (what ctest runs as bench.trainer_smoke). --backend cuda: both sides on
# the GPU (vistune's CUDA backend vs PyTorch on cuda, float32, TF32 off);
# --preset gpu is a ~245M-parameter model sized for that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${VT_BINARY_DIR:-$here/../../build}
preset=small steps=10 warmup=2 threads=$(nproc) backend=cpu
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) preset=smoke steps=2 warmup=1 ;;
    --threads) threads=$2; shift ;;
    --steps) steps=$2; shift ;;
    --backend) backend=$2; shift ;;
    --preset) preset=$2; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    -*) echo "bench_trainer.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
py=${VT_TORCH_PYTHON:-/usr/bin/python3}
exe=$build/tests/bench/bench_trainer
if [ ! -x "$exe" ]; then
  cmake --build "$build" --target bench_trainer -j2 >/dev/null
fi
work=${VT_TEST_TMP:-$(mktemp -d)}/bench_trainer
mkdir -p "$work"
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$backend" = cuda ] && command -v nvidia-smi >/dev/null; then
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
fi
c_out=$("$exe" --out "$work" --preset "$preset" --backend "$backend" --steps "$steps" --warmup "$warmup" \
  --threads "$threads")
echo "$c_out"
t_out=$("$py" "$here/bench_trainer_torch.py" "$work" "$steps" "$warmup" "$threads" "$backend")
echo "$t_out"
get() { echo "$1" | sed -n "s/^$2=\([-0-9.e+]*\).*/\1/p"; }
vl=$(get "$c_out" vistune_first_loss) tl=$(get "$t_out" torch_first_loss)
vm=$(get "$c_out" vistune_step_ms) tm=$(get "$t_out" torch_step_ms)
# Same model, same batch: the first losses must agree (float32 both sides).
python3 - "$vl" "$tl" "$vm" "$tm" <<'PY'
import sys
vl, tl, vm, tm = map(float, sys.argv[1:])
d = abs(vl - tl) / abs(tl)
print(f"first-step loss: vistune {vl:.6f} torch {tl:.6f} (rel diff {d:.1e})")
print(f"step-time ratio vistune/torch = {vm / tm:.3f} ({vm:.2f} ms vs {tm:.2f} ms)")
sys.exit(0 if d < 1e-4 else 1)
PY
