"""Loads a vistune checkpoint (model.safetensors + config.json) with Hugging
Face transformers' LlavaForConditionalGeneration and compares its logits with
the independent PyTorch reference (tests/parity/llava_ref.py, float64) on
one image + prompt. Exits 77 (skip) where transformers is not installed
(Debian 12 has no python3-transformers); runs on machines that have it.
usage: hf_transformers_check.py CHECKPOINT_DIR"""
import json
import os
import sys

import torch

try:
    import transformers
    from transformers import LlavaForConditionalGeneration
except ImportError:
    print("transformers is not installed: skipped")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parity"))
import llava_ref  # noqa: E402

ckpt = sys.argv[1]
cfg = json.load(open(os.path.join(ckpt, "config.json")))
hf = LlavaForConditionalGeneration.from_pretrained(ckpt, torch_dtype=torch.float32).eval()

ref = llava_ref.Llava(cfg).double().eval()
weights, _ = llava_ref.st_read(os.path.join(ckpt, "model.safetensors"))
missing, unexpected = ref.load_state_dict({k: torch.from_numpy(v.copy()).double() for k, v in weights.items()},
                                          strict=False)
assert not [m for m in missing if "lm_head" not in m], f"reference lacks {missing}"
assert not unexpected, f"unexpected tensors {unexpected}"

torch.manual_seed(0)
v, t = cfg["vision_config"], cfg["text_config"]
n_img = (v["image_size"] // v["patch_size"]) ** 2
pixels = torch.randn(1, 3, v["image_size"], v["image_size"])
text = torch.randint(0, min(cfg["image_token_index"], 250), (1, 12))
tokens = torch.cat([text[:, :2], torch.full((1, n_img), cfg["image_token_index"]), text[:, 2:]], dim=1)
with torch.no_grad():
    out = hf(input_ids=tokens, pixel_values=pixels, attention_mask=torch.ones_like(tokens)).logits.double()
    want = ref(pixels.double(), tokens)
err = (out - want).norm() / want.norm()
print(f"transformers {transformers.__version__}: logits {tuple(out.shape)}, "
      f"relative error vs reference {err.item():.2e}")
if not err < 1e-4:
    sys.exit("FAIL: transformers' logits differ from the reference")
print("1 passed, 0 failed")
