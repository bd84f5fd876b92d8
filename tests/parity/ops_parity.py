#!/usr/bin/python3
"""Per-op parity: vistune's ops against an independent PyTorch float64 reference.

Usage: ops_parity.py DUMP_PROGRAM [--cuda]
Runs DUMP_PROGRAM (tests/parity/ops_parity_dump.c) to write every op's inputs,
outputs and gradients, recomputes each op here in float64 from its definition
(torch.nn.functional, Hugging Face's LLaMA/CLIP formulas, torch.optim.AdamW),
and prints per tensor the max abs error and the relative error
||vistune - ref||_2 / ||ref||_2. Fails when any relative error exceeds 1e-4.
Exit 77 (skip) when torch is missing or --cuda finds no GPU.
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the parity suite needs Debian's python3-torch
    print(f"ops_parity: skipping, {e}")
    sys.exit(77)

REL_TOL = 1e-4
MAGIC = b"VTOPSPAR"
VERSION = 1
DTYPES = {0: np.float32, 1: np.int32, 2: np.uint8}
torch.set_default_dtype(torch.float64)


def read_dump(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise SystemExit(f"{path}: bad magic {data[:8]!r}")
    (version,) = struct.unpack_from("<I", data, 8)
    if version != VERSION:
        raise SystemExit(f"{path}: version {version}, expected {VERSION}")
    off = 12

    def name():
        nonlocal off
        (n,) = struct.unpack_from("<I", data, off)
        s = data[off + 4: off + 4 + n].decode()
        off += 4 + n
        return s

    records = []
    while True:
        rec = name()
        if not rec:
            break
        tensors = {}
        while True:
            tname = name()
            if not tname:
                break
            dtype, ndim = struct.unpack_from("<II", data, off)
            off += 8
            dims = struct.unpack_from(f"<{ndim}q", data, off)
            off += 8 * ndim
            dt = np.dtype(DTYPES[dtype])
            count = int(np.prod(dims)) if ndim else 1
            arr = np.frombuffer(data, dtype=dt, count=count, offset=off).reshape(dims)
            off += dt.itemsize * count
            tensors[tname] = arr.copy()
        records.append((rec, tensors))
    if off != len(data):
        raise SystemExit(f"{path}: {len(data) - off} trailing bytes")
    return records


def t64(a, grad=False):
    t = torch.from_numpy(np.asarray(a, dtype=np.float64).copy())
    return t.requires_grad_(grad)


def backprop(out, dout, inputs):
    grads = torch.autograd.grad(out, inputs, grad_outputs=t64(dout), allow_unused=True)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs)]


# ---- references, written from the op definitions ----

def ref_linear(r):
    x, w = t64(r["x"], True), t64(r["w"], True)
    b = t64(r["b"], True) if "b" in r else None
    out = F.linear(x, w, b)
    ins = [x, w] + ([b] if b is not None else [])
    g = backprop(out, r["dout"], ins)
    res = {"out": out, "dx": g[0], "dw": g[1]}
    if b is not None:
        res["db"] = g[2]
    return res


def ref_layernorm(r):
    x, w, b = t64(r["x"], True), t64(r["w"], True), t64(r["b"], True)
    out = F.layer_norm(x, (x.shape[-1],), w, b, eps=float(r["eps"][0]))
    g = backprop(out, r["dout"], [x, w, b])
    return {"out": out, "dx": g[0], "dw": g[1], "db": g[2]}


def ref_rmsnorm(r):
    # Hugging Face LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight.
    x, w = t64(r["x"], True), t64(r["w"], True)
    var = x.pow(2).mean(-1, keepdim=True)
    out = w * (x * torch.rsqrt(var + float(r["eps"][0])))
    g = backprop(out, r["dout"], [x, w])
    return {"out": out, "dx": g[0], "dw": g[1]}


ACTS = {
    "act_gelu": lambda x: F.gelu(x),
    "act_gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "act_quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "act_silu": lambda x: F.silu(x),
}


def ref_act(name):
    def f(r):
        x = t64(r["x"], True)
        out = ACTS[name](x)
        (dx,) = backprop(out, r["dout"], [x])
        return {"out": out, "dx": dx}
    return f


def ref_swiglu(r):
    gt, up = t64(r["gate"], True), t64(r["up"], True)
    out = F.silu(gt) * up
    g = backprop(out, r["dout"], [gt, up])
    return {"out": out, "dgate": g[0], "dup": g[1]}


def ref_residual(r):
    a, b = t64(r["a"], True), t64(r["b"], True)
    out = a + b
    g = backprop(out, r["dout"], [a, b])
    return {"out": out, "da": g[0], "db": g[1]}


def ref_embedding(r):
    table = t64(r["table"], True)
    ids = torch.from_numpy(r["ids"].astype(np.int64))
    out = F.embedding(ids, table)
    (g,) = backprop(out, r["dout"], [table])
    return {"out": out, "dtable": g}


def ref_patch_embed(r):
    # HF CLIPVisionEmbeddings: conv2d(kernel=stride=P, no bias), flatten(2).transpose(1, 2).
    img, w = t64(r["img"], True), t64(r["w"], True)
    P = w.shape[-1]
    out = F.conv2d(img, w, stride=P).flatten(2).transpose(1, 2)
    g = backprop(out, r["dout"], [img, w])
    return {"out": out, "dimg": g[0], "dw": g[1]}


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def ref_rope(r):
    # HF LLaMA: inv_freq = 1 / theta^(arange(0, d, 2)/d); emb = cat(freqs, freqs);
    # x * cos + rotate_half(x) * sin, per head.
    x = t64(r["x"], True)  # [B, T, NH, hd]
    hd = x.shape[-1]
    theta = float(r["theta"][0])
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    pos = torch.from_numpy(r["pos"].astype(np.float64))  # [B, T]
    freqs = pos[..., None] * inv_freq  # [B, T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]
    out = x * emb.cos() + rotate_half(x) * emb.sin()
    (dx,) = backprop(out, r["dout"], [x])
    return {"out": out, "dx": dx}


def ref_attention(r):
    q, k, v = t64(r["q"], True), t64(r["k"], True), t64(r["v"], True)
    B, T, NH, hd = q.shape
    NKV = k.shape[2]
    causal = bool(r["causal"][0])
    # [B, heads, T, hd]; grouped-query heads repeat each kv head NH/NKV times (HF repeat_kv).
    qh = q.transpose(1, 2)
    kh = k.transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    vh = v.transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(hd)
    allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    if "kv_len" in r:
        keys = torch.arange(T)
        kv = torch.from_numpy(r["kv_len"].astype(np.int64))
        allowed = allowed & (keys[None, :] < kv[:, None])[:, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)  # a query with no visible key attends to nothing
    out = (p @ vh).transpose(1, 2)
    g = backprop(out, r["dout"], [q, k, v])
    return {"out": out, "dq": g[0], "dk": g[1], "dv": g[2]}


def ref_crossentropy(r):
    logits = t64(r["logits"], True)
    mask = torch.from_numpy(r["mask"].astype(bool))
    tg = torch.from_numpy(r["targets"].astype(np.int64))
    tg_ignored = torch.where(mask, tg, torch.full_like(tg, -100))
    loss = F.cross_entropy(logits, tg_ignored, ignore_index=-100, reduction="mean")
    per = F.cross_entropy(logits, tg_ignored, ignore_index=-100, reduction="none")
    (g,) = torch.autograd.grad(loss, [logits])
    return {"loss": loss.reshape(1), "count": torch.tensor([float(mask.sum())]),
            "losses": per, "probs": torch.softmax(logits, -1), "dlogits": g}


def ref_adamw(r):
    lr, b1, b2, eps, wd = (float(x) for x in r["hparams"])
    mask = r["decay_mask"].astype(bool)
    p_decay = t64(r["p0"][mask])
    p_plain = t64(r["p0"][~mask])
    opt = torch.optim.AdamW([{"params": [p_decay], "weight_decay": wd},
                             {"params": [p_plain], "weight_decay": 0.0}],
                            lr=lr, betas=(b1, b2), eps=eps)
    for g in r["grads"]:
        p_decay.grad = t64(g[mask])
        p_plain.grad = t64(g[~mask])
        opt.step()
    res = {}
    for key, state_key in (("p", None), ("m", "exp_avg"), ("v", "exp_avg_sq")):
        full = torch.zeros(mask.shape[0])
        for sel, prm in ((mask, p_decay), (~mask, p_plain)):
            val = prm.detach() if state_key is None else opt.state[prm][state_key]
            full[torch.from_numpy(sel)] = val
        res[key] = full
    return res


def ref_grad_clip(r):
    holder = torch.zeros(r["g"].shape, requires_grad=True)
    holder.grad = t64(r["g"])
    norm = torch.nn.utils.clip_grad_norm_([holder], float(r["max_norm"][0]))
    return {"norm": norm.reshape(1), "g_out": holder.grad}


REFS = {
    "linear": ref_linear, "linear_nobias": ref_linear,
    "layernorm": ref_layernorm, "rmsnorm": ref_rmsnorm,
    "swiglu": ref_swiglu, "residual": ref_residual, "embedding": ref_embedding,
    "patch_embed": ref_patch_embed, "rope": ref_rope,
    "attention_bidir": ref_attention, "attention_causal_gqa_padded": ref_attention,
    "crossentropy": ref_crossentropy, "adamw": ref_adamw, "grad_clip": ref_grad_clip,
}
REFS.update({k: ref_act(k) for k in ACTS})


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    extra = sys.argv[2:]
    tmpdir = os.environ.get("VT_TEST_TMP") or tempfile.mkdtemp()
    os.makedirs(tmpdir, exist_ok=True)
    dump = os.path.join(tmpdir, "ops_parity" + ("_cuda" if extra else "") + ".bin")
    rc = subprocess.call([sys.argv[1], dump] + extra)
    if rc == 77:
        print("ops_parity: skipping, no CUDA device")
        return 77
    if rc != 0:
        print(f"ops_parity: dump program failed with {rc}")
        return 1
    torch.set_num_threads(1)
    failures, seen = [], set()
    print(f"{'op':30s} {'tensor':8s} {'max abs':>10s} {'rel L2':>10s}")
    for name, r in read_dump(dump):
        seen.add(name)
        if name not in REFS:
            failures.append(f"{name}: no reference")
            continue
        ref = REFS[name](r)
        for key, want in ref.items():
            if key not in r:
                failures.append(f"{name}.{key}: missing from dump")
                continue
            want = want.detach().reshape(-1).to(torch.float64)
            got = torch.from_numpy(r[key].astype(np.float64)).reshape(-1)
            if got.shape != want.shape:
                failures.append(f"{name}.{key}: shape {tuple(got.shape)} vs {tuple(want.shape)}")
                continue
            diff = got - want
            max_abs = float(diff.abs().max()) if diff.numel() else 0.0
            denom = float(want.norm())
            rel = float(diff.norm()) / denom if denom > 0 else float(diff.norm())
            flag = "" if rel <= REL_TOL and math.isfinite(rel) else "  FAIL"
            print(f"{name:30s} {key:8s} {max_abs:10.3e} {rel:10.3e}{flag}")
            if flag:
                failures.append(f"{name}.{key}: rel {rel:.3e} > {REL_TOL:g}")
    missing = set(REFS) - seen
    if missing:
        failures.append(f"ops missing from the dump: {sorted(missing)}")
    if failures:
        print("ops_parity: FAILED\n  " + "\n  ".join(failures))
        return 1
    print(f"ops_parity: all {len(seen)} ops within rel L2 {REL_TOL:g} of the float64 reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
