"""The ``latentkit`` command: notebook batches, injection sweeps and their status, locally or on Dask;
the layers of a model.

Examples:

    latentkit notebooks                         # every notebook, default parameters, into runs/notebooks
    latentkit notebooks 04 --seeds 0 1 2 --model organism CompVis/stable-diffusion-v1-4 --device cuda
    latentkit notebooks --full --engine dask --workers 4 --out runs/full
    latentkit sweep pairs.csv --model CompVis/stable-diffusion-v1-4 --seeds 0 1 --out runs/sd14
    latentkit sweep --random-pairs 100 --engine dask --workers 2 --out runs/organism
    latentkit status runs/organism              # done / failed, with the errors
    latentkit layers organism                   # a model's layers, with their output shapes
    latentkit layers stabilityai/stable-diffusion-xl-base-1.0 --architecture   # without its weights

Run the same command again to resume: finished items are skipped, failed ones are tried again. The exit
status is 1 when an item failed (its error is printed and kept in ``<out>/failed/``).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import math
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    """A command-line value as Python: ``3`` -> 3, ``0.5`` -> 0.5, ``True`` -> True, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _whole(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (argparse names the option in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def _finite(text: str) -> float:
    """An argparse type: a finite number (argparse's ``float`` takes ``nan`` and ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


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
        "--workers", type=_whole(1), default=2, help="Dask worker processes, or SLURM jobs (default 2)"
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
        print(f"\nFAILED {item}: {record.get('error')}", file=sys.stderr)
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
    _check_declared(grid, unused, notebooks)
    for stem, names in unused.items():
        if names:
            print(f"{stem}: has no parameter {', '.join(names)}; runs without it")
    store = ResultStore(args.out, config={"batch": "notebooks"})
    job = NotebookJob(timeout=args.timeout)
    summary = _run_batch(args, items, job, store, "notebooks")
    print(f"index: {write_index(store)}")
    return _report(summary, store)


def _check_declared(grid: dict[str, list[Any]], unused: dict[str, list[str]], notebooks) -> None:
    """A grid parameter that none of the chosen notebooks declares is a typo, not a run without it."""
    from latentkit.notebooks import declared_parameters

    nowhere = [name for name in grid if all(name in names for names in unused.values())]
    if not nowhere:
        return
    declared = sorted({name for path in notebooks for name in declared_parameters(path)})
    name = nowhere[0]
    close = difflib.get_close_matches(name, declared, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(
        f"no notebook of {', '.join(p.stem for p in notebooks)} has the parameter {name!r}; "
        f"{hint}their parameters: {', '.join(declared)}"
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    from latentkit.batch import ResultStore
    from latentkit.sweeps import SweepJob, read_pairs, sweep_items, write_pairs

    if (args.pairs is None) == (args.random_pairs is None):
        raise SystemExit("give a pairs file (CSV with columns original,edit) or --random-pairs N, not both")
    # Every check first (arguments, pairs, the folder's settings, the model): nothing is written before.
    if args.pairs is not None:
        pairs = read_pairs(args.pairs, duplicates="merge" if args.merge_duplicates else "refuse")
    else:
        from latentkit.aspects import differing_pairs

        pairs = differing_pairs(args.random_pairs, seed=args.pair_seed)
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
    config = {**job.config(), "pairs": [list(p) for p in pairs]}
    items = sweep_items(pairs, args.seeds)
    ResultStore.check(args.out, config)  # another batch's folder, or a damaged one: refused, untouched
    if args.engine == "local":
        job.load()  # fail now, once, if the model cannot be had (kept for the items)
    store = ResultStore(args.out, config=config)
    if args.random_pairs is not None:  # the folder holds these pairs' results (or none yet): keep them beside
        print(f"pairs written to {write_pairs(pairs, store.root / 'pairs.csv')}")
    summary = _run_batch(args, items, job, store, "sweeps")
    table = store.collect()
    if len(table):
        from latentkit.batch import atomic_write

        path = store.root / "observations.parquet"
        atomic_write(path, _parquet(table))
        print(f"{len(table)} observations of {table.item.nunique()} items in {path}")
    return _report(summary, store)


def _parquet(table) -> bytes:
    import io

    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def cmd_status(args: argparse.Namespace) -> int:
    from latentkit.batch import ResultStore

    root = Path(args.out)
    if not (root / "items").is_dir():
        raise SystemExit(f"{root} is not a latentkit batch folder (no items/ in it)")
    store = ResultStore(root)
    done, damaged = store.verify()
    failed = store.failed()
    extra = f", {len(damaged)} damaged" if damaged else ""
    print(f"{root}: {len(done)} done, {len(failed)} failed{extra}")
    for item, record in failed.items():
        print(f"  {item}: {record.get('error')}")
    for item, reason in damaged.items():
        print(f"  {item}: items/{item}.parquet is not counted: {reason}; the next run computes it again")
    if damaged and not (root / "config.json").exists():
        print(
            f"  {root / 'config.json'} is missing: run the batch again with its original settings to write "
            "it; the items that recorded those settings then count again"
        )
    return 0 if not failed and not damaged else 1


def cmd_layers(args: argparse.Namespace) -> int:
    from latentkit.layers import find_denoiser, list_layers
    from latentkit.models import ORGANISMS, load_model
    from latentkit.models.architectures import ARCHITECTURES, architecture_layers
    from latentkit.models.real import ModelNotAvailable

    shapes = not args.no_shapes
    if args.architecture:
        if args.model in ORGANISMS or Path(args.model).expanduser().is_dir():
            raise ValueError(
                f"--architecture lists a registry model's layers without its weights; {args.model} has "
                f"its weights here: run `latentkit layers {args.model}` without --architecture"
            )
        layers = architecture_layers(args.model, shapes=shapes)  # an unknown id: ValueError, the known ids
        denoiser = ARCHITECTURES[args.model].denoiser
        source = "its published config on the meta device, no weights"
    else:
        try:
            loaded = load_model(args.model, device=args.device)
        except ModelNotAvailable as error:
            if args.model not in ARCHITECTURES:
                raise
            hint = f"latentkit layers {args.model} --architecture"
            raise ModelNotAvailable(f"{error}\nOr list its layers without the weights: {hint}") from None
        layers = list_layers(loaded.pipe, shapes=shapes)
        denoiser = type(find_denoiser(loaded.pipe)[1]).__name__
        source = f"loaded, on {loaded.pipe.device}"
    print(f"{args.model}: {denoiser}, {len(layers)} layers ({source})")
    if shapes:
        print(
            "shape: one sample's output at the latent size its config names (Flux: 64); "
            "(C, H, W) in a U-Net, (image tokens, width) in a transformer"
        )
    print(_layer_table(layers))
    return 0


def _layer_table(layers) -> str:
    """``latentkit.layers.Layer`` rows as aligned columns (depth, name, group, kind, shape if measured)."""
    rows = [["depth", "name", "group", "kind", "shape"]]
    rows += [[str(x.depth), x.name, x.group, x.kind, str(x.shape)] for x in layers]
    if any(x.shape is None for x in layers):
        rows = [row[:4] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i == 0 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    nb = commands.add_parser("notebooks", help="run notebooks with papermill over parameters")
    nb.add_argument("notebook", nargs="*", help="names or numbers (default: all), e.g. 00 04_layer_injection")
    nb.add_argument("--out", default="runs/notebooks", help="output folder (default runs/notebooks)")
    nb.add_argument("--seeds", type=_whole(0), nargs="+", help="one run per seed")
    nb.add_argument(
        "--model", dest="models", nargs="+", help="organism, organism-sd3, hub ids or folders (one run each)"
    )
    nb.add_argument("--device", nargs="+", help="auto | cpu | cuda | cuda:1 ...")
    nb.add_argument("--full", action="store_true", help="the notebooks' full-size settings (for a GPU)")
    nb.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE, repeat for a grid")
    nb.add_argument(
        "--folder", default=None, help="where the notebooks are (default: the clone's notebooks/)"
    )
    nb.add_argument("--timeout", type=_whole(1), default=3600, help="seconds per cell (default 3600)")
    _add_engine(nb)
    nb.set_defaults(run=cmd_notebooks)

    sw = commands.add_parser("sweep", help="layer-injection sweeps over O/E pairs and seeds")
    sw.add_argument("pairs", nargs="?", help="CSV/TSV file with columns original,edit")
    sw.add_argument("--random-pairs", type=_whole(1), help="N shapes-world pairs differing in every factor")
    sw.add_argument("--pair-seed", type=_whole(0), default=0, help="seed of --random-pairs (default 0)")
    sw.add_argument(
        "--merge-duplicates",
        action="store_true",
        help="a pair on several lines of the pairs file runs once, with a warning (default: refused)",
    )
    sw.add_argument(
        "--model", default="organism", help="organism (default), organism-sd3, a hub id or a folder"
    )
    sw.add_argument("--seeds", type=_whole(0), nargs="+", default=[0], help="noise seeds of O (default 0)")
    sw.add_argument("--layers", nargs="+", help="layer names (default: every layer)")
    sw.add_argument("--steps", type=_whole(1), help="denoising steps (default: the model's)")
    sw.add_argument("--guidance", type=_finite, help="guidance scale (default: the model's)")
    sw.add_argument("--device", default="auto", help="auto | cpu | cuda ... (on each worker)")
    sw.add_argument("--threads", type=_whole(1), default=1, help="torch CPU threads per worker (default 1)")
    sw.add_argument("--no-images", action="store_true", help="keep the measurements only")
    sw.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    _add_engine(sw)
    sw.set_defaults(run=cmd_sweep)

    st = commands.add_parser("status", help="what a batch folder holds: done and failed items")
    st.add_argument("out", help="the batch's output folder")
    st.set_defaults(run=cmd_status)

    ly = commands.add_parser("layers", help="a model's layers: names, groups, kinds and output shapes")
    ly.add_argument("model", help="organism, organism-sd3, a hub id or a folder")
    ly.add_argument(
        "--architecture",
        action="store_true",
        help="build the hub id's denoiser from its published config on the meta device: no weights, "
        "no download, in seconds",
    )
    ly.add_argument("--no-shapes", action="store_true", help="skip the pass that measures the shapes")
    ly.add_argument("--device", default="auto", help="auto | cpu | cuda ... (without --architecture)")
    ly.set_defaults(run=cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "scheduler", None) and args.engine == "local":
        args.engine = "dask"  # a scheduler address means Dask
    if getattr(args, "folder", "unset") is None:
        from latentkit.notebooks import NOTEBOOKS_DIR

        args.folder = NOTEBOOKS_DIR
    # A relative path means relative to where the command runs, whatever folder a notebook runs in later.
    for name in ("out", "folder"):
        if getattr(args, name, None) is not None:
            setattr(args, name, Path(getattr(args, name)).expanduser().absolute())
    seeds = getattr(args, "seeds", None) or []
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        parser.error(f"argument --seeds: {repeated} given more than once; give each once")
    if getattr(args, "scheduler", None) is not None and not args.scheduler.strip():
        parser.error(
            "argument --scheduler: give the address of a running scheduler, e.g. tcp://10.0.0.5:8786"
        )
    try:
        with _one_line_warnings(args.command):
            return args.run(args)
    # These teach (ModelNotAvailable, ConfigMismatch, StoreDamaged, an unreachable scheduler ...): one line.
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"latentkit {args.command}: {error}", file=sys.stderr)
        return 2


@contextmanager
def _one_line_warnings(command: str):
    """Warnings (a damaged item recomputed, merged duplicates ...) as one line each, naming the command."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"latentkit {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
