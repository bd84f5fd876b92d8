#!/usr/bin/env bash
# vistune bbtune end to end against a separate `vistune serve` process:
#  A  mpirun -np 2, budget-bound (80 queries: 8 steps of 9 + 2 evaluations
#     of 2): the answer loss falls from the starting context, the run stops when the budget cannot pay for another step, the
#     service counted exactly the queries the tuner did (no retries), and it
#     never refused one (its own --max-queries equals the budget);
#  B  one rank, same config: the same context (tolerance 0: the ctx bytes; the values gathered from the service do not depend on who asked);
#  C  mpirun -np 2 while the service is SIGKILLed and restarted on the same
#     endpoint: the tuner reconnects, finishes, and ends with A's context;
#  D  SIGTERM -> checkpoint + exit 3; --resume auto with a stop file -> exit 3
#     after one step; --resume auto, SIGKILL mid-run; --resume auto:
#     A's context again, and the queries it reports (with the ledger of the
#     killed run) are >= what the service counted and <= the budget;
#  E  CraFT (CMA-ES in a subspace) on 2 ranks lowers the loss too;
#  F  the output adapter (logits at the answer positions from the final
#     evaluation, a residual MLP trained locally): on 2 ranks it lowers the
#     tuning items' answer loss below CBBT's own at the same queries (the
#     adapter costs none; held-out loss is reported, not asserted); 1 rank gives the same adapter bytes; a stop-file exit and
#     resume gives them too; resuming the finished run with more adapter
#     steps equals a fresh run with that many;
#  G  white-box prompt tuning (bbtune.method whitebox: the model in-process,
#     true gradient): the service's starting loss, the loss falls, 1 and 2
#     ranks alike, stop-file exit + resume continues exactly;
#  bad configs: one line, exit 2.
. "$(dirname "$0")/lib.sh"
d=$VT_TEST_TMP/bbtune
rm -rf "$d" && mkdir -p "$d"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=${MPIEXEC:-mpirun}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$VISTUNE" synth --out "$d/shapes" --count 32 --seed 3 --size 32 >/dev/null
"$VISTUNE" ingest --json "$d/shapes/data.json" --images "$d/shapes" --out "$d/store" --size 32 --lossless \
  --threads 1 >/dev/null 2>&1
cat > "$d/run.yaml" <<YAML
run_dir: $d/run
recipe: stage2
seed: 5
data:
  store: $d/store
  seq_len: 96
  system_prompt: "Answer briefly."
train:
  steps: 150
  global_batch: 8
  lr: 1.0e-2
  threads: 1
  val_every: 0
checkpoint:
  every: 150
metrics:
  progress: never
bbtune:
  endpoint_file: $d/ep
  method: cbbt
  n_ctx: 2
  seq_len: 100
  init_std: 1.0
  items: 8
  batch: 4
  budget: 80
  steps: 10
  checkpoint_every: 2
  timeout_ms: 1500
  retries: 30
  retry_wait_ms: 200
  zo:
    q: 8
    lr: 0.1
  craft:
    dim: 8
    sigma: 0.1
  adapter:
    enabled: false
    hidden: 32
YAML
# the model (vistune train ignores the bbtune section; leaks: see test_serve.sh)
LSAN_OPTIONS=${LSAN_OPTIONS:-detect_leaks=0} "$VISTUNE" train "$d/run.yaml" 2>"$d/train.log" ||
  fail "training failed: $(tail -3 "$d/train.log")"
ckpt=$d/run/checkpoints/ckpt-000000150

