"""Quality report of a diffusion organism (``data/tiny-sd/`` or ``data/tiny-sd3/``), read by the probes.

For captions of the world's HELD_OUT (shape, colour) pairs, never seen in training (and, as a reference,
for captions of the training split), generate images with the organism's defaults and measure per factor
whether the probes read back what the caption says: shape, object colour, background, texture, position
cell, size; plus the in-distribution score. The same factors rendered for real, and passed through the
VAE (round trip), are the references.

    python benchmarks/bench_organism_quality.py [--organism organism-sd3] [--n 288] [--splits heldout train]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from latentkit import seed_everything
from latentkit.layers import find_denoiser
from latentkit.models import load_model, tiny_sd
from latentkit.paths import data_dir
from latentkit.probes import load_probes


def folder_size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organism", default="organism", help="organism (U-Net) or organism-sd3 (MMDiT)")
    parser.add_argument("--n", type=int, default=288, help="images per split (>= 256)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", nargs="+", default=["heldout", "train"], help="caption splits")
    args = parser.parse_args(argv)
    seed_everything(args.seed)

    model, probes = load_model(args.organism, args.device), load_probes(args.device)
    pipe, settings = model.pipe, model.call_kwargs()
    denoiser_name, _ = find_denoiser(pipe)
    print(f"== {args.organism} ({type(pipe).__name__})")
    for name in ("text_encoder", "vae", denoiser_name):
        print(f"{name:14s} {tiny_sd.n_params(getattr(pipe, name)):>10,d} parameters")
    folders = (tiny_sd.SD_DIR if args.organism == "organism" else "tiny-sd3", tiny_sd.CLIP_DIR)
    for folder in folders:
        path = data_dir() / folder
        if path.exists():
            print(f"data/{folder:10s} {folder_size(path) / 2**20:8.2f} MiB")

    times = []
    for i in range(6):
        t0 = time.perf_counter()
        tiny_sd.generate(pipe, ["a large red star at the top left on a striped white background"], i)
        times.append(time.perf_counter() - t0)
    print(
        f"one 64x64 image, {settings['num_inference_steps']} steps, guidance "
        f"{settings['guidance_scale']}: median {statistics.median(times[1:]):.3f} s "
        f"({torch.get_num_threads()} threads, {pipe.device})"
    )

    for split in args.splits:
        t0 = time.perf_counter()
        report = tiny_sd.quality(pipe, probes, n=args.n, seed=args.seed, split=split)
        print(f"\n== captions of split={split!r}, n={args.n} ({time.perf_counter() - t0:.0f} s)")
        print(tiny_sd.format_quality(report))
    print("\n== targets (per-factor agreement)")
    for source, targets in tiny_sd.TARGETS.items():
        print(f"{source}: " + ", ".join(f"{f} >= {v:.2f}" for f, v in targets.items()))


if __name__ == "__main__":
    main()
