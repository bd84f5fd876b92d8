#!/usr/bin/env bash
# vistune serve: key generation (secret key private), usage and load errors
# as one line each; a trained checkpoint loads, the bound endpoint is written
# and SIGTERM stops the service cleanly (scoring is covered by unit.serve).
. "$(dirname "$0")/lib.sh"
d=$VT_TEST_TMP/serve
rm -rf "$d" && mkdir -p "$d"
"$VISTUNE" serve --keygen "$d/srv"
[ "$(stat -c %a "$d/srv.key")" = 600 ] || fail "secret key is not mode 600"
[ "$(wc -c < "$d/srv.pub")" = 41 ] || fail "public key is not 40 z85 characters"
cmp -s "$d/srv.key" "$d/srv.pub" && fail "secret and public key are equal"
expect_fail 2 'vistune serve: expected CHECKPOINT and --bind' -- "$VISTUNE" serve "$d"
expect_fail 2 'vistune serve: --max-batch expects an integer >= 1' -- "$VISTUNE" serve "$d" --bind tcp://127.0.0.1:0 --max-batch 0
expect_fail 1 "vistune serve: .*$d/none/config.json" -- "$VISTUNE" serve "$d/none" --bind 'tcp://127.0.0.1:*'
expect_fail 2 'vistune serve: --curve-clients needs --curve-secret' -- "$VISTUNE" serve "$d" --bind 'tcp://127.0.0.1:*' --curve-clients "$d/srv.pub"

# a real checkpoint from two training steps
cat > "$d/run.yaml" <<YAML
run_dir: $d/run
recipe: stage2
seed: 11
data:
  source: synthetic
  num_samples: 16
  seq_len: 48
train:
  steps: 2
  global_batch: 2
  micro_batch: 2
checkpoint:
  every: 2
metrics:
  progress: never
YAML
# the fixture only: OpenMPI leaks at MPI_Finalize in sanitizer builds (see tests/slurm)
LSAN_OPTIONS=${LSAN_OPTIONS:-detect_leaks=0} "$VISTUNE" train "$d/run.yaml" 2>"$d/train.log" || fail "training failed: $(tail -3 "$d/train.log")"
ckpt=$d/run/checkpoints/ckpt-000000002
"$VISTUNE" serve "$ckpt" --bind 'tcp://127.0.0.1:*' --endpoint-file "$d/ep" --max-seq 64 2>"$d/serve.log" &
pid=$!
for _ in $(seq 300); do [ -s "$d/ep" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
grep -Eq '^tcp://127\.0\.0\.1:[0-9]+$' "$d/ep" || { kill $pid 2>/dev/null; fail "no endpoint written: $(cat "$d/serve.log")"; }
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc = 0 ] || fail "serve exited $rc on SIGTERM: $(cat "$d/serve.log")"
mkdir -p "$d/empty"
expect_fail 1 "vistune serve: .*empty/config.json" -- "$VISTUNE" serve "$d/empty" --bind 'tcp://127.0.0.1:*'
expect_fail 1 "vistune serve: limits out of range" -- "$VISTUNE" serve "$ckpt" --bind 'tcp://127.0.0.1:*' --max-seq 100000
echo ok
