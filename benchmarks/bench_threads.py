"""What the notebooks' ``cpu_threads = "auto"`` buys on this machine, measured in one run.

Times the same injection sweeps (the organism, ``--pairs`` O/E pairs, 25 DDIM steps, guidance 4: notebook
04's settings) and the same four-property measurement of a diffusion candidate (notebook 03's named
layer at 64 points) with torch on one thread and on ``set_cpu_threads("auto")``, and prints each time and
the ratio. Run it on an otherwise idle machine: a thread that waits for a busy core stalls the others, so
on a shared CPU more threads are slower, and the ratio says so.

Usage::

    python benchmarks/bench_threads.py            # 4 pairs
    python benchmarks/bench_threads.py --pairs 8
"""

from __future__ import annotations

import argparse
import time

import latentkit
from latentkit.aspects import differing_pairs, run_sweeps
from latentkit.candidates import BaseGeneration, LayerSpace
from latentkit.models import load_model
from latentkit.probes import load_probes
from latentkit.properties import measure_all


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="O/E pairs of the sweep (default 4)")
    args = parser.parse_args()

    pipe = load_model("organism", "cpu").pipe
    probes = load_probes("cpu")
    pairs = differing_pairs(args.pairs, seed=0)
    base = BaseGeneration.from_world(seed=0, pipe=pipe, num_inference_steps=4)
    space = LayerSpace(pipe, base, "unet.up_blocks.2.attentions.0", range(4), pool_size=128)
    space.pool  # noqa: B018  (recorded once, outside the timings)

    def sweep():
        run_sweeps(pipe, pairs, seeds=[0], noise="shared", num_inference_steps=25, guidance_scale=4.0)

    def properties():
        space.forget()  # decode again every time
        measure_all(space, probes, seed=0, n=64)

    rows = []
    for label, work in (("injection sweeps", sweep), ("four properties of a layer", properties)):
        latentkit.set_cpu_threads(1)
        one = timed(work)
        threads = latentkit.set_cpu_threads("auto")
        auto = timed(work)
        rows.append((label, one, threads, auto))
    print(f"{'work':28s} {'1 thread':>10s} {'auto':>14s} {'speed-up':>9s}")
    for label, one, threads, auto in rows:
        print(f"{label:28s} {one:9.1f}s {auto:9.1f}s ({threads}) {one / auto:8.2f}x")


if __name__ == "__main__":
    main()
