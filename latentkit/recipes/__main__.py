"""``python -m latentkit.recipes all|RECIPE [--steps N] [--device D] [--fresh]``, and a run into a folder:
``python -m latentkit.recipes all --preset gpu --out DIR [--budget SECONDS] [--device cuda]``.

Recipes, in the order ``all`` runs them: ``probes`` (every quality report needs them), then the miniature
Stable Diffusion's parts, each needing the ones before it: ``clip`` (text encoder), ``sd_vae`` (its
AutoencoderKL), ``unet`` (trains the U-Net, then assembles and exports the pipeline); then the organisms
of Sec. 2 (``autoencoder``, ``vae``, ``gan``), which draw in the picture code of that AutoencoderKL
(:mod:`latentkit.models.codec`); then ``dit`` (the transformer organism: SD3's MMDiT on the same VAE
latents and CLIP, exported as a second pipeline). ``all`` skips a recipe whose weights are already exported
(when the recipe can tell, via ``is_exported()``), unless ``--fresh``. An interrupted recipe resumes from its
checkpoint in the cache (``LATENTKIT_CACHE``).

A run into a folder (``all --out DIR``) trains a preset of :mod:`latentkit.recipes.presets` (``--preset``:
``cpu``, every recipe with its defaults, or ``gpu``, the five organisms on one GPU inside ``--budget``
seconds, 540 by default) and leaves the repository and the usual cache alone. DIR must be absent or empty,
or a previous run's folder (it holds ``run.json``), which is then resumed from ``DIR/cache``. ``data/`` is
copied to ``DIR/data`` (the shipped parts the organisms need) and the run reads and writes only there and
in ``DIR/cache``; the training inputs already cached (picture codes and masks, the U-Net's precomputed
latents) are linked in, the checkpoints are not, so the organisms train afresh (with ``gpu``, the
diffusion organisms continue from the shipped weights). Every recipe of the preset runs, exported or not,
inside its share of the budget. Then the targets table of every organism (:mod:`latentkit.quality`, as in
``benchmarks/bench_organism_quality.py``) goes to ``DIR/quality.md``, and ``DIR/run.json`` records the
preset, the budget, the device and, per recipe, the steps reached and the seconds per step measured. The
exported weights are in ``DIR/data/``, laid out as the repository's ``data/``: ``cp -r DIR/data/<organism>
data/`` ships one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from latentkit.recipes.presets import BUDGETS, PRESETS

ORDER = tuple(
    planned.recipe
    for planned in PRESETS["cpu"]
    if importlib.util.find_spec(f"latentkit.recipes.{planned.recipe}") is not None
)


CONTINUABLE = ("unet", "dit")  # recipes that can continue from the shipped weights (--from-shipped)

RUN_FILE, QUALITY_FILE = "run.json", "quality.md"  # what a run into a folder writes beside data/, cache/
#: Cached training inputs a run into a folder takes from the current cache (checkpoints it never takes).
#: The tiny CLIP and VAE the organisms share made them, so a preset that retrains either (cpu) builds its own.
CACHED_INPUTS = ("picture_codes_*.pt", "picture_masks_*.pt", "tiny-sd-parts/precomputed_*.pt")
INPUT_MAKERS = ("clip", "sd_vae")


def _run(name: str, steps: int | None, device: str, fresh: bool, from_shipped: bool = False) -> None:
    module = importlib.import_module(f"latentkit.recipes.{name}")
    kwargs = {"device": device, "fresh": fresh}
    if steps is not None:
        kwargs["steps"] = steps
    if from_shipped:
        kwargs["from_shipped"] = True
    t0 = time.time()
    module.main(**kwargs)
    print(f"[{name}] done in {time.time() - t0:.0f} s")


# ---------------------------------------------------------------------------------------------------------
# A run into a folder (--out)


def out_problem(out: Path, data: Path) -> str | None:
    """Why ``out`` cannot take a run (None: it can): it must be absent, empty, or a previous run's folder
    (it holds ``run.json``), and outside ``data`` (which it copies)."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; name a folder that is absent or empty"
    if out.resolve().is_relative_to(data.resolve()):
        return f"--out {out} is inside {data}, which the run copies; name a folder outside it"
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_FILE).exists():
        return (
            f"--out {out} is not empty and holds no {RUN_FILE} (it is not a previous run's folder); "
            "name a folder that is absent or empty"
        )
    return None


