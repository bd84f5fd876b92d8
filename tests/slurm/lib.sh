# Shared helpers for the Slurm tests (sourced): the integration helpers plus
# the cluster's environment and job waiting.
. "$VT_SOURCE_DIR/tests/integration/lib.sh"
: "${VT_SLURM_DIR:?run through ctest}"
CLUSTER=$VT_SOURCE_DIR/deploy/slurm/local-cluster.sh

# Skip (77) when there is no cluster: no root or no Slurm packages.
need_cluster() {
  if ! "$CLUSTER" status >/dev/null 2>&1; then
    echo "SKIP: the local Slurm cluster is not running (needs root and slurm-wlm munge)"
    exit 77
  fi
  eval "$("$CLUSTER" env)"
  export SLURM_CONF
}

# job_field ID FIELD: one field of `scontrol show job` (e.g. JobState, ExitCode).
job_field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }

# wait_done ID SECONDS: until the job has left the queue (any final state).
wait_done() {
  local id=$1 limit=$2 t=0 state
  while :; do
    state=$(job_field "$id" JobState)
    case "$state" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) return 0 ;;
    esac
    [ "$t" -ge $((limit * 10)) ] && fail "job $id still $state after ${limit}s"
    sleep 0.1; t=$((t + 1))
  done
}
