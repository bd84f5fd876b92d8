#!/usr/bin/env bash
# ROSS-R vs ROSS-D vs stage 2 at toy scale, on fine-grained and existence
# questions: the quickstart model and data, one curriculum for every arm
# (deploy/train-curriculum.sh with the phase ends below), trained per arm and
# seed; each final checkpoint evaluated clean by `vistune sched` on every val
# item. Prints per question type the accuracy (mean +- std over the seeds) and,
# for the yes/no type `exist`, F1 and the share of "yes" answers on items whose
# object is absent (POPE-style); per-run reports in runs/exp-ross/ARM-SEED/report.
#   tests/experiments/ross_finegrained.sh [--arms A,B] [--steps "P1 P2 P3"] [--draws K] [SEED ...]
# Arms: stage2 (recipe stage2), ross-r (recipe ross, variant regress: the
# denoiser's network without noise or timestep regresses the pixel patches),
# ross-d (recipe ross, variant denoise: ROSS-D, K noise draws per image).
# Defaults: all arms, --steps "400 1500 2500" (a shortened curriculum: count to
# 400, count/color/grid to 1500, the full set to 2500), --draws 1, seeds 1 2 3;
# pixel targets, the default ross: settings otherwise (docs/experiments.md says
# why these sizes). The summary covers the arms whose reports exist for every SEED.
# Needs the quickstart's data (runs/quickstart-data: run deploy/quickstart.sh once).
# Not a test: results go to docs/experiments.md. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=runs/quickstart-data out=runs/exp-ross
VISTUNE=${VISTUNE:-build/vistune}
all_arms="stage2 ross-r ross-d"
arms=$all_arms steps="400 1500 2500" draws=1
while [ $# -gt 0 ]; do
  case $1 in
    --arms) arms=${2//,/ }; shift 2;;
    --steps) steps=$2; shift 2;;
    --draws) draws=$2; shift 2;;
    *) break;;
  esac
done
for a in $arms; do
  case " $all_arms " in *" $a "*) ;; *) echo "ross_finegrained: unknown arm '$a' (arms: $all_arms)" >&2; exit 2;; esac
done
read -r end1 end2 end3 <<<"$steps"
[ -n "${end3:-}" ] || { echo "ross_finegrained: --steps wants three phase ends, got '$steps'" >&2; exit 2; }
[ "$(cat "$data/version" 2>/dev/null)" = 2 ] || { echo "ross_finegrained: run deploy/quickstart.sh first ($data)" >&2; exit 2; }
seeds=${*:-1 2 3}
mkdir -p "$out"
# Runs made with other sizes must not be mixed into one table.
echo "steps $steps draws $draws" > "$out/settings.new"
if [ -e "$out/settings" ] && ! cmp -s "$out/settings" "$out/settings.new"; then
  echo "ross_finegrained: $out holds runs made with '$(cat "$out/settings")'; move it aside first" >&2; exit 2
fi
mv "$out/settings.new" "$out/settings"
# The quickstart config, evaluated clean only on every val item; run-ross-*.yaml add the ross: section.
python3 - deploy/configs/quickstart.yaml "$out" "$draws" <<'PY'
import re, sys
text, out, draws = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
text, n = re.subn(r"  shifts: \[[^\]]*\]\n", "  shifts: []\n", text)
assert n == 1, "quickstart.yaml: no eval.shifts list"
text, n = re.subn(r"  limit: \d+", "  limit: 0", text)
assert n == 1, "quickstart.yaml: no eval.limit"
open(f"{out}/run.yaml", "w").write(text)
for arm, variant in (("ross-r", "regress"), ("ross-d", "denoise")):
    open(f"{out}/run-{arm}.yaml", "w").write(text + f"ross:\n  variant: {variant}\n  draws: {draws}\n")
PY
source deploy/mpi-env.sh
for seed in $seeds; do
  for arm in $arms; do
    d=$out/$arm-$seed config=$out/run.yaml recipe=stage2
    case $arm in ross-*) config=$out/run-$arm.yaml recipe=ross;; esac
    set_run=(--set run_dir="$d" --set recipe=$recipe --set seed="$seed" --set train.steps="$end3")
    echo "== $arm seed $seed" >&2
    CURRICULUM_STEPS="$end1 $end2" VISTUNE=$VISTUNE deploy/train-curriculum.sh "$data" 2 1 "$config" "${set_run[@]}" >>"$d.log" 2>&1
    mpirun -np 2 "$VISTUNE" sched "$config" "${set_run[@]}" --results "$d/results" >>"$d.log" 2>&1
    "$VISTUNE" report --results "$d/results" --out "$d/report" >>"$d.log" 2>&1
  done
done
python3 - "$out" "$all_arms" $seeds <<'PY'
import json, math, os, statistics, sys
out, arms, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def clean(arm, seed):
    cells = json.load(open(f"{out}/{arm}-{seed}/report/report.json"))["cells"]
    return next(c for c in cells if c["shift"] == "clean")
def ms(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs: return "-"
    if len(xs) == 1: return f"{100 * xs[0]:.1f}"
    return f"{100 * statistics.mean(xs):.1f} +- {100 * statistics.stdev(xs):.1f}"
done = [a for a in arms if all(os.path.exists(f"{out}/{a}-{s}/report/report.json") for s in seeds)]
runs = {a: [clean(a, s) for s in seeds] for a in done}
types = sorted({t for rs in runs.values() for c in rs for t in c["by_type"]})
cols = ["all"] + types + ["exist F1", "exist yes|absent"]
def row(c):
    yn = c["by_type"].get("exist", {}).get("yesno") or {}
    return [c["accuracy"]] + [c["by_type"].get(t, {}).get("accuracy") for t in types] + \
           [yn.get("f1"), yn.get("yes_on_absent")]
print("per run (%): arm seed " + " | ".join(cols))
for a, rs in runs.items():
    for s, c in zip(seeds, rs):
        print(f"  {a} {s} " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in row(c)))
n = runs and len(next(iter(runs.values()))[0]["by_type"]) and runs[next(iter(runs))][0]["n"]
print(f"mean +- std over seeds {' '.join(seeds)} (%; {n} val items per run)")
print("| arm | " + " | ".join(cols) + " |")
for a, rs in runs.items():
    vals = [row(c) for c in rs]
    print(f"| {a} | " + " | ".join(ms([v[k] for v in vals]) for k in range(len(cols))) + " |")
PY
