#!/usr/bin/env bash
# Black-box tuning at toy scale (issue 7, docs/experiments.md "Black-box
# tuning: accuracy vs query budget"): the quickstart's frozen model behind
# its own `vistune serve`, 4 context vectors learned for the rule group 8
# items ("answer: red": the format is not in the question) with CBBT,
# CBBT + output adapter (same run, the adapter costs no queries), CraFT and
# white-box prompt tuning (backprop through the frozen model in-process; one
# forward+backward on a minibatch counts as one query) at each query budget,
# for each seed, and the adapter alone on the starting context. Held-out metrics from the answer-position logits
# (teacher-forced): whole-answer exact match of the argmax, answer-token
# accuracy, answer loss; zero-shot = the starting context (4 random vectors
# at the embedding table's scale, the same for every method of a seed).
# Then the cosine between CBBT's zeroth-order estimate and the true gradient
# (same context, minibatch, eps, directions) for q in 1..256, at the
# starting context and at the white-box run's final context.
#   tests/experiments/blackbox_budget.sh [SEED ...]        (default 1 2 3)
#   BUDGETS="250 500 1000" (default) sets the budgets.
# Needs the quickstart's model and data: run deploy/quickstart.sh first, or
# point QS_RUN / QS_DATA at them (read only). Results: runs/exp-blackbox.
# Not a test (no pass/fail); re-running starts afresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
QS_RUN=${QS_RUN:-runs/quickstart} QS_DATA=${QS_DATA:-runs/quickstart-data}
VISTUNE=${VISTUNE:-build/vistune}
out=${OUT:-runs/exp-blackbox}
ckpt=$QS_RUN/checkpoints/ckpt-000006000
[ "$(cat "$QS_DATA/version" 2>/dev/null)" = 2 ] && [ -f "$ckpt/model.safetensors" ] ||
  { echo "blackbox_budget: run deploy/quickstart.sh first ($QS_DATA, $ckpt)" >&2; exit 2; }
seeds=${*:-1 2 3}
budgets=${BUDGETS:-250 500 1000}
rm -rf "$out" && mkdir -p "$out"
spid=
cleanup() { [ -z "$spid" ] || kill -TERM "$spid" 2>/dev/null || true; }
trap cleanup EXIT
"$VISTUNE" serve "$ckpt" --bind 'tcp://127.0.0.1:*' --endpoint-file "$out/ep" --max-seq 200 --max-batch 8 \
  --threads 1 2>"$out/serve.log" &
spid=$!
for _ in $(seq 600); do [ -s "$out/ep" ] && break; kill -0 $spid 2>/dev/null || break; sleep 0.1; done
[ -s "$out/ep" ] || { echo "blackbox_budget: the service did not start: $(tail -3 "$out/serve.log")" >&2; exit 1; }
cat > "$out/run.yaml" <<YAML
run_dir: $out/unused
seed: 1
data:
  store: $QS_DATA/store
  tokenizer: builtin:bytes
  system_prompt: "Answer briefly."
  seq_len: 192
bbtune:
  endpoint_file: $out/ep
  n_ctx: 4
  seq_len: 196
  init_std: 0.02         # the embedding table's row rms is 0.026
  groups: [8]
  items: 64
  eval_items: 64
  batch: 8
  steps: 100000
  logits: true
  checkpoint_every: 100000
  zo:
    q: 16
    lr: 0.03
  craft:
    dim: 16
    sigma: 0.005         # A z per coordinate ~ sigma * sqrt(dim) = 0.02, the embedding scale
  adapter:
    hidden: 64
    steps: 300
    lr: 1.0e-3
  whitebox:
    checkpoint: $ckpt
    threads: 1
YAML
# the service's methods take no whitebox section, white-box no endpoint
sed '/^  whitebox:/,$d' "$out/run.yaml" >"$out/bb.yaml"
sed '/endpoint_file:/d' "$out/run.yaml" >"$out/wb.yaml"
{ cat "$out/wb.yaml"; printf '    cosine_q: [1, 4, 16, 64, 256]\n    cosine_seeds: 1\n'; } >"$out/cos.yaml"
t0=$SECONDS
for seed in $seeds; do
  for b in $budgets; do
    for m in cbbt craft whitebox; do
      d=$out/$m-s$seed-b$b
      set=(--set run_dir="$d" --set seed="$seed" --set bbtune.budget="$b" --set bbtune.method=$m)
      if [ $m = whitebox ]; then
        "$VISTUNE" bbtune "$out/wb.yaml" "${set[@]}" >"$d.log" 2>&1
      else
        "$VISTUNE" bbtune "$out/bb.yaml" "${set[@]}" \
          $([ $m = cbbt ] && echo --set bbtune.adapter.enabled=true) >"$d.log" 2>&1
      fi
      echo "seed $seed budget $b $m: $((SECONDS - t0)) s" >&2
    done
  done
