#!/usr/bin/env bash
# Vittle vs stage 2 at toy scale: the quickstart model, data and curriculum
# (deploy/train-curriculum.sh), trained with recipe stage2 and with recipe
# vittle (default vittle: settings) for each seed, each checkpoint evaluated
# by `vistune sched` on the first 120 val items, clean and under 6 visual and
# 4 text shifts at severities 1, 3 and 5. Prints, as mean +- std over the
# seeds, clean accuracy and the relative accuracy (shifted / clean) per
# modality; per-run reports stay in runs/exp-vittle/RECIPE-SEED/report.
#   tests/experiments/vittle_vs_stage2.sh [SEED ...]   (default 1 2 3)
# Needs the quickstart's data (runs/quickstart-data: run deploy/quickstart.sh once).
# Not a test: results go to docs/experiments.md. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=runs/quickstart-data out=runs/exp-vittle
VISTUNE=${VISTUNE:-build/vistune}
[ "$(cat "$data/version" 2>/dev/null)" = 2 ] || { echo "vittle_vs_stage2: run deploy/quickstart.sh first ($data)" >&2; exit 2; }
seeds=${*:-1 2 3}
mkdir -p "$out"
# The quickstart config with the experiment's shift list (6 visual, 4 text).
python3 - deploy/configs/quickstart.yaml "$out/run.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
shifts = ("  shifts: [gaussian_noise, defocus_blur, contrast, jpeg_compression, pixelate, low_res,\n"
          "           char_swap, word_delete, case_change, keyboard]\n")
new, n = re.subn(r"  shifts: \[[^\]]*\]\n", shifts, text)
assert n == 1, "quickstart.yaml: no eval.shifts list"
open(sys.argv[2], "w").write(new)
PY
source deploy/mpi-env.sh
for seed in $seeds; do
  for recipe in stage2 vittle; do
    d=$out/$recipe-$seed
    set_run=(--set run_dir="$d" --set recipe=$recipe --set seed="$seed")
    echo "== $recipe seed $seed" >&2
    VISTUNE=$VISTUNE deploy/train-curriculum.sh "$data" 2 1 "$out/run.yaml" "${set_run[@]}" >"$d.log" 2>&1
    mpirun -np 2 "$VISTUNE" sched "$out/run.yaml" "${set_run[@]}" --results "$d/results" >>"$d.log" 2>&1
    "$VISTUNE" report --results "$d/results" --out "$d/report" >>"$d.log" 2>&1
  done
done
python3 - "$out" $seeds <<'PY'
import json, math, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
def summary(recipe, seed):
    """Clean accuracy and mean shifted/clean accuracy per modality (nan when clean is 0)."""
    cells = json.load(open(f"{out}/{recipe}-{seed}/report/report.json"))["cells"]
    clean = next(c["accuracy"] for c in cells if c["shift"] == "clean")
    rel = {m: statistics.mean(c["accuracy"] for c in cells if c["modality"] == m) / clean if clean else math.nan
           for m in ("visual", "text")}
    return clean, rel
def ms(xs):
    xs = [x for x in xs if not math.isnan(x)]
    sd = statistics.stdev(xs) if len(xs) > 1 else 0
    return f"{100 * statistics.mean(xs):.1f} +- {100 * sd:.1f}" + (f" (n={len(xs)})" if len(xs) < len(seeds) else "")
print("per run: recipe seed clean% visual% text%")
runs = {r: [summary(r, s) for s in seeds] for r in ("stage2", "vittle")}
for r, rs in runs.items():
    for s, (c, rel) in zip(seeds, rs):
        print(f"  {r} {s} {100 * c:.1f} {100 * rel['visual']:.1f} {100 * rel['text']:.1f}")
print(f"recipe   clean accuracy %   visual shifted/clean %   text shifted/clean %   ({len(seeds)} seeds)")
for r, rs in runs.items():
    print(f"{r:8} {ms([x[0] for x in rs]):>16}   {ms([x[1]['visual'] for x in rs]):>22}"
          f"   {ms([x[1]['text'] for x in rs]):>20}")
PY
