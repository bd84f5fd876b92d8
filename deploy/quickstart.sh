#!/usr/bin/env bash
# The main job on this machine: install dependencies, fetch data, build,
# synthesise the built-in shapes set, ingest it into a sample store, train
# the tiny quickstart model under mpirun (CPU: NP trainer ranks plus one
# loader rank that decodes and streams the batches), then evaluate it under
# distribution shifts through the scheduler and write the robustness report.
# Prints where the checkpoint, metrics and report are. Re-running resumes
# (training from its newest checkpoint, evaluation skips finished tasks).
#   deploy/quickstart.sh [NP]      NP = trainer ranks (default 2); VT_LOADERS loader ranks (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${1:-2}
LOADERS=${VT_LOADERS:-1}
if [ "${VT_SKIP_INSTALL:-0}" != 1 ]; then
  deploy/install-deps.sh
  deploy/fetch-data.sh
fi
deploy/build.sh
VISTUNE=${VISTUNE:-build/vistune}
DATA=runs/quickstart-data
# 48 px: the 3x3 layout's cells are the model's 16 px patches. Besides the
# full set (store), two subsets for the first training phases: store_count
# ("How many shapes are there?") and store_easy (count, color and grid).
if [ "$(cat "$DATA/version" 2>/dev/null)" != 2 ]; then
  rm -rf "$DATA"
  # A run of an earlier quickstart (other model and data) cannot be resumed.
  if [ -d runs/quickstart ]; then
    old=runs/quickstart.old-$(date +%Y%m%d-%H%M%S)
    mv runs/quickstart "$old"
    echo "quickstart: moved the earlier quickstart's run to $old"
  fi
  mkdir -p "$DATA"
  synth_ingest() { # NAME COUNT SEED [synth options]
    "$VISTUNE" synth --out "$DATA/$1" --count "$2" --seed "$3" --size 48 --force "${@:4}"
    "$VISTUNE" ingest --json "$DATA/$1/data.json" --images "$DATA/$1" --out "$DATA/store${1#shapes}" \
      --size 48 --lossless --val-fraction 0.1 --force
  }
  synth_ingest shapes 8000 1
  synth_ingest shapes_count 1000 2 --tasks count
  synth_ingest shapes_easy 4000 4 --tasks count,color,grid
  echo 2 > "$DATA/version"
fi
source deploy/mpi-env.sh
start=$(date +%s)
rc=0
# The curriculum: count questions, then count/color/grid, then the full set.
VISTUNE=$VISTUNE deploy/train-curriculum.sh "$DATA" "$NP" "$LOADERS" deploy/configs/quickstart.yaml || rc=$?
echo "quickstart: train exited $rc after $(( $(date +%s) - start )) s"
echo "quickstart: checkpoints in runs/quickstart/checkpoints ($(ls runs/quickstart/checkpoints 2>/dev/null | tail -n1))"
echo "quickstart: metrics in runs/quickstart/metrics.jsonl and runs/quickstart/tb/ (tensorboard --logdir runs/quickstart/tb)"
[ "$rc" = 0 ] || exit $rc

# Robustness evaluation of the newest checkpoint: rank 0 dispatches tasks
# (checkpoint x shift x severity x shard) to every rank, results go to an
# LMDB result store, and the report summarises them.
start=$(date +%s)
mpirun -np "$NP" "$VISTUNE" sched deploy/configs/quickstart.yaml --results runs/quickstart/results
"$VISTUNE" report --results runs/quickstart/results --out runs/quickstart/report
echo "quickstart: evaluation took $(( $(date +%s) - start )) s; open runs/quickstart/report/report.html"

