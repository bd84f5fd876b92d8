"""Compares vistune's report statistics with scipy (Wilson interval and the
exact binomial test behind McNemar) and with Benjamini-Hochberg computed from
its definition. Run by ctest with the path of report_stats_dump."""
import random
import subprocess
import sys

from scipy.stats import binomtest


def bh(p):
    # Step-up: q_(k) = min_{j >= k} p_(j) * n / j over ranks sorted ascending.
    n = len(p)
    order = sorted(range(n), key=lambda i: (p[i], i))
    q = [0.0] * n
    running = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * n / rank)
        q[i] = running
    return q


def main():
    rng = random.Random(1234)
    queries, expected = [], []
    for _ in range(300):
        n = rng.choice([1, 2, 5, 10, 37, 100, 1000, 12345])
        k = rng.randint(0, n)
        ci = binomtest(k, n, 0.5).proportion_ci(confidence_level=0.95, method="wilson")
        queries.append(f"wilson {k} {n}")
        expected.append(("wilson", [ci.low, ci.high]))
    for _ in range(300):
        b, c = rng.randint(0, 60), rng.randint(0, 60)
        if rng.random() < 0.1:
            b, c = rng.randint(0, 3000), rng.randint(0, 3000)
        p = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
        queries.append(f"mcnemar {b} {c}")
        expected.append(("mcnemar", [min(1.0, p)]))
    for _ in range(50):
        m = rng.randint(1, 200)
        p = [rng.choice([rng.random(), rng.random() ** 6, 1.0, 0.05]) for _ in range(m)]
        queries.append("bh " + " ".join(repr(x) for x in p))
        expected.append(("bh", bh(p)))
    out = subprocess.run([sys.argv[1]], input="\n".join(queries) + "\n", capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == len(queries), f"{len(out)} answers for {len(queries)} queries"
    worst = {"wilson": 0.0, "mcnemar": 0.0, "bh": 0.0}
    for q, line, (kind, want) in zip(queries, out, expected):
        got = [float(x) for x in line.split()]
        assert len(got) == len(want), q
        for g, w in zip(got, want):
            # Relative error where the value is representable; absolute for
            # p-values below 1e-12 (beyond what any test decision uses).
            err = abs(g - w) / abs(w) if abs(w) > 1e-12 else abs(g - w)
            worst[kind] = max(worst[kind], err)
            if err > 1e-9:
                sys.exit(f"FAIL {kind}: '{q[:80]}': vistune {g!r} vs reference {w!r}")
    print("max error vs reference (relative; absolute below 1e-12): " +
          ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"{len(queries)} passed, 0 failed")


main()