done
# The adapter alone: on the starting context (no tuning step; the budget pays
# only the two evaluations), to separate its gain from CBBT's.
for seed in $seeds; do
  d=$out/adapteronly-s$seed-b0
  "$VISTUNE" bbtune "$out/bb.yaml" --set run_dir="$d" --set seed="$seed" --set bbtune.budget=0 --set bbtune.steps=0 \
    --set bbtune.adapter.enabled=true >"$d.log" 2>&1
  echo "adapter only seed $seed: $((SECONDS - t0)) s" >&2
done
# ZO estimate vs true gradient: at the starting context (steps 0) and after
# 300 white-box steps, 3 minibatch/direction seeds each.
for seed in $seeds; do
  d=$out/cosine-s$seed
  "$VISTUNE" bbtune "$out/cos.yaml" --set run_dir="$d" --set seed="$seed" --set bbtune.method=whitebox --set bbtune.budget=0 --set bbtune.steps=300 \
    >"$d.log" 2>&1
  echo "cosine seed $seed: $((SECONDS - t0)) s" >&2
done
python3 - "$out" "$budgets" $seeds <<'PY'
import json, math, os, sys
out, budgets, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def ms(xs):
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s
def cell(xs, pct):
    m, s = ms(xs)
    return f"{100*m:.1f} ± {100*s:.1f}" if pct else f"{m:.3f} ± {s:.3f}"
S = {}
for f in os.listdir(out):
    p = os.path.join(out, f, "bbtune", "summary.json")
    if os.path.exists(p) and not f.startswith("cosine"):
        m, s, b = f.split("-")
        S[(m, s[1:], b[1:])] = json.load(open(p))
print(f"seeds {' '.join(seeds)}; held out: exact match % / answer-token accuracy % / answer loss (mean ± std)")
print("| method | budget | queries used | steps | exact match % | token acc % | loss |")
print("|---|---|---|---|---|---|---|")
z = [S[("cbbt", s, budgets[0])] for s in seeds]
print(f"| zero-shot (start) | 0 | 0 | 0 | {cell([x['eval_em_initial'] for x in z], 1)} | "
      f"{cell([x['eval_acc_initial'] for x in z], 1)} | {cell([x['eval_loss_initial'] for x in z], 0)} |")
xs = [S[("adapteronly", s, "0")] for s in seeds]
print(f"| adapter only (start context) | 0 | {ms([x['queries_used'] for x in xs])[0]:.0f} | 0 | "
      f"{cell([x['adapter_eval_em_final'] for x in xs], 1)} | {cell([x['adapter_eval_acc_final'] for x in xs], 1)} | "
      f"{cell([x['adapter_eval_loss_final'] for x in xs], 0)} |")
rows = [("CBBT q=16", "cbbt", ""), ("CBBT + adapter", "cbbt", "adapter_"), ("CraFT", "craft", ""),
        ("white-box", "whitebox", "")]
for name, m, pre in rows:
    for b in budgets:
        xs = [S[(m, s, b)] for s in seeds]
        print(f"| {name} | {b} | {ms([x['queries_used'] for x in xs])[0]:.0f} | {ms([x['steps'] for x in xs])[0]:.0f} | "
              f"{cell([x[pre + 'eval_em_final'] for x in xs], 1)} | {cell([x[pre + 'eval_acc_final'] for x in xs], 1)} | "
              f"{cell([x[pre + 'eval_loss_final'] for x in xs], 0)} |")
print()
print("cosine(ZO estimate, true gradient), mean ± std over seeds; theory sqrt(q/(q+d)), d = 256")
C = {}
for s in seeds:
    for line in open(os.path.join(out, f"cosine-s{s}", "bbtune", "zo_cosine.jsonl")):
        r = json.loads(line)
        C.setdefault((r["at"], r["q"]), []).append(r)
print("| q | theory | at the start | after 300 white-box steps |")
print("|---|---|---|---|")
for q in sorted({k[1] for k in C}):
    print(f"| {q} | {C[('start', q)][0]['theory']:.3f} | {cell([r['cosine'] for r in C[('start', q)]], 0)} | "
          f"{cell([r['cosine'] for r in C[('final', q)]], 0)} |")
PY
