#!/usr/bin/python3
"""ROSS denoiser parity: trainer/denoiser.c against PyTorch float64.

Usage: test_denoiser_parity.py DRIVER SCRATCH_DIR
Runs DRIVER (denoiser_parity_driver.c), which writes each case's inputs,
parameters, fixed timesteps and noise, the C loss, prediction and gradients.
Recomputes the denoiser here from its definition (research/methods.md §2,
the DiT/adaLN-Zero design of Peebles & Xie as ROSS uses it), written from
that description and not from the C:

  hn = layer_norm(h) (no affine, eps 1e-5); zc = Linear(silu(hn))
  temb = Linear(silu(Linear([cos(t f), sin(t f)]))), f_j = 10000^(-j/half)
  c = zc + temb (ROSS-D) or zc (ROSS-R)
  x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, ab = improved-DDPM cosine schedule
        (ROSS-R: x_t = 0)
  x = Linear(x_t) + MAE 2-D sin-cos position embedding
  block: shift1, scale1, gate1, shift2, scale2, gate2 = Linear(silu(c)).chunk(6)
         x += gate1 * attn(ln(x) * (1 + scale1) + shift1)   (fused qkv, heads)
         x += gate2 * mlp(ln(x) * (1 + scale2) + shift2)    (tanh GELU)
  pred = Linear(ln(x) * (1 + scale) + shift), (shift, scale) = Linear(silu(c)).chunk(2)
  loss = mean((pred - eps)^2) (ROSS-D) or mean((pred - x0)^2) (ROSS-R)

then autograd of scale * loss for every parameter and for h (the driver
pre-fills dL/dh with dcond0, so the C must ADD). Fails when any relative error
||c - ref|| / ||ref|| exceeds REL_TOL (an all-zero reference must be matched
to ABS_TOL). Exit 77 without torch.
"""
import math
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"denoiser_parity: skipping, {e}")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
REL_TOL = 2e-4
ABS_TOL = 1e-6


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"VTRSPAR1", "bad magic"
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


def cosine_alphas_cumprod(T, max_beta=0.999):
    """Nichol & Dhariwal's cosine schedule, as betas then a cumulative product."""
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
    return torch.cumprod(1 - torch.tensor(betas), 0)


def timestep_features(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def pos_embed_2d(width, grid):
    """MAE get_2d_sincos_pos_embed: meshgrid(w, h) so the first half of the
    channels encodes the column coordinate, the second half the row."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    return torch.tensor(np.concatenate([one_d(width // 2, gw), one_d(width // 2, gh)], axis=1))


def ln(x, eps):
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


def attention(x, w, b, heads):
    Bs, N, W = x.shape
    hd = W // heads
    qkv = F.linear(x, w, b).reshape(Bs, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = torch.softmax((q @ k.transpose(-2, -1)) * hd ** -0.5, dim=-1)
    return (a @ v).transpose(1, 2).reshape(Bs, N, W)


def reference(r):
    (variant, D, grid, C, W, depth, heads, mlp_ratio, freq, steps, draws, n_img, scale,
     _random) = r["config"].tolist()
    D, grid, C, W, depth, heads = int(D), int(grid), int(C), int(W), int(depth), int(heads)
    freq, steps, draws, n_img = int(freq), int(steps), int(draws), int(n_img)
    denoise = variant == 0
    N = grid * grid
    P = {k[len("param/"):]: torch.tensor(v, requires_grad=True)
         for k, v in r.items() if k.startswith("param/")}
    h = torch.tensor(r["cond"], requires_grad=True)          # [n_img, N, D]
    x0 = torch.tensor(r["target"])                           # [n_img, N, C]

    def lin(x, name):
        return F.linear(x, P[name + ".weight"], P[name + ".bias"])

    zc = lin(F.silu(ln(h, 1e-5)), "ross.z_embed")            # [n_img, N, W]
    if denoise:
        K = draws
        t = torch.tensor(r["t"]).reshape(-1)                 # [n_img * K], image-major
        eps = torch.tensor(r["eps"]).reshape(n_img * K, N, C)
        ab = cosine_alphas_cumprod(steps)[t.long()][:, None, None]
        x0r = x0.repeat_interleave(K, dim=0)
        xt = ab.sqrt() * x0r + (1 - ab).sqrt() * eps
        temb = lin(F.silu(lin(timestep_features(t, freq), "ross.t_embed.fc1")), "ross.t_embed.fc2")
        c = zc.repeat_interleave(K, dim=0) + temb[:, None, :]
        want = eps
    else:
        K = 1
        xt = torch.zeros(n_img, N, C)
        c = zc
        want = x0
    x = lin(xt, "ross.x_embed") + pos_embed_2d(W, grid)[None]
    sc = F.silu(c)
    for l in range(depth):
        pre = f"ross.blocks.{l}"
        s1, g1, gt1, s2, g2, gt2 = lin(sc, pre + ".adaln").chunk(6, dim=-1)
        a = attention(ln(x, 1e-6) * (1 + g1) + s1, P[pre + ".attn.qkv.weight"],
                      P[pre + ".attn.qkv.bias"], heads)
        x = x + gt1 * lin(a, pre + ".attn.proj")
        m = ln(x, 1e-6) * (1 + g2) + s2
        x = x + gt2 * lin(F.gelu(lin(m, pre + ".mlp.fc1"), approximate="tanh"), pre + ".mlp.fc2")
    shift, scl = lin(sc, "ross.final.adaln").chunk(2, dim=-1)
    pred = lin(ln(x, 1e-6) * (1 + scl) + shift, "ross.final.linear")
    loss = ((pred - want) ** 2).mean()
    names = sorted(P)
    grads = torch.autograd.grad(scale * loss, [h] + [P[n] for n in names], allow_unused=True)
    res = {"loss": loss.detach().reshape(1), "pred": pred.detach(),
           "dcond": torch.tensor(r["dcond0"]) + grads[0]}
    for n, g in zip(names, grads[1:]):
        res[f"grad/{n}"] = torch.zeros_like(P[n]) if g is None else g
    return res


def main():
    driver, scratch = sys.argv[1], sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    path = os.path.join(scratch, "denoiser.bin")
    subprocess.run([driver, path], check=True)
    cases = read(path)
    assert len(cases) >= 4, f"expected 4 cases, got {len(cases)}"
    worst, bad, checked = 0.0, [], 0
    for case in sorted(cases):
        r = cases[case]
        ref = reference(r)
        for k, want in ref.items():
            got = torch.tensor(r[k])
            want = want.reshape(got.shape)
            den = want.norm().item()
            diff = (got - want).norm().item()
            err = diff / den if den > 0 else diff
            ok = err <= (REL_TOL if den > 0 else ABS_TOL)
            print(f"{case} {k:42s} rel {err:.2e} |ref| {den:.2e}{'' if ok else '  <-- FAIL'}")
            checked += 1
            if den > 0:
                worst = max(worst, err)
            if not ok:
                bad.append(f"{case}/{k}")
    print(f"{checked} tensors; worst relative error {worst:.2e} (tolerance {REL_TOL:g})")
    if bad:
        print("FAIL:", ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
