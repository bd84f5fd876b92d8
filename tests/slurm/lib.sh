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

# In sanitizer builds: OpenMPI's dlopen'd components leak at MPI_Finalize from
# frames LeakSanitizer cannot name. Jobs inherit this (sbatch --export=ALL).
export LSAN_OPTIONS=${LSAN_OPTIONS:-detect_leaks=0}
export OMP_NUM_THREADS=1

# tiny_data: a small synthetic store in ./store (96 items at 32 px, a quarter
# held out as the evaluation split), as in tests/integration/test_eval_sched.sh.
tiny_data() {
  "$VISTUNE" synth --out synth --count 96 --seed 3 --size 32 > /dev/null || fail "synth"
  "$VISTUNE" ingest --json synth/data.json --images synth --out store --size 32 --lossless \
    --val-fraction 0.25 --threads 1 > /dev/null || fail "ingest"
}

# tiny_run STEPS EVERY [BATCH] [RUN_DIR]: the train/eval sections of a tiny
# run config (the tests append their slurm: section). Loss on every step.
tiny_run() {
  cat <<YAML
run_dir: ${4:-run}
recipe: stage2
seed: 5
data: {source: store, store: store, system_prompt: "", seq_len: 160}
train: {steps: $1, global_batch: ${3:-4}, lr: 3.0e-3, threads: 1}
checkpoint: {every: $2}
metrics: {log_every: 1, tensorboard: false}
eval: {split: val, shifts: [gaussian_noise, char_swap], severities: [1, 5], shards: 2, batch_size: 4,
       max_new_tokens: 4, lease_seconds: 2}
YAML
}

# losses FILE: "step loss" per training step of a metrics.jsonl, the last line
# per step (a resumed run appends), exactly as written (no rounding).
losses() {
  grep -v '"eval":true' "$1" | sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' |
    awk '{l[$1] = $2} END {for (s in l) print s, l[s]}' | sort -n
}
