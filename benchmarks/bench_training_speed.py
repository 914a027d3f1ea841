"""What speeds up the organisms' training on this CPU: one U-Net and one transformer step, several ways.

Times a training step (forward, backward, AdamW) of the U-Net organism and of the transformer organism
on random inputs of the recipes' shapes, in one process and on one thread (as the recipes train, one
core each), and prints each variant's time per step and per image against the recipes' default (fp32,
batch 32):

- ``bf16 autocast``: the CPU's AVX-512 BF16 units (``torch.autocast("cpu", torch.bfloat16)``);
- ``channels_last``: NHWC memory layout for the U-Net's convolutions;
- ``batch 64``: twice the images per step (time per image is what counts);
- ``torch.compile``: the default inductor backend (its compile time is reported apart).

    python benchmarks/bench_training_speed.py [--steps 10] [--threads 1] [--skip-compile]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def unet_step(batch: int, bf16: bool = False, channels_last: bool = False, compile: bool = False):
    from latentkit.models.tiny_sd import MAX_TOKENS, TEXT_HIDDEN, build_unet

    model = build_unet()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, 4, 16, 16)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    text, t = torch.randn(batch, MAX_TOKENS, TEXT_HIDDEN), torch.randint(0, 1000, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = forward(x, t, encoder_hidden_states=text).sample
        loss = pred.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def dit_step(batch: int, bf16: bool = False, channels_last: bool = False, compile: bool = False):
    from latentkit.models.tiny_dit import build_transformer

    model = build_transformer()
    forward = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    c = model.config
    x = torch.randn(batch, 4, 16, 16)
    text = torch.randn(batch, 20, c.joint_attention_dim)
    pooled, t = torch.randn(batch, c.pooled_projection_dim), torch.rand(batch) * 1000

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = forward(
                hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled, timestep=t
            ).sample
        loss = pred.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def seconds_per_step(step: Callable[[], None], steps: int, warmup: int = 3) -> tuple[float, float]:
    """(seconds of the warm-up steps, median seconds per step after them)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first, sorted(times)[len(times) // 2]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the recipes use 1 each)")
    parser.add_argument("--skip-compile", action="store_true", help="leave torch.compile out (slow start)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    variants = {
        "fp32, batch 32 (recipe)": dict(batch=32),
        "bf16 autocast": dict(batch=32, bf16=True),
        "channels_last": dict(batch=32, channels_last=True),
        "batch 64": dict(batch=64),
    }
    if not args.skip_compile:
        variants["torch.compile"] = dict(batch=32, compile=True)
    for organism, make in (("U-Net", unet_step), ("transformer", dit_step)):
        print(f"== {organism} organism, {args.threads} thread(s), median of {args.steps} steps")
        base = None
        for label, kwargs in variants.items():
            if organism == "transformer" and kwargs.get("channels_last"):
                continue  # no convolutions to lay out
            torch.manual_seed(0)
            first, per_step = seconds_per_step(make(**kwargs), args.steps)
            per_image = per_step / kwargs["batch"]
            base = base or per_image
            print(
                f"{label:26s} {per_step:6.3f} s/step  {1e3 * per_image:6.2f} ms/image  "
                f"x{base / per_image:4.2f} images/s vs recipe  (first 3 steps {first:.1f} s)"
            )


if __name__ == "__main__":
    main()
