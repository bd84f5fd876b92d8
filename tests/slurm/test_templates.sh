#!/usr/bin/env bash
# The three templates rendered from one run config: valid bash, and accepted by
# sbatch --test-only on the real cluster (`vistune submit --check`); a request
# the cluster cannot satisfy is rejected with one line.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP"
gres=0; grep -q "Gres=gpu" "$SLURM_CONF" && gres=1
cat > run.yaml <<YAML
train:
  steps: 10
slurm:
  time: "00:05:00"
  signal_seconds: 60
  cpus_per_task: 1
  trainers_per_node: 2
  loaders_per_node: 1
  gpus_per_node: $((gres * 2))
  partition: debug
  env: {OMP_PROC_BIND: close}
  eval: {array: 3, max_parallel: 2, gpus: $gres}
YAML
for kind in train eval nightly; do
  "$VISTUNE" submit "$kind" run.yaml --dry-run > "$kind.sbatch" || fail "$kind: dry run"
  bash -n "$kind.sbatch" || fail "$kind: not valid bash"
  grep -q '^#SBATCH --kill-on-invalid-dep=yes$' "$kind.sbatch" || fail "$kind: no kill-on-invalid-dep"
  err=$("$VISTUNE" submit "$kind" run.yaml --check 2>&1) || fail "$kind: --check failed: $err"
  echo "$kind: $err"
done
grep -q '^#SBATCH --ntasks-per-node=3$' train.sbatch || fail "train: 2 trainers + 1 loader"
grep -q '^#SBATCH --array=0-2%2$' eval.sbatch || fail "eval: array line"
[ ! -e logs ] || fail "--check wrote files"
# 8 nodes do not exist here: sbatch --test-only says so, in one line.
expect_fail 1 "vistune submit: sbatch --test-only rejected the train job: .*(not available|node)" -- \
  "$VISTUNE" submit train run.yaml --check --set slurm.nodes=8
