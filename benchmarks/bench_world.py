"""How fast the shapes world renders: 100,000 64x64 images on one core, in batches.

Run: ``python benchmarks/bench_world.py [--n 100000] [--batch 1000]``. Prints images per second and the
time for 100,000 images as a share of the one-minute budget the foundation issue set.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

from latentkit.world import World  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    world = World(args.size)
    world.sample(args.batch, seed=0)  # warm-up
    start = time.perf_counter()
    for _ in world.batches(args.n, batch_size=args.batch, seed=1):
        pass
    seconds = time.perf_counter() - start
    per_100k = seconds * 100_000 / args.n
    print(f"rendered {args.n} images of {args.size}x{args.size} in {seconds:.2f} s")
    print(f"images per second: {args.n / seconds:,.0f}")
    print(f"100,000 images: {per_100k:.1f} s = {per_100k / 60:.2f} x the one-minute budget")


if __name__ == "__main__":
    main()
