#!/usr/bin/env bash
# Vittle vs stage 2 at toy scale: the quickstart model, data and curriculum
# (deploy/train-curriculum.sh), trained per arm and seed, each checkpoint
# evaluated by `vistune sched` on the first 120 val items, clean and under 6
# visual and 4 text shifts at severities 1, 3 and 5. Prints, as mean +- std
# over the seeds, clean accuracy and the relative accuracy (shifted / clean)
# per modality; per-run reports stay in runs/exp-vittle/ARM-SEED/report.
#   tests/experiments/vittle_vs_stage2.sh [--arms A,B,...] [SEED ...]   (default: all arms, seeds 1 2 3)
# Arms (same model, data, steps; only the recipe settings differ):
#   stage2      recipe stage2
#   vittle      recipe vittle, default vittle: settings (beta_v = beta_t = 0.1)
#   vittle-b0   the beta = 0 control: the same heads, noise and alpha schedule, no KL term
#   vittle-lr3  probe: vittle with the last phase's lr at 3e-4 instead of 1e-3
#   vittle-a3k  probe: vittle with alpha scheduled over steps 0-3000 (vittle.alpha_steps) and
#               then held at alpha_end, instead of restarting its ramp in each curriculum phase
# The summary covers every arm whose reports exist for all SEEDs, so arms run
# earlier need not be re-run (--arms vittle-b0 adds one arm to the table).
# Needs the quickstart's data (runs/quickstart-data: run deploy/quickstart.sh once).
# Not a test: results go to docs/experiments.md. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=runs/quickstart-data out=runs/exp-vittle
VISTUNE=${VISTUNE:-build/vistune}
all_arms="stage2 vittle vittle-b0 vittle-lr3 vittle-a3k"
arms="stage2 vittle vittle-b0"
if [ "${1:-}" = --arms ]; then arms=${2//,/ }; shift 2; fi
for a in $arms; do
  case " $all_arms " in *" $a "*) ;; *) echo "vittle_vs_stage2: unknown arm '$a' (arms: $all_arms)" >&2; exit 2;; esac
done
[ "$(cat "$data/version" 2>/dev/null)" = 2 ] || { echo "vittle_vs_stage2: run deploy/quickstart.sh first ($data)" >&2; exit 2; }
seeds=${*:-1 2 3}
mkdir -p "$out"
# The quickstart config with the experiment's shift list (6 visual, 4 text);
# run-ARM.yaml adds the arm's method section.
python3 - deploy/configs/quickstart.yaml "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
shifts = ("  shifts: [gaussian_noise, defocus_blur, contrast, jpeg_compression, pixelate, low_res,\n"
          "           char_swap, word_delete, case_change, keyboard]\n")
new, n = re.subn(r"  shifts: \[[^\]]*\]\n", shifts, text)
assert n == 1, "quickstart.yaml: no eval.shifts list"
open(f"{sys.argv[2]}/run.yaml", "w").write(new)
open(f"{sys.argv[2]}/run-vittle-b0.yaml", "w").write(new + "vittle:\n  beta_v: 0\n  beta_t: 0\n")
open(f"{sys.argv[2]}/run-vittle-a3k.yaml", "w").write(new + "vittle:\n  alpha_steps: 3000\n")
PY
source deploy/mpi-env.sh
for seed in $seeds; do
  for arm in $arms; do
    d=$out/$arm-$seed config=$out/run.yaml last=
    case $arm in
      stage2) recipe=stage2;;
      vittle) recipe=vittle;;
      vittle-b0) recipe=vittle config=$out/run-vittle-b0.yaml;;
      vittle-lr3) recipe=vittle last="--set train.lr=3e-4";;
      vittle-a3k) recipe=vittle config=$out/run-vittle-a3k.yaml;;
    esac
    set_run=(--set run_dir="$d" --set recipe=$recipe --set seed="$seed")
    echo "== $arm seed $seed" >&2
    CURRICULUM_LAST=$last VISTUNE=$VISTUNE deploy/train-curriculum.sh "$data" 2 1 "$config" "${set_run[@]}" >>"$d.log" 2>&1
    mpirun -np 2 "$VISTUNE" sched "$config" "${set_run[@]}" --results "$d/results" >>"$d.log" 2>&1
    "$VISTUNE" report --results "$d/results" --out "$d/report" >>"$d.log" 2>&1
  done
done
python3 - "$out" "$all_arms" $seeds <<'PY'
import json, math, os, statistics, sys
out, arms, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def summary(arm, seed):
    """Clean accuracy and mean shifted/clean accuracy per modality (nan when clean is 0)."""
    cells = json.load(open(f"{out}/{arm}-{seed}/report/report.json"))["cells"]
    clean = next(c["accuracy"] for c in cells if c["shift"] == "clean")
    rel = {m: statistics.mean(c["accuracy"] for c in cells if c["modality"] == m) / clean if clean else math.nan
           for m in ("visual", "text")}
    return clean, rel
def ms(xs):
    xs = [x for x in xs if not math.isnan(x)]
    if not xs: return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0
    return f"{100 * statistics.mean(xs):.1f} +- {100 * sd:.1f}" + (f" (n={len(xs)})" if len(xs) < len(seeds) else "")
done = [a for a in arms if all(os.path.exists(f"{out}/{a}-{s}/report/report.json") for s in seeds)]
print("per run: arm seed clean% visual% text%")
runs = {a: [summary(a, s) for s in seeds] for a in done}
for a, rs in runs.items():
    for s, (c, rel) in zip(seeds, rs):
        print(f"  {a} {s} {100 * c:.1f} {100 * rel['visual']:.1f} {100 * rel['text']:.1f}")
print(f"arm         clean accuracy %   visual shifted/clean %   text shifted/clean %   ({len(seeds)} seeds)")
for a, rs in runs.items():
    print(f"{a:11} {ms([x[0] for x in rs]):>16}   {ms([x[1]['visual'] for x in rs]):>22}"
          f"   {ms([x[1]['text'] for x in rs]):>20}")
PY
