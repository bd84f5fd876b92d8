#!/usr/bin/env bash
# In-context tuning at toy scale (issue 7): from the quickstart's stage-2
# model, equal steps and the same training items for
#   ft          plain fine-tuning: recipe stage2 continued, no demonstrations
#   mmict-k0    recipe icl, the hub in front of the frozen model, no demonstrations
#   mmict-kK-S  recipe icl, K in {1,2,4} demonstrations of the query's group,
#               S = random or similar (retrieved by image-feature cosine)
#   vanilla-kK-S icl.mode vanilla: the demonstrations' raw projected image
#               tokens + their text, projector + <eoc> trained
# each for every seed, validated by the run itself at its last step (greedy
# answers with demonstrations, exact match) on the first VAL_ITEMS val items.
# Prints exact-match accuracy (trainer/eval_score.h: VQA-normalised, so
# lower-cased) on group 8 ("answer: red", the one format rule the scorer
# sees), on the rule groups 7 + 8 (format shown only by same-group
# demonstrations; group 7's upper case is normalised away), on groups 0-6
# and on all items, as mean +- std over the seeds; per-run numbers too
# (runs/exp-icl/summary.txt).
#   tests/experiments/icl_k_sweep.sh [SEED ...]        (default 1 2 3)
# Environment: STEPS (120), VAL_ITEMS (128), JOBS (2 runs at a time),
# ARMS (default: the 12 below; any mmict-kK-S / vanilla-kK-S by name),
# BASE (runs/quickstart/checkpoints/ckpt-000006000), OUT (runs/exp-icl: one
# directory per setting, a run is reused when it reached STEPS).
# Needs the quickstart's data and model: run deploy/quickstart.sh first.
# Not a test: results go to docs/experiments.md. Finished runs are reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=runs/quickstart-data out=${OUT:-runs/exp-icl}
VISTUNE=${VISTUNE:-build/vistune}
BASE=${BASE:-runs/quickstart/checkpoints/ckpt-000006000}
STEPS=${STEPS:-120} VAL_ITEMS=${VAL_ITEMS:-128} JOBS=${JOBS:-2}
[ "$(cat "$data/version" 2>/dev/null)" = 2 ] && [ -f "$BASE/COMPLETE" ] ||
  { echo "icl_k_sweep: run deploy/quickstart.sh first ($data, $BASE)" >&2; exit 2; }
seeds=${*:-1 2 3}
arms=${ARMS:-ft mmict-k0 mmict-k1-random mmict-k2-random mmict-k4-random mmict-k1-similar mmict-k2-similar mmict-k4-similar vanilla-k1-random vanilla-k2-random vanilla-k4-random vanilla-k2-similar}
mkdir -p "$out"
# The quickstart model and data; no curriculum, no loader rank (1 process per run).
cat > "$out/base.yaml" <<YAML
recipe: stage2
data:
  source: store
  store: $data/store
  tokenizer: builtin:bytes
  system_prompt: "Answer briefly."
  seq_len: 192
model:
  text_config:
    max_position_embeddings: 1024   # k demonstrations in front of the query (RoPE: no table to grow)
  vision_config:
    hidden_size: 768
    intermediate_size: 768
    num_hidden_layers: 1
    num_attention_heads: 4
    image_size: 48
    patch_size: 16
  vision_feature_layer: -2
train:
  init_from: $BASE
  steps: $STEPS
  global_batch: 16
  micro_batch: 8
  lr: 1.0e-4
  warmup_steps: 10
  weight_decay: 0.0
  max_grad_norm: 1.0
  threads: 1
  val_items: $VAL_ITEMS
  val_max_new_tokens: 24
checkpoint:
  every: 100000
  keep_last: 1
metrics:
  progress: never
  tensorboard: false
