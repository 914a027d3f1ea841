"""The ``latentkit`` command: notebook batches, injection sweeps and their status, locally or on Dask.

Examples:

    latentkit notebooks                         # every notebook, default parameters, into runs/notebooks
    latentkit notebooks 04 --seeds 0 1 2 --model organism CompVis/stable-diffusion-v1-4 --device cuda
    latentkit notebooks --full --engine dask --workers 4 --out runs/full
    latentkit sweep pairs.csv --model CompVis/stable-diffusion-v1-4 --seeds 0 1 --out runs/sd14
    latentkit sweep --random-pairs 100 --engine dask --workers 2 --out runs/organism
    latentkit status runs/organism              # done / failed, with the errors

Run the same command again to resume: finished items are skipped, failed ones are tried again. The exit
status is 1 when an item failed (its error is printed and kept in ``<out>/failed/``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    """A command-line value as Python: ``3`` -> 3, ``0.5`` -> 0.5, ``True`` -> True, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parameters(pairs: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"-p takes NAME=VALUE (e.g. -p n_pairs=16), got {pair!r}")
        grid.setdefault(key, []).append(_value(value))
    return grid


def _add_engine(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where to run")
    group.add_argument(
        "--engine",
        choices=("local", "dask", "slurm"),
        default="local",
        help="this process (default), Dask, SLURM",
    )
    group.add_argument(
        "--workers", type=int, default=2, help="Dask worker processes, or SLURM jobs (default 2)"
    )
    group.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    group.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def _run_batch(args: argparse.Namespace, items, job, store, description: str):
    """:func:`latentkit.batch.run_batch` with the engine options of the command line."""
    from latentkit.batch import run_batch

    return run_batch(
        items,
        job,
        store,
        engine=args.engine,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        description=description,
    )


def _report(summary, store) -> int:
    print(summary)
    for item, record in store.failed().items():
        print(f"\nFAILED {item}: {record['error']}", file=sys.stderr)
    if not summary.ok:
        print(
            f"\nTracebacks: {store.root / 'failed'}/. Run the same command again to retry.", file=sys.stderr
        )
    return 0 if summary.ok else 1


def cmd_notebooks(args: argparse.Namespace) -> int:
    from latentkit.batch import ResultStore
    from latentkit.notebooks import NotebookJob, find_notebooks, notebook_items, write_index

    grid = _parameters(args.param)
    for name, values in (("seed", args.seeds), ("model", args.models), ("device", args.device)):
        if values:
            grid[name] = values
    notebooks = find_notebooks(args.notebook, args.folder)
    items, unused = notebook_items(notebooks, grid, full=args.full)
    for stem, names in unused.items():
        if names:
            print(f"{stem}: has no parameter {', '.join(names)}; runs without it")
    store = ResultStore(args.out)
    job = NotebookJob(timeout=args.timeout)
    summary = _run_batch(args, items, job, store, "notebooks")
    print(f"index: {write_index(store)}")
    return _report(summary, store)


def cmd_sweep(args: argparse.Namespace) -> int:
    from latentkit.batch import ResultStore
    from latentkit.sweeps import SweepJob, read_pairs, sweep_items, write_pairs

    if (args.pairs is None) == (args.random_pairs is None):
        raise SystemExit("give a pairs file (CSV with columns original,edit) or --random-pairs N, not both")
    if args.pairs is not None:
        pairs = read_pairs(args.pairs)
    else:
        from latentkit.aspects import differing_pairs

        pairs = differing_pairs(args.random_pairs, seed=args.pair_seed)
        print(f"pairs written to {write_pairs(pairs, Path(args.out) / 'pairs.csv')}")
    settings = {}
    if args.steps is not None:
        settings["num_inference_steps"] = args.steps
    if args.guidance is not None:
        settings["guidance_scale"] = args.guidance
    job = SweepJob(
        model=args.model,
        device=args.device,
        layers=args.layers,
        settings=settings,
        images=not args.no_images,
        threads=args.threads,
    )
    store = ResultStore(args.out, config={**job.config(), "pairs": [list(p) for p in pairs]})
    if args.engine == "local":
        job.load()  # fail now, once, if the model cannot be had (kept for the items)
    items = sweep_items(pairs, args.seeds)
    summary = _run_batch(args, items, job, store, "sweeps")
    table = store.collect()
    if len(table):
        path = Path(args.out) / "observations.parquet"
        table.to_parquet(path, index=False)
        print(f"{len(table)} observations of {table.item.nunique()} items in {path}")
    return _report(summary, store)


def cmd_status(args: argparse.Namespace) -> int:
    from latentkit.batch import ResultStore

    root = Path(args.out)
    if not (root / "items").is_dir():
        raise SystemExit(f"{root} is not a latentkit batch folder (no items/ in it)")
    store = ResultStore(root)
    failed = store.failed()
    print(f"{root}: {len(store.done())} done, {len(failed)} failed")
    for item, record in failed.items():
        print(f"  {item}: {record['error']}")
    return 0 if not failed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    nb = commands.add_parser("notebooks", help="run notebooks with papermill over parameters")
    nb.add_argument("notebook", nargs="*", help="names or numbers (default: all), e.g. 00 04_layer_injection")
    nb.add_argument("--out", default="runs/notebooks", help="output folder (default runs/notebooks)")
    nb.add_argument("--seeds", type=int, nargs="+", help="one run per seed")
    nb.add_argument(
        "--model", dest="models", nargs="+", help="organism, organism-sd3, hub ids or folders (one run each)"
    )
    nb.add_argument("--device", nargs="+", help="auto | cpu | cuda | cuda:1 ...")
    nb.add_argument("--full", action="store_true", help="the notebooks' full-size settings (for a GPU)")
    nb.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE, repeat for a grid")
    nb.add_argument(
        "--folder", default=None, help="where the notebooks are (default: the clone's notebooks/)"
    )
    nb.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    _add_engine(nb)
    nb.set_defaults(run=cmd_notebooks)

    sw = commands.add_parser("sweep", help="layer-injection sweeps over O/E pairs and seeds")
    sw.add_argument("pairs", nargs="?", help="CSV/TSV file with columns original,edit")
    sw.add_argument("--random-pairs", type=int, help="N shapes-world pairs differing in every factor")
    sw.add_argument("--pair-seed", type=int, default=0, help="seed of --random-pairs (default 0)")
    sw.add_argument(
        "--model", default="organism", help="organism (default), organism-sd3, a hub id or a folder"
    )
    sw.add_argument("--seeds", type=int, nargs="+", default=[0], help="noise seeds of O (default 0)")
    sw.add_argument("--layers", nargs="+", help="layer names (default: every layer)")
    sw.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    sw.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    sw.add_argument("--device", default="auto", help="auto | cpu | cuda ... (on each worker)")
    sw.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker (default 1)")
    sw.add_argument("--no-images", action="store_true", help="keep the measurements only")
    sw.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    _add_engine(sw)
    sw.set_defaults(run=cmd_sweep)

    st = commands.add_parser("status", help="what a batch folder holds: done and failed items")
    st.add_argument("out", help="the batch's output folder")
    st.set_defaults(run=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "scheduler", None) and args.engine == "local":
        args.engine = "dask"  # a scheduler address means Dask
    if getattr(args, "folder", "unset") is None:
        from latentkit.notebooks import NOTEBOOKS_DIR

        args.folder = NOTEBOOKS_DIR
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:  # incl. ModelNotAvailable and ConfigMismatch: they teach
        print(f"latentkit {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
