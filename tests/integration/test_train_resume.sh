# vistune train on the synthetic source: SIGKILL at random steps then
# --resume auto gives a bit-identical loss curve; SIGUSR1 gives a complete
# checkpoint and exit 3; a half-written checkpoint is never resumed from;
# 1, 2 and 4 trainer ranks with one global batch give the same losses within
# the stated tolerance, and so does resuming with another rank count;
# TensorBoard files read back; config errors are one clear line.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
TOL=1e-5   # relative, stated in docs/training.md
rm -rf "$T"/*
cat > "$T/run.yaml" <<YAML
run_dir: $T/ref
recipe: stage2
seed: 11
data:
  source: synthetic
  num_samples: 96
  seq_len: 48
train:
  steps: 12
  global_batch: 8
  micro_batch: 2
  lr: 3.0e-3
  warmup_steps: 2
checkpoint:
  every: 3
  keep_last: 2
  pin_every: 6
metrics:
  log_every: 100
  progress: never
YAML
run() { "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }
# In the background the signal must reach vistune itself, not a subshell.
run_bg() { exec "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }

# Reference, uninterrupted.
run "$T/ref" 2>"$T/ref.log" || fail "reference run failed: $(tail -3 "$T/ref.log")"
[ "$($L steps "$T/ref/metrics.jsonl")" = "$(seq -s ' ' 1 12)" ] || fail "reference steps"

# SIGKILL at three random points, each time resuming with --resume auto.
rm -rf "$T/kill"
for kill_at in $((RANDOM % 3 + 2)) $((RANDOM % 4 + 5)) $((RANDOM % 3 + 9)); do
  # Only lines this run writes count (the file keeps the earlier runs' steps).
  n0=0; [ -f "$T/kill/metrics.jsonl" ] && n0=$(wc -l < "$T/kill/metrics.jsonl")
  run_bg "$T/kill" --resume auto 2>>"$T/kill.log" &
  pid=$!
  for _ in $(seq 600); do
    last=$(tail -n +$((n0 + 1)) "$T/kill/metrics.jsonl" 2>/dev/null | tail -n1 | sed -n 's/^{"step":\([0-9]*\),.*/\1/p' || true)
    [ -n "$last" ] && [ "$last" -ge "$kill_at" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
done
run "$T/kill" --resume auto 2>>"$T/kill.log" || fail "final resume failed: $(tail -3 "$T/kill.log")"
grep -q "resumed from" "$T/kill.log" || fail "no resume happened"
$L same "$T/kill/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "SIGKILL + resume is not bit-identical"

# A half-written newer checkpoint (.tmp) and a renamed one without COMPLETE
# are ignored by --resume auto; --resume PATH on the latter fails clearly.
mkdir -p "$T/half"
cp -r "$T/ref/checkpoints" "$T/half/"
cp "$T/ref/checkpoints/ckpt-000000012" -r "$T/half/checkpoints/ckpt-000000030.tmp"
cp -r "$T/ref/checkpoints/ckpt-000000012" "$T/half/checkpoints/ckpt-000000031"
rm "$T/half/checkpoints/ckpt-000000031/COMPLETE"
run "$T/half" --resume auto --set train.steps=14 2>"$T/half.log" || fail "resume past half-written failed"
grep -q "ignoring $T/half/checkpoints/ckpt-000000031: incomplete" "$T/half.log" || fail "no warning for the incomplete checkpoint"
grep -q "resumed from $T/half/checkpoints/ckpt-000000012 at step 12" "$T/half.log" || fail "wrong checkpoint chosen"
expect_fail 1 "ckpt-000000031: incomplete \(no COMPLETE marker\)" -- \
  run "$T/half2" --resume "$T/half/checkpoints/ckpt-000000031"

# SIGUSR1: complete checkpoint at the step boundary, exit 3, then resume.
run_bg "$T/usr1" --set train.steps=400 2>"$T/usr1.log" &
pid=$!
for _ in $(seq 600); do [ -s "$T/usr1/metrics.jsonl" ] && break; sleep 0.02; done
kill -USR1 $pid
rc=0; wait $pid || rc=$?
[ $rc = 3 ] || fail "SIGUSR1 gave exit $rc, expected 3: $(tail -3 "$T/usr1.log")"
ck=$(ls -d "$T"/usr1/checkpoints/ckpt-* | tail -n1)
[ -f "$ck/COMPLETE" ] || fail "no COMPLETE in $ck"
step=$(basename "$ck" | sed 's/ckpt-0*//')
[ "$($L steps "$T/usr1/metrics.jsonl" | awk '{print $NF}')" = "$step" ] || fail "checkpoint is not at the last step"

# A stop file (what the Slurm template passes the time-limit warning as) does
# the same under 2 ranks and is removed once acted on.
run_bg2() { "${MPIEXEC:-mpirun}" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$1" "${@:2}"; }
run_bg2 "$T/stopfile" --set train.steps=400 --stop-file "$T/stop-request" 2>"$T/stopfile.log" &
pid=$!
for _ in $(seq 1500); do [ -s "$T/stopfile/metrics.jsonl" ] && break; sleep 0.02; done
touch "$T/stop-request"
rc=0; wait $pid || rc=$?
[ $rc = 3 ] || fail "the stop file gave exit $rc, expected 3: $(tail -3 "$T/stopfile.log")"
[ ! -e "$T/stop-request" ] || fail "the stop file was not removed"
ck=$(ls -d "$T"/stopfile/checkpoints/ckpt-* | tail -n1)
[ -f "$ck/COMPLETE" ] || fail "stop file: no COMPLETE in $ck"
[ "$($L steps "$T/stopfile/metrics.jsonl" | awk '{print $NF}')" = "$(basename "$ck" | sed 's/ckpt-0*//')" ] ||
  fail "stop file: checkpoint is not at the last step"

# TensorBoard file reads back with an independent reader.
tb=$(ls "$T"/ref/tb/events.out.tfevents.*)
python3 "$VT_SOURCE_DIR/tests/tools/read_tfevents.py" "$tb" > "$T/tb.txt" || fail "TensorBoard file unreadable"
[ "$(grep -c $'\ttrain/loss\t' "$T/tb.txt")" = 12 ] || fail "expected 12 loss scalars"

# Rank counts: 1, 2, 4 trainers, same global batch -> same losses within TOL;
# resume the 1-rank reference's (pinned) step-6 checkpoint with 2 ranks.
if [ -n "${MPIEXEC:-}" ]; then
  # np 4 with 10 KiB buckets: most of them start reducing during backward.
  for np in 2 4; do
    mb=4; [ $np = 4 ] && mb=0.01
    "$MPIEXEC" -n $np "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/np$np" --set train.allreduce_bucket_mb=$mb \
      2>"$T/np$np.log" || fail "np=$np failed: $(tail -3 "$T/np$np.log")"
    $L close $TOL "$T/np$np/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "np=$np losses differ"
  done
  grep -Eq "allreduce: [1-9][0-9]* gradient bucket\(s\) of 0.01 MiB started during" "$T/np4.log" ||
    fail "no bucket overlapped backward: $(grep allreduce "$T/np4.log")"
  mkdir -p "$T/elastic/checkpoints"
  cp -r "$T/ref/checkpoints/ckpt-000000006" "$T/elastic/checkpoints/"
  "$MPIEXEC" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/elastic" --resume auto 2>"$T/elastic.log" \
    || fail "elastic resume failed: $(tail -3 "$T/elastic.log")"
  grep -q "saved with 1 trainer ranks, now 2" "$T/elastic.log" || fail "elastic resume did not load"
  $L close $TOL "$T/elastic/metrics.jsonl" "$T/ref/metrics.jsonl" || fail "elastic resume losses differ"
fi

# Config errors: one line naming the file and key, exit 2.
printf 'train:\n  stepz: 3\n' > "$T/bad.yaml"
expect_fail 2 "bad.yaml.*stepz" -- "$VISTUNE" train "$T/bad.yaml"
printf 'train:\n  allreduce_bucket_mb: 0\n' > "$T/bad3.yaml"
expect_fail 2 "train.allreduce_bucket_mb must be in" -- "$VISTUNE" train "$T/bad3.yaml"
printf 'recipe: vittle9\n' > "$T/bad2.yaml"
expect_fail 2 "recipe: unknown 'vittle9'" -- "$VISTUNE" train "$T/bad2.yaml"
expect_fail 2 "exactly one RUN.yaml" -- "$VISTUNE" train
echo ok
