"""``python -m latentkit.recipes all|RECIPE [--steps N] [--device D] [--fresh]``.

Recipes, in the order ``all`` runs them: ``probes`` (every quality report needs them), then the miniature
Stable Diffusion's parts, each needing the ones before it: ``clip`` (text encoder), ``sd_vae`` (its
AutoencoderKL), ``unet`` (trains the U-Net, then assembles and exports the pipeline); then the organisms
of Sec. 2 (``autoencoder``, ``vae``, ``gan``), which draw in the picture code of that AutoencoderKL
(:mod:`latentkit.models.codec`); then ``dit`` (the transformer organism: SD3's MMDiT on the same VAE
latents and CLIP, exported as a second pipeline). ``all`` skips a recipe whose weights are already exported
(when the recipe can tell, via ``is_exported()``), unless ``--fresh``. An interrupted recipe resumes from its
checkpoint in the cache (``LATENTKIT_CACHE``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import time

ORDER = tuple(
    name
    for name in ("probes", "clip", "sd_vae", "unet", "autoencoder", "vae", "gan", "dit")
    if importlib.util.find_spec(f"latentkit.recipes.{name}") is not None
)


CONTINUABLE = ("unet", "dit")  # recipes that can continue from the shipped weights (--from-shipped)


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
    args = parser.parse_args(argv)
    if args.from_shipped and args.recipe not in CONTINUABLE:
        parser.error(f"--from-shipped applies to {' and '.join(CONTINUABLE)}, not to {args.recipe!r}")
    if args.recipe != "all":
        _run(args.recipe, args.steps, args.device, args.fresh, args.from_shipped)
        return
    if args.steps is not None:
        parser.error("--steps applies to one recipe, not to 'all'")
    for name in ORDER:
        module = importlib.import_module(f"latentkit.recipes.{name}")
        exported = getattr(module, "is_exported", lambda: False)()
        if exported and not args.fresh:
            print(f"[{name}] already exported, skipped (--fresh retrains it)")
            continue
        _run(name, None, args.device, args.fresh)


if __name__ == "__main__":
    main()
