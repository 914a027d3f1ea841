"""The notebooks' figures: heat maps of layer shares, injection grids, galleries, and the role diagram.

Every figure function takes plain arrays and labels (no model, no table it must know how to read),
returns the matplotlib ``Figure`` it drew, and lays its parts out in inches from measured text sizes,
so a title, a cell's numbers or a label under an image never overlaps another and never falls below
8 pt. :func:`save_figure` writes a figure as PNG and PDF to :func:`latentkit.paths.figures_dir`: the
committed ``figures/`` under ``make store``, ``build/figures/`` for every other run.

- :func:`heatmap`: layers x aspects, each cell's value and 95% interval printed, NaN cells hatched
  "n/a", one colour bar per kind of number (notebooks 04 and 05; several models side by side on a
  common relative-depth axis);
- :func:`injection_grid`: the right half of the paper's Fig. 5, one injected image per layer, laid out in
  the model's own shape (notebook 04);
- :func:`pair_gallery`: several O/E pairs, each with its injected image at a few chosen layers;
- :func:`role_diagram`: the left half of Fig. 5, the denoiser drawn as boxes coloured by each layer's
  measured role (notebooks 04 and 05);
- :func:`image_strip`: rows of images with a label under each (walks along a direction);
- :func:`image_grid`: rows of images with named columns and rows, optionally in titled blocks (the walks,
  interpolations and probe strips of notebooks 01, 02 and 03);
- :func:`scatter_3d`: points of a 3-D space, one panel per factor, each with its legend (notebook 01's
  bottleneck, the paper's Fig. 2);
- :func:`scores_along_paths`: a score along interpolation paths against its threshold (notebook 02);
- :func:`depth_curves`: measures against relative depth, one curve per model with its interval
  (notebook 05);
- :func:`alignment_matrices`: layer-by-layer alignment of two models, best matches marked (notebook 05).

Helpers turn the library's tables into what the figures take: :func:`table_cells` (values and
intervals from :func:`latentkit.aspects.aspect_table` or :func:`latentkit.roles.role_table`),
:func:`invalid_rows` and :func:`grid_rows`.

Example (notebook 04)::

    names = [x.name for x in layers]
    values, low, high = table_cells(table, names, ["structure", "content", "surface", "in_distribution"])
    fig = heatmap(
        values,
        low,
        high,
        rows=[layer_label(n) for n in names],
        columns=["structure", "content", "surface", "in_distribution"],
        kinds=["aspect", "aspect", "aspect", "in_distribution"],
        groups=[x.group for x in layers],
    )
    save_figure(fig, "04_aspect_heatmap")
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle
from matplotlib.path import Path as MplPath

from latentkit.paths import figures_dir

#: No text in these figures is smaller than this (points).
MIN_FONTSIZE = 8
_LINE = 1.25  # line height, in multiples of the font size


def save_figure(fig, name: str, *, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``<figures_dir>/<name>.png`` and ``.pdf`` (:func:`latentkit.paths.figures_dir`).

    Args:
        fig: a matplotlib Figure.
        name: file stem, e.g. ``"00_world_grid"`` (numbered like the notebook that draws it).
        dpi: resolution of the PNG.

    Returns:
        The two paths written.
    """
    if not name or "/" in name or name.endswith((".png", ".pdf")):
        raise ValueError(f"name must be a bare file stem like '00_world_grid', got {name!r}")
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})  # same bytes each run
    return paths


# --------------------------------------------------------------------------------------------------
# Measuring text before it is placed: layouts are computed in inches, so nothing needs a second pass


@lru_cache(maxsize=1)
def _renderer():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(10, 10, 72)  # at 72 dpi one pixel is one point


@lru_cache(maxsize=4096)
def _line_width(line: str, fontsize: float, weight: str) -> float:
    if not line:
        return 0.0
    prop = FontProperties(size=fontsize, weight=weight)
    width, _, _ = _renderer().get_text_width_height_descent(line, prop, ismath=False)
    return width / 72


def text_size(text: str, fontsize: float, weight: str = "normal") -> tuple[float, float]:
    """``(width, height)`` in inches of ``text`` (lines split at ``\\n``) at ``fontsize`` points."""
    lines = str(text).split("\n")
    width = max(_line_width(line, fontsize, weight) for line in lines)
    return width, len(lines) * fontsize * _LINE / 72


def _wrap(text: str, width: float, fontsize: float, weight: str = "normal") -> str:
    """``text`` broken at spaces and after a combination's ``+``, every line at most ``width`` inches wide
    (a single word wider than that keeps its own line)."""
    out = []
    for paragraph in str(text).split("\n"):
        # break at spaces, and after the "+" that joins a combination's layers ("res0+up2"), never
        # inside a signed number ("+0.50")
        words = re.sub(r"(?<=\S)\+(?=\S)", "+\0", paragraph.replace(" ", "\0 ")).split("\0")
        line = ""
        for word in words:
            trial = line + word
            if line and _line_width(trial.strip(), fontsize, weight) > width:
                out.append(line.strip())
                line = word.lstrip()
            else:
                line = trial
        out.append(line.strip())
    return "\n".join(out)