# serve [extra args]: starts the service on $bind, waits for its endpoint file
bind='tcp://127.0.0.1:*'
serve() {
  rm -f "$d/ep"
  "$VISTUNE" serve "$ckpt" --bind "$bind" --endpoint-file "$d/ep" --max-seq 128 --max-batch 8 --threads 1 "$@" \
    2>>"$d/serve.log" &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 300); do [ -s "$d/ep" ] && break; kill -0 $spid 2>/dev/null || break; sleep 0.05; done
  [ -s "$d/ep" ] || fail "service did not start: $(tail -3 "$d/serve.log")"
  ep=$(cat "$d/ep")
}
# counters: sets q, req, rej from `vistune serve --stats`
counters() { read -r _ q _ req _ rej _ <<<"$("$VISTUNE" serve --stats "$ep")" || fail "no stats from $ep"; }
summary() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1/bbtune/summary.json" "$2"; }
final_ctx() { echo "$(summary "$1" checkpoint)/bbtune.safetensors"; }
tensors_equal() { # a tensor (default: the tuned context, ctx) of two checkpoints, byte for byte
  python3 - "$1" "$2" "${3:-ctx}" <<'PY'
import json, struct, sys
def ctx(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    o = h[sys.argv[3]]['data_offsets']; return b[8 + n + o[0]:8 + n + o[1]]
sys.exit(0 if ctx(sys.argv[1]) == ctx(sys.argv[2]) else 1)
PY
}
lines() { cat "$1/bbtune/log.jsonl" 2>/dev/null | wc -l; }
wait_lines() { for _ in $(seq 600); do [ "$(lines "$1")" -ge "$2" ] && return 0; sleep 0.05; done; fail "no step $2 in $1"; }

echo "[$SECONDS s]"
# ---- A: two ranks, the budget binds (the service's own budget is the same)
serve --max-queries 80
"$MPI" -np 2 "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/a" 2>"$d/a.log" || fail "A failed: $(tail -5 "$d/a.log")"
counters
kill -TERM $spid
used=$(summary "$d/a" queries_used); steps=$(summary "$d/a" steps)
l0=$(summary "$d/a" loss_initial); l1=$(summary "$d/a" loss_final)
echo "A: $steps steps, loss $l0 -> $l1, tuner counted $used, service $q queries in $req requests, $rej rejected"
[ "$steps" = 8 ] || fail "A: expected the budget to stop after 8 steps (2 + 8*9 + 2 = 76 <= 80), ran $steps"
[ "$used" = 76 ] && [ "$q" = 76 ] || fail "A: tuner counted $used, service $q; expected 76 both"
[ "$rej" = 0 ] || fail "A: the service refused $rej requests"
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) - 0.01 else 1)" "$l0" "$l1" ||
  fail "A: loss did not fall: $l0 -> $l1"
grep -q "budget cannot pay for another step" "$d/a.log" || fail "A: no budget message"

echo "[$SECONDS s]"
# ---- B: one rank, the same context
serve
bind=$ep # restarts below reuse this port
"$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/b" 2>"$d/b.log" || fail "B failed: $(tail -5 "$d/b.log")"
tensors_equal "$(final_ctx "$d/a")" "$(final_ctx "$d/b")" || fail "B: one rank and two ranks differ"

echo "[$SECONDS s]"
# ---- C: the service is SIGKILLed and restarted on the same endpoint mid-run
"$MPI" -np 2 "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/c" --set bbtune.budget=400 --set bbtune.steps=8 \
  2>"$d/c.log" &
tpid=$!
pids+=("$tpid")
wait_lines "$d/c" 2
# Stopped first, so the request in flight (or the next) times out and the
# tuner must take its retry path: a service killed between two requests is
# replaced without the tuner noticing (ZeroMQ reconnects by itself), which
# would leave the path untested. Killed and restarted once the tuner says so.
kill -STOP $spid
for _ in $(seq 200); do grep -q "reconnecting" "$d/c.log" && break; sleep 0.05; done
grep -q "reconnecting" "$d/c.log" || fail "C: the stopped service was never noticed (the run had ended?)"
kill -9 $spid
serve
wait $tpid || fail "C failed: $(tail -5 "$d/c.log")"
[ "$(summary "$d/c" reconnects)" -ge 1 ] || fail "C: no reconnect counted"
tensors_equal "$(final_ctx "$d/a")" "$(final_ctx "$d/c")" || fail "C: retries changed the result"

