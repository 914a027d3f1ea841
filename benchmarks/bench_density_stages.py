"""What density's two stages save, measured in one run on the spaces of notebooks 01-03.

    python benchmarks/bench_density_stages.py [--only strict|diffusion] [--seed 0]

:func:`latentkit.properties.density` with ``first`` decodes the first ``first`` draws and stops there when
their 99% interval already lies in one band; :func:`latentkit.properties.measure_all` passes
``first = n``. This benchmark times, for every space of notebooks 01 and 02 (``n = 256``, density on up
to 1,024 points) and every diffusion candidate of notebook 03 (``n = 64``, up to 256 points, 64 smoothness
paths), the properties the change touches, both ways, on the same draws:

* strict-sense spaces: density alone (nothing else reuses its decodes);
* diffusion candidates: density and then smoothness, each variant after the space forgets the images it
  remembered, since smoothness's paths start from the draws a one-stage density already decoded (its
  first 128): with an early stop, smoothness decodes 64 of them itself.

It prints one row per space (seconds one-stage, two-stage, their ratio, the points density used and
whether the two marks agree) and the totals. One CPU thread.

Measured on 2026-12-06 (seed 0, one thread of a 2-core Intel Xeon without native bf16, the other core
busy): the strict-sense spaces 190 s one-stage against 66 s two-stage (ratio 0.35; the first stage
decided all but the VAE, 32 s -> 29 s, which drew all 1,024 points), the diffusion candidates 236 s
against 195 s (0.83: the first 64 decided the noise, the latent before the VAE decoder and h-space at
both steps, each 0.59-0.73 of its one-stage time once smoothness decodes its own 64 ends); in all 426 s
against 261 s (0.61), and all 14 density marks the same.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def density_then_smoothness(space, probes, seed: int, first: int | None):
    from latentkit.properties import density, smoothness

    return density(space, probes, n=256, seed=seed, first=first), smoothness(space, probes, n=64, seed=seed)


def strict_spaces():
    """notebooks 01 and 02's spaces: those of the smoothness benchmark, and the truncated w."""
    from bench_smoothness_estimators import strict_spaces as without_truncation

    from latentkit.models.gan import load_gan
    from latentkit.spaces import gan_w_space

    return [*without_truncation(), gan_w_space(load_gan("cpu"), "cpu", truncation=0.7)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["strict", "diffusion"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import latentkit
    from latentkit.probes import load_probes
    from latentkit.properties import density

    latentkit.set_cpu_threads(1)
    probes = load_probes("cpu")
    rows = []
    if args.only != "diffusion":
        for space in strict_spaces():
            one, t_one = timed(density, space, probes, n=1024, seed=args.seed)
            two, t_two = timed(density, space, probes, n=1024, seed=args.seed, first=256)
            rows.append((space.name, t_one, t_two, two.n, one.verdict, two.verdict))
            print(f"{space.name}: {t_one:.1f} s -> {t_two:.1f} s ({two.n} points)", flush=True)
    if args.only != "strict":
        from bench_smoothness_estimators import diffusion_spaces  # notebook 03's candidates

        for space in diffusion_spaces(args.seed):
            times, results = [], []
            for first in (None, 64):
                space.forget()
                out, seconds = timed(density_then_smoothness, space, probes, args.seed, first)
                times.append(seconds)
                results.append(out[0])
            one, two = results
            rows.append((space.name, times[0], times[1], two.n, one.verdict, two.verdict))
            print(f"{space.name}: {times[0]:.1f} s -> {times[1]:.1f} s ({two.n} points)", flush=True)
    table = pd.DataFrame(
        rows, columns=["space", "one-stage s", "two-stage s", "density points", "mark one", "mark two"]
    ).set_index("space")
    table["ratio"] = table["two-stage s"] / table["one-stage s"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 50, "display.max_columns", None):
        print(table.round(2))
    total_one, total_two = table["one-stage s"].sum(), table["two-stage s"].sum()
    agree = int((table["mark one"] == table["mark two"]).sum())
    print(
        f"total {total_one:.0f} s one-stage, {total_two:.0f} s two-stage: ratio {total_two / total_one:.2f}; "
        f"{agree} of {len(table)} density marks the same"
    )


if __name__ == "__main__":
    main()
