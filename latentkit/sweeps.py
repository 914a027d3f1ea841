"""Injection sweeps at scale: a file of O/E prompt pairs x seeds, each (pair, seed) one resumable item.

Notebook 04 runs a handful of pairs; the paper's public code runs 500 per model. This module turns the
same experiment (:func:`latentkit.aspects.iter_sweeps`, measured by the probes or the similarity suite)
into a batch for :func:`latentkit.batch.run_batch`: one item per pair and seed, whose table is the
per-layer measurements and whose side file is the image strip ``files/images/<item>.png``
(O, E, then one image per layer, in the order of the table's ``strip_index``).

From the command line::

    latentkit sweep pairs.csv --model CompVis/stable-diffusion-v1-4 --seeds 0 1 2 --out runs/sd14
    latentkit sweep --random-pairs 100 --model organism --engine dask --workers 4 --out runs/organism

In Python::

    items = sweep_items(read_pairs("pairs.csv"), seeds=[0, 1])
    store = ResultStore("runs/sd14", config=job.config())
    run_batch(items, SweepJob(model="organism"), store)
    aspect_table(store.collect(), layers)  # the observations are read_with_probes' / read_with_similarity's
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentkit.batch import Item

PAIR_COLUMNS = ("original", "edit")


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """O/E prompt pairs from a CSV or TSV file with the columns ``original`` and ``edit`` (a header row).

    Example file::

        original,edit
        "a red star at the center on a plain white background","a blue circle at the top left on a ..."
        a photo of a dog in a park,an oil painting of a cat on a sofa
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no pairs file at {path}")
    table = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path} needs the columns {list(PAIR_COLUMNS)} (a header row), found {list(table.columns)}. "
            'First lines of a valid file:\noriginal,edit\n"a red star","a blue circle"'
        )
    empty = table.index[(table.original.str.strip() == "") | (table.edit.str.strip() == "")]
    if len(empty):
        raise ValueError(f"{path}: rows {[int(i) + 2 for i in empty[:5]]} have an empty prompt")
    if not len(table):
        raise ValueError(f"{path} holds no pairs")
    return list(zip(table.original, table.edit, strict=True))


def write_pairs(pairs: Sequence[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write pairs in the format :func:`read_pairs` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(pairs), columns=list(PAIR_COLUMNS)).to_csv(path, index=False)
    return path


def sweep_items(pairs: Sequence[tuple[str, str]], seeds: Sequence[int]) -> list[Item]:
    """One item per pair and seed, pair-major; id ``pair0003-seed0001``."""
    if not len(pairs):
        raise ValueError("no O/E pairs given")
    if not len(seeds):
        raise ValueError("no seeds given; pass e.g. seeds=[0]")
    return [
        Item(f"pair{i:04d}-seed{int(s):04d}", {"pair": i, "seed": int(s), "original": o, "edit": e})
        for i, (o, e) in enumerate(pairs)
        for s in seeds
    ]


@functools.lru_cache(maxsize=2)
def _loaded(model: str, device: str):
    """The model and, for organisms, the probes; loaded once per process (each Dask worker keeps its own)."""
    from latentkit.models import load_model
    from latentkit.probes import load_probes

    loaded = load_model(model, device)
    probes = load_probes(device) if loaded.organism else None
    return loaded, probes


@dataclass
class SweepJob:
    """Runs one (pair, seed) item: the injection sweep, its measurements and its image strip.

    Attributes:
        model: ``"organism"``, a hub id or a folder (:func:`latentkit.models.load_model`).
        device: where the model runs on each worker.
        layers: layer names (default: every layer of :func:`latentkit.layers.list_layers`).
        settings: pipeline arguments over the model's defaults (``num_inference_steps``,
            ``guidance_scale``, ``height`` ...).
        count: for the probes, which factors count (see :func:`latentkit.aspects.read_with_probes`).
        images: save the image strip of each item.
        threads: torch CPU threads per worker.
    """

    model: str = "organism"
    device: str = "auto"
    layers: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    count: str = "prompted"
    images: bool = True
    threads: int = 1

    def config(self) -> dict[str, Any]:
        """What the results depend on (the store refuses to mix batches that differ in it)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "images", "threads")}

    def load(self):
        """``(model, probes)`` for this job, loaded once per process (probes ``None`` for real models)."""
        return _loaded(self.model, self.device)

    def __call__(self, item: Item, files: Path) -> pd.DataFrame:
        import torch

        from latentkit.aspects import iter_sweeps, read_with_probes, read_with_similarity
        from latentkit.world import parse_caption

        torch.set_num_threads(self.threads)
        loaded, probes = self.load()
        args = item.args
        pair = (args["original"], args["edit"])
        settings = loaded.call_kwargs(**self.settings)
        run = next(iter_sweeps(loaded.pipe, [pair], [args["seed"]], self.layers, **settings))
        run.pair = args["pair"]
        if probes is not None and all(_is_caption(p, parse_caption) for p in pair):
            table = read_with_probes(probes, [run], count=self.count).observations
            table["reader"] = "probes"
        else:
            table = read_with_similarity([run])
            table["reader"] = "similarity"
        strip = {name: 2 + k for k, name in enumerate(run.result.names)}
        table["strip_index"] = table.layer.map(strip).astype("int64")
        table["original"], table["edit"] = pair
        if self.images:
            _save_strip(run.result, files / "images" / f"{item.id}.png")
        return table


def _is_caption(prompt: str, parse) -> bool:
    try:
        parse(prompt)
    except ValueError:
        return False
    return True


def _save_strip(result, path: Path) -> None:
    """O, E and every injected image side by side, one PNG (written atomically)."""
    import io

    from PIL import Image

    from latentkit.batch import atomic_write

    images = np.concatenate([result.original[None], result.edit[None], result.injected])  # (K+2, H, W, 3)
    strip = np.concatenate(
        list((images.clip(0, 1) * 255).round().astype(np.uint8)), axis=1
    )  # (H, W*(K+2), 3)
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def load_strip(path: str | os.PathLike, n_images: int | None = None) -> np.ndarray:
    """An item's image strip back as ``(K + 2, H, W, 3)`` uint8 (O, E, then the layers); square images
    are cut by their height unless ``n_images`` says how many there are."""
    from PIL import Image

    strip = np.asarray(Image.open(path).convert("RGB"))
    height, width = strip.shape[:2]
    n = n_images or width // height
    return np.stack(np.split(strip, n, axis=1))