echo "[$SECONDS s]"
# ---- D: SIGTERM (exit 3), resume with a stop file (exit 3 after one step),
# resume and SIGKILL mid-run, resume: same context, budget kept
counters; q_before=$q
args=(bbtune "$d/run.yaml" --set run_dir="$d/d" --set bbtune.budget=400 --set bbtune.steps=8)
"$VISTUNE" "${args[@]}" 2>>"$d/d.log" & tpid=$!; pids+=("$tpid")
wait_lines "$d/d" 2
kill -TERM $tpid
rc=0; wait $tpid || rc=$?
[ $rc = 3 ] || fail "D: SIGTERM gave exit $rc, expected 3: $(tail -3 "$d/d.log")"
ls "$d/d/bbtune/checkpoints" | grep -q ckpt- || fail "D: no checkpoint after SIGTERM"
touch "$d/stop" # asks for the same as SIGUSR1: checkpoint, exit 3, file removed
rc=0; "$VISTUNE" "${args[@]}" --resume auto --stop-file "$d/stop" 2>>"$d/d.log" || rc=$?
[ $rc = 3 ] && [ ! -e "$d/stop" ] || fail "D: stop file gave exit $rc (file left: $(ls "$d/stop" 2>/dev/null))"
# Killed as soon as it has resumed (its second resume line in d.log): a step
# line would be no signal, the log keeps the earlier runs' lines, and the few
# steps left take only ~100 ms.
"$VISTUNE" "${args[@]}" --resume auto 2>>"$d/d.log" & tpid=$!; pids+=("$tpid")
for _ in $(seq 3000); do [ "$(grep -c "resumed from" "$d/d.log")" -ge 2 ] && break; sleep 0.01; done
kill -9 $tpid; wait $tpid 2>/dev/null || true
"$VISTUNE" "${args[@]}" --resume auto 2>>"$d/d.log" || fail "D: resume after SIGKILL failed: $(tail -3 "$d/d.log")"
[ "$(grep -c "resumed from" "$d/d.log")" = 3 ] || fail "D: expected three resumes: $(grep resumed "$d/d.log")"
last=$(grep "resumed from" "$d/d.log" | tail -1 | sed -nE 's/.* at step ([0-9]+) .*/\1/p')
[ "$last" -lt 8 ] || fail "D: the SIGKILL came after the run had finished (resumed at step $last)"
tensors_equal "$(final_ctx "$d/a")" "$(final_ctx "$d/d")" || fail "D: stop/kill/resume changed the result"
counters
used=$(summary "$d/d" queries_used)
echo "D: tuner counted $used (with the killed run's ledger), service $((q - q_before))"
[ "$used" -ge $((q - q_before)) ] && [ "$used" -le 400 ] || fail "D: tuner counted $used, service $((q - q_before)), budget 400"

echo "[$SECONDS s]"
# ---- E: CraFT on two ranks
"$MPI" -np 2 "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/e" --set bbtune.method=craft --set bbtune.steps=4 \
  --set bbtune.budget=400 2>"$d/e.log" || fail "E failed: $(tail -5 "$d/e.log")"
l0=$(summary "$d/e" loss_initial); l1=$(summary "$d/e" loss_final)
echo "E: craft loss $l0 -> $l1 in $(summary "$d/e" steps) steps, $(summary "$d/e" queries_used) queries"
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) - 0.01 else 1)" "$l0" "$l1" ||
  fail "E: loss did not fall: $l0 -> $l1"

echo "[$SECONDS s]"
# ---- F: the output adapter
# the same items with a val split for held-out items (the model is the same)
"$VISTUNE" ingest --json "$d/shapes/data.json" --images "$d/shapes" --out "$d/store_val" --size 32 --lossless \
  --threads 1 --val-fraction 0.3 >/dev/null 2>&1 || fail "ingest with a val split failed"
fargs=(--set data.store="$d/store_val" --set bbtune.adapter.enabled=true --set bbtune.items=16 --set bbtune.eval_items=8 --set bbtune.budget=400
       --set bbtune.steps=8 --set bbtune.adapter.steps=200 --set bbtune.adapter.lr=0.003)
counters; q_before=$q
"$MPI" -np 2 "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f1" "${fargs[@]}" 2>"$d/f1.log" ||
  fail "F1 failed: $(tail -5 "$d/f1.log")"
counters
used=$(summary "$d/f1" queries_used)
[ "$used" = $((q - q_before)) ] || fail "F1: tuner counted $used, service $((q - q_before))"
e0=$(summary "$d/f1" eval_loss_initial); e1=$(summary "$d/f1" eval_loss_final); ea=$(summary "$d/f1" adapter_eval_loss_final)
t1=$(summary "$d/f1" loss_final); ta=$(summary "$d/f1" adapter_loss_final)
echo "F: $used queries; held-out loss zero-shot $e0, CBBT $e1, CBBT+adapter $ea; tuning items CBBT $t1, +adapter $ta;" \
  "held-out accuracy $(summary "$d/f1" eval_acc_initial) / $(summary "$d/f1" eval_acc_final) / $(summary "$d/f1" adapter_eval_acc_final)"
# what is asserted: the adapter fits the tuning items (loss below CBBT's at
# the same queries). On held-out items it does NOT help at this size (16
# items, vocab 288: it overfits; docs/blackbox.md), so that is only reported.
python3 -c "import sys; a = [float(x) for x in sys.argv[1:]]; sys.exit(0 if a[1] < 0.8 * a[0] else 1)" \
  "$t1" "$ta" || fail "F1: the adapter did not lower the tuning items' answer loss ($t1 -> $ta)"
