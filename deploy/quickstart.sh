#!/usr/bin/env bash
# The main job on this machine: install dependencies, fetch data, build,
# synthesise the built-in shapes set, ingest it into a sample store, and
# train the tiny quickstart model under mpirun (CPU). Prints where the
# checkpoint and metrics are. Re-running resumes (--resume auto).
#   deploy/quickstart.sh [NP]      NP = MPI ranks (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${1:-2}
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
mpirun -np "$NP" "$VISTUNE" train deploy/configs/quickstart.yaml --resume auto || rc=$?
echo "quickstart: train exited $rc after $(( $(date +%s) - start )) s"
echo "quickstart: checkpoints in runs/quickstart/checkpoints ($(ls runs/quickstart/checkpoints 2>/dev/null | tail -n1))"
echo "quickstart: metrics in runs/quickstart/metrics.jsonl and runs/quickstart/tb/ (tensorboard --logdir runs/quickstart/tb)"
exit $rc
