"""Recomputes the robustness report from raw item scores (items.jsonl from
the fixture) with scipy and plain Python, and compares every number in
vistune's report.json. Definitions: research/shifts.md §1.4 and §5."""
import json
import math
import sys
from collections import defaultdict

from scipy.stats import binomtest

items_path, report_path = sys.argv[1], sys.argv[2]
runs = defaultdict(lambda: defaultdict(dict))  # run -> (bench, shift, sev) -> index -> score
types = {}  # index -> question type
answers = defaultdict(dict)  # (run, bench, shift, sev) -> index -> (prediction, reference)
meta = {}
for line in open(items_path):
    r = json.loads(line)
    key = (r["benchmark"], r["shift"], r["severity"])
    runs[r["run"]][key][r["index"]] = r["score"]
    types[r["index"]] = r["type"]
    answers[(r["run"],) + key][r["index"]] = (r["pred"], r["ref"])
    meta[key] = (r["family"], r["modality"])
report = json.load(open(report_path))
cur, prev, base = runs["current"], runs["previous"], runs["baseline"]


def yes_no(s):
    """POPE rule, written independently: 1 yes, 0 no, None neither."""
    words = "".join(ch if ch.isalnum() else " " for ch in s.lower()).split()
    return 1 if "yes" in words else 0 if ("no" in words or "not" in words) else None


def yes_no_stats(pairs):
    p = [yes_no(a) for a, _ in pairs]
    r = [yes_no(b) for _, b in pairs]
    tp = sum(x == 1 and y == 1 for x, y in zip(p, r))
    fp = sum(x == 1 and y != 1 for x, y in zip(p, r))
    fn = sum(x != 1 and y == 1 for x, y in zip(p, r))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    no_refs = [x for x, y in zip(p, r) if y == 0]
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "accuracy": sum(x is not None and x == y for x, y in zip(p, r)) / len(pairs),
            "yes_ratio": sum(x == 1 for x in p) / len(pairs),
            "yes_on_absent": sum(x == 1 for x in no_refs) / len(no_refs)}


def mean(d):
    return sum(d.values()) / len(d)


def close(a, b, what, tol=1e-6):
    if a is None or b is None:
        if a is not b:
            sys.exit(f"FAIL {what}: vistune {a} vs reference {b}")
        return
    if abs(a - b) > tol * max(1.0, abs(b)):
        sys.exit(f"FAIL {what}: vistune {a!r} vs reference {b!r}")


cells = {(c["benchmark"], c["shift"], c["severity"]): c for c in report["cells"]}
assert set(cells) == set(cur), f"cells differ: {set(cells) ^ set(cur)}"
pvals = {}
seen_neither = False  # some exist prediction is neither yes nor no
for key, scores in cur.items():
    c, (bench, shift, sev) = cells[key], key
    binary = all(s in (0.0, 1.0) for s in scores.values())
    acc = mean(scores)
    close(c["accuracy"], acc, f"{key} accuracy")
    assert c["n"] == len(scores), key
    if binary:
        k = int(sum(scores.values()))
        ci = binomtest(k, len(scores)).proportion_ci(confidence_level=0.95, method="wilson")
        close(c["ci_low"], ci.low, f"{key} ci_low")
        close(c["ci_high"], ci.high, f"{key} ci_high")
    else:
        assert c["ci_method"] == "bootstrap" and c["ci_low"] <= acc <= c["ci_high"], key
    per_type = defaultdict(list)
    for i, v in scores.items():
        per_type[types[i]].append(v)
    assert sorted(c["by_type"]) == sorted(per_type), f"{key} types"
    for t, vals in per_type.items():
        assert c["by_type"][t]["n"] == len(vals)
        close(c["by_type"][t]["accuracy"], sum(vals) / len(vals), f"{key} accuracy of type {t}")
        pairs = [answers[("current",) + key][i] for i in scores if types[i] == t]
        if t != "exist":
            assert "yesno" not in c["by_type"][t], f"{key} {t}: yes/no statistics on a type that is not yes/no"
            continue
        assert all(yes_no(ref) is not None for _, ref in pairs), "fixture: exist references must be yes/no"
        seen_neither |= any(yes_no(p) is None for p, _ in pairs)
        for name, want in yes_no_stats(pairs).items():
            close(c["by_type"][t]["yesno"][name], want, f"{key} {t} yes/no {name}")
    clean = cur.get((bench, "clean", 0))
    if sev > 0:
        close(c["relative_robustness"], acc / mean(clean), f"{key} rr")
        shared = sorted(set(clean) & set(scores))
        flips = sum((clean[i] >= 0.5) != (scores[i] >= 0.5) for i in shared)
        close(c["flip_rate"], flips / len(shared), f"{key} flip rate")
    before = prev[key]
    shared = sorted(set(before) & set(scores))
    delta = sum(scores[i] - before[i] for i in shared) / len(shared)
    close(c["delta"], delta, f"{key} delta")
    if binary:
        b = sum(before[i] == 1 and scores[i] == 0 for i in shared)
        w = sum(before[i] == 0 and scores[i] == 1 for i in shared)
        p = 1.0 if b + w == 0 else min(1.0, binomtest(b, b + w, 0.5).pvalue)
        close(c["p_value"], p, f"{key} McNemar p")
    pvals[key] = c["p_value"]

