#!/usr/bin/env python3
"""Compare training loss curves from metrics.jsonl files (standard library).

  losses.py same A B           curves identical as text (bit-identical floats)
  losses.py close TOL A B      |a-b| <= TOL*max(1,|b|) for every step of A (A's steps within B's)
  losses.py steps A            print the steps present
Only training lines count (not "eval"); for a step logged twice (a resumed run
repeats steps after its checkpoint) the LAST line wins, as for any reader.
Exit 1 naming the first differing step."""
import json
import sys


def curve(path):
    out = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("eval"):
                continue
            out[d["step"]] = d["loss"]
    return out


def main(argv):
    mode = argv[1]
    if mode == "steps":
        print(" ".join(str(s) for s in sorted(curve(argv[2]))))
        return 0
    tol = float(argv[2]) if mode == "close" else 0.0
    a, b = curve(argv[-2]), curve(argv[-1])
    # A resumed-elsewhere run may hold only a tail of the steps: A within B.
    if not a or not set(a) <= set(b) or (mode == "same" and sorted(a) != sorted(b)):
        print("steps differ: %s vs %s" % (sorted(a), sorted(b)))
        return 1
    worst = 0.0
    for s in sorted(a):
        if mode == "same":
            if repr(a[s]) != repr(b[s]):
                print("step %d: %r != %r" % (s, a[s], b[s]))
                return 1
        else:
            d = abs(a[s] - b[s]) / max(1.0, abs(b[s]))
            worst = max(worst, d)
            if d > tol:
                print("step %d: %r vs %r (rel %.3g > %g)" % (s, a[s], b[s], d, tol))
                return 1
    print("ok: %d steps, worst relative difference %.3g" % (len(a), worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
