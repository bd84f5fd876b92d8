# Loader ranks (stream.loaders_per_node): under mpirun the node's last ranks
# only read the store, decode and assemble batches and stream them to the
# trainers over ZeroMQ. A batch is a pure function of its request, so 2
# trainers + 1 loader (np 3, ipc), 2 trainers + 2 loaders over tcp (np 4)
# and 2 self-loading trainers (np 2) log bit-identical losses; a resume with
# loaders continues that curve exactly; impossible splits are one clear line.
source "$(dirname "$0")/lib.sh"
T=$VT_TEST_TMP
L="python3 $VT_SOURCE_DIR/tests/tools/losses.py"
MPI=${MPIEXEC:-mpirun}
rm -rf "$T"/*
"$VISTUNE" synth --out "$T/shapes" --count 64 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$T/shapes/data.json" --images "$T/shapes" --out "$T/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
cat > "$T/run.yaml" <<YAML
run_dir: $T/plain
recipe: stage2
data:
  store: $T/store
  system_prompt: "Answer briefly."
  seq_len: 96
  augment: {jitter: 0.1}
train:
  steps: 8
  global_batch: 8
  micro_batch: 2
  lr: 3.0e-3
  val_every: 0
checkpoint:
  every: 4
stream: {loaders_per_node: 0, transport: auto}
metrics:
  progress: never
  log_every: 1
  tensorboard: false
YAML
train() { local np=$1 dir=$2; shift 2
  "$MPI" -n "$np" "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/$dir" "$@" >"$T/$dir.log" 2>&1 ||
    fail "np $np $dir: $(tail -5 "$T/$dir.log")"; }

train 2 plain
train 3 ipc --set stream.loaders_per_node=1
grep -q "2 trainer rank(s), 1 loader rank(s)" "$T/ipc.log" || fail "no loader rank: $(grep 'train:' "$T/ipc.log")"
train 4 tcp --set stream.loaders_per_node=2 --set stream.transport=tcp
grep -q "2 trainer rank(s), 2 loader rank(s)" "$T/tcp.log" || fail "no loader ranks over tcp"
[ "$($L steps "$T/plain/metrics.jsonl")" = "$(seq -s ' ' 1 8)" ] || fail "plain run steps"
for d in ipc tcp; do
  $L same "$T/$d/metrics.jsonl" "$T/plain/metrics.jsonl" || fail "$d: losses differ from self-loading trainers"
  [ "$($L steps "$T/$d/metrics.jsonl")" = "$(seq -s ' ' 1 8)" ] || fail "$d: steps"
done
grep -q '"data_stall"' "$T/ipc/metrics.jsonl" || fail "no data_stall in metrics"

# Resume with loaders from the step-4 checkpoint: the same curve.
mkdir -p "$T/resume/checkpoints"
cp -r "$T/plain/checkpoints/ckpt-000000004" "$T/resume/checkpoints/"
train 3 resume --set stream.loaders_per_node=1 --resume auto
[ "$($L steps "$T/resume/metrics.jsonl")" = "5 6 7 8" ] || fail "resume with loaders: steps"
$L close 0 "$T/resume/metrics.jsonl" "$T/plain/metrics.jsonl" || fail "resume with loaders: losses differ"

# Bad splits and values: every rank stops with the same clear line, nobody hangs.
bad() { local pattern=$1; shift
  local rc=0
  "$MPI" "$@" > "$T/bad.log" 2>&1 || rc=$?
  [ "$rc" != 0 ] || fail "'$*' succeeded"
  grep -q "^vistune train: .*$pattern" "$T/bad.log" || fail "'$*' said: $(cat "$T/bad.log")"; }
bad "3 loader ranks per node leave no trainer" -n 3 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/bad" \
  --set stream.loaders_per_node=3
bad "transport 'udp' is not auto, ipc or tcp" -n 2 "$VISTUNE" train "$T/run.yaml" --set run_dir="$T/bad" \
  --set stream.loaders_per_node=1 --set stream.transport=udp
echo "loaders: np 3 (ipc) and np 4 (tcp) == np 2 self-loading, bit for bit; resume exact"