assert seen_neither, "fixture: no exist prediction that is neither yes nor no"

# Benjamini-Hochberg over all cells with a paired test, then the gate rule.
order = sorted(pvals, key=lambda k: pvals[k])
n, running, q = len(order), 1.0, {}
for rank in range(n, 0, -1):
    k = order[rank - 1]
    running = min(running, pvals[k] * n / rank)
    q[k] = running
regressions = []
for key in pvals:
    close(cells[key]["q_value"], q[key], f"{key} q")
    expect = cells[key]["delta"] < 0 and q[key] < report["alpha"]
    assert cells[key]["regression"] == expect, key
    if expect:
        regressions.append(key)
assert regressions == [("shapes", "defocus_blur", 3)], f"regressions: {regressions}"
assert report["regressions"] == 1 and report["gate_failed"] is True

# Corruption error against the baseline.
ce_by = {(s["benchmark"], s["shift"]): s for s in report["corruption_error"]["shifts"]}
sums = defaultdict(list)
rel_sums = defaultdict(list)
for (bench, shift, sev) in cur:
    if sev != 1:
        continue
    em = sum(1 - mean(cur[(bench, shift, s)]) for s in range(1, 6))
    eb = sum(1 - mean(base[(bench, shift, s)]) for s in range(1, 6))
    dm = sum((1 - mean(cur[(bench, shift, s)])) - (1 - mean(cur[(bench, "clean", 0)])) for s in range(1, 6))
    db = sum((1 - mean(base[(bench, shift, s)])) - (1 - mean(base[(bench, "clean", 0)])) for s in range(1, 6))
    got = ce_by[(bench, shift)]
    close(got["ce"], em / eb, f"CE {bench}/{shift}")
    modality = meta[(bench, shift, 1)][1]
    sums["all"].append(em / eb)
    sums[modality].append(em / eb)
    if db > 1e-9:
        close(got["relative_ce"], dm / db, f"relative CE {bench}/{shift}")
        rel_sums["all"].append(dm / db)
        rel_sums[modality].append(dm / db)
    else:
        assert got["relative_ce"] is None and shift in report["corruption_error"]["dropped_from_relative"]
ce = report["corruption_error"]
close(ce["mce"], sum(sums["all"]) / len(sums["all"]), "mCE")
close(ce["relative_mce"], sum(rel_sums["all"]) / len(rel_sums["all"]), "relative mCE")
for m in ("visual", "text", "joint"):
    close(ce["by_modality"][m]["mce"], sum(sums[m]) / len(sums[m]), f"mCE {m}")
print(f"report.json: {len(cells)} cells, {len(ce_by)} CE entries match the recomputation")
