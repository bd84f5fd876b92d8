"""Trainer benchmark, PyTorch side (driven by bench_trainer.sh): trains the
model bench_trainer exported (DIR/init, Hugging Face layout) on the same batch
(DIR/batch.safetensors) with the same recipe -- vision tower frozen,
projector + decoder trained, AdamW lr 1e-4, clip 1.0 -- in float32 with the
given threads, using the independent reference in tests/parity/llava_ref.py.
DEVICE cuda runs it on the GPU in plain float32 (TF32 off, as vistune's
cuBLAS calls), synchronising before each step's clock is read.

usage: bench_trainer_torch.py DIR STEPS WARMUP THREADS [DEVICE]"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import llava_ref as ref  # noqa: E402


def main():
    work, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with open(os.path.join(work, "init", "config.json")) as f:
        cfg = json.load(f)
    weights, _ = ref.st_read(os.path.join(work, "init", "model.safetensors"))
    batch, _ = ref.st_read(os.path.join(work, "batch.safetensors"))
    model = ref.Llava(cfg).float().to(device)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)).to(device) for k, v in weights.items()})
    for p in model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    pixels = torch.from_numpy(batch["pixels"]).to(device)
    tokens = torch.from_numpy(batch["tokens"].astype(np.int64)).to(device)
    targets = torch.from_numpy(batch["targets"].astype(np.int64)).to(device)
    mask = torch.from_numpy(batch["loss_mask"]).to(device)
    times, first = [], None
    for s in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = ref.masked_ce(model(pixels, tokens, None), targets, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        if s == 0:
            first = loss.item()
        if s >= warmup:
            times.append(dt)
    times.sort()
    print(f"torch_version={torch.__version__} threads={torch.get_num_threads()} device={device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"torch_first_loss={first:.6f}")
    print(f"torch_step_ms={times[len(times) // 2] * 1e3:.2f} (median of {steps}, min {times[0] * 1e3:.2f}, "
          f"max {times[-1] * 1e3:.2f})")


if __name__ == "__main__":
    main()
