#!/usr/bin/python3
"""Vittle bottleneck parity: trainer/bottleneck.c against PyTorch float64.

Usage: test_bottleneck_parity.py DRIVER SCRATCH_DIR
Runs DRIVER (bottleneck_parity_driver.c), which writes each case's inputs,
parameters, fixed noise, the C outputs and gradients. Recomputes the layer
here from its definition (research/methods.md §1): per-modality heads
Linear -> GELU -> Linear, mu / log-variance clamped with a straight-through
gradient, z = mu + sigma * eps (training) or mu (inference), h' = (1-a) h + a z,
dimension-averaged KL (textbook or the reference code's half-weighted log
term) against N(0, I) or the learnable prior, then autograd of
sum(h' * dout) + kl_scale * (beta_v KL_v + beta_t KL_t). Fails when any
relative error ||c - ref|| / ||ref|| exceeds 1e-4. Exit 77 without torch.
"""
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"bottleneck_parity: skipping, {e}")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
REL_TOL = 1e-4
PASS, VISUAL, TEXT, TEXT_KL = 0, 1, 2, 3


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"VTBNPAR1", "bad magic"
    off, cases = 8, {}
    while True:
        (n,) = struct.unpack_from("<I", data, off)
        off += 4
        if n == 0:
            break
        name = data[off:off + n].decode()
        off += n
        (nd,) = struct.unpack_from("<I", data, off)
        dims = struct.unpack_from(f"<{nd}q", data, off + 4)
        off += 4 + 8 * nd
        cnt = int(np.prod(dims)) if nd else 1
        arr = np.frombuffer(data, np.float32, cnt, off).reshape(dims).astype(np.float64)
        off += 4 * cnt
        case, what = name.split("/", 1)
        cases.setdefault(case, {})[what] = arr
    assert off == len(data), "trailing bytes"
    return cases


def straight_clamp(x, c):
    """Clamped value, identity gradient (the reference clamps through .data)."""
    return x + (x.clamp(-c, c) - x).detach()


def reference(r):
    D, alpha, beta_v, beta_t, learnable, kl_kind, clamp, train, kl_scale, kl_max = r["config"]
    D = int(D)
    role = r["role"].astype(int)
    h = torch.tensor(r["h"], requires_grad=True)
    P = {k[len("param/"):]: torch.tensor(v, requires_grad=True)
         for k, v in r.items() if k.startswith("param/")}
    eps = torch.tensor(r["eps"])
    lw = 1.0 if kl_kind == 0 else 0.5
    out = h.clone()
    kls = {}
    clamped = 0
    for m, rows_roles, beta in (("v", (VISUAL,), beta_v), ("t", (TEXT, TEXT_KL), beta_t)):
        idx = torch.tensor([i for i in range(len(role)) if role[i] in rows_roles], dtype=torch.long)
        counted = torch.tensor([role[i] in (VISUAL, TEXT_KL) for i in idx.tolist()], dtype=torch.bool)
        x = h[idx]
        a1 = F.linear(x, P[f"vittle.head_{m}.fc1.weight"], P[f"vittle.head_{m}.fc1.bias"])
        o = F.linear(F.gelu(a1), P[f"vittle.head_{m}.fc2.weight"], P[f"vittle.head_{m}.fc2.bias"])
        mu, lv = o[:, :D], straight_clamp(o[:, D:], clamp)
        clamped += int((o.detach()[:, D:].abs() > clamp).sum())
        sigma = torch.exp(0.5 * lv)
        z = mu + sigma * eps[idx] if train else mu
        out = out.index_copy(0, idx, (1 - alpha) * x + alpha * z)
        if learnable:
            pm = P[f"vittle.prior_{m}.mean"]
            plv = straight_clamp(P[f"vittle.prior_{m}.logvar"], clamp)
        else:
            pm, plv = torch.zeros(D), torch.zeros(D)
        mc, lc = mu[counted], lv[counted]
        if mc.shape[0] == 0:
            kl = torch.zeros(())
        else:
            kl = (0.5 * (lw * (plv - lc) + (torch.exp(lc) + (mc - pm) ** 2) / torch.exp(plv) - 1)).mean()
            kl = torch.clamp(kl, max=kl_max)
        kls[m] = (kl, beta)
    loss = kls["v"][1] * kls["v"][0] + kls["t"][1] * kls["t"][0]
    total = (out * torch.tensor(r["dout"])).sum() + kl_scale * loss
    names = sorted(P)
    grads = torch.autograd.grad(total, [h] + [P[n] for n in names], allow_unused=True)
    res = {"out": out.detach(), "dh": grads[0],
           "kl": torch.stack([kls["v"][0], kls["t"][0], loss]).detach()}
    for n, g in zip(names, grads[1:]):
        res[f"grad/{n}"] = torch.zeros_like(P[n]) if g is None else g
    return res, clamped


def main():
    driver, scratch = sys.argv[1], sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    path = os.path.join(scratch, "bottleneck.bin")
    subprocess.run([driver, path], check=True)
    cases = read(path)
    assert len(cases) >= 4, f"expected 4 cases, got {len(cases)}"
    worst, bad, clamped_any = 0.0, [], 0
    for case in sorted(cases):
        r = cases[case]
        ref, clamped = reference(r)
        clamped_any += clamped
        for k, want in ref.items():
            got = torch.tensor(r[k])
            want = want.reshape(got.shape)
            den = want.norm().item()
            err = (got - want).norm().item() / (den if den > 0 else 1.0)
            print(f"{case} {k:40s} rel {err:.2e} max_abs {(got - want).abs().max().item():.2e}")
            worst = max(worst, err)
            if not err <= REL_TOL:
                bad.append(f"{case}/{k}")
    print(f"worst relative error {worst:.2e}; log-variance entries past the clamp: {clamped_any}")
    if clamped_any == 0:
        print("FAIL: no case exercised the log-variance clamp")
        return 1
    if bad:
        print("FAIL:", ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
