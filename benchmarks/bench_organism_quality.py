"""Quality of the model organisms, read by the probes: one targets table for all, or one diffusion organism.

With ``--all`` (the default when no ``--organism`` is given), every organism is measured against the
targets of issue 12 by :mod:`latentkit.quality` (the 3-neuron and the fitted autoencoder, VAE, GAN, both
diffusion organisms) and one table is printed: organism, measure, value with its 95% interval, target,
met, plus the time each part took.

With ``--organism``, the detailed report of that diffusion organism (``data/tiny-sd/`` or
``data/tiny-sd3/``): for captions of the world's HELD_OUT (shape, colour) pairs, never seen in training
(and, as a reference, for captions of the training split), generate images with the organism's defaults
and measure per factor whether the probes read back what the caption says: shape, object colour,
background, texture, position cell, size; plus the in-distribution score. The same factors rendered for
real, and passed through the VAE (round trip), are the references.

    python benchmarks/bench_organism_quality.py [--all] [--only autoencoder gan] [--n 512]
    python benchmarks/bench_organism_quality.py --organism organism-sd3 [--n 288] [--splits heldout train]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from latentkit import quality, resolve_device, seed_everything
from latentkit.layers import find_denoiser
from latentkit.models import ORGANISMS, load_model, tiny_sd
from latentkit.paths import data_dir
from latentkit.probes import load_probes


def folder_size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def targets_table(parts: list[str], n: int | None, n_gan: int, seed: int, device: str) -> None:
    """Measure ``parts`` of :data:`latentkit.quality.PARTS` and print one targets table."""
    device = resolve_device(device)
    probes = load_probes(device)
    print(f"== targets of issue 12 (seed {seed}, {torch.get_num_threads()} threads, {device})", flush=True)
    rows, times = [], {}
    for part in parts:
        t0 = time.perf_counter()
        size = n_gan if part == "gan" else n
        kwargs = {} if size is None else {"n": size}
        rows += quality.PARTS[part](probes=probes, seed=seed, device=device, **kwargs)
        times[part] = time.perf_counter() - t0
        print(f"{part:14s} measured in {times[part]:6.1f} s", flush=True)
    print()
    print(quality.format_table(rows))
    met = [r.met for r in rows if r.met is not None]
    print(f"\n{sum(met)} of {len(met)} targets met; total {sum(times.values()):.0f} s")


def organism_report(organism: str, n: int, seed: int, device: str, splits: list[str]) -> None:
    """The detailed quality report of one diffusion organism, per caption split."""
    model, probes = load_model(organism, device), load_probes(device)
    pipe, settings = model.pipe, model.call_kwargs()
    denoiser_name, _ = find_denoiser(pipe)
    print(f"== {organism} ({type(pipe).__name__})")
    for name in ("text_encoder", "vae", denoiser_name):
        print(f"{name:14s} {tiny_sd.n_params(getattr(pipe, name)):>10,d} parameters")
    folders = (tiny_sd.SD_DIR if organism == "organism" else "tiny-sd3", tiny_sd.CLIP_DIR)
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

    for split in splits:
        t0 = time.perf_counter()
        report = tiny_sd.quality(pipe, probes, n=n, seed=seed, split=split)
        print(f"\n== captions of split={split!r}, n={n} ({time.perf_counter() - t0:.0f} s)")
        print(tiny_sd.format_quality(report))
    print("\n== targets (per-factor agreement)")
    for source, targets in tiny_sd.TARGETS.items():
        print(f"{source}: " + ", ".join(f"{f} >= {v:.2f}" for f, v in targets.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--all", action="store_true", help="one targets table for every organism (default)")
    mode.add_argument("--organism", choices=ORGANISMS, help="detailed report of one diffusion organism")
    parser.add_argument(
        "--only", nargs="+", choices=list(quality.PARTS), default=list(quality.PARTS), help="--all: parts"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="images per measurement (--organism: per split, default 288, >= 256; --all: default 512)",
    )
    parser.add_argument("--n-gan", type=int, default=1024, help="--all: GAN samples and real renders")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--splits", nargs="+", default=["heldout", "train"], help="--organism: caption splits"
    )
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    if args.organism is None:
        targets_table(args.only, args.n, args.n_gan, args.seed, args.device)
        return
    organism_report(args.organism, args.n or 288, args.seed, args.device, args.splits)


if __name__ == "__main__":
    main()