def prepare_out(out: Path, data: Path, cache: Path, inputs: bool = True) -> bool:
    """Set up the folder ``out`` of a run: ``out/data`` a copy of ``data``, and in ``out/cache`` the
    training inputs cached in ``cache`` (:data:`CACHED_INPUTS`, hard-linked where the file system allows,
    else copied; ``inputs=False``: none), never its checkpoints.

    A previous run's folder (it holds ``run.json``) keeps its ``data/``, which holds that run's exports.
    Returns whether ``out`` is a previous run's folder.
    """
    resumed = (out / RUN_FILE).exists()
    if not resumed:
        shutil.copytree(data, out / "data", symlinks=False)
    for pattern in CACHED_INPUTS if inputs else ():
        for source in sorted(cache.glob(pattern)):
            target = out / "cache" / source.relative_to(cache)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # the cached inputs are never written in place: a link is safe
            except OSError:  # another file system
                partial = target.with_suffix(".tmp")
                shutil.copy2(source, partial)
                os.replace(partial, target)  # never leaves a half-copied input behind
    return resumed


def _planned(module, kwargs: dict) -> dict[str, int | None]:
    """Checkpoint -> the steps it trains to: the recipe's own plan where it keeps several checkpoints (the
    autoencoder: one per width and per stage of the fitted width), else its ``NAME`` -> its steps."""
    steps = kwargs.get("steps") or getattr(module, "STEPS", None)
    if hasattr(module, "planned_checkpoints"):
        return module.planned_checkpoints(steps)
    return {module.NAME: steps}


def _steps_behind(module, kwargs: dict) -> int:
    """The training steps behind a recipe's weights now: its checkpoints' (summed over the autoencoder's
    widths and stages), else the shipped weights' when it continues from them (``from_shipped``), else 0."""
    from latentkit.recipes import common

    done = sum(common.load_checkpoint(name) for name in _planned(module, kwargs))
    return done or (module.SHIPPED_STEPS if kwargs.get("from_shipped") else 0)


def _total_steps(module, kwargs: dict) -> int | None:
    """The steps a recipe trains to in all (summed over its checkpoints); None where unknown."""
    steps = list(_planned(module, kwargs).values())
    return None if None in steps else sum(steps)


def _write_json(path: Path, record: dict) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)


def measure_quality(device: str) -> list:
    """The targets table's rows for every organism (:data:`latentkit.quality.PARTS`, each at its default
    size, seed 0: the table of ``benchmarks/bench_organism_quality.py --all``), measured on ``device``."""
    from latentkit import quality, seed_everything
    from latentkit.probes import load_probes

    seed_everything(0)
    probes = load_probes(device)
    rows = []
    for measure in quality.PARTS.values():
        rows += measure(probes=probes, device=device)
    return rows


