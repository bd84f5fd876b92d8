#!/usr/bin/env bash
# Overhead of a method recipe (vittle, ross with its default pixel targets,
# or vittle_ross: both) over stage2, measured in one run: the same store, model, batches
# and steps trained alternately with each recipe (rounds interleaved so
# machine load hits both alike), for two model widths. Prints the median step
# time of each (steps after the first two), the training overhead, and the
# time of one validation pass (held-out loss + greedy answers, the inference
# path) with each; for vittle on the CPU also single model passes (bench_vittle).
#   tests/bench/bench_vittle.sh [BUILD_DIR] [--rounds R] [--steps N] [--threads T]
#                               [--preset "tiny wide large"] [--recipe vittle|ross|vittle_ross] [--backend cpu|cuda]
# large = width 1024, 8 blocks (for a GPU: --backend cuda).
# Not a test (no pass/fail); results go to docs/experiments.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${VT_BINARY_DIR:-$here/../../build}
rounds=3 steps=30 threads=1 presets="tiny wide" method=vittle backend=cpu
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --steps) steps=$2; shift ;;
    --threads) threads=$2; shift ;;
    --preset) presets=$2; shift ;;
    --recipe) method=$2; shift ;;
    --backend) backend=$2; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    -*) echo "bench_vittle.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
V=$build/vistune
work=${VT_TEST_TMP:-$(mktemp -d)}/bench_vittle
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$V" synth --out "$work/shapes" --count 400 --seed 1 --size 32 >/dev/null
"$V" ingest --json "$work/shapes/data.json" --images "$work/shapes" --out "$work/store" --size 32 --lossless \
  --val-fraction 0.1 --threads 1 >/dev/null 2>&1
# tiny = the quickstart model (width 64, 2 blocks); wide = width 256, 4 blocks.
cat > "$work/run.yaml" <<YAML
run_dir: $work/run
recipe: stage2
seed: 1
data:
  store: $work/store
  system_prompt: "Answer briefly."
  seq_len: 192
train:
  steps: $steps
  global_batch: 16
  micro_batch: 8
  lr: 3.0e-3
  warmup_steps: 2
  threads: $threads
  val_every: -1
  val_items: 64
  val_max_new_tokens: 24
model:
  text_config:
    hidden_size: 64
    intermediate_size: 128
    num_hidden_layers: 2
    num_attention_heads: 4
    num_key_value_heads: 2
checkpoint:
  every: 100000
metrics:
  progress: never
  tensorboard: false
YAML
large=(--set model.text_config.hidden_size=1024 --set model.text_config.intermediate_size=2816
       --set model.text_config.num_hidden_layers=8 --set model.text_config.num_attention_heads=16
       --set model.text_config.num_key_value_heads=8)
wide=(--set model.text_config.hidden_size=256 --set model.text_config.intermediate_size=688
      --set model.text_config.num_hidden_layers=4 --set model.text_config.num_attention_heads=8
      --set model.text_config.num_key_value_heads=4)
median_step() { python3 - "$1" <<'PY'
import json, statistics, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(statistics.median(x["step_s"] for x in r if not x.get("eval") and x["step"] > 2))
PY
}
for preset in $presets; do
  extra=(--set train.backend=$backend)
  [ $preset = wide ] && extra+=("${wide[@]}")
  [ $preset = large ] && extra+=("${large[@]}")
  for ((i = 1; i <= rounds; i++)); do
    for recipe in stage2 $method; do
      d="$work/$preset-$recipe-$i"
      "$V" train "$work/run.yaml" --set run_dir="$d" --set recipe=$recipe ${extra[@]+"${extra[@]}"} 2>"$d.log"
      s=$(median_step "$d/metrics.jsonl")
      v=$(sed -n 's/.*validation at step [0-9]*: .*(\([0-9.]*\)s)$/\1/p' "$d.log")
      echo "$preset $recipe $s $v" >> "$work/results.txt"
      echo "$preset round $i $recipe: median step ${s}s, validation ${v}s" >&2
    done
  done
done
echo "== end-to-end vistune train (same store, config and batches; recipe switched) =="
python3 - "$work/results.txt" "$steps" "$rounds" "$method" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
method = sys.argv[4]
print("preset  recipe       median step (ms)  validation (s)   [%s rounds x %s steps, steps > 2]" % (sys.argv[3], sys.argv[2]))
for preset in sorted({r[0] for r in rows}, key=("tiny", "wide", "large").index):
    st = {}
    for recipe in ("stage2", method):
        s = [float(r[2]) for r in rows if r[0] == preset and r[1] == recipe]
        v = [float(r[3]) for r in rows if r[0] == preset and r[1] == recipe]
        st[recipe] = (statistics.median(s), statistics.median(v))
        print("%-7s %-12s %10.2f %18.2f" % (preset, recipe, 1e3 * st[recipe][0], st[recipe][1]))
    # the log gives validation to 0.1 s: a GPU pass can round to 0
    val = "%+.1f%%" % (100 * (st[method][1] / st["stage2"][1] - 1)) if st["stage2"][1] > 0 else "n/a (0.0 s)"
    print("%-7s overhead: training %+.1f%%, validation %s" % (
        preset, 100 * (st[method][0] / st["stage2"][0] - 1), val))
PY
[ "$method" = vittle ] && [ "$backend" = cpu ] || exit 0
echo "== per model pass (bench_vittle: no data loading, no checkpoints; greedy answers' length cannot differ) =="
for preset in $presets deep; do "$build/tests/bench/bench_vittle" --preset $preset --reps 10 --threads "$threads"; done
