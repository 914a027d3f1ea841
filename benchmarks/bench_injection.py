"""How much the one-pass injection sweep costs, measured in one run.

Prints, for one pipeline and every layer of it:

- the whole one-pass sweep against one plain generation at the same batch size (K layers -> K + 2
  rows): the price of the hooks alone (target: ratio <= 1.15);
- the sweep against the slow reference of the public code (cache E, then one run of O per layer):
  the speed-up.

Usage::

    python benchmarks/bench_injection.py                      # the organism (data/tiny-sd), else tiny SD 1.x
    python benchmarks/bench_injection.py --pipeline sdxl      # any tiny build of latentkit.tiny
    python benchmarks/bench_injection.py --pipeline organism  # the trained tiny Stable Diffusion

Everything the benchmark needs from a pipeline is a loader, a pair of images and the shared call
arguments (:func:`run` takes them), so other pipelines plug in without changing the measurement.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from latentkit import injection, layers, tiny
from latentkit import run as runner


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` calls, in seconds (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(
    load: Callable[[], Any],
    original: Mapping[str, Any],
    edit: Mapping[str, Any],
    pipe_kwargs: Mapping[str, Any],
    repeats: int = 3,
) -> dict[str, float]:
    """Time plain generation, the one-pass sweep and the slow reference over every layer.

    Args:
        load: returns the pipeline (called once).
        original: O's per-image arguments (see :func:`latentkit.injection.sweep`).
        edit: E's.
        pipe_kwargs: shared call arguments (``num_inference_steps`` ...).
        repeats: timed repetitions of each (the best is kept).

    Returns:
        Seconds per method and the two ratios.
    """
    pipe = load()
    names = layers.layer_names(pipe)
    rows = [edit, original] + [original] * len(names)
    timings = {
        "plain": best_time(lambda: runner.generate(pipe, rows, **pipe_kwargs), repeats),
        "sweep": best_time(lambda: injection.sweep(pipe, original, edit, names, **pipe_kwargs), repeats),
        "reference": best_time(
            lambda: injection.sweep_reference(pipe, original, edit, names, **pipe_kwargs), repeats
        ),
    }
    timings["layers"] = len(names)
    timings["sweep / plain"] = timings["sweep"] / timings["plain"]
    timings["reference / sweep"] = timings["reference"] / timings["sweep"]
    return timings


def organism_exported() -> bool:
    """Whether the trained organism is in ``data/tiny-sd/`` (the benchmark's default pipeline then)."""
    from latentkit.models.tiny_sd import SD_DIR
    from latentkit.paths import data_dir

    return (data_dir() / SD_DIR / "model_index.json").exists()


def _organism(device: str) -> tuple[Callable[[], Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The organism at its own generation settings (25 DDIM steps, guidance 4), with two world captions."""
    from latentkit.models.tiny_sd import DEFAULTS, load_organism

    original, edit = tiny.example_pair("sd1")
    return lambda: load_organism(device), original, edit, dict(DEFAULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pipeline",
        default=None,
        help=f"'organism' or one of {list(tiny.BUILDERS)} (default: 'organism' if exported, else 'sd1')",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps (default: 20 on tiny builds, 25 on the organism)",
    )
    parser.add_argument("--device", default="cpu", help="the organism's device: cpu, auto, cuda ...")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pipeline is None:
        args.pipeline = "organism" if organism_exported() else "sd1"

    if args.pipeline == "organism":
        load, original, edit, pipe_kwargs = _organism(args.device)
        pipe_kwargs["num_inference_steps"] = args.steps or pipe_kwargs["num_inference_steps"]
    else:
        original, edit = tiny.example_pair(args.pipeline)
        pipe_kwargs = tiny.call_kwargs(args.pipeline, num_inference_steps=args.steps or 20)

        def load() -> Any:
            return tiny.build(args.pipeline)

    t = run(load, original, edit, pipe_kwargs, args.repeats)
    print(
        f"pipeline: {args.pipeline}, {t['layers']} layers -> batch {t['layers'] + 2} rows, "
        f"{pipe_kwargs['num_inference_steps']} steps, guidance {pipe_kwargs['guidance_scale']}, "
        f"{args.threads} thread(s)"
    )
    print(f"plain generation, same batch: {t['plain']:.3f} s")
    print(
        f"one-pass sweep:               {t['sweep']:.3f} s   ratio {t['sweep / plain']:.3f} (target <= 1.15)"
    )
    print(f"slow reference:               {t['reference']:.3f} s   speed-up {t['reference / sweep']:.2f}x")


if __name__ == "__main__":
    main()