[ "$(summary "$d/f1" adapter_steps)" = 200 ] || fail "F1: adapter steps $(summary "$d/f1" adapter_steps)"
"$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f2" "${fargs[@]}" 2>"$d/f2.log" || fail "F2 failed: $(tail -5 "$d/f2.log")"
tensors_equal "$(final_ctx "$d/f1")" "$(final_ctx "$d/f2")" adapter.params || fail "F2: one rank and two ranks differ"
touch "$d/stop"
rc=0; "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f3" "${fargs[@]}" --stop-file "$d/stop" 2>"$d/f3.log" || rc=$?
[ $rc = 3 ] || fail "F3: stop file gave exit $rc: $(tail -3 "$d/f3.log")"
"$MPI" -np 2 "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f3" "${fargs[@]}" --resume auto 2>>"$d/f3.log" ||
  fail "F3: resume failed: $(tail -3 "$d/f3.log")"
tensors_equal "$(final_ctx "$d/f1")" "$(final_ctx "$d/f3")" adapter.params || fail "F3: stop + resume changed the adapter"
cp -r "$d/f1" "$d/f4"
"$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f4" "${fargs[@]}" --set bbtune.adapter.steps=300 --resume auto \
  2>"$d/f4.log" || fail "F4: resume failed: $(tail -3 "$d/f4.log")"
"$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f5" "${fargs[@]}" --set bbtune.adapter.steps=300 2>"$d/f5.log" ||
  fail "F5 failed: $(tail -3 "$d/f5.log")"
[ "$(summary "$d/f4" adapter_steps)" = 300 ] || fail "F4: adapter steps $(summary "$d/f4" adapter_steps)"
tensors_equal "$(final_ctx "$d/f4")" "$(final_ctx "$d/f5")" adapter.params ||
  fail "F4: 200 adapter steps + resume to 300 differ from 300 in one go"
tensors_equal "$(final_ctx "$d/f4")" "$(final_ctx "$d/f5")" adapter.m || fail "F4: Adam state differs"

echo "[$SECONDS s]"
# ---- G: white-box prompt tuning (the model in-process, true gradient): the
# starting loss is the service's (A's, same items, context and seed), a
# short run lowers it, 2 ranks give 1 rank's context, and a stop-file exit +
# resume gives the uninterrupted run's context, byte for byte
{ sed '/endpoint_file:/d' "$d/run.yaml"; printf '  whitebox:\n    checkpoint: %s\n    threads: 1\n' "$ckpt"; } >"$d/wb.yaml"
gargs=(--set bbtune.method=whitebox --set bbtune.budget=0 --set bbtune.steps=10 --set bbtune.zo.lr=0.05)
"$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g1" "${gargs[@]}" 2>"$d/g1.log" || fail "G1 failed: $(tail -5 "$d/g1.log")"
l0=$(summary "$d/g1" loss_initial); l1=$(summary "$d/g1" loss_final)
echo "G: white-box loss $l0 -> $l1 in $(summary "$d/g1" steps) steps, $(summary "$d/g1" queries_used) queries;" \
  "the service's starting loss (A) $(summary "$d/a" loss_initial)"
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-5 * abs(b) else 1)" \
  "$l0" "$(summary "$d/a" loss_initial)" || fail "G1: starting loss $l0 differs from the service's $(summary "$d/a" loss_initial)"
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) - 0.01 else 1)" "$l0" "$l1" ||
  fail "G1: loss did not fall: $l0 -> $l1"
[ "$(summary "$d/g1" steps)" = 10 ] && [ "$(summary "$d/g1" queries_used)" = 14 ] ||
  fail "G1: expected 10 steps and 2 + 10 + 2 queries"
"$MPI" -np 2 "$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g2" "${gargs[@]}" 2>"$d/g2.log" ||
  fail "G2 failed: $(tail -5 "$d/g2.log")"
tensors_equal "$(final_ctx "$d/g1")" "$(final_ctx "$d/g2")" || fail "G2: one rank and two ranks differ"
touch "$d/stop"
rc=0; "$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g3" "${gargs[@]}" --stop-file "$d/stop" 2>"$d/g3.log" || rc=$?
[ $rc = 3 ] || fail "G3: stop file gave exit $rc: $(tail -3 "$d/g3.log")"
"$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g3" "${gargs[@]}" --resume auto 2>>"$d/g3.log" ||
  fail "G3: resume failed: $(tail -3 "$d/g3.log")"
