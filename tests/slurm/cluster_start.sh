#!/usr/bin/env bash
# Fixture setup: starts the local Slurm for the slurm.* tests. Where it cannot
# run (no root, no packages) it says so and succeeds: each test then skips.
set -euo pipefail
cluster=$VT_SOURCE_DIR/deploy/slurm/local-cluster.sh
if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null; then
  echo "local Slurm not started (needs root and slurm-wlm munge); slurm tests will skip"
  exit 0
fi
start=$(date +%s%N)
"$cluster" start
"$cluster" status
echo "cluster up in $(( ($(date +%s%N) - start) / 1000000 )) ms"
