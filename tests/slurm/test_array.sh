#!/usr/bin/env bash
# The eval template as a job array of 5 workers, at most 2 at a time: every
# shard index runs exactly once and sees the array's size.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP"
rm -rf logs shards.txt
cat > run.yaml <<YAML
slurm:
  time: "1"
  vistune: $VT_SOURCE_DIR/tests/slurm/step.sh
  eval: {array: 5, max_parallel: 2}
YAML
id=$("$VISTUNE" submit eval run.yaml) || fail "submit failed"
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -r -j "$id" 2>/dev/null)" ] && break
  sleep 0.1
done
[ -z "$(squeue -h -r -j "$id" 2>/dev/null)" ] || fail "array $id still queued"
cat shards.txt
[ "$(wc -l < shards.txt)" = 5 ] || fail "expected 5 shard runs"
[ "$(awk '{print $2}' shards.txt | sort -n | tr '\n' ' ')" = "0 1 2 3 4 " ] || fail "shards not 0..4 once each"
[ "$(awk '{print $4}' shards.txt | sort -u)" = 5 ] || fail "num-shards not 5 everywhere"
for i in 0 1 2 3 4; do
  grep -q "shard $i/5 start" "logs/vistune-eval-${id}_$i.out" || fail "log of task $i"
  grep -q "shard $i exit code 0" "logs/vistune-eval-${id}_$i.out" || fail "exit of task $i"
done