grep -q "resumed from .* at step 1 " "$d/g3.log" || fail "G3: did not resume at step 1: $(grep resumed "$d/g3.log")"
tensors_equal "$(final_ctx "$d/g1")" "$(final_ctx "$d/g3")" || fail "G3: stop + resume changed the context"
tensors_equal "$(final_ctx "$d/g1")" "$(final_ctx "$d/g3")" zo.m || fail "G3: stop + resume changed Adam's state"
# bbtune.groups: only items of those groups (tuning and held-out: all 9
# items of groups 7 and 8 of the 32); bbtune.logits: exact match measured
"$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g5" "${gargs[@]}" --set data.store="$d/store_val" \
  --set bbtune.groups=7 --set bbtune.items=0 --set bbtune.eval_items=100 --set bbtune.steps=0 --set bbtune.batch=1 \
  --set data.seq_len=190 --set bbtune.seq_len=192 \
  2>"$d/g5.log" || fail "G5 failed: $(tail -3 "$d/g5.log")"
sed 's/^  method: cbbt/  groups: [7, 8]\n  method: cbbt/' "$d/wb.yaml" >"$d/wb78.yaml"
"$VISTUNE" bbtune "$d/wb78.yaml" --set run_dir="$d/g6" "${gargs[@]}" --set data.store="$d/store_val" \
  --set bbtune.items=0 --set bbtune.eval_items=100 --set bbtune.steps=0 --set bbtune.logits=true --set bbtune.batch=2 \
  --set data.seq_len=190 --set bbtune.seq_len=192 \
  2>"$d/g6.log" || fail "G6 failed: $(tail -3 "$d/g6.log")"
want=$(python3 -c "import json, sys; print(sum(e['group'] in (7, 8) for e in json.load(open(sys.argv[1]))))" "$d/shapes/data.json")
n5=$(( $(summary "$d/g5" items) + $(summary "$d/g5" eval_items) )); n6=$(( $(summary "$d/g6" items) + $(summary "$d/g6" eval_items) ))
echo "G: groups [7] took $n5 items, [7, 8] $n6 (the store has $want of groups 7-8); exact match held out $(summary "$d/g6" eval_em_initial)"
[ "$n6" = "$want" ] && [ "$n5" -lt "$n6" ] && [ "$n5" -gt 0 ] || fail "G6: groups [7, 8] took $n6 items, the store has $want"
python3 -c "import sys; sys.exit(0 if all(0 <= float(x) <= 1 for x in sys.argv[1:]) else 1)" \
  "$(summary "$d/g6" em_initial)" "$(summary "$d/g6" eval_em_initial)" "$(summary "$d/g6" eval_acc_final)" ||
  fail "G6: exact match / accuracy not measured"
expect_fail 2 "no item in split train of the bbtune.groups" -- \
  "$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g7" "${gargs[@]}" --set bbtune.groups=99
expect_fail 2 "method whitebox runs the model itself" -- "$VISTUNE" bbtune "$d/run.yaml" --set bbtune.method=whitebox
expect_fail 2 "bbtune.whitebox.\* keys need bbtune.method whitebox" -- \
  "$VISTUNE" bbtune "$d/wb.yaml" --set bbtune.endpoint=tcp://127.0.0.1:1
expect_fail 1 "bbtune.whitebox.checkpoint $d/none" -- \
  "$VISTUNE" bbtune "$d/wb.yaml" --set run_dir="$d/g4" --set bbtune.method=whitebox --set bbtune.whitebox.checkpoint="$d/none"

echo "[$SECONDS s]"
# ---- bad configs and usage: one line, exit 2
sed 's/^  n_ctx: 2/  n_ctxx: 2/' "$d/run.yaml" > "$d/bad.yaml"
expect_fail 2 "bad.yaml:[0-9]+: unknown key 'bbtune.n_ctxx'" -- "$VISTUNE" bbtune "$d/bad.yaml"
expect_fail 2 "bbtune.method: 'sgd' is not one of" -- "$VISTUNE" bbtune "$d/run.yaml" --set bbtune.method=sgd
expect_fail 2 "unknown key 'bbtune.adapter.hiden'" -- "$VISTUNE" bbtune "$d/run.yaml" --set bbtune.adapter.hiden=3
expect_fail 2 "bbtune.adapter: need lr > 0" -- "$VISTUNE" bbtune "$d/run.yaml" --set bbtune.adapter.lr=0
expect_fail 2 "expected exactly one RUN.yaml" -- "$VISTUNE" bbtune
expect_fail 2 "bbtune.budget 10 cannot pay" -- "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/f" --set bbtune.budget=10
expect_fail 2 "holds checkpoints of an earlier run" -- "$VISTUNE" bbtune "$d/run.yaml" --set run_dir="$d/a"
kill -TERM $spid
echo "[$SECONDS s] ok"