def run_into(out: Path, preset: str, budget: float | None, device: str) -> None:
    """Train ``preset`` into the folder ``out`` within ``budget`` seconds (None: no deadline), measure the
    targets table and record the run (see the module docstring)."""
    began = time.monotonic()
    import torch

    from latentkit import resolve_device
    from latentkit.paths import cache_dir, data_dir

    device = resolve_device(device)  # a bad --device fails here, before anything is written
    plan = PRESETS[preset]
    keep_inputs = not {planned.recipe for planned in plan} & set(INPUT_MAKERS)
    out.mkdir(parents=True, exist_ok=True)
    resumed = prepare_out(out, data_dir(), cache_dir(), inputs=keep_inputs)
    os.environ["LATENTKIT_DATA"] = str(out / "data")
    os.environ["LATENTKIT_CACHE"] = str(out / "cache")

    from latentkit.quality import format_table
    from latentkit.recipes import common

    record = {
        "preset": preset,
        "budget_s": budget,
        "device": device,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "resumed": resumed,
        "recipes": {},
    }
    _write_json(out / RUN_FILE, record)  # from here on the folder is a run's: a later run resumes it
    shares = 0.0  # of the budget, up to the end of the current recipe
    for planned in plan:
        shares += planned.share or 0.0
        left = None
        if budget is not None:
            end = budget * (shares if planned.share is not None else 1.0)
            left = max(0.0, end - (time.monotonic() - began))
        module = importlib.import_module(f"latentkit.recipes.{planned.recipe}")
        start = _steps_behind(module, planned.kwargs)
        t0 = time.monotonic()
        with common.deadline(left):
            module.main(device=device, **planned.kwargs)
        seconds = time.monotonic() - t0
        reached, total = _steps_behind(module, planned.kwargs), _total_steps(module, planned.kwargs)
        record["recipes"][planned.recipe] = {
            "kwargs": planned.kwargs,
            "share": planned.share,
            "deadline_s": None if left is None else round(left, 1),
            "steps_start": start,
            "steps_reached": reached,
            "steps_total": total,
            "seconds": round(seconds, 1),  # setup and export included
            "seconds_per_step": round(seconds / (reached - start), 5) if reached > start else None,
        }
        _write_json(out / RUN_FILE, record)
        of = "?" if total is None else f"{total:,}"
        print(f"[{planned.recipe}] {seconds:.0f} s, steps reached {reached:,} of {of}", flush=True)

    t0 = time.monotonic()
    rows = measure_quality(device)
    met = [row.met for row in rows if row.met is not None]
    summary = f"{sum(met)} of {len(met)} targets met"
    on = device if record["gpu"] is None else f"{device} ({record['gpu']})"
    limit = "no budget" if budget is None else f"budget {budget:g} s"
    (out / QUALITY_FILE).write_text(
        f"# Targets of the organisms of `python -m latentkit.recipes all --preset {preset}`\n\n"
        f"On {on}, torch {torch.__version__}, {limit}: {summary}.\n\n```text\n{format_table(rows)}\n```\n"
    )
    record["quality"] = {
        "seconds": round(time.monotonic() - t0, 1),
        "targets_met": sum(met),
        "targets": len(met),
    }
    record["seconds"] = round(time.monotonic() - began, 1)
    _write_json(out / RUN_FILE, record)
    print(f"\n{format_table(rows)}\n\n{summary}; run of {record['seconds']:.0f} s written to {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m latentkit.recipes", description=__doc__)
    parser.add_argument("recipe", choices=("all", *ORDER), help="what to train")
    parser.add_argument("--steps", type=int, default=None, help="total steps (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    parser.add_argument("--fresh", action="store_true", help="ignore checkpoints and exports")
    parser.add_argument(
        "--from-shipped",
        action="store_true",
        help=f"without a checkpoint, continue from the shipped weights ({', '.join(CONTINUABLE)} only)",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="cpu",
        help="all: what to train (latentkit.recipes.presets; cpu: every recipe's defaults; gpu needs --out)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="all: train into DIR (absent, empty, or a previous run's, which is resumed); the exported "
        "weights land in DIR/data/ in the layout of data/, so `cp -r DIR/data/<organism> data/` ships one",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --out: the whole run's time budget (default: "
        + ", ".join(f"{name} {budget or 'none'}" for name, budget in BUDGETS.items())
        + ")",
    )
    args = parser.parse_args(argv)
    if args.from_shipped and args.recipe not in CONTINUABLE:
        parser.error(f"--from-shipped applies to {' and '.join(CONTINUABLE)}, not to {args.recipe!r}")
    if args.recipe != "all":
        if args.out is not None or args.budget is not None or args.preset != "cpu":
            parser.error(f"--preset, --out and --budget apply to 'all', not to {args.recipe!r}")
        _run(args.recipe, args.steps, args.device, args.fresh, args.from_shipped)
        return
    if args.steps is not None:
        parser.error("--steps applies to one recipe, not to 'all'")
    if args.out is None:
        if args.preset != "cpu":
            parser.error(
                f"--preset {args.preset} trains into a folder: add --out DIR (the weights land in DIR/data/)"
            )
        if args.budget is not None:
            parser.error("--budget applies to a run into a folder: add --out DIR")
        for name in ORDER:
            module = importlib.import_module(f"latentkit.recipes.{name}")
            exported = getattr(module, "is_exported", lambda: False)()
            if exported and not args.fresh:
                print(f"[{name}] already exported, skipped (--fresh retrains it)")
                continue
            _run(name, None, args.device, args.fresh)
        return
    if args.fresh:
        parser.error(
            "--fresh does not apply with --out: a new run starts afresh in an absent or empty folder"
        )
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget is the run's time in seconds and must be positive, got {args.budget:g}")
    if args.preset == "gpu" and args.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            parser.error("--preset gpu needs a GPU (torch sees none); pass --device cpu to try it on the CPU")
    from latentkit.paths import data_dir

    problem = out_problem(args.out, data_dir())
    if problem:
        parser.error(problem)
    budget = args.budget if args.budget is not None else BUDGETS[args.preset]
    run_into(args.out, args.preset, budget, args.device)


if __name__ == "__main__":
    main()
