#!/usr/bin/env bash
# The quickstart's training curriculum (docs/training.md, "Held-out answer
# accuracy"): steps 1-400 on count questions only, so the decoder uses the
# image tokens from the start; to step 3000 on count, color and grid; then
# the full set to the config's train.steps. Trained on the full set alone,
# the tiny model stays at chance on every type. Each phase resumes from the
# last one's checkpoint (its schedule restarts); a re-run resumes.
#   deploy/train-curriculum.sh DATA_DIR NP LOADERS RUN.yaml [--set KEY=VALUE ...]
# DATA_DIR holds store, store_count and store_easy (deploy/quickstart.sh
# makes them); NP trainer ranks plus LOADERS loader ranks under mpirun.
# Environment (experiments; unset = the quickstart's curriculum):
#   CURRICULUM_STEPS="400 3000"  where phases 1 and 2 end
#   CURRICULUM_LAST="--set train.lr=3e-4"  extra arguments for the last phase only
set -euo pipefail
data=$1 np=$2 loaders=$3 config=$4
shift 4
VISTUNE=${VISTUNE:-build/vistune}
read -r end1 end2 <<<"${CURRICULUM_STEPS:-400 3000}"
read -r -a last <<<"${CURRICULUM_LAST:-}"
source "$(dirname "$0")/mpi-env.sh"
train=(mpirun -np $((np + loaders)) "$VISTUNE" train "$config" --resume auto --set stream.loaders_per_node="$loaders"
       "$@")
"${train[@]}" --set data.store="$data/store_count" --set train.steps="$end1" --set data.seq_len=96 --set train.val_every=0
"${train[@]}" --set data.store="$data/store_easy" --set train.steps="$end2" --set train.val_every=0
"${train[@]}" --set data.store="$data/store" ${last[@]+"${last[@]}"}
