#!/usr/bin/python3
"""MMICT M-Hub parity: trainer/mhub.c against PyTorch float64.

Usage: test_mhub_parity.py DRIVER SCRATCH_DIR
Runs DRIVER (mhub_parity_driver.c), which writes each case's inputs,
parameters, the C output and gradients. Recomputes the M-Hub here from its
definition (research/methods.md §3: a Q-Former whose learnable queries and
text tokens share bidirectional self-attention and whose queries alone
cross-attend to the image features; the layer recipe as trainer/mhub.h
states it), written from that description and not from the C:

  vn = layer_norm(vis)                                     (affine, eps 1e-6)
  x  = cat(queries, text_in(text) + text_pos[:L])          [B, Q + L, W]
  per layer (pre-LN): x = x + proj(mha(ln1(x), key mask = Q + len_b))
                      if l % cross_every == 0:
                          x[:, :Q] += cproj(mha(q = cq(lnc(x[:, :Q])), kv = ckv(vn)))
                      x = x + fc2(gelu(fc1(ln2(x))))       (erf GELU)
  out = out_proj(ln_f(x)), rows >= Q + len_b zeroed
  L   = sum(out * dout)

then autograd for every parameter, the vision features and the text
embeddings (the driver pre-fills those two gradients, so the C must ADD).
The driver's dout also covers padding rows, which must not matter. Fails
when any relative error ||c - ref|| / ||ref|| exceeds REL_TOL (an all-zero
reference must be matched to ABS_TOL). Exit 77 without torch.
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
    print(f"mhub_parity: skipping, {e}")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
REL_TOL = 2e-5
ABS_TOL = 1e-6
EPS = 1e-6


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"VTMHPAR1", "bad magic"
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


def mha(xq, xkv_k, xkv_v, heads, key_mask=None):
    """Multi-head scaled dot-product attention on already projected q, k, v
    ([B, Tq, W], [B, Tk, W]); key_mask [B, Tk] True where a key is visible."""
    B, Tq, W = xq.shape
    Tk = xkv_k.shape[1]
    hd = W // heads
    q = xq.view(B, Tq, heads, hd).transpose(1, 2)
    k = xkv_k.view(B, Tk, heads, hd).transpose(1, 2)
    v = xkv_v.view(B, Tk, heads, hd).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / hd ** 0.5
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, Tq, W)


def reference(r):
    Q, W, layers, heads, cross_every, max_text, V, E, D, _mlp, B, Nv, L = [
        int(x) if i != 9 else x for i, x in enumerate(r["config"].tolist())]
    lens = [int(x) for x in r["lens"].tolist()]
    P = {k[len("param/"):]: torch.tensor(v, requires_grad=True)
         for k, v in r.items() if k.startswith("param/")}
    vis = torch.tensor(r["vis"], requires_grad=True)
    text = torch.tensor(r["text"], requires_grad=True)

    def lin(x, name):
        return F.linear(x, P[name + ".weight"], P[name + ".bias"])

    def ln(x, name):
        return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], eps=EPS)

    T = Q + L
    vn = ln(vis, "mhub.vis_ln")
    x = torch.cat([P["mhub.queries"][None].expand(B, Q, W),
                   lin(text, "mhub.text_in") + P["mhub.text_pos"][:L][None]], dim=1)
    valid = torch.arange(T)[None, :] < (Q + torch.tensor(lens))[:, None]    # [B, T]
    for l in range(layers):
        pre = f"mhub.layers.{l}"
        h = ln(x, pre + ".ln1")
        q, k, v = lin(h, pre + ".attn.qkv").chunk(3, dim=-1)
        x = x + lin(mha(q, k, v, heads, valid), pre + ".attn.proj")
        if l % cross_every == 0:
            xq = x[:, :Q]
            cq = lin(ln(xq, pre + ".lnc"), pre + ".cross.q")
            ck, cv = lin(vn, pre + ".cross.kv").chunk(2, dim=-1)
            upd = lin(mha(cq, ck, cv, heads), pre + ".cross.proj")
            x = torch.cat([xq + upd, x[:, Q:]], dim=1)
        x = x + lin(F.gelu(lin(ln(x, pre + ".ln2"), pre + ".mlp.fc1")), pre + ".mlp.fc2")
    out = lin(ln(x, "mhub.ln_f"), "mhub.out") * valid[..., None]
    loss = (out * torch.tensor(r["dout"])).sum()
    names = sorted(P)
    grads = torch.autograd.grad(loss, [vis, text] + [P[n] for n in names], allow_unused=True)
    res = {"out": out.detach(),
           "dvis": torch.tensor(r["dvis0"]) + grads[0],
           "dtext": torch.tensor(r["dtext0"]) + (grads[1] if grads[1] is not None else 0)}
    for n, g in zip(names, grads[2:]):
        res[f"grad/{n}"] = torch.zeros_like(P[n]) if g is None else g
    return res


def main():
    driver, scratch = sys.argv[1], sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    path = os.path.join(scratch, "mhub.bin")
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
