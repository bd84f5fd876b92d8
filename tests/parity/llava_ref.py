"""Independent PyTorch reference of the LLaVA-1.5 architecture (DESIGN.md §3),
written from the architecture description and the Hugging Face module
naming (CLIPVisionModel + LlavaMultiModalProjector + LlamaForCausalLM), not
from vistune's C code. Module attribute names mirror Hugging Face's, so
state_dict() gives the LlavaForConditionalGeneration checkpoint layout
(transformers 4.36-4.51 naming; 4.52+ saves and loads the same names through
its checkpoint conversion mapping). Also a minimal safetensors reader/writer
(struct + json + numpy; no `safetensors` package needed)."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors

_DT = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_DT_REV = {np.dtype(v).str: k for k, v in _DT.items()}


def st_read(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        if e["dtype"] == "BF16":
            u = np.frombuffer(data[b:end], dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(data[b:end], dtype=np.dtype(_DT[e["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(e["shape"]).copy()
    return out, meta


def st_write(path, tensors, meta=None):
    header = {}
    if meta:
        header["__metadata__"] = meta
    blobs, off = [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = _DT_REV[arr.dtype.newbyteorder("<").str if arr.dtype.byteorder == ">" else arr.dtype.str]
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- activations

def act_fn(name):
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "silu":
        return lambda x: x * torch.sigmoid(x)
    raise ValueError(name)


# ---------------------------------------------------------------- CLIP vision tower

class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        q = self.q_proj(x).view(B, T, self.heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.heads, hd).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # bidirectional
        y = torch.softmax(s, dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class CLIPMLP(nn.Module):
    def __init__(self, d, inter, act):
        super().__init__()
        self.act = act_fn(act)
        self.fc1 = nn.Linear(d, inter)
        self.fc2 = nn.Linear(inter, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d = vc["hidden_size"]
        self.self_attn = CLIPAttention(d, vc["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(d, eps=vc["layer_norm_eps"])
        self.mlp = CLIPMLP(d, vc["intermediate_size"], vc["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(d, eps=vc["layer_norm_eps"])

    def forward(self, x):  # pre-LN
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(vc) for _ in range(vc["num_hidden_layers"])])


class CLIPEmbeddings(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d, p = vc["hidden_size"], vc["patch_size"]
        self.n_patches = (vc["image_size"] // p) ** 2
        self.class_embedding = nn.Parameter(torch.zeros(d))
        self.patch_embedding = nn.Conv2d(3, d, kernel_size=p, stride=p, bias=False)
        self.position_embedding = nn.Embedding(self.n_patches + 1, d)

    def forward(self, pixels):
        B = pixels.shape[0]
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)  # [B, N, D], row-major grid
        cls = self.class_embedding.expand(B, 1, -1)
        x = torch.cat([cls, patches], dim=1)
        return x + self.position_embedding.weight[None]


class CLIPVisionTransformer(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d = vc["hidden_size"]
        self.embeddings = CLIPEmbeddings(vc)
        self.pre_layrnorm = nn.LayerNorm(d, eps=vc["layer_norm_eps"])
        self.encoder = CLIPEncoder(vc)
        self.post_layernorm = nn.LayerNorm(d, eps=vc["layer_norm_eps"])

    def hidden_states(self, pixels):
        """[embeddings after pre_layrnorm, after block 0, after block 1, ...]"""
        x = self.pre_layrnorm(self.embeddings(pixels))
        hs = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            hs.append(x)
        return hs


class CLIPVisionModel(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(vc)


# ---------------------------------------------------------------- projector

class MultiModalProjector(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dv, d = cfg["vision_config"]["hidden_size"], cfg["text_config"]["hidden_size"]
        self.linear_1 = nn.Linear(dv, d)
        self.act = act_fn(cfg["projector_hidden_act"])
        self.linear_2 = nn.Linear(d, d)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


# ---------------------------------------------------------------- LLaMA decoder

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, tc):
        super().__init__()
        d = tc["hidden_size"]
        self.nh, self.nkv = tc["num_attention_heads"], tc["num_key_value_heads"]
        self.hd = d // self.nh
        self.theta = tc["rope_theta"]
        self.q_proj = nn.Linear(d, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, d, bias=False)

    def forward(self, x, lengths):
        B, T, D = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        dev = x.device
        inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64, device=dev) / self.hd))
        ang = torch.arange(T, dtype=torch.float64, device=dev)[:, None] * inv[None]
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        allowed = torch.ones(T, T, dtype=torch.bool, device=dev).tril()[None, None].expand(B, 1, T, T).clone()
        if lengths is not None:
            for b in range(B):
                allowed[b, :, :, int(lengths[b]):] = False
        s = s.masked_fill(~allowed, float("-inf"))
        p = torch.softmax(s, dim=-1)
        p = torch.nan_to_num(p, nan=0.0)  # a query with no visible key outputs zeros
        y = (p @ v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, tc):
        super().__init__()
        d, i = tc["hidden_size"], tc["intermediate_size"]
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.self_attn = LlamaAttention(tc)
        self.mlp = LlamaMLP(tc)
        self.input_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])

    def forward(self, x, lengths):
        x = x + self.self_attn(self.input_layernorm(x), lengths)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.embed_tokens = nn.Embedding(tc["vocab_size"], tc["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(tc) for _ in range(tc["num_hidden_layers"])])
        self.norm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.model = LlamaModel(tc)
        self.tied = bool(tc.get("tie_word_embeddings", False))
        if not self.tied:
            self.lm_head = nn.Linear(tc["hidden_size"], tc["vocab_size"], bias=False)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.tied else self.lm_head.weight


# ---------------------------------------------------------------- LLaVA

class Llava(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision_tower = CLIPVisionModel(cfg["vision_config"])
        self.multi_modal_projector = MultiModalProjector(cfg)
        self.language_model = LlamaForCausalLM(cfg["text_config"])

    def forward(self, pixels, tokens, lengths=None):
        """tokens [B,T] with image_token_index at each image's N positions; returns logits [B,T,V]."""
        cfg = self.cfg
        img = cfg["image_token_index"]
        is_img = tokens == img
        embeds = self.language_model.model.embed_tokens(torch.where(is_img, torch.zeros_like(tokens), tokens))
        if bool(is_img.any()):
            hs = self.vision_tower.vision_model.hidden_states(pixels)
            feats = hs[cfg["vision_feature_layer"]][:, 1:]  # patch tokens only (CLS dropped)
            proj = self.multi_modal_projector(feats)  # [B, N, D]
            rows = []
            for b in range(tokens.shape[0]):
                pos = torch.nonzero(is_img[b]).flatten()
                row = embeds[b]
                if len(pos):
                    row = row.index_put((pos,), proj[b, : len(pos)])
                rows.append(row)
            embeds = torch.stack(rows)
        x = embeds
        for layer in self.language_model.model.layers:
            x = layer(x, lengths)
        x = self.language_model.model.norm(x)
        return x @ self.language_model.head_weight().t()


def masked_ce(logits, targets, mask):
    """Mean cross-entropy over positions with mask != 0."""
    V = logits.shape[-1]
    lp = torch.log_softmax(logits.reshape(-1, V), dim=-1)
    m = mask.reshape(-1).bool()
    t = targets.reshape(-1).clamp(min=0)
    nll = -lp.gather(1, t[:, None])[:, 0]
    return nll[m].sum() / m.sum()