def _ink(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _check_fontsize(fontsize: float) -> None:
    if not fontsize >= MIN_FONTSIZE:
        raise ValueError(f"fontsize={fontsize!r}: text in these figures is at least {MIN_FONTSIZE} pt")


def _show(image: np.ndarray) -> np.ndarray:
    """An image as imshow takes it without a clipping warning (float images clipped to [0, 1])."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"an image is (H, W, 3), got shape {image.shape}")
    return np.clip(image, 0, 1) if np.issubdtype(image.dtype, np.floating) else image


# --------------------------------------------------------------------------------------------------
# Heat maps


@dataclass(frozen=True)
class Kind:
    """What the numbers of a heat-map column are: its colour-bar label, colour map and range.

    ``vmin``/``vmax`` of ``None``: a range symmetric around 0 that holds every value of the kind.
    """

    label: str
    cmap: str
    vmin: float | None = 0.0
    vmax: float | None = 1.0


#: The kinds of heat-map columns. ``"aspect"``: a factor share (structure, content, surface, or ``all``,
#: the mean over the six factors); ``"whole"``: a layer turned O into E in every factor;
#: ``"in_distribution"``: the injected image is still a valid world image; ``"similarity"``: the
#: similarity suite's baseline-subtracted scores (real images, no probes).
KINDS: dict[str, Kind] = {
    "aspect": Kind(
        "share of runs in which O_L took E's value (mean over the column's factors)",
        "viridis",
    ),
    "whole": Kind("share of runs in which O_L took E's value in every factor at once", "viridis"),
    "in_distribution": Kind("share of injected images that are still valid world images", "cividis"),
    "similarity": Kind("score(O_L, E) - score(O, E): above 0, O_L became more like E", "RdBu_r", None, None),
}


def table_cells(
    table: Any, names: Sequence[str], columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values and interval ends, ``(L, A)`` each, of ``columns`` for the layers ``names``.

    Args:
        table: :func:`latentkit.aspects.aspect_table` (tidy: ``layer``, ``aspect``, ``mean``, ``ci_low``,
            ``ci_high``) or :func:`latentkit.roles.role_table` (one row per layer: ``<aspect>``,
            ``<aspect>_low``, ``<aspect>_high``; its ``valid_share`` is the ``in_distribution`` column).
        names: layer names, in the order of the heat map's rows.
        columns: aspects, in the order of its columns.

    Returns:
        ``(values, low, high)`` as float arrays; NaN where the table has NaN (not measured).
    """
    names, columns = list(names), list(columns)
    tidy = {"layer", "aspect", "mean", "ci_low", "ci_high"} <= set(table.columns)
    if tidy:
        present = set(table["aspect"])
        grid = table.set_index(["layer", "aspect"])
        layers = set(table["layer"])
    else:
        present = {c for c in table.columns if f"{c}_low" in table.columns} | (
            {"in_distribution"} if "valid_share" in table.columns else set()
        )
        layers = set(table.index)
    if missing := [n for n in names if n not in layers]:
        close = difflib.get_close_matches(missing[0], sorted(layers), n=3)
        raise ValueError(f"layers {missing[:3]} are not in the table; closest names: {close}")
    if missing := [c for c in columns if c not in present]:
        raise ValueError(f"columns {missing} are not in the table; it has {sorted(present)}")
    out = np.full((3, len(names), len(columns)), np.nan)
    for j, column in enumerate(columns):
        if tidy:
            cells = grid.xs(column, level="aspect").reindex(names)
            parts = [cells["mean"], cells["ci_low"], cells["ci_high"]]
        elif column == "in_distribution" and column not in table.columns:
            parts = [table.loc[names, k] for k in ("valid_share", "valid_low", "valid_high")]
        else:
            parts = [table.loc[names, k] for k in (column, f"{column}_low", f"{column}_high")]
        for k, part in enumerate(parts):
            out[k, :, j] = np.asarray(part, dtype=float)
    return out[0], out[1], out[2]


def invalid_rows(table: Any, names: Sequence[str], below: float = 0.5) -> np.ndarray:
    """``(L,)`` bool: layers whose injected images were mostly invalid (valid share under ``below``).

    Reads ``valid_share`` of a role table or the ``in_distribution`` rows of an aspect table.
    """
    if "valid_share" in getattr(table, "columns", []):
        share = np.asarray(table.loc[list(names), "valid_share"], dtype=float)
    else:
        share = table_cells(table, names, ["in_distribution"])[0][:, 0]
    return share < below


@dataclass
class _Model:
    """One model's block of a heat map, every array checked."""

    name: str
    values: np.ndarray  # (L, A)
    low: np.ndarray | None
    high: np.ndarray | None
    rows: list[str]
    groups: list[str] | None
    depths: np.ndarray | None  # (L,) relative depths, or None: one row per layer
    invalid: np.ndarray | None  # (L, A) bool


def _as_grid(name: str, label: str, array: Any, shape: tuple[int, int]) -> np.ndarray:
    out = np.asarray(getattr(array, "to_numpy", lambda: array)(), dtype=float)
    if out.shape != shape:
        raise ValueError(f"{label}{name}: shape {out.shape}, expected {shape} (rows x columns)")
    return out


def _per_model(arg: Any, names: list[str], label: str, multi: bool) -> dict[str, Any]:
    if not multi:
        return {names[0]: arg}
    if arg is None:
        return dict.fromkeys(names)
    if not isinstance(arg, Mapping) or set(arg) != set(names):
        raise ValueError(
            f"with several models, {label} must be a dict with the same keys as values ({names}), "
            f"got {type(arg).__name__}{'' if not isinstance(arg, Mapping) else ' with ' + str(list(arg))}"
        )
    return dict(arg)


def _models(values, low, high, rows, groups, depths, mostly_invalid, n_cols, kinds) -> list[_Model]:
    multi = isinstance(values, Mapping)
    names = list(values) if multi else [""]
    if multi and not names:
        raise ValueError("values is an empty dict: give at least one model")
    vals = dict(values) if multi else {"": values}
    per = {
        label: _per_model(arg, names, label, multi)
        for label, arg in [
            ("low", low),
            ("high", high),
            ("rows", rows),
            ("groups", groups),
            ("depths", depths),
            ("mostly_invalid", mostly_invalid),
        ]
    }
    models = []
    for name in names:
        rows_m = per["rows"][name]
        if rows_m is None or isinstance(rows_m, str):
            raise ValueError(f"rows{_of(name)} must be a list of row labels, got {rows_m!r}")
        rows_m = [str(r) for r in rows_m]
        shape = (len(rows_m), n_cols)
        v = _as_grid(_of(name), "values", vals[name], shape)
        lo = None if per["low"][name] is None else _as_grid(_of(name), "low", per["low"][name], shape)
        hi = None if per["high"][name] is None else _as_grid(_of(name), "high", per["high"][name], shape)
        if (lo is None) != (hi is None):
            raise ValueError(f"give both low and high{_of(name)} (the interval's ends), or neither")
        g = per["groups"][name]
        if g is not None and len(g) != len(rows_m):
            raise ValueError(f"groups{_of(name)}: {len(g)} entries for {len(rows_m)} rows")
        d = per["depths"][name]
        if d is None and multi:  # side by side: a common relative-depth axis, forward order 0 .. 1
            d = np.linspace(0, 1, len(rows_m)) if len(rows_m) > 1 else np.zeros(1)
        if d is not None:
            d = np.asarray(d, dtype=float)
            if d.shape != (len(rows_m),) or np.isnan(d).any() or (np.diff(d) <= 0).any():
                raise ValueError(
                    f"depths{_of(name)} must be {len(rows_m)} increasing numbers (relative depth, 0..1), "
                    f"got {d.tolist()}"
                )
        bad = per["mostly_invalid"][name]
        if bad is not None:
            bad = np.asarray(bad, dtype=bool)
            if bad.shape == (len(rows_m),):  # a row mark: every column but the validity itself
                bad = bad[:, None] & np.array([k != "in_distribution" for k in kinds])[None, :]
            if bad.shape != shape:
                raise ValueError(f"mostly_invalid{_of(name)}: shape {bad.shape}, expected {shape} or (L,)")
        models.append(_Model(name, v, lo, hi, rows_m, None if g is None else list(g), d, bad))
    return models


def _of(name: str) -> str:
    return f" of {name!r}" if name else ""


def _cell_text(v: float, lo: float, hi: float, digits: int, mode: str) -> str:
    if np.isnan(v):
        return "n/a"
    value = f"{v:.{digits}f}"
    if mode == "value" or np.isnan(lo) or np.isnan(hi):
        return value
    interval = f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{value} {interval}" if mode == "one line" else f"{value}\n{interval}"


def _panels(kinds: list[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` column ranges of consecutive columns of one kind: one axes each."""
    out, start = [], 0
    for j in range(1, len(kinds) + 1):
        if j == len(kinds) or kinds[j] != kinds[start]:
            out.append((start, j))
            start = j
    return out


def _edges(model: _Model, top: float | None, bottom: float | None) -> np.ndarray:
    """Cell edges along y: integers around each row, or midpoints between depths (outer ones at
    ``top``/``bottom``, so that every model fills the common axis and no band stays empty)."""
    n = len(model.rows)
    if model.depths is None:
        return np.arange(n + 1) - 0.5
    d = model.depths
    mid = (d[1:] + d[:-1]) / 2
    return np.r_[top, mid, bottom]


def heatmap(
    values: Any,
    low: Any = None,
    high: Any = None,
    *,
    rows: Any,
    columns: Sequence[str],
    kinds: str | Sequence[str],
    groups: Any = None,
    depths: Any = None,
    mostly_invalid: Any = None,
    title: str | None = None,
    text: str = "auto",
    digits: int = 2,
    fontsize: float = 9,
    row_label: str | None = None,
    kind_labels: Mapping[str, str] | None = None,
    max_width: float = 13.0,
) -> Figure:
    """A layers x aspects heat map, each cell's value and interval printed in it (notebooks 04, 05).

    Consecutive columns of one kind share a panel; each kind gets a colour bar under the map whose
    label says what its numbers are (:data:`KINDS`), kinds with the same colours sharing one bar.
    NaN cells (not measured) are hatched grey and say ``n/a``.

    Args:
        values: ``(L, A)`` array or DataFrame (rows: layers in forward order, columns: ``columns``); or a
            dict ``{model name: (L_m, A)}`` to lay several models side by side, each row at its relative
            depth on one common axis (then ``rows``, ``low``, ``high``, ``groups``, ``depths`` and
            ``mostly_invalid`` are dicts with the same keys).
        low, high: ``(L, A)`` ends of each cell's interval (e.g. 95% bootstrap), or ``None`` for none.
        rows: ``L`` row labels, e.g. ``layer_label(name)``.
        columns: ``A`` column names (``_`` becomes a line break in the labels).
        kinds: one :data:`KINDS` key per column, or one for all.
        groups: ``L`` group names (``down``/``mid``/``up``): a white line where the group changes.
        depths: ``L`` increasing relative depths (0 = first layer run, 1 = last); default: one row per
            layer, or ``linspace(0, 1, L)`` when several models are given.
        mostly_invalid: ``(L,)`` or ``(L, A)`` bool: cells outlined in red, for layers whose injected
            images were mostly invalid (:func:`invalid_rows`); an ``(L,)`` mark spares
            ``in_distribution`` columns.
        title: printed above the map.
        text: ``"auto"`` (one line ``"0.62 [0.40, 0.85]"`` when the map fits in ``max_width`` inches so,
            else two lines), ``"one line"``, ``"two lines"`` or ``"value"`` (no interval).
        digits: decimals of the numbers.
        fontsize: of the cell texts and labels, at least 8 pt.
        row_label: y-axis label; default "layer, in forward order (down | mid | up)" from ``groups``.
        kind_labels: colour-bar labels to use instead of :data:`KINDS`' (kind -> label).
        max_width: inches the map may take before ``"auto"`` falls back to two lines.

    Returns:
        The Figure. Its axes carry ``gid`` ``"heatmap"`` (panels) and ``"colorbar"``; NaN patches,
        group separators and invalid marks carry ``"n/a"``, ``"group-separator"`` and
        ``"mostly-invalid"``.
    """
    _check_fontsize(fontsize)
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("columns is empty: name at least one aspect")
    kinds = [kinds] * len(columns) if isinstance(kinds, str) else list(kinds)
    if len(kinds) != len(columns):
        raise ValueError(f"{len(kinds)} kinds for {len(columns)} columns: give one per column, or one")
    labels = {**{k: v.label for k, v in KINDS.items()}, **(kind_labels or {})}
    if unknown := [k for k in kinds if k not in KINDS]:
        raise ValueError(f"unknown kind(s) {sorted(set(unknown))}; use one of {list(KINDS)}")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ValueError(f"digits must be an integer in 0..6, got {digits!r}")
    modes = ("auto", "one line", "two lines", "value")
    if text not in modes:
        raise ValueError(f"text must be one of {modes}, got {text!r}")
    models = _models(values, low, high, rows, groups, depths, mostly_invalid, len(columns), kinds)
    multi = isinstance(values, Mapping)
    panels = _panels(kinds)
    norms = _norms(models, kinds)

    # -- sizes, in inches, from the texts themselves
    pad_w, pad_h = 0.14, 0.08
    col_labels = [c.replace("_", "\n") for c in columns]
    col_label_w = max(text_size(c, fontsize)[0] for c in col_labels) + 0.08
    col_label_h = max(text_size(c, fontsize)[1] for c in col_labels) + 0.08

    def widest(mode: str) -> float:
        return max(
            text_size(_cell_text(v, lo, hi, digits, mode), fontsize)[0]
            for m in models
            for v, lo, hi in zip(
                m.values.ravel(),
                (m.low if m.low is not None else np.full_like(m.values, np.nan)).ravel(),
                (m.high if m.high is not None else np.full_like(m.values, np.nan)).ravel(),
                strict=True,
            )
        )

    row_label_w = [max(text_size(r, fontsize)[0] for r in m.rows) + 0.1 for m in models]
    ylabel_w = 0.3
    depth_axis_w = 0.75 if models[0].depths is not None else 0.0
    gaps = 0.1 * (len(panels) - 1) * len(models) + sum(row_label_w) + ylabel_w + depth_axis_w
    gaps += 0.3 * (len(models) - 1)
    n_cells = len(columns) * len(models)
    mode = text
    if text == "auto":
        fits = n_cells * max(widest("one line") + pad_w, col_label_w) + gaps <= max_width
        mode = "one line" if fits else "two lines"
    cell_w = max(widest(mode) + pad_w, col_label_w)
    lines = 2 if mode == "two lines" else 1
    cell_h = lines * fontsize * _LINE / 72 + pad_h

    # the map's height: every model's smallest cell must hold its text
    if models[0].depths is not None:
        steps = [np.diff(m.depths) for m in models if len(m.rows) > 1]
        # the finest model sets the axis' ends, so its outer rows keep their height; a coarser model's
        # outer cells are cut there (they are tall anyway) and no model leaves an empty band
        half = min((s.min() / 2 for s in steps), default=0.5)
        top = min(m.depths[0] for m in models) - half
        bottom = max(m.depths[-1] for m in models) + half
        spans = [np.diff(_edges(m, top, bottom)).min() for m in models]
        map_h = cell_h * (bottom - top) / min(spans)
    else:
        top = bottom = None
        map_h = cell_h * len(models[0].rows)

    # colour bars: one per colour map and range, labelled with the columns it serves
    bars = _bars(kinds, columns, labels, norms)
    widths = [row_label_w[i] + (ylabel_w if i == 0 else 0.3) for i in range(len(models))]
    model_w = len(columns) * cell_w + 0.1 * (len(panels) - 1)
    map_w = len(models) * model_w + sum(widths[1:])
    bar_w = min(3.4, max(1.6, (map_w - 0.4 * (len(bars) - 1)) / len(bars)))
    bar_labels = [_wrap(label, bar_w, fontsize) for _, label in bars]
    bar_label_h = max(text_size(b, fontsize)[1] for b in bar_labels)
    note = None
    if any(m.invalid is not None and m.invalid.any() for m in models):
        note = "red dashed outline: most of this layer's injected images were not valid world images"

    title_h = text_size(title, fontsize + 2)[1] + 0.12 if title else 0.0
    model_title_h = fontsize * _LINE / 72 + 0.12 if multi else 0.0
    above = 0.1 + title_h + model_title_h + col_label_h
    below = 0.2 + 0.16 + 0.3 + bar_label_h + (0.3 if note else 0.1)
    fig_w = widths[0] + max(map_w, len(bars) * bar_w + 0.4 * (len(bars) - 1)) + depth_axis_w + 0.1
    fig_h = above + map_h + below
    fig = _new_figure(fig_w, fig_h)

    def rect(x: float, y_top: float, w: float, h: float) -> list[float]:
        """Figure-fraction rectangle of a box whose top-left corner is ``(x, y_top)`` inches."""
        return [x / fig_w, 1 - (y_top + h) / fig_h, w / fig_w, h / fig_h]

    if title:
        fig.text(0.5, 1 - 0.1 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    mappables: dict[int, Any] = {}
    x = 0.0
    for i, model in enumerate(models):
        x += widths[i]
        start = x
        edges = _edges(model, top, bottom)
        axes = []
        for p, (a, b) in enumerate(panels):
            w = (b - a) * cell_w
            ax = fig.add_axes(rect(x, above, w, map_h), gid="heatmap")
            axes.append(ax)
            mappables[a] = _draw_panel(
                ax, model, a, b, kinds, norms, edges, digits, mode, fontsize, col_labels
            )
            if p:
                ax.set_yticks([])
            x += w + 0.1
        x -= 0.1
        first = axes[0]
        centres = (edges[1:] + edges[:-1]) / 2 if model.depths is None else model.depths
        first.set_yticks(centres, model.rows, fontsize=fontsize)
        first.tick_params(axis="y", length=0, pad=3)
        if i == 0:
            first.set_ylabel(row_label or _row_label(model.groups), fontsize=fontsize)
        if multi:
            mid = (start + x) / 2
            y = 1 - (0.1 + title_h) / fig_h
            fig.text(mid / fig_w, y, model.name, ha="center", va="top", fontsize=fontsize + 1, gid="title")
        if model.depths is not None and i == len(models) - 1:
            right = axes[-1].secondary_yaxis("right")
            right.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
            right.tick_params(labelsize=fontsize)
            right.set_ylabel("relative depth (0 = first layer run, 1 = last)", fontsize=fontsize)

    # colour bars, left-aligned under the first model's map
    y_bar = above + map_h + 0.2
    bx = widths[0]
    for (column_index, _), label in zip(bars, bar_labels, strict=True):
        cax = fig.add_axes(rect(bx, y_bar, bar_w, 0.16), gid="colorbar")
        bar = fig.colorbar(_mappable_for(mappables, panels, column_index), cax=cax, orientation="horizontal")
        bar.ax.tick_params(labelsize=fontsize)
        bar.set_label(label, fontsize=fontsize)
        bx += bar_w + 0.4
    if note:
        fig.text(
            widths[0] / fig_w, 0.08 / fig_h, note, ha="left", va="bottom", fontsize=fontsize, color="#B2182B"
        )
    fig._latentkit_text_mode = mode  # which form the cells took (the tests read it)
    return fig


def _mappable_for(mappables: dict[int, Any], panels: list[tuple[int, int]], column: int) -> Any:
    """The mesh of the panel that holds ``column`` (the colour bar shows its colour map and range)."""
    for a, b in panels:
        if a <= column < b:
            return mappables[a]
    raise KeyError(column)


def _norms(models: list[_Model], kinds: list[str]) -> dict[str, mpl.colors.Normalize]:
    norms = {}
    for kind in dict.fromkeys(kinds):
        spec = KINDS[kind]
        if spec.vmin is None or spec.vmax is None:
            cols = [j for j, k in enumerate(kinds) if k == kind]
            seen = np.concatenate([np.abs(m.values[:, cols]).ravel() for m in models])
            seen = seen[~np.isnan(seen)]
            top = float(np.ceil(10 * seen.max()) / 10) if len(seen) and seen.max() > 0 else 1.0
            norms[kind] = mpl.colors.Normalize(-top, top)
        else:
            norms[kind] = mpl.colors.Normalize(spec.vmin, spec.vmax)
    return norms


def _bars(
    kinds: list[str], columns: list[str], labels: Mapping[str, str], norms: Mapping[str, Any]
) -> list[tuple[int, str]]:
    """One colour bar per colour map and range: ``(first column index, label)``. A bar that serves
    several kinds says which columns each part of its label is about."""
    by_look: dict[tuple, list[str]] = {}
    for kind in dict.fromkeys(kinds):
        look = (KINDS[kind].cmap, norms[kind].vmin, norms[kind].vmax)
        by_look.setdefault(look, []).append(kind)
    bars = []
    for group in by_look.values():
        parts = []
        for kind in group:
            cols = ", ".join(c.replace("_", " ") for c, k in zip(columns, kinds, strict=True) if k == kind)
            label = labels[kind]
            if kind == "aspect" and "all" in columns and kinds[columns.index("all")] == "aspect":
                label += "; all: the six factors"
            parts.append(f"{cols}: {label}")
        bars.append((kinds.index(group[0]), "\n".join(parts)))
    return bars


def _row_label(groups: list[str] | None) -> str:
    if not groups:
        return "layer, in forward order"
    return f"layer, in forward order ({' | '.join(dict.fromkeys(groups))})"


def _draw_panel(ax, model, a, b, kinds, norms, edges, digits, mode, fontsize, col_labels):
    kind = kinds[a]
    cmap = mpl.colormaps[KINDS[kind].cmap]
    norm = norms[kind]
    values = model.values[:, a:b]
    mesh = ax.pcolormesh(
        np.arange(b - a + 1) - 0.5, edges, np.ma.masked_invalid(values), cmap=cmap, norm=norm
    )
    ax.set_xlim(-0.5, b - a - 0.5)
    ax.set_ylim(edges[-1], edges[0])  # the first layer at the top
    ax.set_xticks(range(b - a), col_labels[a:b], fontsize=fontsize)
    ax.xaxis.tick_top()
    ax.tick_params(axis="x", length=0, pad=3)
    centres = (edges[1:] + edges[:-1]) / 2 if model.depths is None else model.depths
    # a text sits at its row's depth, moved inwards where that would cut it at the cell's edge
    lines = 2 if mode == "two lines" else 1
    per_inch = (edges[-1] - edges[0]) / (ax.get_position().height * ax.figure.get_size_inches()[1])
    half_text = (lines * fontsize * _LINE / 72 / 2 + 0.03) * per_inch
    for i in range(len(model.rows)):
        top, bottom = edges[i], edges[i + 1]
        for j in range(b - a):
            v = values[i, j]
            lo = model.low[i, a + j] if model.low is not None else np.nan
            hi = model.high[i, a + j] if model.high is not None else np.nan
            label = _cell_text(v, lo, hi, digits, mode)
            if np.isnan(v):
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, top),
                        1,
                        bottom - top,
                        facecolor="#E6E6E6",
                        edgecolor="#9E9E9E",
                        hatch="///",
                        lw=0,
                        gid="n/a",
                    )
                )
                color = "black"
            else:
                color = _ink(cmap(norm(v)))
            y = float(np.clip(centres[i], top + half_text, bottom - half_text))
            if bottom - top <= 2 * half_text:
                y = (top + bottom) / 2
            ax.text(j, y, label, ha="center", va="center", fontsize=fontsize, color=color, gid="cell")
            if model.invalid is not None and model.invalid[i, a + j]:
                inset_x, inset_y = 0.03, 0.07 * (bottom - top)
                ax.add_patch(
                    Rectangle(
                        (j - 0.5 + inset_x, top + inset_y),
                        1 - 2 * inset_x,
                        bottom - top - 2 * inset_y,
                        fill=False,
                        edgecolor="#D62728",
                        lw=1.6,
                        ls="--",
                        gid="mostly-invalid",
                    )
                )
    if model.groups:
        for i in range(1, len(model.rows)):
            if model.groups[i] != model.groups[i - 1]:
                ax.axhline(edges[i], color="white", lw=2.5, gid="group-separator")
    for side in ax.spines.values():
        side.set_visible(False)
    return mesh


# --------------------------------------------------------------------------------------------------
# pyplot or not: figures drawn in a notebook should show inline, figures in tests need no pyplot state


def _pyplot_managed() -> bool:
    """Whether pyplot is in use (a notebook imported it): then figures are made through it, so that
    the inline backend shows them; else a bare Figure is made (no global state)."""
    import sys

    return "matplotlib.pyplot" in sys.modules


def _new_figure(width: float, height: float) -> Figure:
    if _pyplot_managed():
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(width, height))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------------
# Grids of images: the injection grid, a gallery of pairs, strips along a direction


def grid_rows(layers: Sequence[Any]) -> list[int | None]:
    """The row of each layer in :func:`injection_grid`: its grid side (``shape[-1]`` of a ``(C, H, W)``
    U-Net layer), or ``None`` for a transformer block (``(tokens, D)``) or an unmeasured shape."""
    return [x.shape[-1] if x.shape is not None and len(x.shape) == 3 else None for x in layers]


def _under_text(entry: Any) -> str:
    if entry is None:
        return ""
    if isinstance(entry, str):
        return entry
    return ", ".join(str(e) for e in entry) or "-"


def _per_image(took: Any, labels: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """The text under each image: ``took`` is a mapping (keyed by label or name) or one entry per image."""
    if took is None:
        return [""] * len(labels)
    if isinstance(took, Mapping):
        keys = list(names) if names is not None else list(labels)
        return [_under_text(took.get(k, took.get(label, "-"))) for k, label in zip(keys, labels, strict=True)]
    took = list(took)
    if len(took) != len(labels):
        raise ValueError(f"took has {len(took)} entries for {len(labels)} images")
    return [_under_text(t) for t in took]


def _row_order(keys: list[Any]) -> list[Any]:
    """Distinct row keys, numbers from the largest (the finest grid at the top), then the rest."""
    distinct = list(dict.fromkeys(keys))
    numbers = sorted((k for k in distinct if isinstance(k, int | float | np.integer)), reverse=True)
    return numbers + [k for k in distinct if not isinstance(k, int | float | np.integer)]


def _image_axes(fig, fig_w, fig_h, x, y_top, size, image, title=None, under=None, fontsize=8, bold=False):
    ax = fig.add_axes([x / fig_w, 1 - (y_top + size) / fig_h, size / fig_w, size / fig_h], gid="image")
    ax.imshow(_show(image))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, fontweight="bold" if bold else "normal", pad=3)
    if under:
        ax.text(
            0.5, -0.04, under, transform=ax.transAxes, ha="center", va="top", fontsize=fontsize, gid="under"
        )
    return ax


def injection_grid(
    original: np.ndarray,
    edit: np.ndarray,
    injected: np.ndarray,
    labels: Sequence[str],
    rows_of: Sequence[Any] | Mapping[str, Any] | Callable[[int], Any],
    took: Any = None,
    *,
    row_names: Mapping[Any, str] | None = None,
    size: float = 1.0,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """The paper's Fig. 5 (right half): one injected image per layer, in the model's own shape.

    The row of an image is its layer's grid size (the finest at the top: the down path descends, the up
    path climbs back), its column the layer's place in the forward pass; O and E stand on the left.
    Titles are wrapped to their column and the labels under the images (``took``) to the image width,
    so no two texts overlap.

    Args:
        original, edit: O and E, ``(H, W, 3)`` (uint8, or float in [0, 1]).
        injected: ``(K, H, W, 3)``, one image per layer in forward order.
        labels: ``K`` titles, e.g. ``layer_label(name)``.
        rows_of: ``K`` row keys (e.g. :func:`grid_rows` of the layers: grid sides, ``None`` for
            transformer blocks), a mapping label -> key, or a function of the image index.
        took: what to print under each image: a mapping label -> text or list of words (e.g. the
            factors the probes read as E's), or one entry per image.
        row_names: key -> text written beside each row; default ``"16 x 16"`` for a side of 16.
        size: side of each image, inches.
        fontsize: of titles and labels, at least 8 pt.
        title: printed above the grid.

    Returns:
        The Figure; image axes have ``gid`` ``"image"``, texts under images ``"under"``.
    """
    _check_fontsize(fontsize)
    injected = np.asarray(injected)
    labels = [str(label) for label in labels]
    if injected.ndim != 4 or len(injected) != len(labels):
        raise ValueError(
            f"injected must be (K, H, W, 3) with one label per image: got shape {injected.shape} and "
            f"{len(labels)} labels"
        )
    if callable(rows_of):
        keys = [rows_of(k) for k in range(len(labels))]
    elif isinstance(rows_of, Mapping):
        keys = [rows_of[label] for label in labels]
    else:
        keys = list(rows_of)
        if len(keys) != len(labels):
            raise ValueError(f"rows_of has {len(keys)} entries for {len(labels)} images")
    order = _row_order(keys)
    names = {
        k: f"{k} x {k}" if isinstance(k, int | np.integer) else ("" if k is None else str(k)) for k in order
    }
    names.update(row_names or {})
    under = _per_image(took, labels)

    pitch = size + 0.12
    for text in labels + under:  # a word that cannot be broken widens every column
        for word in text.replace("+", "+ ").split():
            pitch = max(pitch, _line_width(word, fontsize, "normal") + 0.12)
    titles = [_wrap(label, pitch - 0.1, fontsize) for label in labels]
    under = [_wrap(u, pitch - 0.1, fontsize) for u in under]
    title_h = max(text_size(t, fontsize)[1] for t in [*titles, "O (original)"]) + 0.08
    under_h = max(text_size(u, fontsize)[1] for u in under) + 0.1 if any(under) else 0.0
    row_h = title_h + size + under_h + 0.12
    n_rows = max(len(order), 2)
    stacked = len(order) >= 2  # O above E; with one row of layers, side by side
    pair_w = pitch if stacked else 2 * pitch
    gap = 0.45  # holds the rotated row names
    top = text_size(title, fontsize + 2)[1] + 0.15 if title else 0.05
    fig_w = 0.05 + pair_w + gap + len(labels) * pitch
    fig_h = top + (n_rows if stacked else 1) * row_h
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    for r, (name, image) in enumerate([("O (original)", original), ("E (edit)", edit)]):
        x = 0.05 + (0 if stacked else r * pitch)
        y = top + (r * row_h if stacked else 0) + title_h
        _image_axes(fig, fig_w, fig_h, x, y, size, image, name, fontsize=fontsize, bold=True)
    x0 = 0.05 + pair_w + gap
    for r, key in enumerate(order):
        y = top + r * row_h + title_h
        if names[key]:
            fig.text(
                (x0 - gap / 2) / fig_w,
                1 - (y + size / 2) / fig_h,
                names[key],
                rotation=90,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="#555555",
                gid="row-name",
            )
    for k, image in enumerate(injected):
        y = top + order.index(keys[k]) * row_h + title_h
        x = x0 + k * pitch + (pitch - size) / 2
        _image_axes(fig, fig_w, fig_h, x, y, size, image, titles[k], under[k] or None, fontsize)
    return fig


def _result_of(item: Any):
    result = getattr(item, "result", item)
    for attribute in ("original", "edit", "injected", "names"):
        if not hasattr(result, attribute):
            raise TypeError(
                "expected a latentkit.aspects.Run or a latentkit.injection.SweepResult, "
                f"got {type(item).__name__}"
            )
    return result


def pair_gallery(
    results: Sequence[Any],
    layers: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    took: Sequence[Any] | None = None,
    size: float = 1.0,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """Several O/E pairs, one row each: O, E, then the injected image at each of a few chosen layers.

    Args:
        results: :class:`latentkit.aspects.Run` or :class:`latentkit.injection.SweepResult` objects, one per
            row.
        layers: the layers to show (names of ``result.names``), one column each.
        labels: column titles; default ``layer_label`` of each name.
        captions: one text per row, written at its left (e.g. ``"pair 3"``).
        took: one entry per row: a mapping layer name -> text or list of words, printed under the image.
        size: side of each image, inches.
        fontsize: at least 8 pt.
        title: printed above the gallery.

    Returns:
        The Figure; image axes have ``gid`` ``"image"``.
    """
    from latentkit.layers import layer_label

    _check_fontsize(fontsize)
    rows = [_result_of(r) for r in results]
    layers = list(layers)
    if not rows or not layers:
        raise ValueError("pair_gallery needs at least one result and one layer")
    for r in rows:
        if missing := [n for n in layers if n not in r.names]:
            close = difflib.get_close_matches(missing[0], r.names, n=3)
            raise ValueError(f"layers {missing[:3]} were not injected in this sweep; closest names: {close}")
    labels = [layer_label(n) for n in layers] if labels is None else [str(x) for x in labels]
    if len(labels) != len(layers):
        raise ValueError(f"{len(labels)} labels for {len(layers)} layers")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"{len(captions)} captions for {len(rows)} rows")
    if took is not None and len(took) != len(rows):
        raise ValueError(f"took has {len(took)} entries for {len(rows)} rows")
    unders = [_per_image(None if took is None else took[i], labels, layers) for i in range(len(rows))]

    pitch = size + 0.12
    for text in labels + [u for row in unders for u in row]:
        for word in text.replace("+", "+ ").split():
            pitch = max(pitch, _line_width(word, fontsize, "normal") + 0.12)
    titles = [_wrap(label, pitch - 0.1, fontsize) for label in labels]
    unders = [[_wrap(u, pitch - 0.1, fontsize) for u in row] for row in unders]
    caption_w = 0.0
    wrapped_captions = None
    if captions is not None:
        caption_w = min(1.6, max(text_size(str(c), fontsize)[0] for c in captions)) + 0.12
        wrapped_captions = [_wrap(str(c), caption_w - 0.1, fontsize) for c in captions]
    title_h = max(text_size(t, fontsize)[1] for t in [*titles, "O (original)"]) + 0.08
    under_h = max(text_size(u, fontsize)[1] for row in unders for u in row) + 0.1
    if not any(u for row in unders for u in row):
        under_h = 0.0
    row_h = size + under_h + 0.12
    top = (text_size(title, fontsize + 2)[1] + 0.15 if title else 0.05) + title_h
    gap = 0.25
    fig_w = 0.05 + caption_w + 2 * pitch + gap + len(layers) * pitch
    fig_h = top + len(rows) * row_h
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    for i, r in enumerate(rows):
        y = top + i * row_h
        if wrapped_captions is not None:
            fig.text(
                0.05 / fig_w,
                1 - (y + size / 2) / fig_h,
                wrapped_captions[i],
                ha="left",
                va="center",
                fontsize=fontsize,
                gid="caption",
            )
        x = 0.05 + caption_w
        for j, (name, image) in enumerate([("O (original)", r.original), ("E (edit)", r.edit)]):
            head = name if i == 0 else None
            _image_axes(fig, fig_w, fig_h, x + j * pitch, y, size, image, head, fontsize=fontsize, bold=True)
        x += 2 * pitch + gap
        for k, name in enumerate(layers):
            image = r.injected[r.names.index(name)]
            head = titles[k] if i == 0 else None
            _image_axes(
                fig, fig_w, fig_h, x + k * pitch, y, size, image, head, unders[i][k] or None, fontsize
            )
    return fig


def image_strip(
    images: np.ndarray,
    *,
    under: Sequence[Sequence[str]] | Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    size: float = 0.9,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """Rows of images with a label under each, e.g. walks along directions (``"-2.0 sd"`` ... ``"+2.0 sd"``).

    Args:
        images: ``(R, C, H, W, 3)``, or ``(C, H, W, 3)`` for one row.
        under: ``C`` labels shared by every row, or ``R`` lists of ``C``.
        row_labels: ``R`` texts written at the left of the rows (e.g. ``"PC 1"``).
        size: side of each image, inches.
        fontsize: at least 8 pt.
        title: printed above the strip.

    Returns:
        The Figure; image axes have ``gid`` ``"image"``.
    """
    _check_fontsize(fontsize)
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[None]
    if images.ndim != 5:
        raise ValueError(f"images must be (R, C, H, W, 3) or (C, H, W, 3), got shape {images.shape}")
    n_rows, n_cols = images.shape[:2]
    if under is None:
        unders = [[""] * n_cols for _ in range(n_rows)]
    elif len(under) == n_cols and all(isinstance(u, str) for u in under):
        unders = [list(under)] * n_rows
    else:
        unders = [list(u) for u in under]
        if len(unders) != n_rows or any(len(u) != n_cols for u in unders):
            raise ValueError(f"under must hold {n_cols} labels, or {n_rows} lists of {n_cols}")
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"{len(row_labels)} row labels for {n_rows} rows")
    pitch = size + 0.1
    for word in (w for row in unders for u in row for w in str(u).split()):
        pitch = max(pitch, _line_width(word, fontsize, "normal") + 0.1)
    unders = [[_wrap(str(u), pitch - 0.08, fontsize) for u in row] for row in unders]
    under_h = max(text_size(u, fontsize)[1] for row in unders for u in row) + 0.08
    label_w = 0.0 if row_labels is None else max(text_size(str(r), fontsize)[0] for r in row_labels) + 0.15
    top = text_size(title, fontsize + 2)[1] + 0.15 if title else 0.05
    row_h = size + under_h + 0.1
    fig_w = 0.05 + label_w + n_cols * pitch
    fig_h = top + n_rows * row_h
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    for i in range(n_rows):
        y = top + i * row_h
        if row_labels is not None:
            fig.text(
                (0.05 + label_w - 0.1) / fig_w,
                1 - (y + size / 2) / fig_h,
                str(row_labels[i]),
                ha="right",
                va="center",
                fontsize=fontsize,
                gid="row-name",
            )
        for j in range(n_cols):
            x = 0.05 + label_w + j * pitch
            _image_axes(fig, fig_w, fig_h, x, y, size, images[i, j], None, unders[i][j] or None, fontsize)
    return fig


def image_grid(
    images: Any,
    *,
    columns: Sequence[str] | None = None,
    rows: Sequence[str] | None = None,
    blocks: Sequence[str] | None = None,
    size: float = 1.0,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """Images in rows and columns, each column named above it and each row at its left.

    The figure of every walk, interpolation and probe strip of notebooks 01, 02 and 03. How to read it:
    a row is one sequence of images, read left to right; the name above a column says where in the
    sequence it is (a step along a direction in standard deviations, a fraction of the way, a probe's
    strength), the name at the left what the row is (a neuron, a space, a sample). With ``blocks`` the
    rows come in groups, one per direction or per pair of endpoints, each under its own heading, and the
    column names are repeated above every group. Every image has a thin frame, so a white image stays
    visible on the white page. Use :func:`image_strip` instead when each image needs its own label.

    Args:
        images: ``(R, C, H, W, 3)`` (uint8, or float in [0, 1]); ``(B, R, C, H, W, 3)`` for ``B`` blocks
            of ``R`` rows; ``(C, H, W, 3)`` for one row.
        columns: ``C`` column names, e.g. ``"-2.0 sd"`` or ``"t=0.50"``.
        rows: ``R`` row names, e.g. ``"neuron 1"`` (the same in every block); long ones are wrapped.
        blocks: ``B`` headings, e.g. ``"PC 1"`` or ``"pair 1"``.
        size: side of each image, inches.
        fontsize: of every text, at least 8 pt.
        title: printed above the grid.

    Returns:
        The Figure; image axes have ``gid`` ``"image"`` (their titles are the column names), row names
        ``"row-name"``, block headings ``"block-title"``.
    """
    _check_fontsize(fontsize)
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[None]
    if images.ndim == 5:
        images = images[None]
    if images.ndim != 6 or images.shape[-1] not in (3, 4):
        raise ValueError(
            "images must be (R, C, H, W, 3), (B, R, C, H, W, 3) for blocks of rows, or (C, H, W, 3) for "
            f"one row; got shape {images.shape}"
        )
    n_blocks, n_rows, n_cols = images.shape[:3]
    for name, labels, wanted in (
        ("columns", columns, n_cols),
        ("rows", rows, n_rows),
        ("blocks", blocks, n_blocks),
    ):
        if labels is not None and (isinstance(labels, str) or len(labels) != wanted):
            got = repr(labels) if isinstance(labels, str) else f"{len(labels)} names"
            raise ValueError(f"{name} must name each of the {wanted} {name} of images, got {got}")
    if not size > 0:
        raise ValueError(f"size must be a positive number of inches, got {size!r}")

    pitch = size + 0.08
    for word in (w for c in columns or [] for w in str(c).split()):  # a word that cannot be broken widens all
        pitch = max(pitch, _line_width(word, fontsize, "normal") + 0.08)
    heads = [_wrap(str(c), pitch - 0.06, fontsize) for c in columns] if columns is not None else None
    head_h = max(text_size(h, fontsize)[1] for h in heads) + 0.08 if heads else 0.0
    names = [_wrap(str(r), 1.8, fontsize) for r in rows] if rows is not None else None
    label_w = max(text_size(n, fontsize)[0] for n in names) + 0.14 if names else 0.0
    block_h = text_size("Xg", fontsize, "bold")[1] + 0.06 if blocks is not None else 0.0
    title_h = text_size(title, fontsize + 2)[1] + 0.12 if title else 0.0
    row_pitch = size + 0.08
    gap = 0.2  # between blocks
    one_block = block_h + head_h + n_rows * row_pitch
    fig_w = 0.05 + label_w + n_cols * pitch + 0.03
    widest_text = max(
        [text_size(title, fontsize + 2)[0] if title else 0.0]
        + [text_size(str(b), fontsize, "bold")[0] for b in blocks or []]
    )
    fig_w = max(fig_w, widest_text + 0.1)
    fig_h = 0.05 + title_h + n_blocks * one_block + (n_blocks - 1) * gap + 0.03
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    y = 0.05 + title_h
    for b in range(n_blocks):
        if blocks is not None:
            fig.text(
                0.05 / fig_w,
                1 - y / fig_h,
                str(blocks[b]),
                ha="left",
                va="top",
                fontsize=fontsize,
                fontweight="bold",
                gid="block-title",
            )
        y += block_h + head_h
        for i in range(n_rows):
            if names is not None:
                fig.text(
                    (0.05 + label_w - 0.08) / fig_w,
                    1 - (y + size / 2) / fig_h,
                    names[i],
                    ha="right",
                    va="center",
                    fontsize=fontsize,
                    gid="row-name",
                )
            for j in range(n_cols):
                x = 0.05 + label_w + j * pitch + (pitch - size) / 2
                head = heads[j] if heads is not None and i == 0 else None
                _image_axes(fig, fig_w, fig_h, x, y, size, images[b, i, j], head, fontsize=fontsize)
            y += row_pitch
        y += gap
    return fig


# --------------------------------------------------------------------------------------------------
# The role diagram: the left half of Fig. 5

#: Colour of each role (Okabe-Ito: told apart also by colour-blind readers) and what it means.
ROLE_STYLE: dict[str, dict[str, Any]] = {
    "structure": {"facecolor": "#0072B2"},
    "content": {"facecolor": "#D55E00"},
    "surface": {"facecolor": "#009E73"},
    "mixed": {"facecolor": "#CC79A7"},
    "weak": {"facecolor": "#BDBDBD"},
    "undecided": {"facecolor": "#FFFFFF", "hatch": "..", "edgecolor": "#555555"},
    "undetermined": {"facecolor": "#F0F0F0", "hatch": "///", "edgecolor": "#9E9E9E"},
    "trivial": {"facecolor": "#000000"},
    "duplicate": {"facecolor": "#FFFFFF", "hatch": "xx", "edgecolor": "#000000"},
}
ROLE_MEANINGS: dict[str, str] = {
    "structure": "structure: moves position and size",
    "content": "content: moves the shape",
    "surface": "surface: moves colours and texture",
    "mixed": "mixed: moves several aspects",
    "weak": "weak: moves no aspect reliably",
    "undecided": "undecided: an interval straddles a threshold",
    "undetermined": "undetermined: too few valid images",
    "trivial": "trivial: its injection is E by construction",
    "duplicate": "duplicate: the same injection as another layer",
}
ROLES = tuple(ROLE_STYLE)


def skip_connections(layers: Sequence[Any]) -> list[tuple[str, str]]:
    """The U-Net's skip connections as ``(source, destination)`` layer names, destinations in forward order.

    diffusers' ``UNet2DConditionModel`` keeps the output of ``conv_in``, of every resnet (or the
    attention after it) of the down path and of every down block's downsampler, and hands them, last
    first, to the up path's resnets, one each. Sources that are not layers of :func:`list_layers` are
    named by their module path (``unet.conv_in``, ``unet.down_blocks.0.downsamplers.0``).

    Args:
        layers: :func:`latentkit.layers.list_layers` of a U-Net (all of its layers, in depth order).

    Returns:
        The pairs; ``[]`` for a transformer, or when the listed layers are not a whole U-Net (the count
        of sources and up resnets then disagrees).
    """
    names = [x.name for x in layers]
    down: dict[int, dict[int, dict[str, str]]] = {}
    ups = []
    prefix = ""
    for name in names:
        parts = name.split(".")
        if "down_blocks" in parts:
            k = parts.index("down_blocks")
            prefix = ".".join(parts[:k])
            block, kind, j = int(parts[k + 1]), parts[k + 2], parts[k + 3]
            if kind in ("resnets", "attentions"):
                down.setdefault(block, {}).setdefault(int(j), {})[kind] = name
        elif "up_blocks" in parts and parts[parts.index("up_blocks") + 2] == "resnets":
            ups.append(name)
    if not down or not ups:
        return []
    pre = f"{prefix}." if prefix else ""
    sources = [f"{pre}conv_in"]
    last = max(down)
    for block in sorted(down):
        for j in sorted(down[block]):
            pair = down[block][j]
            sources.append(pair.get("attentions", pair.get("resnets")))
        if block != last:
            sources.append(f"{pre}down_blocks.{block}.downsamplers.0")
    if len(sources) != len(ups):
        return []
    return [(sources.pop(), up) for up in ups]


def _box_text(label: str) -> str:
    return label.replace(" ", "\n")


def role_diagram(
    layers: Sequence[Any],
    roles: Mapping[str, str],
    *,
    title: str | None = None,
    fontsize: float = 8,
    legend: str = "all",
) -> Figure:
    """The denoiser drawn in its own shape, each layer's box coloured by its measured role.

    A U-Net's down path descends (one row per grid size, the finest at the top), its mid block sits at
    the bottom, its up path climbs back; skip connections are arcs from a down layer to the up layer
    that receives its output. A transformer's blocks stand in one row, in forward order, with its groups
    (``double`` / ``single`` blocks) named above them. The paper's Fig. 5 draws this by eye; here the
    colours are :func:`latentkit.roles.role_table`'s roles.

    Args:
        layers: :func:`latentkit.layers.list_layers` of the denoiser (with shapes, for the rows).
        roles: layer name -> role, one of :data:`ROLES` (e.g. ``role_table(...)["role"]``).
        title: printed above the diagram.
        fontsize: at least 8 pt.
        legend: ``"all"`` (every role, so the key reads the same in every figure) or ``"present"``.

    Returns:
        The Figure; boxes carry ``gid`` ``"layer-box"`` (``get_label()``: the layer's name), arcs
        ``"skip"``.
    """
    from matplotlib.lines import Line2D

    from latentkit.layers import layer_label

    _check_fontsize(fontsize)
    layers = list(layers)
    if not layers:
        raise ValueError("no layers to draw: pass list_layers(pipe)")
    if legend not in ("all", "present"):
        raise ValueError(f"legend must be 'all' or 'present', got {legend!r}")
    roles = dict(roles.items())
    if missing := [x.name for x in layers if x.name not in roles]:
        raise ValueError(
            f"no role for {len(missing)} layer(s), e.g. {missing[:3]}; give every layer one "
            "(role_table(...)['role'], or 'undetermined' for a layer that was not injected)"
        )
    if bad := sorted({r for r in (roles[x.name] for x in layers) if r not in ROLE_STYLE}):
        close = difflib.get_close_matches(bad[0], ROLES, n=1)
        raise ValueError(
            f"unknown role(s) {bad}; roles are {list(ROLES)}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )

    unet = any(x.group in ("down", "mid", "up") for x in layers)
    sides = grid_rows(layers)
    if unet:
        if all(s is not None for s in sides):
            order = sorted(set(sides), reverse=True)
            level = [order.index(s) for s in sides]
            row_names = {order.index(s): f"{s} x {s}" for s in order}
        else:  # no shapes: the block index tells the level
            level = [_block_level(x.name, layers) for x in layers]
            row_names = {}
    else:
        level = [0] * len(layers)
        shape = layers[0].shape
        row_names = {0: f"{shape[0]} tokens" if shape is not None and len(shape) == 2 else ""}

    labels = [_box_text(layer_label(x.name)) for x in layers]
    widest = max(text_size(t, fontsize)[0] for t in labels)
    unit = max(0.6, (widest + 0.1) / 0.86)  # inches per step of the forward order
    box_w, box_h = 0.86, 0.62
    xs = list(range(len(layers)))
    ys = [-lv for lv in level]

    skips = skip_connections(layers) if unet else []
    where = {x.name: (xs[i], ys[i]) for i, x in enumerate(layers)}
    for i, x in enumerate(layers):  # downsamplers: between their block's last layer and the next block
        parts = x.name.split(".")
        if "down_blocks" in parts and i + 1 < len(layers):
            k = parts.index("down_blocks")
            sampler = ".".join(parts[: k + 2]) + ".downsamplers.0"
            if layers[i + 1].name.split(".")[: k + 2] != parts[: k + 2]:
                where[sampler] = (xs[i] + 0.5, ys[i + 1] + box_h / 2)  # above the gap, clear of boxes
    conv_in = next((s for s, _ in skips if s.endswith("conv_in")), None)
    if conv_in:
        where[conv_in] = (-0.62, ys[0])  # on the input arrow

    peak = max((0.32 + 0.1 * abs(where[d][0] - where[s][0]) for s, d in skips if s in where), default=0)
    top_y = max(ys) + box_h / 2 + peak + 0.35 + (0.45 if not unet else 0)
    bottom_y = min(ys) - box_h / 2 - 0.15
    left_x = -1.6 - max((text_size(n, fontsize)[0] for n in row_names.values()), default=0) / unit
    right_x = len(layers) + 0.2
    legend_items = [r for r in ROLES if legend == "all" or r in {roles[x.name] for x in layers}]
    entry_w = max(text_size(ROLE_MEANINGS[r], fontsize)[0] for r in legend_items) + 0.45
    fig_w = (right_x - left_x) * unit
    ncol = max(1, min(len(legend_items) + bool(skips), int(fig_w // entry_w)))
    legend_rows = -(-(len(legend_items) + bool(skips)) // ncol)
    legend_h = legend_rows * fontsize * 1.9 / 72 + 0.15
    title_h = text_size(title, fontsize + 2)[1] + 0.1 if title else 0.0
    diagram_h = (top_y - bottom_y) * unit
    fig_h = diagram_h + legend_h + title_h
    fig = _new_figure(fig_w, fig_h)
    ax = fig.add_axes([0, legend_h / fig_h, 1, diagram_h / fig_h], gid="role-diagram")
    ax.set_xlim(left_x, right_x)
    ax.set_ylim(bottom_y, top_y)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")

    flow = {
        "color": "#777777",
        "lw": 1.0,
        "arrowstyle": "-|>",
        "mutation_scale": 8,
        "shrinkA": 0,
        "shrinkB": 0,
    }
    stubs = [(-1.0, ys[0], "in"), (len(layers), ys[-1], "out")]
    for sx, sy, text in stubs:
        ax.text(sx, sy, text, ha="center", va="center", fontsize=fontsize, color="#555555")
    ax.add_patch(FancyArrowPatch((-1.0 + 0.25, ys[0]), (xs[0] - box_w / 2, ys[0]), **flow))
    ax.add_patch(FancyArrowPatch((xs[-1] + box_w / 2, ys[-1]), (len(layers) - 0.25, ys[-1]), **flow))
    for i in range(len(layers) - 1):
        a, b = (xs[i] + box_w / 2, ys[i]), (xs[i + 1] - box_w / 2, ys[i + 1])
        ax.add_patch(FancyArrowPatch(a, b, **flow))
    for s, d in skips:
        if s not in where:
            continue
        (x1, y1), (x2, y2) = where[s], where[d]
        start = (x1, y1 + (box_h / 2 if s in roles else 0.0))
        end = (x2, y2 + box_h / 2)
        lift = 2 * (0.32 + 0.1 * abs(x2 - x1))  # a quadratic curve peaks at half its control's height
        control = ((x1 + x2) / 2, max(start[1], end[1]) + lift)
        path = MplPath([start, control, end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
        ax.add_patch(
            FancyArrowPatch(
                path=path, arrowstyle="-|>", mutation_scale=8, color="#4D4D4D", lw=0.9, gid="skip", zorder=1
            )
        )
        if s not in roles:  # conv_in or a downsampler: a dot where its output leaves
            ax.plot([start[0]], [start[1]], "o", color="#4D4D4D", ms=3, zorder=2)
    for i, x in enumerate(layers):
        style = {"edgecolor": "#333333", **ROLE_STYLE[roles[x.name]]}
        box = Rectangle(
            (xs[i] - box_w / 2, ys[i] - box_h / 2),
            box_w,
            box_h,
            lw=0.8,
            gid="layer-box",
            label=x.name,
            zorder=3,
            **style,
        )
        ax.add_patch(box)
        ink = _ink(mpl.colors.to_rgba(style["facecolor"]))
        # on a hatched box the label gets a plain ground, so the hatch never runs through the letters
        ground = (
            {"facecolor": style["facecolor"], "edgecolor": "none", "pad": 1.0} if "hatch" in style else None
        )
        ax.text(
            xs[i],
            ys[i],
            labels[i],
            ha="center",
            va="center",
            fontsize=fontsize,
            color=ink,
            zorder=4,
            bbox=ground,
        )
    for lv, name in row_names.items():
        ax.text(left_x + 0.05, -lv, name, ha="left", va="center", fontsize=fontsize, color="#555555")
    if not unet:  # name the groups of blocks above them
        groups = [x.group for x in layers]
        start = 0
        for i in range(1, len(groups) + 1):
            if i == len(groups) or groups[i] != groups[start]:
                y = box_h / 2 + 0.12
                ax.plot([start - 0.4, i - 1 + 0.4], [y, y], color="#555555", lw=0.8)
                ax.text(
                    (start + i - 1) / 2,
                    y + 0.08,
                    f"{groups[start]} blocks",
                    ha="center",
                    va="bottom",
                    fontsize=fontsize,
                )
                start = i
    handles = [
        Patch(lw=0.8, label=ROLE_MEANINGS[r], **{"edgecolor": "#333333", **ROLE_STYLE[r]})
        for r in legend_items
    ]
    if skips:
        handles.append(Line2D([], [], color="#4D4D4D", lw=0.9, label="skip connection"))
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.02),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
        handlelength=1.6,
        columnspacing=1.2,
    )
    return fig


def _block_level(name: str, layers: Sequence[Any]) -> int:
    """A U-Net layer's level from its block index when no shapes were measured."""
    parts = name.split(".")
    n_down = 1 + max(
        (
            int(p.split(".")[p.split(".").index("down_blocks") + 1])
            for p in (x.name for x in layers)
            if "down_blocks" in p
        ),
        default=0,
    )
    if "down_blocks" in parts:
        return int(parts[parts.index("down_blocks") + 1])
    if "up_blocks" in parts:
        return max(n_down - 1 - int(parts[parts.index("up_blocks") + 1]), 0)
    return n_down - 1


# --------------------------------------------------------------------------------------------------
# Alignment between layers (notebook 05)
# --------------------------------------------------------------------------------------------------


def alignment_matrices(
    panels: Sequence[tuple[Any, str, Sequence[str], Sequence[str], bool]],
    *,
    label: str = "alignment (mean over recorded steps)",
    fontsize: float = 8,
) -> Figure:
    """Layer-by-layer alignment matrices side by side (e.g. mutual k-NN and CKA across two models).

    Args:
        panels: one ``(matrix, title, row_ticks, column_ticks, across)`` per panel: ``matrix`` an
            ``(R, C)`` array or DataFrame of values in [0, 1] (rows and columns in forward order),
            tick labels for its rows and columns, and ``across``: True when rows and columns are two
            different models, to draw the line of equal relative depth (white) and each row's best
            match (cyan dots).
        label: the colour bar's label.
        fontsize: of the tick labels (at least 8 pt).

    Returns:
        The Figure; each panel axis has ``gid`` ``"alignment"``.
    """
    _check_fontsize(fontsize)
    if not panels:
        raise ValueError("no panels: pass (matrix, title, row_ticks, column_ticks, across) tuples")
    widths = [max(np.asarray(p[0]).shape[1], 3) for p in panels]
    rows = max(np.asarray(p[0]).shape[0] for p in panels)
    fig = _new_figure(0.32 * sum(widths) + 2.5 * len(panels) + 1.5, 0.3 * rows + 3.0)
    grid = fig.add_gridspec(1, len(panels), width_ratios=widths, wspace=0.9)
    image = None
    for k, (matrix, title, row_ticks, col_ticks, across) in enumerate(panels):
        values = np.asarray(matrix, dtype=float)
        if values.shape != (len(row_ticks), len(col_ticks)):
            raise ValueError(
                f"panel {title!r}: matrix {values.shape} but {len(row_ticks)} row and "
                f"{len(col_ticks)} column ticks"
            )
        ax = fig.add_subplot(grid[0, k], gid="alignment")
        image = ax.imshow(values, vmin=0, vmax=1, cmap="magma", aspect="auto")
        ax.set_yticks(range(len(row_ticks)), list(row_ticks), fontsize=fontsize)
        ax.set_xticks(range(len(col_ticks)), list(col_ticks), fontsize=fontsize, rotation=90)
        ax.set_title(title, fontsize=fontsize + 1)
        if across:
            ax.plot([0, values.shape[1] - 1], [0, values.shape[0] - 1], color="w", lw=1)
            ax.plot(np.nanargmax(values, axis=1), range(values.shape[0]), "o", color="cyan", ms=4)
    fig.colorbar(image, ax=fig.axes, shrink=0.6, label=label)
    return fig


# --------------------------------------------------------------------------------------------------
# Points of a latent space in 3-D (notebook 01)

#: A colour whose luminance (0 black .. 1 white) reaches this is drawn with a dark edge, so that a white or
#: pale point stays visible on a white or light grey ground.
LIGHT = 0.7
_DARK_EDGE = "#333333"


def _is_light(colour: Any) -> bool:
    r, g, b = mpl.colors.to_rgb(colour)
    return 0.299 * r + 0.587 * g + 0.114 * b >= LIGHT


def scatter_3d(
    points: Any,
    labels: Mapping[str, Any],
    values: Mapping[str, Sequence[str]],
    *,
    colours: Mapping[str, Sequence[Any]] | None = None,
    titles: Mapping[str, str] | None = None,
    axis_labels: Sequence[str] = ("neuron 1", "neuron 2", "neuron 3"),
    per_row: int = 3,
    size: float = 3.4,
    marker_size: float = 7.0,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """Points in a 3-D space, one panel per factor, each point coloured by its value of that factor.

    The paper's Fig. 2 made real (notebook 01): every point is one image, placed at its three bottleneck
    activations. How to read it: in each panel the colours are the values of one factor, named in the
    legend under the panel; where one colour gathers in its own region, the space is organised by that
    factor, where the colours are mixed like confetti, it is not. Pale colours (white, pink, yellow) get a
    dark edge so that they stay visible.

    Args:
        points: ``(N, 3)`` coordinates (e.g. ``space.encode(images)``).
        labels: factor -> ``(N,)`` integer value of each point (an index into ``values[factor]``), one
            panel per factor, in this order.
        values: factor -> names of its values (e.g. :data:`latentkit.world.FACTORS`), for the legend.
        colours: factor -> one matplotlib colour per value (RGB in 0..1 or a name), e.g. the world's
            own object and background colours; other factors get the ``tab10`` colours.
        titles: factor -> panel title; default the factor's name.
        axis_labels: names of the three coordinates.
        per_row: panels per row.
        size: side of each panel, inches.
        marker_size: area of a point, points squared.
        fontsize: at least 8 pt.
        title: printed above the panels.

    Returns:
        The Figure; panel axes have ``gid`` ``"scatter"`` and each has its own legend in ``fig.legends``
        (in panel order).
    """
    from matplotlib.lines import Line2D

    _check_fontsize(fontsize)
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ValueError(f"points must be a finite (N, 3) array, got shape {points.shape}")
    factors = list(labels)
    if not factors:
        raise ValueError("labels is empty: give at least one factor -> (N,) values")
    if len(axis_labels) != 3:
        raise ValueError(f"axis_labels must name the 3 coordinates, got {list(axis_labels)}")
    if isinstance(per_row, bool) or not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"per_row must be a whole number >= 1, got {per_row!r}")
    colours, titles = dict(colours or {}), dict(titles or {})
    if unknown := sorted((set(colours) | set(titles)) - set(factors)):
        raise ValueError(f"colours or titles name factors {unknown} that are not in labels ({factors})")
    panels = []
    for factor in factors:
        if factor not in values:
            raise ValueError(f"values has no names for factor {factor!r}; it has {list(values)}")
        names = [str(v) for v in values[factor]]
        index = np.asarray(labels[factor])
        if index.shape != (len(points),) or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(
                f"labels[{factor!r}] must be {len(points)} integers (one per point), got shape {index.shape} "
                f"of {index.dtype}"
            )
        if len(index) and (index.min() < 0 or index.max() >= len(names)):
            raise ValueError(
                f"labels[{factor!r}] holds {index.min()}..{index.max()}, but {factor} has {len(names)} values"
            )
        if factor in colours:
            given = list(colours[factor])
            if len(given) != len(names):
                raise ValueError(f"colours[{factor!r}]: {len(given)} colours for {len(names)} values")
            bad = [c for c in given if not mpl.colors.is_color_like(c)]
            if bad:
                raise ValueError(
                    f"colours[{factor!r}]: {bad[0]!r} is not a matplotlib colour (RGB in 0..1, or a name)"
                )
            palette = [mpl.colors.to_rgb(c) for c in given]
        else:
            palette = [mpl.colormaps["tab10"](k % 10)[:3] for k in range(len(names))]
        panels.append((factor, names, index, palette))

    # the legend under each panel: as many columns as fit in the panel's width
    legends = []
    for _, names, _, _ in panels:
        entry_w = max(text_size(n, fontsize)[0] for n in names) + 0.4
        ncol = max(1, min(len(names), int(size // entry_w)))
        legends.append((ncol, -(-len(names) // ncol)))
    n_rows = -(-len(panels) // per_row)
    title_h = text_size(title, fontsize + 2)[1] + 0.15 if title else 0.0
    panel_title_h = max(text_size(titles.get(f, f), fontsize + 1)[1] for f in factors) + 0.05
    legend_h = [
        max(r for _, r in legends[k * per_row : (k + 1) * per_row]) * fontsize * 1.7 / 72 + 0.12
        for k in range(n_rows)
    ]
    gap_w = 0.25
    fig_w = min(len(panels), per_row) * (size + gap_w) - gap_w + 0.2
    fig_h = title_h + sum(panel_title_h + size + h for h in legend_h) + 0.1
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 2, gid="title")
    y = title_h + 0.05
    for k, (factor, names, index, palette) in enumerate(panels):
        row, col = divmod(k, per_row)
        if col == 0 and row:
            y += panel_title_h + size + legend_h[row - 1]
        x = 0.1 + col * (size + gap_w)
        rect = [x / fig_w, 1 - (y + panel_title_h + size) / fig_h, size / fig_w, size / fig_h]
        ax = fig.add_axes(rect, projection="3d", gid="scatter")
        ax.set_box_aspect(None, zoom=0.88)  # room for the tick and axis labels inside the panel
        colour = np.array(palette)[index]  # (N, 3)
        pale = np.array([_is_light(c) for c in palette])[index]  # (N,)
        # the pale points last, with a dark rim, so that no other point hides their rim
        for chosen, edge in ((~pale, "none"), (pale, _DARK_EDGE)):
            if chosen.any():
                ax.scatter(
                    *points[chosen].T,
                    c=colour[chosen],
                    s=marker_size,
                    depthshade=False,
                    edgecolors=edge,
                    linewidths=0.4,
                )
        ax.set_title(titles.get(factor, factor), fontsize=fontsize + 1, pad=0)
        for axis, name in zip((ax.xaxis, ax.yaxis, ax.zaxis), axis_labels, strict=True):
            axis.set_label_text(name, fontsize=fontsize)
            axis.labelpad = 0
        ax.tick_params(labelsize=fontsize, pad=0)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # few ticks: 8 pt numbers on a small cube stay apart
            axis.set_major_locator(mpl.ticker.MaxNLocator(4))
        handles = [
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                markersize=6,
                markerfacecolor=c,
                markeredgecolor=_DARK_EDGE if _is_light(c) else c,
                markeredgewidth=0.6,
                label=n,
            )
            for n, c in zip(names, palette, strict=True)
        ]
        ncol, _ = legends[k]
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=((x + size / 2) / fig_w, 1 - (y + panel_title_h + size) / fig_h),
            ncol=ncol,
            fontsize=fontsize,
            frameon=False,
            handletextpad=0.3,
            columnspacing=0.8,
            borderaxespad=0.2,
        )
    return fig


# --------------------------------------------------------------------------------------------------
# Curves: scores along interpolation paths (notebook 02), shares against relative depth (notebook 05)

#: Colours (Okabe-Ito), markers and dashes of successive curves: told apart also in grey or by
#: colour-blind readers.
LINE_STYLES: tuple[dict[str, Any], ...] = (
    {"color": "#0072B2", "marker": "o", "ls": "-"},
    {"color": "#D55E00", "marker": "s", "ls": "--"},
    {"color": "#009E73", "marker": "^", "ls": "-."},
    {"color": "#CC79A7", "marker": "D", "ls": ":"},
    {"color": "#E69F00", "marker": "v", "ls": "-"},
    {"color": "#56B4E9", "marker": "P", "ls": "--"},
    {"color": "#000000", "marker": "X", "ls": "-."},
)


def _legend_below(fig: Figure, x: float, y: float, ncol: int, fontsize: float) -> None:
    """The figure's legend centred at ``(x, y)`` (figure fraction) below the plot, without a frame."""
    fig.legend(
        loc="lower center",
        bbox_to_anchor=(x, y),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
        handlelength=2.6,
    )


def _line_style(k: int) -> dict[str, Any]:
    return LINE_STYLES[k % len(LINE_STYLES)]


def _curve(name: str, array: Any, n: int) -> np.ndarray:
    out = np.asarray(getattr(array, "to_numpy", lambda: array)(), dtype=float)
    if out.shape != (n,):
        raise ValueError(f"{name}: shape {out.shape}, expected ({n},) (one value per point of the x axis)")
    return out


def scores_along_paths(
    t: Any,
    scores: Mapping[str, Any],
    *,
    threshold: float,
    threshold_label: str = "in-distribution threshold",
    xlabel: str = "t: fraction of the way from the first endpoint (0) to the second (1)",
    ylabel: str = "mean in-distribution score",
    ylim: tuple[float, float] = (0.0, 1.0),
    fontsize: float = 9,
    title: str | None = None,
    width: float = 6.0,
    height: float = 3.0,
) -> Figure:
    """A score along interpolation paths, one curve per kind of path, with the threshold it is judged by.

    Notebook 02: the probes' mean in-distribution score of the images at each point of lerp and slerp
    paths in z and w. How to read it: a curve above the dashed threshold line means the images there are,
    on average, valid world images; below it, not. A curve that sags in the middle says the path passes
    through a region where the generator draws badly (the midpoint problem of lerp in a Gaussian space);
    a flat curve says the path's middle is no worse than its ends. The y axis spans ``ylim`` (the whole
    score range by default), widened if needed to hold every value and the threshold.

    Args:
        t: ``(T,)`` increasing positions along the paths (e.g. ``torch.linspace(0, 1, 9)``).
        scores: curve name (e.g. ``"z, slerp"``) -> ``(T,)`` score at each position.
        threshold: the line to draw (e.g. :data:`latentkit.probes.IN_DISTRIBUTION_THRESHOLD`).
        threshold_label: the line's label, written beside it with its value.
        xlabel, ylabel: axis labels.
        ylim: the smallest y range shown.
        fontsize: at least 8 pt.
        title: printed above the axes.
        width, height: of the plotting area, inches.

    Returns:
        The Figure; the axes has ``gid`` ``"curves"``, the threshold line ``"threshold"`` and its label
        ``"threshold-label"``.
    """
    _check_fontsize(fontsize)
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or len(t) < 2 or np.isnan(t).any() or (np.diff(t) <= 0).any():
        raise ValueError(f"t must be at least 2 increasing numbers, got {t.tolist()}")
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty dict {curve name: (T,) scores}")
    curves = {str(name): _curve(f"scores[{name!r}]", s, len(t)) for name, s in scores.items()}
    if any(np.isnan(c).all() for c in curves.values()):
        raise ValueError(
            f"curves {[n for n, c in curves.items() if np.isnan(c).all()]} hold no number at all"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if len(ylim) != 2 or not ylim[0] < ylim[1]:
        raise ValueError(f"ylim must be (low, high) with low < high, got {ylim!r}")

    every = np.concatenate([c[~np.isnan(c)] for c in curves.values()] + [np.array([threshold])])
    low, high = min(ylim[0], float(every.min())), max(ylim[1], float(every.max()))
    pad = 0.03 * (high - low)
    side = _wrap(f"{threshold_label} ({threshold:g})", 1.3, fontsize)
    side_w = text_size(side, fontsize)[0] + 0.15
    ytick_w = max(text_size(f"{v:.1f}", fontsize)[0] for v in (low, high)) + 0.1
    left = ytick_w + fontsize * _LINE / 72 + 0.15
    below_axes = 2 * fontsize * _LINE / 72 + 0.2  # tick labels and the x label
    ncol = max(1, min(len(curves), int(width // (max(text_size(n, fontsize)[0] for n in curves) + 0.8))))
    legend_h = -(-len(curves) // ncol) * fontsize * 1.7 / 72 + 0.1
    title_h = text_size(title, fontsize + 1)[1] + 0.15 if title else 0.1
    fig_w, fig_h = left + width + side_w, title_h + height + below_axes + legend_h
    fig = _new_figure(fig_w, fig_h)
    ax = fig.add_axes(
        [left / fig_w, (below_axes + legend_h) / fig_h, width / fig_w, height / fig_h], gid="curves"
    )
    for k, (name, values) in enumerate(curves.items()):
        ax.plot(t, values, label=name, ms=5, lw=1.5, **_line_style(k))
    ax.axhline(threshold, color="#555555", lw=1.2, ls=(0, (5, 3)), gid="threshold", zorder=1)
    ax.text(
        1.02,
        threshold,
        side,
        transform=ax.get_yaxis_transform(),
        ha="left",
        va="center",
        fontsize=fontsize,
        color="#333333",
        gid="threshold-label",
    )
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(t[0] - 0.03 * (t[-1] - t[0]), t[-1] + 0.03 * (t[-1] - t[0]))
    labels = [f"{v:g}" for v in t]
    spacing = float(np.diff(t).min()) / (t[-1] - t[0]) * width
    if spacing > max(text_size(s, fontsize)[0] for s in labels) + 0.08:  # every position named, if it fits
        ax.set_xticks(t, labels)
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    ax.grid(axis="y", color="#E5E5E5", lw=0.6)
    ax.set_axisbelow(True)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 1, gid="title")
    _legend_below(fig, (left + width / 2) / fig_w, 0.02 / fig_h, ncol, fontsize)
    return fig


def depth_curves(
    values: Mapping[str, Any],
    low: Mapping[str, Any] | None = None,
    high: Mapping[str, Any] | None = None,
    *,
    depths: Mapping[str, Any],
    columns: Sequence[str],
    counts: Mapping[str, Sequence[int]] | None = None,
    counts_label: str = "runs counted",
    ylabel: str = "share of runs in which O_L took E's value",
    xlabel: str = "relative depth (0 = first layer run, 1 = last)",
    fontsize: float = 9,
    title: str | None = None,
    panel_size: tuple[float, float] = (3.4, 2.6),
) -> Figure:
    """Measures against relative depth: one panel per measure, one curve per model, its interval as a band.

    Notebook 05: the share of runs in which injecting a layer moved an aspect from E into O, for the U-Net
    and the transformer on one common depth axis (the numbers of :func:`heatmap`'s side-by-side map, as
    curves). How to read it: a point is one layer, at its place in its model's forward pass (0 = the
    first layer run, 1 = the last); the shaded band is its 95% interval. If two models arranged their work
    alike, their curves would rise and fall at the same depths; a gap in a curve is a layer that was not
    measured.

    Args:
        values: model name -> ``(L_m, A)`` array or DataFrame (rows: layers in forward order, columns:
            ``columns``), e.g. ``table_cells(aspect_table, names, list(ASPECTS))[0]``.
        low, high: the same keys -> ``(L_m, A)`` ends of each interval, or ``None`` for no bands.
        depths: the same keys -> ``(L_m,)`` increasing relative depths in 0..1.
        columns: ``A`` measure names, one panel each.
        counts: the same keys -> ``A`` numbers of runs (or pairs) behind each model's curve, printed in
            the panel titles (e.g. the ``n`` of :func:`latentkit.aspects.aspect_table`).
        counts_label: what the counts count, e.g. ``"pairs counted"``.
        ylabel, xlabel: axis labels (the y label on the first panel only: the panels share the y axis).
        fontsize: at least 8 pt.
        title: printed above the panels.
        panel_size: ``(width, height)`` of each panel, inches.

    Returns:
        The Figure; panel axes have ``gid`` ``"depth-curves"``; the title of a panel where a model has no
        number names it ("not measured: ...").
    """
    _check_fontsize(fontsize)
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("columns is empty: name at least one measure")
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty dict {model name: (L, A) array}")
    if not isinstance(depths, Mapping) or set(depths) != set(values):
        keys = list(depths) if isinstance(depths, Mapping) else type(depths).__name__
        raise ValueError(f"depths must be a dict with the same keys as values ({list(values)}), got {keys}")
    rows = {
        name: [str(i) for i in range(len(np.ravel(np.asarray(d, dtype=float))))] for name, d in depths.items()
    }
    models = _models(values, low, high, rows, None, depths, None, len(columns), ["aspect"] * len(columns))
    if counts is not None:
        if not isinstance(counts, Mapping) or set(counts) != set(values):
            raise ValueError(f"counts must be a dict with the same keys as values ({list(values)})")
        if bad := [name for name, c in counts.items() if len(c) != len(columns)]:
            raise ValueError(
                f"counts of {bad[0]!r}: {len(counts[bad[0]])} numbers for {len(columns)} columns"
            )

    panel_w, panel_h = panel_size
    heads = []
    for j, column in enumerate(columns):
        head = column.replace("_", " ")
        if counts is not None:
            head += f" ({counts_label}: " + ", ".join(f"{m} {int(counts[m][j])}" for m in values) + ")"
        # a model with no number in this panel is named in its title, not drawn over the curves
        if missing := [m.name for m in models if np.isnan(m.values[:, j]).all()]:
            head += "\nnot measured: " + ", ".join(missing)
        heads.append(_wrap(head, panel_w, fontsize))
    head_h = max(text_size(h, fontsize)[1] for h in heads) + 0.1
    ylabel = _wrap(ylabel, panel_h, fontsize)  # written along the y axis: at most the panel's height
    left = text_size("0.0", fontsize)[0] + text_size(ylabel, fontsize)[1] + 0.25
    gap = 0.2
    below = 2 * fontsize * _LINE / 72 + 0.2
    width = len(columns) * panel_w + (len(columns) - 1) * gap
    ncol = max(1, min(len(models), int(width // (max(text_size(m.name, fontsize)[0] for m in models) + 1.0))))
    legend_h = -(-len(models) // ncol) * fontsize * 1.7 / 72 + 0.1
    title_h = text_size(title, fontsize + 1)[1] + 0.15 if title else 0.05
    fig_w, fig_h = left + width + 0.15, title_h + head_h + panel_h + below + legend_h
    fig = _new_figure(fig_w, fig_h)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 1, gid="title")
    for j, head in enumerate(heads):
        x = left + j * (panel_w + gap)
        ax = fig.add_axes(
            [x / fig_w, (below + legend_h) / fig_h, panel_w / fig_w, panel_h / fig_h], gid="depth-curves"
        )
        for k, m in enumerate(models):
            style = _line_style(k)
            ax.plot(m.depths, m.values[:, j], label=m.name if j == 0 else None, ms=4, lw=1.4, **style)
            if m.low is not None:
                ax.fill_between(m.depths, m.low[:, j], m.high[:, j], color=style["color"], alpha=0.18, lw=0)
        ax.set_title(head, fontsize=fontsize, pad=4)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
        ax.tick_params(labelsize=fontsize)
        ax.grid(color="#EBEBEB", lw=0.6)
        ax.set_axisbelow(True)
        if j == 0:
            ax.set_ylabel(ylabel, fontsize=fontsize)
        else:
            ax.tick_params(labelleft=False)
    fig.text(
        (left + width / 2) / fig_w,
        (legend_h + 0.05) / fig_h,
        xlabel,
        ha="center",
        va="bottom",
        fontsize=fontsize,
        gid="xlabel",
    )
    _legend_below(fig, (left + width / 2) / fig_w, 0.02 / fig_h, ncol, fontsize)
    return fig


def quality_by_width(
    table: Any,
    *,
    target: float,
    fontsize: float = 9,
    title: str | None = "How many neurons does this world need?",
    panel_size: tuple[float, float] = (4.2, 3.0),
) -> Figure:
    """The autoencoder widths sweep: held-out quality against the number of bottleneck neurons.

    Left panel: the share of held-out reconstructions that pass the in-distribution test, and the share of
    samples of the fitted Gaussian that do (the space's density), with their 95% intervals; the dashed
    line is the target, the dotted one the codec's own round trip (the ceiling: no width can beat its last
    stage). Right panel: each of the six factors as the probes read it back from the reconstructions.
    How to read it: the curves rise with the width until the bottleneck has room for what the world varies
    in; the first width whose validity interval sits above the target is the "fitted" autoencoder.

    Args:
        table: the recipe's ``data/autoencoder/widths.csv`` (a DataFrame with ``neurons``, ``measure``,
            ``value``, ``ci_low``, ``ci_high``; :func:`latentkit.recipes.autoencoder.measure_width` rows).
        target: the validity target drawn as a dashed line, e.g.
            :data:`latentkit.quality.RECONSTRUCTIONS_VALID`.
        fontsize: at least 8 pt.
        title: printed above the panels (None: none).
        panel_size: ``(width, height)`` of each panel, inches.

    Returns:
        The Figure; the two axes have ``gid`` ``"width-validity"`` and ``"width-factors"``.
    """
    import pandas as pd

    from latentkit.world import FACTORS

    _check_fontsize(fontsize)
    frame = pd.DataFrame(table)
    needed = {"neurons", "measure", "value", "ci_low", "ci_high"}
    if missing := sorted(needed - set(frame.columns)):
        raise ValueError(f"the widths table lacks the columns {missing}; pass data/autoencoder/widths.csv")
    if frame.empty:
        raise ValueError("the widths table is empty: run `python -m latentkit.recipes autoencoder` first")
    if not 0 <= float(target) <= 1:
        raise ValueError(f"target must be a share in [0, 1], got {target!r}")
    widths = sorted(frame["neurons"].unique())

    def series(measure: str):
        rows = frame[frame["measure"] == measure].set_index("neurons").reindex(widths)
        return rows["value"].to_numpy(float), rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)

    fig = _new_figure(2 * panel_size[0] + 0.6, panel_size[1] + 1.3 + (0.4 if title else 0.0))
    left, right = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(widths))
    lines = {
        "held-out reconstructions valid": "reconstructions valid",
        "density: samples of the fitted Gaussian valid": "density: samples of the fitted Gaussian valid",
    }
    for k, (measure, label) in enumerate(lines.items()):
        value, low, high = series(measure)
        style = _line_style(k)
        left.plot(x, value, label=label, color=style["color"], marker=style["marker"], ls=style["ls"])
        left.fill_between(x, low, high, color=style["color"], alpha=0.15, lw=0)
    ceiling = series("ceiling: codec round trip valid")[0]
    if np.isfinite(ceiling).any():
        left.axhline(np.nanmean(ceiling), color="0.4", ls=":", lw=1.2, label="ceiling: codec round trip")
    left.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.2f}")
    left.set_ylabel("share of held-out images", fontsize=fontsize)
    left.set_gid("width-validity")
    for k, factor in enumerate(FACTORS):
        value, low, high = series(f"{factor} read back from reconstructions")
        style = _line_style(k)
        right.plot(x, value, label=factor, color=style["color"], marker=style["marker"], ls=style["ls"])
    right.set_gid("width-factors")
    for ax, name in ((left, "validity and density"), (right, "each factor read back")):
        ax.set_xticks(x, [str(w) for w in widths], fontsize=fontsize)
        ax.set_xlabel("neurons in the bottleneck", fontsize=fontsize)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=fontsize)
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=fontsize + 1)
        ax.legend(
            fontsize=fontsize - 1, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False
        )
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Notebook 00: rows of unequal length, a confusion matrix, distributions of a score


def image_rows(
    rows: Mapping[str, Any],
    *,
    under: Mapping[str, Sequence[str]] | None = None,
    size: float = 0.9,
    fontsize: float = 8,
    title: str | None = None,
) -> Figure:
    """Rows of images that need not be equally long, each named at its left, a label under each image.

    Notebook 00's "one factor at a time": one row per factor, walking through that factor's values
    (six shapes, but two sizes). How to read it: a row changes one thing only, left to right; the name
    at its left says what changes, the label under an image its value. A row shorter than the longest
    simply ends (no empty frames). Equal rows are :func:`image_strip`, which this calls.

    Args:
        rows: row name (e.g. ``"size\\n(structure)"``) -> ``(C_r, H, W, 3)`` images (uint8, or float in
            [0, 1]), every row of the same ``H, W``.
        under: the same keys -> ``C_r`` labels under that row's images (e.g. the factor's values).
        size: side of each image, inches.
        fontsize: at least 8 pt.
        title: printed above the rows.

    Returns:
        The Figure; image axes have ``gid`` ``"image"`` (one per image given), row names ``"row-name"``.
    """
    _check_fontsize(fontsize)
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError("rows must be a non-empty dict {row name: (C, H, W, 3) images}")
    arrays = {str(k): np.asarray(v) for k, v in rows.items()}
    shapes = {a.shape[1:] for a in arrays.values() if a.ndim == 4}
    if bad := [k for k, a in arrays.items() if a.ndim != 4 or len(a) == 0 or a.shape[-1] not in (3, 4)]:
        raise ValueError(f"row {bad[0]!r}: shape {arrays[bad[0]].shape}, expected (C, H, W, 3) with C >= 1")
    if len(shapes) != 1:
        raise ValueError(f"every row's images must have the same (H, W, 3), got {sorted(shapes)}")
    if under is not None:
        if not isinstance(under, Mapping) or {str(k) for k in under} != set(arrays):
            raise ValueError(f"under must be a dict with the same keys as rows ({list(arrays)})")
        under = {str(k): list(v) for k, v in under.items()}
        if bad := [k for k, a in arrays.items() if len(under[k]) != len(a)]:
            raise ValueError(
                f"under[{bad[0]!r}]: {len(under[bad[0]])} labels for {len(arrays[bad[0]])} images"
            )
    n_cols = max(len(a) for a in arrays.values())
    blank = np.zeros_like(next(iter(arrays.values()))[0])
    padded = np.stack(
        [np.concatenate([a, np.repeat(blank[None], n_cols - len(a), 0)]) for a in arrays.values()]
    )
    labels = [
        (under[k] if under is not None else [""] * len(a)) + [""] * (n_cols - len(a))
        for k, a in arrays.items()
    ]
    fig = image_strip(
        padded, under=labels, row_labels=list(arrays), size=size, fontsize=fontsize, title=title
    )
    image_axes = [ax for ax in fig.axes if ax.get_gid() == "image"]  # row by row, as image_strip adds them
    for i, a in enumerate(arrays.values()):
        for ax in image_axes[i * n_cols + len(a) : (i + 1) * n_cols]:
            ax.remove()
    return fig


def confusion_matrix(
    counts: Any,
    labels: Sequence[str],
    *,
    xlabel: str = "read by the probe",
    ylabel: str = "true",
    title: str | None = None,
    fontsize: float = 9,
    cell: float = 0.45,
) -> Figure:
    """Counts of (true value, value read) pairs, each cell coloured by its share of the true value's images.

    Notebook 00: what the probe reads for each true shape under all three degradations. How to read it:
    a row is one true value, a column one value the probe read; the number in a cell counts images, its
    colour is that count as a share of the row (dark: most of the row). A perfect probe fills the
    diagonal; a dark cell off it is a pair of values the probe mixes up.

    Args:
        counts: ``(K, K)`` non-negative whole numbers, ``counts[i, j]`` = images of value ``i`` read as ``j``.
        labels: ``K`` value names, in the order of the rows (and columns).
        xlabel, ylabel: axis labels.
        title: printed above the matrix.
        fontsize: at least 8 pt.
        cell: side of each cell, inches.

    Returns:
        The Figure; the matrix axes has ``gid`` ``"confusion"``, the colour bar ``"colorbar"``; the cell
        numbers are its texts.
    """
    _check_fontsize(fontsize)
    counts = np.asarray(counts)
    labels = [str(x) for x in labels]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"counts must be a square (K, K) array, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("counts must hold non-negative whole numbers (images counted)")
    if len(labels) != len(counts):
        raise ValueError(f"labels: {len(labels)} names for a {len(counts)} x {len(counts)} matrix")
    if not cell > 0:
        raise ValueError(f"cell must be a positive number of inches, got {cell!r}")
    k = len(counts)
    totals = counts.sum(1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    line = fontsize * _LINE / 72
    widest = max(text_size(s, fontsize)[0] for s in labels)
    cell = max(cell, max(text_size(str(int(c)), fontsize)[0] for c in counts.flat) + 0.1)
    side = k * cell
    left = widest + line + 0.25  # tick labels, then the y label
    below = (widest + line) * np.sqrt(0.5) + line + 0.25  # 45-degree tick labels, then the x label
    bar_label = "share of the row's images"
    right = 0.15 + 0.15 + text_size("1.0", fontsize)[0] + line + 0.2
    title_h = text_size(title, fontsize + 1)[1] + 0.15 if title else 0.1
    fig_w, fig_h = left + side + right, title_h + side + below
    fig_w = max(fig_w, text_size(title, fontsize + 1)[0] + 0.2) if title else fig_w
    fig = _new_figure(fig_w, fig_h)
    ax = fig.add_axes([left / fig_w, below / fig_h, side / fig_w, side / fig_h], gid="confusion")
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    cmap = mpl.colormaps["Blues"]
    for i in range(k):
        for j in range(k):
            ink = _ink(cmap(shares[i, j]))
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=fontsize, color=ink)
    ax.set_xticks(range(k), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels)
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    bar = fig.add_axes(
        [(left + side + 0.15) / fig_w, below / fig_h, 0.15 / fig_w, side / fig_h], gid="colorbar"
    )
    fig.colorbar(image, cax=bar)
    bar.tick_params(labelsize=fontsize)
    bar.set_ylabel(_wrap(bar_label, side, fontsize), fontsize=fontsize)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 1, gid="title")
    return fig


def score_distributions(
    scores: Mapping[str, Any],
    *,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    xlabel: str = "score",
    xlim: tuple[float, float] = (0.0, 1.0),
    fontsize: float = 9,
    width: float = 5.0,
    row_height: float = 0.45,
    title: str | None = None,
) -> Figure:
    """One horizontal box plot per kind of image, all on one score axis, with an optional threshold line.

    Notebook 00: the in-distribution score of clean, degraded and broken images. How to read it: a row is
    one kind of image (the first at the top); the box spans the middle half of its scores, the line in it
    is the median, the whiskers reach the farthest score within 1.5 box lengths and the circles are the
    scores beyond. The dashed line is the threshold: a kind whose box lies right of it is counted valid.

    Args:
        scores: kind name -> ``(N_k,)`` scores (any ``N_k`` >= 1, no NaN).
        threshold: where to draw the dashed line (e.g.
            :data:`latentkit.probes.IN_DISTRIBUTION_THRESHOLD`), or ``None`` for none.
        threshold_label: the line's label, written above the axes with its value.
        xlabel: the score axis label.
        xlim: the smallest x range shown (widened to hold every score).
        fontsize: at least 8 pt.
        width: of the plotting area, inches.
        row_height: height of each box's row, inches.
        title: printed above the axes.

    Returns:
        The Figure; the axes has ``gid`` ``"scores"``, the threshold line ``"threshold"`` and its label
        ``"threshold-label"``.
    """
    _check_fontsize(fontsize)
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty dict {kind of image: (N,) scores}")
    data = {str(k): np.ravel(np.asarray(v, dtype=float)) for k, v in scores.items()}
    if bad := [k for k, v in data.items() if len(v) == 0 or not np.isfinite(v).all()]:
        raise ValueError(f"scores[{bad[0]!r}] is empty or holds NaN/inf: every score must be a finite number")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not np.isfinite(threshold)
    ):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    if len(xlim) != 2 or not xlim[0] < xlim[1]:
        raise ValueError(f"xlim must be (low, high) with low < high, got {xlim!r}")
    names = list(data)
    every = np.concatenate(list(data.values()))
    low, high = min(xlim[0], float(every.min())), max(xlim[1], float(every.max()))
    line = fontsize * _LINE / 72
    left = max(text_size(n, fontsize)[0] for n in names) + 0.2
    height = len(names) * row_height
    below = 2 * line + 0.2
    side = f"{threshold_label} ({threshold:g})" if threshold is not None else ""
    above = (line + 0.1 if side else 0.05) + (text_size(title, fontsize + 1)[1] + 0.1 if title else 0.0)
    fig_w, fig_h = left + width + 0.3, above + height + below
    fig = _new_figure(fig_w, fig_h)
    ax = fig.add_axes([left / fig_w, below / fig_h, width / fig_w, height / fig_h], gid="scores")
    ax.boxplot(
        [data[n] for n in names],
        orientation="horizontal",
        tick_labels=names,
        widths=0.6,
        medianprops={"color": _line_style(1)["color"], "lw": 1.5},
        flierprops={"marker": "o", "ms": 3, "mfc": "none", "mec": "#777777", "alpha": 0.6},
    )
    ax.set_ylim(len(names) + 0.5, 0.5)  # the first kind at the top, as listed
    pad = 0.02 * (high - low)
    ax.set_xlim(low - pad, high + pad)
    if threshold is not None:
        ax.axvline(threshold, color="#555555", lw=1.2, ls=(0, (5, 3)), gid="threshold", zorder=0)
        ax.text(
            threshold,
            1.0,
            side,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=fontsize,
            color="#333333",
            gid="threshold-label",
        )
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.grid(axis="x", color="#E5E5E5", lw=0.6)
    ax.set_axisbelow(True)
    if title:
        fig.text(0.5, 1 - 0.05 / fig_h, title, ha="center", va="top", fontsize=fontsize + 1, gid="title")
    return fig


def synthesis_indices(
    results: Mapping[str, Any],
    *,
    strict: float,
    chance: float,
    inputs: Mapping[str, Any] | None = None,
    label: Callable[[str], str] = str,
    fontsize: float = 8,
) -> Figure:
    """The synthesis index of each model: how much of the image one space decides alone (notebook 06).

    One row per model. Grey dots: every space's (layer's) share of the factors it decides alone; the
    large dot with its 95% interval: the model's index (its best space), red when the verdict is
    "strict", blue when "broad", dark grey otherwise, labelled with the value and the deciding space. Open
    squares and diamonds: the shares of the diffusion models' inputs (the noise, the prompt). The dashed
    line is the strict threshold, the dotted one chance (one factor in six). How to read it: a model whose
    large dot sits right of the dashed line, interval included, has one space that decides (almost) the
    whole image: synthesis in the strict sense; a row whose dots all sit to the left spreads the work.

    Args:
        results: model name -> :class:`latentkit.synthesis.SynthesisIndex` (``index``, ``ci``,
            ``verdict``, ``space``, ``shares`` with a ``share`` column), in the order to draw.
        strict: the strict threshold (:data:`latentkit.synthesis.STRICT`).
        chance: the share of a space that decides one factor at random, e.g. ``1 / len(FACTORS)``.
        inputs: model name -> the same model's index with its inputs added as spaces (their shares
            are read from ``shares`` under :data:`latentkit.synthesis.INPUTS`); only for the models given.
        label: turns a space's name into its display name (e.g. :func:`latentkit.layers.layer_label`).
        fontsize: at least 8 pt.

    Returns:
        The Figure; the axes have ``gid`` ``"synthesis-indices"``.
    """
    from latentkit.synthesis import INPUTS

    _check_fontsize(fontsize)
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {model name: SynthesisIndex}")
    if not 0 < strict <= 1 or not 0 < chance < 1:
        raise ValueError(f"strict must be in (0, 1] and chance in (0, 1), got {strict!r} and {chance!r}")
    inputs = dict(inputs or {})
    if unknown := [m for m in inputs if m not in results]:
        raise ValueError(f"inputs names models that are not in results: {unknown}")
    rows = list(results)
    fig = _new_figure(9, 0.75 * len(rows) + 1.2)
    ax = fig.subplots()
    for y, model in enumerate(rows):
        result = results[model]
        shares = result.shares["share"]
        ax.scatter(shares, np.full(len(shares), y), color="0.6", s=14, zorder=2)
        colour = {"strict": "C3", "broad": "C0"}.get(result.verdict, "0.3")
        if np.isfinite(result.index):
            err = [[result.index - result.ci[0]], [result.ci[1] - result.index]]
            ax.errorbar(result.index, y, xerr=err, fmt="o", color=colour, ms=9, capsize=4, zorder=3)
            ax.annotate(
                f"{result.index:.2f} ({label(result.space)})",
                (result.index, y),
                xytext=(0, 9),
                textcoords="offset points",
                ha="center",
                fontsize=fontsize,
            )
        else:
            ax.text(
                0.5,
                y,
                f"{result.verdict}: no valid injected images",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="0.3",
            )
        if model in inputs:
            given = inputs[model].shares["share"]
            for name, marker in zip(INPUTS, ["s", "D"], strict=True):
                ax.scatter(
                    given[name],
                    y,
                    marker=marker,
                    facecolor="none",
                    edgecolor="k",
                    s=50,
                    zorder=4,
                    label=f"input: {name}"
                    if not any(t.get_label() == f"input: {name}" for t in ax.collections)
                    else None,
                )
    ax.axvline(strict, color="k", ls="--", lw=1)
    ax.text(strict, -0.7, f" strict from {strict}", fontsize=fontsize)
    ax.axvline(chance, color="0.5", ls=":", lw=1)
    ax.text(chance, -0.7, f" chance {chance:.2g}", fontsize=fontsize, color="0.4")
    ax.set_yticks(range(len(rows)), rows, fontsize=fontsize + 1)
    ax.set_ylim(len(rows) - 0.4, -0.9)
    ax.set_xlim(-0.02, 1.05)
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel(
        "share of the image's factors one space decides alone (valid injected images only)",
        fontsize=fontsize + 1,
    )
    if inputs:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=fontsize)
    ax.set_gid("synthesis-indices")
    fig.tight_layout()
    return fig
