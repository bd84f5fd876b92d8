#!/usr/bin/env bash
# Fixture cleanup: cancels every job, stops the daemons by PID and removes the
# cluster's directory; checks that no daemon is left behind.
set -euo pipefail
cluster=$VT_SOURCE_DIR/deploy/slurm/local-cluster.sh
[ -d "$VT_SLURM_DIR" ] || { echo "no cluster to stop"; exit 0; }
pids=$(cat "$VT_SLURM_DIR"/slurmctld.pid "$VT_SLURM_DIR"/slurmd.pid "$VT_SLURM_DIR"/munge/munged.pid 2>/dev/null || true)
"$cluster" clean
for p in $pids; do
  if kill -0 "$p" 2>/dev/null; then echo "FAIL: daemon $p still running" >&2; exit 1; fi
done
echo "cluster stopped"
