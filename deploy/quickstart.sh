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
if [ ! -d "$DATA/store" ]; then
  mkdir -p "$DATA"
  "$VISTUNE" synth --out "$DATA/shapes" --count 4000 --seed 1 --size 32 --force
  "$VISTUNE" ingest --json "$DATA/shapes/data.json" --images "$DATA/shapes" --out "$DATA/store" \
    --size 32 --lossless --val-fraction 0.1 --force
fi
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
start=$(date +%s)
rc=0
mpirun -np $((NP + LOADERS)) "$VISTUNE" train deploy/configs/quickstart.yaml --resume auto \
  --set stream.loaders_per_node="$LOADERS" || rc=$?
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

