"""Model parity: vistune's C LLaVA forward/backward/AdamW against the
independent PyTorch float64 reference in llava_ref.py.

Batch: three sequences of a real MNIST digit image + a byte-level prompt +
answer (the second right-padded, the third text-only and padded). The C driver
(model_parity_driver) builds the model from a seed, exports its initial
weights in the Hugging Face layout, and writes logits, loss, every gradient and
the losses of 10 AdamW steps. This script loads the exported checkpoint into
the reference, checks the checkpoint's tensor names/shapes against the
reference's state_dict (the Hugging Face layout), and compares.

Norm: relative L2 error per tensor, ||c - ref||_2 / ||ref||_2, tolerance 1e-4
for logits, loss, every gradient and each of the 10 losses. Exception: a
gradient that is analytically zero (the attention key bias: softmax ignores a
per-query constant; blocks after vision_feature_layer; post_layernorm) has
||ref||_2 at float64 round-off, so it is checked as ||c||_2 <= 1e-4 * (global
gradient norm) / sqrt(#tensors) instead: float32 round-off, not signal.

usage: test_model_parity.py DRIVER WORKDIR [--cuda]
(--cuda: the C side runs on the CUDA backend; exits 77 when there is no GPU)"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_ref as ref  # noqa: E402

TOL = 1e-4
SKIP = 77  # ctest SKIP_RETURN_CODE
IMAGE_TOKEN = 287
EOS = 256
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])

CONFIG = {
    "model_type": "llava",
    "image_token_index": IMAGE_TOKEN,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
                      "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    "text_config": {"vocab_size": 288, "hidden_size": 64, "intermediate_size": 96,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
                    "tie_word_embeddings": False},
}


# Second case: tied embeddings (lm_head gradient accumulates into embed_tokens),
# exact-gelu vision MLP, features from the last block, plain multi-head
# attention, and the default stage-2 freezing (vision tower frozen: only the
# projector and decoder gradients exist and are compared).
CONFIG_TIED = json.loads(json.dumps(CONFIG))
CONFIG_TIED["vision_feature_layer"] = -1
CONFIG_TIED["vision_config"]["hidden_act"] = "gelu"
CONFIG_TIED["text_config"].update({"tie_word_embeddings": True, "num_key_value_heads": 4})


def mnist_image(digit):
    """A real MNIST digit (28x28 in [0,1]) padded to 32x32, grey to RGB, CLIP-normalised."""
    data_dir = os.environ.get("VT_DATA_DIR", os.path.expanduser("~/.cache/vistune/data"))
    path = os.path.join(data_dir, "mnist", "package", "src", "digits", f"{digit}.json")
    if not os.path.exists(path):
        print(f"skip: {path} missing (run deploy/fetch-data.sh)")
        sys.exit(77)
    with open(path) as f:
        px = np.array(json.load(f)["data"][:784], dtype=np.float64).reshape(28, 28)
    img = np.zeros((32, 32))
    img[2:30, 2:30] = px
    rgb = np.stack([img] * 3)
    return ((rgb - CLIP_MEAN[:, None, None]) / CLIP_STD[:, None, None]).astype(np.float32)


def sequence(prompt, answer, with_image):
    """USER: <image>\\n{prompt} ASSISTANT: {answer}</s>; returns ids and the answer mask over ids."""
    n_img = (32 // 8) ** 2
    ids, ans = [], []
    head = "USER: "
    ids += list(head.encode())
    if with_image:
        ids += [IMAGE_TOKEN] * n_img + list(b"\n")
    ids += list(f"{prompt} ASSISTANT:".encode())
    ans_start = len(ids)
    ids += list(f" {answer}".encode()) + [EOS]
    ans = [0] * ans_start + [1] * (len(ids) - ans_start)
    return ids, ans


def make_batch():
    seqs = [sequence("What digit is shown?", "seven", True),
            sequence("Name the digit.", "three", True),
            sequence("Say hi.", "hi", False)]
    T = max(len(s[0]) for s in seqs)
    B = len(seqs)
    tokens = np.zeros((B, T), np.int32)
    targets = np.zeros((B, T), np.int32)
    mask = np.zeros((B, T), np.uint8)
    lengths = np.zeros(B, np.int32)
    for b, (ids, ans) in enumerate(seqs):
        L = len(ids)
        tokens[b, :L] = ids
        lengths[b] = L
        targets[b, : L - 1] = ids[1:]
        # target t is token t+1: counted when token t+1 is part of the answer
        mask[b, : L - 1] = ans[1:]
    pixels = np.stack([mnist_image(7), mnist_image(3), np.zeros((3, 32, 32), np.float32)])
    return {"pixels": pixels, "tokens": tokens, "targets": targets, "loss_mask": mask, "lengths": lengths}


def yaml_of(cfg, B, T, freeze_vision):
    v, t = cfg["vision_config"], cfg["text_config"]
    lines = ["model:", "  vision_config:"]
    lines += [f"    {k}: {val}" for k, val in v.items()]
    lines += ["  text_config:"]
    lines += [f"    {k}: {str(val).lower() if isinstance(val, bool) else val}" for k, val in t.items()]
    lines += [f"  image_token_index: {cfg['image_token_index']}",
              f"  projector_hidden_act: {cfg['projector_hidden_act']}",
              f"  vision_feature_layer: {cfg['vision_feature_layer']}",
              "  freeze:", f"    vision_tower: {str(freeze_vision).lower()}", "    multi_modal_projector: false",
              "    language_model: false",
              "batch:", f"  B: {B}", f"  T: {T}"]
    return "\n".join(lines) + "\n"


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    if nb == 0:
        return 0.0 if np.linalg.norm(a) <= 1e-12 else float("inf")
    return float(np.linalg.norm(a - b) / nb)


def run_case(driver, work, CONFIG, freeze_vision, extra):
    os.makedirs(work, exist_ok=True)
    batch = make_batch()
    B, T = batch["tokens"].shape
    ref.st_write(os.path.join(work, "batch.safetensors"), batch)
    with open(os.path.join(work, "model.yaml"), "w") as f:
        f.write(yaml_of(CONFIG, B, T, freeze_vision))
    r = subprocess.run([driver, work] + extra, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode == SKIP:
        sys.stderr.write(r.stderr)
        return SKIP
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        print("FAIL: driver exited", r.returncode)
        return 1

    weights, meta = ref.st_read(os.path.join(work, "init", "model.safetensors"))
    with open(os.path.join(work, "init", "config.json")) as f:
        hf = json.load(f)
    failures = []
    # config.json: what transformers' LlavaConfig reads.
    for key, want in [("model_type", "llava"), ("image_token_index", IMAGE_TOKEN),
                      ("vision_feature_layer", CONFIG["vision_feature_layer"]), ("projector_hidden_act", "gelu"),
                      ("vision_feature_select_strategy", "default")]:
        if hf.get(key) != want:
            failures.append(f"config.json {key} = {hf.get(key)!r}, want {want!r}")
    if hf["vision_config"].get("model_type") != "clip_vision_model":
        failures.append("config.json vision_config.model_type")
    if hf["text_config"].get("model_type") != "llama":
        failures.append("config.json text_config.model_type")
    for sect in ("vision_config", "text_config"):
        for k, v in CONFIG[sect].items():
            if hf[sect].get(k) != v:
                failures.append(f"config.json {sect}.{k} = {hf[sect].get(k)!r}, want {v!r}")
    if meta.get("format") != "pt":
        failures.append("safetensors __metadata__ format != pt")

    torch.manual_seed(0)
    model = ref.Llava(CONFIG).double()
    if freeze_vision:
        for p in model.vision_tower.parameters():
            p.requires_grad_(False)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        failures.append(f"checkpoint layout differs: missing {missing[:5]}, extra {extra[:5]}, shapes {wrong[:5]}")
        print("FAIL:", failures[-1])
        return 1
    print(f"layout: {len(expected)} tensors match the Hugging Face LlavaForConditionalGeneration names and shapes")
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()})

    out, _ = ref.st_read(os.path.join(work, "out.safetensors"))
    pixels = torch.from_numpy(batch["pixels"].astype(np.float64))
    tokens = torch.from_numpy(batch["tokens"].astype(np.int64))
    targets = torch.from_numpy(batch["targets"].astype(np.int64))
    mask = torch.from_numpy(batch["loss_mask"])
    lengths = torch.from_numpy(batch["lengths"].astype(np.int64))

    logits = model(pixels, tokens, lengths)
    loss = ref.masked_ce(logits, targets, mask)
    loss.backward()
    report = [("logits", rel(out["logits"], logits.detach().numpy())),
              ("loss", rel(out["loss"], [loss.item()]))]
    named = [(n, p.grad.numpy() if p.grad is not None else np.zeros(p.shape))
             for n, p in model.named_parameters() if p.requires_grad]
    if sorted("grad." + n for n, _ in named) != sorted(k for k in out if k.startswith("grad.")):
        print("FAIL: the C gradients are not exactly the trainable tensors")
        return 1
    gnorm = np.sqrt(sum(float(np.sum(g * g)) for _, g in named))
    floor = gnorm * 1e-6
    zero_floor = TOL * gnorm / np.sqrt(len(named))
    n_zero = 0
    for name, g in named:
        c = out["grad." + name]
        if np.linalg.norm(g) <= floor:  # analytically zero gradient
            n_zero += 1
            e = float(np.linalg.norm(c) / zero_floor) * TOL
        else:
            e = rel(c, g)
        report.append(("grad " + name, e))
    # 10 AdamW steps: lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.1 on matrices
    # and embeddings only, global-norm clipping at 1.0 before each step.
    model.zero_grad()
    decay = [p for p in model.parameters() if p.dim() >= 2 and p.requires_grad]
    no_decay = [p for p in model.parameters() if p.dim() < 2 and p.requires_grad]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    ref_losses = []
    for _ in range(10):
        opt.zero_grad()
        l = ref.masked_ce(model(pixels, tokens, lengths), targets, mask)
        ref_losses.append(l.item())
        l.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
    for i in range(10):
        report.append((f"loss step {i + 1}", rel([out["losses"][i]], [ref_losses[i]])))

    worst = max(report, key=lambda x: x[1])
    for name, e in report:
        flag = "" if e <= TOL else "   <-- FAIL"
        if e > TOL or name in ("logits", "loss") or name.startswith("loss step"):
            print(f"  {name:75s} rel {e:.3e}{flag}")
    grads = [e for n, e in report if n.startswith("grad ")]
    print(f"max rel error: logits {report[0][1]:.3e}, loss {report[1][1]:.3e}, "
          f"gradients {max(grads):.3e} over {len(grads)} tensors ({n_zero} analytically zero), 10-step losses "
          f"{max(e for n, e in report if n.startswith('loss step')):.3e} (tolerance {TOL:g}, ||c-ref||_2/||ref||_2)")
    print(f"losses C   : {' '.join(f'{x:.6f}' for x in out['losses'])}")
    print(f"losses ref : {' '.join(f'{x:.6f}' for x in ref_losses)}")
    failures += [f"{n}: {e:.3e}" for n, e in report if e > TOL]
    if failures:
        print("FAIL:", "; ".join(failures[:10]), f"(worst {worst[0]})")
        return 1
    print("PASS")
    return 0


def main():
    driver, work, extra = sys.argv[1], sys.argv[2], sys.argv[3:]  # extra: [--cuda]
    rc = 0
    for name, cfg, freeze in [("untied, GQA, all trainable", CONFIG, False),
                              ("tied, MHA, vision frozen", CONFIG_TIED, True)]:
        print(f"== case: {name}" + (" (CUDA backend)" if extra else ""))
        r = run_case(driver, os.path.join(work, name.split(",")[0]), cfg, freeze, extra)
        if r == SKIP:
            return SKIP
        rc |= r
    return rc


if __name__ == "__main__":
    sys.exit(main())
