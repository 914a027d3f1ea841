"""Throughput of an injection-sweep batch: one process vs a local Dask cluster, measured in one run.

    python benchmarks/bench_batch.py [--items 8] [--workers 2] [--steps 25] [--threads 1]

Each item is one O/E pair of the organism at one seed: a sweep over every layer (one generation at batch
K + 2), read by the probes, stored as Parquet with its image strip. Printed: items per second on one process
(one torch thread), on a local Dask cluster of ``--workers`` processes (one thread each), cold (cluster
start and model loading included) and warm (a second batch on the same workers), and the ratios.
On the 2-core machine the ideal warm ratio is 2; anything else running on the machine lowers it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from latentkit.aspects import differing_pairs
    from latentkit.batch import ResultStore, dask_client, run_batch
    from latentkit.sweeps import SweepJob, sweep_items

    torch.set_num_threads(args.threads)
    job = SweepJob(
        model="organism", device="cpu", settings={"num_inference_steps": args.steps}, threads=args.threads
    )
    items = sweep_items(differing_pairs(args.items, seed=0), seeds=[0])
    warm_items = sweep_items(differing_pairs(args.items, seed=1), seeds=[0])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        job.load()  # load once, as a warm worker would have it
        start = time.perf_counter()
        local = run_batch(items, job, ResultStore(root / "local"), description="one process")
        t_local = time.perf_counter() - start

        start = time.perf_counter()
        with dask_client("dask", workers=args.workers) as client:  # the local cluster of `--engine dask`
            cold = run_batch(items, job, ResultStore(root / "cold"), client=client, description="dask, cold")
            t_cold = time.perf_counter() - start
            start = time.perf_counter()
            warm = run_batch(
                warm_items, job, ResultStore(root / "warm"), client=client, description="dask, warm"
            )
            t_warm = time.perf_counter() - start
    assert local.ok and cold.ok and warm.ok, (local.failed, cold.failed, warm.failed)

    n = args.items
    print(f"\n{n} sweep items, {args.steps} steps, organism, CPU ({os.cpu_count()} cores seen)")
    print(f"one process (1 thread, model loaded)     : {t_local:7.1f} s  {n / t_local:6.3f} items/s")
    print(f"dask {args.workers} workers, cold (start + load)    : {t_cold:7.1f} s  {n / t_cold:6.3f} items/s")
    print(f"dask {args.workers} workers, warm                   : {t_warm:7.1f} s  {n / t_warm:6.3f} items/s")
    print(f"ratio dask warm / one process            : {t_local / t_warm:6.2f}x")
    print(f"ratio dask cold / one process            : {t_local / t_cold:6.2f}x")


if __name__ == "__main__":
    main()
