"""Which estimator of smoothness is stable across seeds, and which sees the jumps the paper means?

    python benchmarks/bench_smoothness_estimators.py [--seeds 0 1 2] [--paths 64] [--only diffusion|strict]

:func:`latentkit.properties.smoothness` reads the straightness of decoded paths from the local speed at
one random ``t`` per path. That has two known weaknesses: its interval is wide where the speeds are
heavy-tailed (notebook 03's diffusion spaces: seeds 0, 1 and 2 place five of its smoothness marks
differently), and a path that stands still and then jumps scores 1, because the speed at one ``t`` almost
never lands on the jump (h-space at step 1: 1.00). The paper counts jumps against smoothness: the initial
noise "has some neighbourhood, but it quickly jumps to a completely different representation" (Sec. 3).

This benchmark measures, on the same paths and points, for every space of notebooks 01-03 (the world's
factors, the strict-sense organisms, the diffusion candidates at notebook 03's defaults):

* ``one-t``: today's straightness (``min(1, mean chord / mean trimmed speed)``, fp32 finite differences);
* ``grid K``: each path decoded at ``K + 1`` evenly spaced points; per path ``chord / polyline length``,
  averaged over paths (bounded in [0, 1], so its mean has no heavy tail); blind to a jump that goes
  straight from one image to the other, as ``one-t`` is;
* ``even K``: per path ``chord^2 / (K * sum of squared segment lengths)``, the discrete form of PPL
  normalised by the chord: 1 for a path that moves straight at an even pace, ``1 / K`` for one that
  jumps in one segment, ``1 / K^2`` for a scrambled decoder;
* ``direct 8``: on the same grid, the probes read every factor at each point; per path, the number of
  factors the two ends differ in divided by the number of factor changes along the path (1 when each
  differing factor changes once, as on the world's own paths; lower when the path wanders through other
  values and back), averaged over paths;
* ``local``: ``1 - mean |f(x') - f(x)| / mean |f(b) - f(a)|`` for ``x' = perturb(x, 0.1)``, the step that
  :func:`smoothness`'s "stays in distribution" already decodes: how similar a point's neighbours are,
  against two random points. No extra decodes.

Each with its 95% bootstrap interval over paths (or points), and the seconds its extra decodes took. The
last table gives, per estimator, the largest seed-to-seed spread of a space's value, the mean interval
width, and how many (space, seed) intervals straddle a mark threshold (0.3 or 0.7). Features are the
probes' (as :func:`latentkit.properties.probe_features`). One CPU thread: about 8 minutes per seed for the
seven diffusion spaces, 2 for the six others.

Measured on 2026-12-04 (64 paths, seeds 0, 1 and 2, shipped weights; values are the three seeds' range):

==============================  =========  =========  =========  =========  =========
space                           one-t      grid 8     even 8     direct 8   local
==============================  =========  =========  =========  =========  =========
world factors (ideal)           1.00       0.66-0.67  0.12       1.00       0.98
autoencoder (3 neurons)         0.13-0.15  0.26-0.27  0.05-0.07  0.27-0.32  0.63-0.67
autoencoder (16 neurons)        0.17-0.24  0.29-0.30  0.07       0.35-0.39  0.67-0.72
VAE (two-stage)                 0.15-0.19  0.27-0.29  0.05-0.06  0.31-0.34  0.71-0.78
GAN z / w                       0.07-0.11  0.24-0.27  0.04-0.07  0.25-0.31  0.45-0.63
initial noise                   0.80-0.89  0.77-0.79  0.53-0.54  0.86-0.89  0.91-0.93
text tokens                     0.15-0.26  0.36-0.38  0.07-0.09  0.54-0.56  0.95-0.96
EOS / pooled                    0.39-0.51  0.49-0.50  0.13-0.15  0.72-0.80  0.88-0.90
latent before the VAE decoder   0.38-0.41  0.51-0.54  0.17-0.19  0.57-0.63  0.96-0.97
h-space at step 1               1.00       0.88-0.90  0.17-0.19  0.95-0.98  1.00
h-space at step 3               0.70-0.82  0.84-0.85  0.65-0.66  1.00       0.97
up_blocks.2.attentions.0        0.34-0.55  0.52-0.53  0.16-0.17  0.61-0.63  0.93-0.94
==============================  =========  =========  =========  =========  =========

On the diffusion spaces, one-t's value moves by up to 0.21 between seeds (mean interval width 0.32; 16 of
21 intervals straddle a threshold); every grid estimator moves by at most 0.03 (grid 8, width 0.06, no
straddle) to 0.07 (direct 8, width 0.08, one straddle: the EOS vector at 0.72 [0.66, 0.79]). What each
reads: grid 8 is one-t's quantity (chord over path length) without its heavy tail, but in this world of
discrete factors even the ideal space's paths zigzag (each factor switches in its own direction of
feature space), so it scores 0.66 and nothing can reach 0.7; even 8 sees jumps (h-space at step 1,
0.17-0.19, against 0.53 for the noise) but scores the ideal space's staircases lowest of all (0.12 =
1/8); direct 8 is calibrated to the world (the ideal 1.00) and tells the strict-sense organisms, whose
paths pass through about three factor changes for each one needed (0.25-0.39), from the noise (0.86-0.89),
but like grid 8 it cannot see a jump that changes every factor at once (h-space at step 1, 0.95-0.98);
local is dominated by the size of its step relative to each space's spread (0.88-1.00 on every diffusion
space, 0.45-0.78 on the strict ones) and tells little. The decodes per path: one-t 2 besides the two
ends, grid 7 (8 segments) or 3 (4 segments); measured here, the grid's 7 took 22 s per diffusion space and
seed against 12 s for one-t's 4 (ends included), so notebook 03 would spend about 100 s more on one thread
with 8 segments.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

K_GRID = 8  # segments per path; the grid of 4 is every second point of it


def bootstrap(values: np.ndarray, rng: np.random.Generator, reps: int = 200) -> tuple[float, float]:
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def estimators(space, probes, n: int, seed: int) -> list[dict]:
    from latentkit import full_precision
    from latentkit import properties as P

    gen = P._generator(seed)  # the draws of smoothness(): a, b, t, then the neighbours
    a, b = space.sample(n, gen), space.sample(n, gen)
    t = torch.rand(n, generator=gen) * (1 - 1e-4)
    rng = np.random.default_rng(seed)
    rows = []

    start = time.perf_counter()
    with full_precision():
        f0 = P.probe_features(probes, space.decode_float(space.interpolate(a, b, t)))
        f1 = P.probe_features(probes, space.decode_float(space.interpolate(a, b, t + 1e-4)))
        fa = P.probe_features(probes, space.decode_float(a))
        fb = P.probe_features(probes, space.decode_float(b))
    speed, chord = np.linalg.norm(f1 - f0, axis=1) / 1e-4, np.linalg.norm(fa - fb, axis=1)
    reps = P._straightness_replicates(speed, chord, rng)
    rows.append(
        {
            "estimator": "one-t",
            "value": P._straightness(speed, chord),
            "ci": tuple(np.percentile(reps, [2.5, 97.5])),
        }
    )
    rows[-1]["seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    features, labels = [], []
    for j in range(K_GRID + 1):
        point = a if j == 0 else b if j == K_GRID else space.interpolate(a, b, torch.full((n,), j / K_GRID))
        images = space.decode_float(point)
        features.append(P.probe_features(probes, images))
        labels.append(P._labels(probes.read(images)))
    grid = np.stack(features, 1)  # (n, K + 1, features)
    reads = np.stack(labels, 1)  # (n, K + 1, factors)
    seconds = time.perf_counter() - start
    needed = (reads[:, 0] != reads[:, -1]).sum(1)  # factors the endpoints differ in
    for k in (K_GRID, K_GRID // 2):
        coarse = reads[:, :: K_GRID // k]
        switches = (np.diff(coarse, axis=1) != 0).sum((1, 2))  # factor changes along the path
        direct = np.where(switches > 0, needed / np.maximum(switches, 1), 1.0)
        share = seconds * (k - 1) / (K_GRID - 1)
        rows.append(
            {
                "estimator": f"direct {k}",
                "value": direct.mean(),
                "ci": bootstrap(direct, rng),
                "seconds": share,
            }
        )
    for k in (K_GRID, K_GRID // 2):
        g = grid[:, :: K_GRID // k]
        seg = np.linalg.norm(np.diff(g, axis=1), axis=2)  # (n, k)
        length, energy = seg.sum(1), k * (seg**2).sum(1)
        straight = np.where(length > 0, chord / np.maximum(length, 1e-12), 1.0)
        even = np.where(energy > 0, chord**2 / np.maximum(energy, 1e-12), 1.0)
        share = seconds * (k - 1) / (K_GRID - 1)
        rows.append(
            {
                "estimator": f"grid {k}",
                "value": straight.mean(),
                "ci": bootstrap(straight, rng),
                "seconds": share,
            }
        )
        rows.append(
            {"estimator": f"even {k}", "value": even.mean(), "ci": bootstrap(even, rng), "seconds": share}
        )

    near = space.perturb(a, 0.1, gen)
    fn = P.probe_features(probes, space.decode_float(near))
    local = np.linalg.norm(fn - fa, axis=1)
    scale = chord.mean()
    idx = rng.integers(0, n, (200, n))
    ratios = np.clip(1 - local[idx].mean(1) / chord[idx].mean(1), 0, 1)
    rows.append(
        {
            "estimator": "local",
            "value": float(np.clip(1 - local.mean() / scale, 0, 1)),
            "ci": tuple(np.percentile(ratios, [2.5, 97.5])),
            "seconds": 0.0,
        }
    )
    return [{"space": space.name, "seed": seed, **r} for r in rows]


def strict_spaces():
    from latentkit.models.autoencoder import load_autoencoder
    from latentkit.models.gan import load_gan
    from latentkit.models.vae import load_vae
    from latentkit.spaces import FactorSpace, autoencoder_space, gan_w_space, gan_z_space, vae_space

    gan = load_gan("cpu")
    return [
        FactorSpace(),
        autoencoder_space(load_autoencoder("cpu"), "cpu"),
        autoencoder_space(load_autoencoder("cpu", fitted=True), "cpu"),
        vae_space(load_vae("cpu"), "cpu"),
        gan_z_space(gan, "cpu"),
        gan_w_space(gan, "cpu"),
    ]


def diffusion_spaces(seed: int):
    from latentkit.candidates import BaseGeneration, diffusion_candidates
    from latentkit.models.tiny_sd import load_organism

    base = BaseGeneration.from_world(0, num_inference_steps=4)  # notebook 03's defaults
    return diffusion_candidates(
        load_organism("cpu"), base, [0, 2], "unet.up_blocks.2.attentions.0", None, pool_size=256, seed=seed
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--paths", type=int, default=64, help="paths (and points) per space (64, as 03)")
    parser.add_argument("--only", choices=["diffusion", "strict"], default=None)
    parser.add_argument("--csv", default=None, help="also write every row here")
    args = parser.parse_args()

    import latentkit
    from latentkit.probes import load_probes

    latentkit.set_cpu_threads(1)
    probes = load_probes("cpu")
    rows = []
    for seed in args.seeds:
        spaces = [] if args.only == "diffusion" else strict_spaces()
        spaces += [] if args.only == "strict" else list(diffusion_spaces(seed))
        for space in spaces:
            rows += estimators(space, probes, args.paths, seed)
            print(f"seed {seed}: {space.name} done", flush=True)
    table = pd.DataFrame(rows)
    table["ci_low"], table["ci_high"] = zip(*table.pop("ci"), strict=True)
    if args.csv:
        table.to_csv(args.csv, index=False)
    table["ci"] = list(zip(table["ci_low"], table["ci_high"], strict=True))
    table["cell"] = [
        f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, (lo, hi) in zip(table["value"], table["ci"], strict=True)
    ]
    with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_colwidth", 40):
        print(table.pivot_table(index=["space", "seed"], columns="estimator", values="cell", aggfunc="first"))
        straddles = lambda ci: any(ci[0] < th <= ci[1] for th in (0.3, 0.7))  # noqa: E731
        summary = table.groupby("estimator").agg(
            largest_seed_spread=("value", lambda v: 0.0),
            mean_interval_width=("ci", lambda c: float(np.mean([hi - lo for lo, hi in c]))),
            straddling=("ci", lambda c: int(sum(straddles(x) for x in c))),
            seconds=("seconds", "sum"),
        )
        spread = table.groupby(["estimator", "space"])["value"].agg(np.ptp).groupby("estimator").max()
        summary["largest_seed_spread"] = spread
        print(summary.round(3))


if __name__ == "__main__":
    main()