YAML
{ cat "$out/base.yaml"; cat <<YAML
icl:
  queries: 8
  width: 64
  layers: 1
  heads: 4
  max_text: 48
YAML
} > "$out/icl.yaml"
# One arm = config + overrides. Learning rates: the fresh hub 3e-3, the
# pretrained projector (vanilla) 3e-4, the pretrained decoder (ft) 1e-4.
arm_args() {
  case $1 in
    ft) echo "$out/base.yaml --set recipe=stage2" ;;
    mmict-k0) echo "$out/icl.yaml --set recipe=icl --set icl.k=0 --set train.lr=3e-3" ;;
    mmict-k*) IFS=- read -r _ k sel <<<"$1"
              echo "$out/icl.yaml --set recipe=icl --set icl.k=${k#k} --set icl.selection=$sel --set train.lr=3e-3" ;;
    vanilla-k*) IFS=- read -r _ k sel <<<"$1"
                echo "$out/icl.yaml --set recipe=icl --set icl.mode=vanilla --set icl.k=${k#k} --set icl.selection=$sel --set train.lr=3e-4" ;;
    *) echo "icl_k_sweep: unknown arm $1" >&2; return 2 ;;
  esac
}
run_one() { # arm seed
  local d=$out/$1-$2
  if grep -q "\"step\":$STEPS,\"eval\":true" "$d/metrics.jsonl" 2>/dev/null; then return 0; fi
  rm -rf "$d"
  # shellcheck disable=SC2046
  "$VISTUNE" train $(arm_args "$1") --set run_dir="$d" --set seed="$2" >"$d.log" 2>&1 ||
    { echo "icl_k_sweep: $1 seed $2 failed: $(tail -2 "$d.log")" >&2; return 1; }
}
export -f run_one arm_args
export out VISTUNE STEPS
source deploy/mpi-env.sh
t0=$(date +%s)
for seed in $seeds; do for arm in $arms; do echo "$arm $seed"; done; done |
  xargs -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1"'
echo "icl_k_sweep: $(( $(date +%s) - t0 )) s wall for $(wc -w <<<"$arms") arms x $(wc -w <<<"$seeds") seeds" >&2
python3 - "$out" "$seeds" $arms <<'PY' | tee "$out/summary.txt"
import json, math, statistics, sys
out, seeds, arms = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def result(arm, seed):
    ev = [json.loads(l) for l in open(f"{out}/{arm}-{seed}/metrics.jsonl") if '"eval":true' in l][-1]
    n = {g: ev.get(f"val/group_n/{g}", 0) for g in range(9)}
    c = {g: ev.get(f"val/group_acc/{g}", 0) * n[g] for g in range(9)}
    rule = (c[7] + c[8]) / (n[7] + n[8])
    plain = sum(c[g] for g in range(7)) / sum(n[g] for g in range(7))
    return rule, plain, ev["val/acc"], ev["val/loss"], int(n[7] + n[8]), int(sum(n.values())), c[8] / n[8], int(n[8])
def ms(xs):
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):5.1f} +- {100 * sd:4.1f}"
res = {a: [result(a, s) for s in seeds] for a in arms}
r0 = res[arms[0]][0]
print(f"exact match on the first {r0[5]} val items ({r0[4]} of them in rule groups 7/8, {r0[7]} in group 8), "
      f"mean +- std over seeds {' '.join(seeds)}")
print(f"{'arm':20} {'group 8 %':>14} {'groups 7+8 %':>14} {'groups 0-6 %':>14} {'all %':>14} {'val loss':>9}")
for a in arms:
    rs = res[a]
    print(f"{a:20} {ms([r[6] for r in rs]):>14} {ms([r[0] for r in rs]):>14} {ms([r[1] for r in rs]):>14}"
          f" {ms([r[2] for r in rs]):>14} {statistics.mean(r[3] for r in rs):9.3f}")
print("per run: arm seed group8% rule% plain% all% loss")
for a in arms:
    for s, r in zip(seeds, res[a]):
        print(f"  {a} {s} {100 * r[6]:.1f} {100 * r[0]:.1f} {100 * r[1]:.1f} {100 * r[2]:.1f} {r[3]:.3f}")
PY
