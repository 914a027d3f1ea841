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

import codecs
import csv
import functools
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentkit.batch import Item

PAIR_COLUMNS = ("original", "edit")


#: Most problems of a pairs file that one error lists (the count of the others is given).
_MAX_PROBLEMS = 8
_EXAMPLE = 'original,edit\n"a red star","a blue circle"'


def read_pairs(path: str | os.PathLike, duplicates: str = "refuse") -> list[tuple[str, str]]:
    """O/E prompt pairs from a CSV or TSV file with the columns ``original`` and ``edit`` (a header row).

    Example file::

        original,edit
        "a red star at the center on a plain white background","a blue circle at the top left on a ..."
        a photo of a dog in a park,an oil painting of a cat on a sofa

    The file is read strictly: UTF-8 (a UTF-8 byte-order mark, as Excel writes, is read as such), fields
    separated by commas, or by tabs when the header is, one pair per line, the same number of fields on
    every line; blank lines are skipped. Every problem is reported with its line number in one
    ``ValueError`` (a prompt that holds a comma must be quoted: ``"a dog, running"``).

    Args:
        path: the file.
        duplicates: a pair on several lines: ``"refuse"`` (a ``ValueError`` naming the lines) or
            ``"merge"`` (kept once, at its first line, with a warning naming the lines).

    Returns:
        ``[(original, edit), ...]`` in file order.
    """
    if duplicates not in ("refuse", "merge"):
        raise ValueError(f"duplicates must be 'refuse' or 'merge', got {duplicates!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no pairs file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a pairs file (CSV with the columns original,edit)")
    text = _decode_pairs(path, path.read_bytes())
    if not text.strip():
        raise ValueError(
            f"{path} is empty; a pairs file has the header line original,edit and then one pair per line"
        )

    header_line = text.splitlines()[0]
    delimiter = "\t" if "\t" in header_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as error:
        raise ValueError(f"{path}, line 1: the header cannot be read ({error}); e.g. {_EXAMPLE!r}") from None
    _check_header(path, header, header_line)
    columns = [header.index(c) for c in PAIR_COLUMNS]

    problems, hints, rows = [], {}, []  # rows: (line, original, edit); hints: once each, in order
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            unclosed = "unexpected end of data" in str(error)
            problems.append(
                f"line {line}: " + ("a quote opened here is never closed" if unclosed else str(error))
            )
            hints["quote"] = 'a stray quote? quote a whole prompt, doubling its quotes: "a ""big"" dog"'
            if reader.line_num < line:  # the reader is stuck at the end of the text
                break
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if reader.line_num > line:
            problems.append(
                f"line {line}: a quoted prompt runs on to line {reader.line_num} (a quote is not closed on "
                "its line); a prompt is one line"
            )
            continue
        if len(row) != len(header):
            if len(row) > len(header) and delimiter == ",":
                hints["comma"] = 'a comma inside a prompt? quote the prompt: "a dog, running"'
            problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            continue
        pair = tuple(row[c] for c in columns)
        empty = [name for name, prompt in zip(PAIR_COLUMNS, pair, strict=True) if not prompt.strip()]
        if empty:
            problems.append(
                f"line {line}: empty prompt in the {' and '.join(empty)} column{'s' * (len(empty) > 1)}"
            )
            continue
        rows.append((line, *pair))
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        listed = "; ".join(problems[:_MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        hint = f" ({'; '.join(hints.values())})" if hints else ""
        raise ValueError(
            f"{path}: {len(problems)} bad line{'s' if len(problems) > 1 else ''}: {listed}{hint}"
        )
    if not rows:
        raise ValueError(f"{path} holds no pairs, only the header; add one pair per line")
    return _unique_pairs(path, rows, duplicates)


def _decode_pairs(path: Path, data: bytes) -> str:
    """The text of a pairs file, or a ``ValueError`` naming what it is instead (and where)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(
            f"{path} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8 "
            "(Excel: 'CSV UTF-8')"
        )
    if b"\x00" in data:
        if any(_is_text(data, encoding) for encoding in ("utf-16-le", "utf-16-be")):
            raise ValueError(
                f"{path} looks like UTF-16 text (zero bytes between its letters); save it as UTF-8 "
                "(Excel: 'CSV UTF-8')"
            )
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ValueError(
            f"{path} is not a text file (a zero byte on line {line}); a pairs file is UTF-8 text"
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]  # the encoding's mark, not part of the header
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    bad = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            bad.append((number, line[error.start]))
    (first, byte), more = bad[0], len(bad) - _MAX_PROBLEMS
    lines = ", ".join(str(n) for n, _ in bad[:_MAX_PROBLEMS]) + (f" and {more} more" if more > 0 else "")
    raise ValueError(
        f"{path} is not UTF-8 (byte 0x{byte:02x} on line {first}; bad line{'s' if len(bad) > 1 else ''}: "
        f"{lines}); it looks like another encoding (Latin-1, Windows-1252?): save it as UTF-8"
    )


def _is_text(data: bytes, encoding: str) -> bool:
    """Whether ``data`` reads as a table in ``encoding``: printable characters, line ends, separators."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return printable >= 0.95 * len(text) > 0 and any(c in text for c in ",\t\n")


def _check_header(path: Path, header: list[str], line: str) -> None:
    if all(c in header for c in PAIR_COLUMNS) and len(set(header)) == len(header):
        return
    if len(header) == 1:
        others = [c for c in "|;:" if c in line]
        if others:
            raise ValueError(
                f"{path}, line 1: the header {line!r} is separated by {others[0]!r}; a pairs file separates "
                f"its fields by commas (CSV) or tabs (TSV): {_EXAMPLE!r}"
            )
    repeated = sorted({name for name in header if header.count(name) > 1})
    what = f"repeats the columns {repeated}" if repeated else f"has the columns {header}"
    raise ValueError(
        f"{path}, line 1: the header {what}; it needs the columns {list(PAIR_COLUMNS)} once each, "
        f"e.g. {_EXAMPLE!r}"
    )


def _unique_pairs(path: Path, rows: list[tuple[int, str, str]], duplicates: str) -> list[tuple[str, str]]:
    lines: dict[tuple[str, str], list[int]] = {}
    for line, original, edit in rows:
        lines.setdefault((original, edit), []).append(line)
    repeated = [(pair, where) for pair, where in lines.items() if len(where) > 1]
    if repeated:
        extra = sum(len(where) - 1 for _, where in repeated)
        shown = "; ".join(
            f"lines {', '.join(map(str, where))} hold {pair}" for pair, where in repeated[:_MAX_PROBLEMS]
        )
        more = f"; and {len(repeated) - _MAX_PROBLEMS} more" if len(repeated) > _MAX_PROBLEMS else ""
        if duplicates == "refuse":
            raise ValueError(
                f"{path}: {len(repeated)} pair{'s' if len(repeated) > 1 else ''} repeated ({shown}{more}); "
                "each pair runs once per seed (more seeds: --seeds), so remove the repeats, or merge them "
                "(--merge-duplicates, duplicates='merge')"
            )
        warnings.warn(
            f"{path}: {extra} repeated line{'s' if extra > 1 else ''} merged into the first of each "
            f"({shown}{more}); {len(lines)} pairs remain",
            stacklevel=3,
        )
    return list(lines)


def write_pairs(pairs: Sequence[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write pairs in the format :func:`read_pairs` reads (UTF-8 CSV, written atomically)."""
    from latentkit.batch import atomic_write

    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(p, str) and p.strip() and "\n" not in p for p in pair):
            raise ValueError(
                f"pair {i} must be two non-empty one-line prompts (original, edit), got {pair!r}"
            )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PAIR_COLUMNS)
    writer.writerows(pairs)
    path = Path(path)
    atomic_write(path, buffer.getvalue().encode("utf-8"))
    return path


def sweep_items(pairs: Sequence[tuple[str, str]], seeds: Sequence[int]) -> list[Item]:
    """One item per pair and seed, pair-major; id ``pair0003-seed0001``."""
    if not len(pairs):
        raise ValueError("no O/E pairs given")
    if not len(seeds):
        raise ValueError("no seeds given; pass e.g. seeds=[0]")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0]
    if bad:
        raise ValueError(f"seeds must be whole numbers >= 0, got {bad[:5]}")
    repeated = sorted({int(s) for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must differ; {repeated[:5]} given more than once")
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
