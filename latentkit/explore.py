"""Widgets to explore results: pure callbacks, ipywidgets around them, a static figure without a frontend.

A slider is only as trustworthy as the function it calls, and CI never moves one. So every explorer is
split in three:

- a **view**, a pure function from the controls' values to what is shown (images and the measured
  numbers as text), tested with known answers: :func:`layer_view` and :func:`window_view` (notebook 04:
  choose a layer, a pair and an injection window; see O, E and the injected image with the layer's
  measured shares), :func:`latent_view` (notebooks 01 and 02: move a point of the VAE's, autoencoder's
  or GAN's latent space along chosen directions; see the decoded image and what the probes read);
- a **figure** of a view (:func:`layer_view_figure`, :func:`latent_view_figure`);
- a **widget** (:func:`layer_widget`, :func:`latent_widget`, both built by :func:`make_widget`) that
  redraws the figure whenever a control moves, in a live JupyterLab or VS Code; anywhere else (papermill,
  nbval, the static book) it returns a **static fallback figure** instead, as notebook 01's sliders do.

A widget needs a kernel to move. A **flipbook** (:func:`flipbook`, its images from
:func:`flipbook_frames`) does not: sliders that flip through images decoded beforehand, embedded in the
output with a small script, so they still move in the static book.

Example (notebook 04)::

    roles = role_table(reading.observations, layers)
    layer_widget(runs, roles, pipe=pipe, settings=settings, interactive=interactive)

Example (notebook 01)::

    latent_widget(space, space.center(), torch.diag(std), names=["neuron 1", "neuron 2", "neuron 3"])
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import html
import io
import itertools
import json
import os
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from latentkit import figures
from latentkit.layers import layer_label
from latentkit.world import ASPECTS

# --------------------------------------------------------------------------------------------------
# The layer explorer (notebook 04)


def _interval(value: tuple[float, float, float] | None) -> str:
    if value is None or np.isnan(value[0]):
        return "n/a"
    mean, low, high = value
    if np.isnan(low) or np.isnan(high):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


@dataclass
class LayerView:
    """What the layer explorer shows for one layer and one O/E pair.

    Attributes:
        layer: the layer's name (module path); ``label`` its short label.
        pair, seed: the O/E pair and O's noise seed of the run shown.
        original, edit, injected: O, E and O with this layer of E injected, ``(H, W, 3)``.
        shares: aspect -> ``(share, low, high)`` from the table (NaN: not measured).
        valid: ``(share, low, high)`` of valid injected images, or ``None`` (no such column).
        role: the layer's role (:func:`latentkit.roles.role_table`), or ``None``.
        window: ``(start, stop)`` when ``injected`` comes from an injection window
            (:func:`window_view`); ``None``: injected at every step, as the shares were measured.
        steps: denoising steps of that run, when known.
        valid_only: the shares count valid injected images only (a role table's do).
    """

    layer: str
    label: str
    pair: int
    seed: int
    original: np.ndarray
    edit: np.ndarray
    injected: np.ndarray
    shares: dict[str, tuple[float, float, float]]
    valid: tuple[float, float, float] | None = None
    role: str | None = None
    window: tuple[int, int] | None = None
    steps: int | None = None
    valid_only: bool = False

    @property
    def text(self) -> str:
        """The measured numbers in words, one line each."""
        lines = [f"{self.label} ({self.layer}), pair {self.pair}, seed {self.seed}"]
        if self.role is not None:
            lines.append(f"role: {self.role}")
        lines += [f"{aspect}: {_interval(v)}" for aspect, v in self.shares.items()]
        if self.valid is not None:
            lines.append(f"valid injected images: {_interval(self.valid)}")
        if self.valid_only:
            lines.append("shares: in the runs whose injected image is valid; 95% intervals over pairs")
        if self.window is not None:
            start, stop = self.window
            of = f" of {self.steps}" if self.steps is not None else ""
            span = f"steps {start} to {stop - 1}{of}" if stop > start else f"no step{of}"
            lines.append(f"image: E injected at {span} (the shares: at every step)")
        return "\n".join(lines)


def _run_of(runs: Sequence[Any], pair: int) -> Any:
    if not len(runs):
        raise ValueError("no runs: make them with latentkit.aspects.run_sweeps(pipe, pairs)")
    for run in runs:
        if run.pair == pair:
            return run
    raise ValueError(f"no run of pair {pair!r}; the runs hold pairs {sorted({r.pair for r in runs})}")


def _layer_name(names: Sequence[str], layer: str) -> str:
    """``layer`` as a name of ``names``: a name, or a short label (``"up1 attn0"``)."""
    if layer in names:
        return layer
    by_label = {layer_label(n): n for n in names}
    if layer in by_label:
        return by_label[layer]
    close = difflib.get_close_matches(str(layer), [*names, *by_label], n=3, cutoff=0.5)
    raise ValueError(f"layer {layer!r} was not injected in these runs; closest: {close or names[:3]}")


def layer_view(runs: Sequence[Any], table: Any, layer: str, pair: int = 0) -> LayerView:
    """O, E and the injected image of one layer for one pair, with the layer's measured shares.

    Args:
        runs: :class:`latentkit.aspects.Run` objects (from ``run_sweeps``); the first run of ``pair``
            is shown.
        table: :func:`latentkit.roles.role_table` (columns ``<aspect>``, ``<aspect>_low``,
            ``<aspect>_high``, ``valid_share``, ``role``) or :func:`latentkit.aspects.aspect_table`; or
            ``None`` for the images alone.
        layer: a layer name of the runs, or its short label (``"up1 attn0"``).
        pair: the O/E pair's index (``Run.pair``).

    Returns:
        A :class:`LayerView`; its ``text`` states the shares.
    """
    run = _run_of(runs, pair)
    result = run.result
    name = _layer_name(result.names, layer)
    shares: dict[str, tuple[float, float, float]] = {}
    valid = role = None
    valid_only = False
    if table is not None and "aspect" not in getattr(table, "columns", []) and name not in table.index:
        role = "not judged (trivial or duplicate)"  # a role table leaves those layers out
        table = None
    if table is not None:
        columns = getattr(table, "columns", [])
        tidy = "aspect" in columns
        present = set(table["aspect"]) if tidy else {c for c in columns if f"{c}_low" in columns}
        aspects = [a for a in ASPECTS if a in present]
        if aspects:
            values, low, high = figures.table_cells(table, [name], aspects)
            shares = {a: (values[0, j], low[0, j], high[0, j]) for j, a in enumerate(aspects)}
        if "valid_share" in columns or (tidy and "in_distribution" in present):
            v, lo, hi = figures.table_cells(table, [name], ["in_distribution"])
            valid = (float(v[0, 0]), float(lo[0, 0]), float(hi[0, 0]))
        if "role" in columns:
            role = str(table.loc[name, "role"])
        valid_only = "valid_share" in columns
    k = result.names.index(name)
    return LayerView(
        name,
        layer_label(name),
        int(run.pair),
        int(run.seed),
        result.original,
        result.edit,
        result.injected[k],
        shares,
        valid,
        role,
        valid_only=valid_only,
    )


@dataclass
class WindowView:
    """One sweep of one layer in an injection window: O, E and O with E injected at those steps only.

    Attributes:
        layer: the layer's name.
        window: ``(start, stop)``: E was injected at steps ``start <= i < stop`` (0 = the noisiest);
            ``None``: at every step.
        steps: denoising steps of the run, when ``num_inference_steps`` was given.
        original, edit, injected: ``(H, W, 3)`` float in [0, 1].
    """

    layer: str
    window: tuple[int, int] | None
    steps: int | None
    original: np.ndarray
    edit: np.ndarray
    injected: np.ndarray

    @property
    def text(self) -> str:
        of = f" of {self.steps}" if self.steps is not None else ""
        if self.window is None:
            return f"{layer_label(self.layer)}: E injected at every step{of}"
        start, stop = self.window
        span = f"steps {start} to {stop - 1}{of}" if stop > start else f"no step{of} (O itself)"
        return f"{layer_label(self.layer)}: E injected at {span}"


def window_view(
    pipe: Any, pair: Any, layer: str, window: tuple[int, int] | None, **settings: Any
) -> WindowView:
    """Inject one layer of E into O only during the steps of ``window``: the explorer's window control.

    Runs :func:`latentkit.injection.sweep` for this one layer (one generation at batch 3).

    Args:
        pipe: the pipeline the runs were made with.
        pair: a :class:`latentkit.aspects.Run` (its ``original`` and ``edit`` arguments are used), or an
            ``(original, edit)`` pair of per-image argument dicts with ``"seed"`` (as ``sweep`` takes).
        layer: the layer's name.
        window: ``(start, stop)`` step indices, ``0 <= start <= stop <= num_inference_steps``; ``None``
            injects at every step.
        **settings: the pipeline arguments of the runs (``num_inference_steps``, ``guidance_scale`` ...).

    Returns:
        A :class:`WindowView`.

    Raises:
        ValueError: a window outside the schedule, an unknown layer (with the closest names).
    """
    from latentkit.injection import sweep

    if hasattr(pair, "original") and hasattr(pair, "edit") and isinstance(pair.original, Mapping):
        original, edit = pair.original, pair.edit
    elif isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(p, Mapping) for p in pair):
        original, edit = pair
    else:
        raise TypeError(
            "pair must be a latentkit.aspects.Run or an (original, edit) pair of argument dicts, "
            f"got {type(pair).__name__}"
        )
    if not isinstance(layer, str):
        raise TypeError(f"layer is one layer's name, e.g. 'unet.mid_block.attentions.0', got {layer!r}")
    window = None if window is None else tuple(window)
    result = sweep(pipe, original, edit, [layer], steps=window, **settings)
    steps = settings.get("num_inference_steps")
    return WindowView(layer, window, steps, result.original, result.edit, result.injected[0])


def layer_view_figure(views: LayerView | Sequence[LayerView], *, size: float = 1.2, fontsize: float = 9):
    """One row per view: O, E, the injected image, and the view's numbers beside them.

    Returns:
        The Figure (image axes ``gid`` ``"image"``, the numbers ``"view-text"``).
    """
    views = [views] if isinstance(views, LayerView) else list(views)
    if not views:
        raise ValueError("no views to draw")
    figures._check_fontsize(fontsize)
    pitch = size + 0.15
    text_w = 4.2
    texts = [figures._wrap(v.text, text_w, fontsize) for v in views]
    title_h = fontsize * figures._LINE / 72 + 0.1
    rows_h = [max(size, figures.text_size(t, fontsize)[1]) + title_h + 0.15 for t in texts]
    fig_w = 0.05 + 3 * pitch + 0.1 + text_w
    fig_h = sum(rows_h) + 0.05
    fig = figures._new_figure(fig_w, fig_h)
    y = 0.05
    for view, text, row_h in zip(views, texts, rows_h, strict=True):
        images = [
            ("O (original)", view.original),
            ("E (edit)", view.edit),
            (f"O_L: {view.label}", view.injected),
        ]
        for j, (title, image) in enumerate(images):
            x = 0.05 + j * pitch
            figures._image_axes(fig, fig_w, fig_h, x, y + title_h, size, image, title, fontsize=fontsize)
        fig.text(
            (0.05 + 3 * pitch + 0.1) / fig_w,
            1 - (y + title_h) / fig_h,
            text,
            ha="left",
            va="top",
            fontsize=fontsize,
            gid="view-text",
        )
        y += row_h
    return fig


def _spread(names: Sequence[str], n: int) -> list[str]:
    """``n`` names spread evenly over ``names`` (first and last included)."""
    if len(names) <= n:
        return list(names)
    return [names[int(round(i))] for i in np.linspace(0, len(names) - 1, n)]


def layer_widget(
    runs: Sequence[Any],
    table: Any,
    *,
    pipe: Any = None,
    settings: Mapping[str, Any] | None = None,
    shown: Sequence[str] | None = None,
    interactive: bool | str = "auto",
):
    """The layer explorer of notebook 04: choose a layer, a pair and (with ``pipe``) an injection window.

    Args:
        runs: the notebook's :class:`latentkit.aspects.Run` objects.
        table: :func:`latentkit.roles.role_table` of their reading (or an aspect table, or ``None``).
        pipe: the pipeline, for the injection-window slider (:func:`window_view`); without it, no window.
        settings: the runs' pipeline arguments, with ``num_inference_steps`` (needed with ``pipe``).
        shown: layers of the static fallback (default four spread over the forward pass).
        interactive: ``"auto"`` (live only in JupyterLab or VS Code), ``True`` or ``False``.

    Returns:
        An ``ipywidgets.VBox`` when live, else the fallback Figure (:func:`layer_view_figure` of the
        first pair at the ``shown`` layers).
    """
    settings = dict(settings or {})
    names = list(_run_of(runs, runs[0].pair if len(runs) else 0).result.names)
    pairs = sorted({r.pair for r in runs})
    steps = settings.get("num_inference_steps")
    if pipe is not None and not isinstance(steps, int):
        raise ValueError("with pipe, settings must give num_inference_steps (the window slider's range)")

    def view(layer: str, pair: int, window: tuple[int, int] | None = None) -> LayerView:
        shown_view = layer_view(runs, table, layer, pair)
        if window is None or tuple(window) == (0, steps):
            return shown_view
        windowed = window_view(pipe, _run_of(runs, pair), shown_view.layer, tuple(window), **settings)
        return replace(shown_view, injected=windowed.injected, window=windowed.window, steps=steps)

    def fallback():
        chosen = list(shown) if shown is not None else _spread(names, 4)
        return layer_view_figure([layer_view(runs, table, n, pairs[0]) for n in chosen])

    if not frontend_present(interactive):
        return _static(fallback())
    import ipywidgets as widgets

    controls = {
        "layer": widgets.Dropdown(
            options=[(layer_label(n), n) for n in names], value=names[0], description="layer"
        ),
        "pair": widgets.Dropdown(options=pairs, value=pairs[0], description="O/E pair"),
    }
    if pipe is not None:
        controls["window"] = widgets.IntRangeSlider(
            value=(0, steps),
            min=0,
            max=steps,
            step=1,
            description="injection window",
            continuous_update=False,
            style={"description_width": "initial"},
        )
    return make_widget(view, controls, layer_view_figure, fallback, interactive=True)


# --------------------------------------------------------------------------------------------------
# The latent-space explorer (notebooks 01 and 02)


def as_space(model: Any):
    """A :class:`latentkit.spaces.Space` for ``model``: a space is returned as is; an
    :class:`~latentkit.models.autoencoder.Autoencoder` gives its bottleneck, a
    :class:`~latentkit.models.vae.VAE` its latent, a :class:`~latentkit.models.gan.Generator` its ``w``
    space (pass ``gan_z_space(gan)`` for ``z``), each on the device the model is on."""
    from latentkit import spaces
    from latentkit.models.autoencoder import Autoencoder
    from latentkit.models.gan import Generator
    from latentkit.models.vae import VAE

    if isinstance(model, spaces.Space):
        return model
    makers = {Autoencoder: spaces.autoencoder_space, VAE: spaces.vae_space, Generator: spaces.gan_w_space}
    for cls, make in makers.items():
        if isinstance(model, cls):
            return make(model, str(next(model.parameters()).device))
    raise TypeError(
        f"latent_view explores a latentkit.spaces.Space, an Autoencoder, a VAE or a GAN Generator, "
        f"got {type(model).__name__}"
    )


@dataclass
class LatentView:
    """A point of a latent space, moved from a base along some directions, and its image.

    Attributes:
        point: ``(D,)`` the moved point.
        values: how far it moved along each direction.
        image: ``(H, W, 3)`` uint8, the decoded point.
        factors: factor -> value the probes read in the image, or ``None`` without probes.
        confidence: factor -> the probes' confidence in that reading, or ``None``.
        in_distribution: the probes' in-distribution score of the image (0..1), or ``None``.
        names: the directions' names.
    """

    point: torch.Tensor
    values: tuple[float, ...]
    image: np.ndarray
    factors: dict[str, str] | None = None
    confidence: dict[str, float] | None = None
    in_distribution: float | None = None
    names: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        names = self.names or tuple(f"direction {k + 1}" for k in range(len(self.values)))
        lines = [", ".join(f"{n} {v:+.2f}" for n, v in zip(names, self.values, strict=True))]
        if self.factors is not None:
            lines.append("probes read: " + ", ".join(f"{f} {v}" for f, v in self.factors.items()))
        if self.in_distribution is not None:
            from latentkit.probes import IN_DISTRIBUTION_THRESHOLD

            verdict = (
                "a valid world image" if self.in_distribution >= IN_DISTRIBUTION_THRESHOLD else "not valid"
            )
            lines.append(f"in-distribution score {self.in_distribution:.2f} ({verdict})")
        return "\n".join(lines)


def _moved_points(base_code: Any, values: Any, directions: Any = None) -> torch.Tensor:
    """``base_code + values @ directions``: points moved from a base, checked, on the CPU.

    Args:
        base_code: ``(D,)`` (or ``(1, D)``) the point to start from.
        values: ``(N, K)`` finite distances, one row per point, in units of the directions.
        directions: ``(K, D)`` (one direction may be ``(D,)``); default the first ``K`` axes.

    Returns:
        ``(N, D)`` float32.

    Raises:
        ValueError: a base that is not one point, directions that do not fit, values that are not finite.
    """
    base = torch.as_tensor(base_code, dtype=torch.float32).detach().cpu()
    if base.ndim == 2 and base.shape[0] == 1:
        base = base[0]
    if base.ndim != 1:
        raise ValueError(f"base_code must be one point (D,), got shape {tuple(base.shape)}")
    values = torch.as_tensor(values, dtype=torch.float32).detach().cpu()
    k = values.shape[1]
    if directions is None:
        if k > len(base):
            raise ValueError(f"{k} values for a space of {len(base)} dimensions")
        directions = torch.eye(len(base))[:k]
    directions = torch.as_tensor(directions, dtype=torch.float32).detach().cpu()
    if directions.ndim == 1:
        directions = directions[None]
    if directions.shape != (k, len(base)):
        raise ValueError(
            f"directions must be (K, D) = ({k}, {len(base)}) for {k} values and a "
            f"{len(base)}-dimensional base, got {tuple(directions.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"direction_values must be finite numbers, got {values.reshape(-1).tolist()}")
    return base + values @ directions


def latent_view(
    model: Any,
    base_code: Any,
    direction_values: Sequence[float],
    directions: Any = None,
    probes: Any = None,
    *,
    names: Sequence[str] | None = None,
) -> LatentView:
    """Decode ``base_code + sum_k direction_values[k] * directions[k]`` and, with probes, read it.

    Args:
        model: a :class:`latentkit.spaces.Space`, or a model :func:`as_space` knows.
        base_code: ``(D,)`` the point to start from (e.g. ``space.center()``, or an encoded image).
        direction_values: ``K`` distances, in units of the directions (scale a direction by a standard
            deviation and its value reads in standard deviations).
        directions: ``(K, D)``; default the first ``K`` axes of the space (one neuron each).
        probes: :class:`latentkit.probes.Probes` to read the factors and the in-distribution score.
        names: ``K`` names of the directions, for the text.

    Returns:
        A :class:`LatentView`.
    """
    space = as_space(model)
    values = torch.as_tensor(np.asarray(direction_values, dtype=np.float32)).reshape(1, -1)
    point = _moved_points(base_code, values, directions)[0]  # (D,)
    if names is not None and len(names) != values.shape[1]:
        raise ValueError(f"{len(names)} names for {values.shape[1]} directions")
    image = space.decode(point[None])[0]
    factors = confidence = score = None
    if probes is not None:
        readout = probes.read(image[None])
        factors = readout.names(0)
        confidence = {f: float(c[0]) for f, c in readout.confidence.items()}
        score = float(probes.in_distribution(image[None], readout)[0])
    return LatentView(
        point,
        tuple(float(v) for v in values[0]),
        image,
        factors,
        confidence,
        score,
        tuple(names) if names is not None else (),
    )


def latent_view_figure(view: LatentView, *, size: float = 2.4, fontsize: float = 9):
    """The decoded image with the view's numbers under it."""
    figures._check_fontsize(fontsize)
    width = max(size, 3.8)
    text = figures._wrap(view.text, width, fontsize)
    text_h = figures.text_size(text, fontsize)[1]
    fig_w, fig_h = width + 0.1, size + text_h + 0.25
    fig = figures._new_figure(fig_w, fig_h)
    figures._image_axes(fig, fig_w, fig_h, (fig_w - size) / 2, 0.05, size, view.image)
    fig.text(
        0.05 / fig_w, 1 - (size + 0.15) / fig_h, text, ha="left", va="top", fontsize=fontsize, gid="view-text"
    )
    return fig


def latent_grid_figure(
    model: Any,
    base_code: Any,
    directions: Any = None,
    *,
    steps: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
    names: Sequence[str] | None = None,
    size: float = 0.9,
):
    """The latent explorer's static fallback: a grid over the first two directions, the others at 0.

    Columns move along direction 1, rows along direction 2 (one row when there is one direction); under
    each image, how far.
    """
    space = as_space(model)
    base = torch.as_tensor(base_code, dtype=torch.float32).detach().cpu().reshape(-1)
    directions = torch.eye(len(base))[:2] if directions is None else torch.as_tensor(directions).float().cpu()
    k = min(2, len(directions))
    names = list(names) if names is not None else [f"direction {i + 1}" for i in range(len(directions))]
    steps = [float(s) for s in steps]
    rows = steps if k == 2 else [0.0]
    values = torch.zeros(len(rows), len(steps), len(directions))
    values[:, :, 0] = torch.tensor(steps)
    if k == 2:
        values[:, :, 1] = torch.tensor(rows)[:, None]
    decoded = space.decode(_moved_points(base, values.reshape(-1, len(directions)), directions))
    images = decoded.reshape(len(rows), len(steps), *decoded.shape[1:])
    under = [f"{names[0]} {a:+.1f}" for a in steps]
    row_labels = [f"{names[1]} {b:+.1f}" for b in rows] if k == 2 else None
    rest = f"; {', '.join(names[2:])} at 0" if len(names) > 2 else ""
    title = f"{names[0]} (left to right)" + (f" x {names[1]} (top to bottom)" if k == 2 else "") + rest
    return figures.image_strip(images, under=under, row_labels=row_labels, size=size, title=title)


def latent_widget(
    model: Any,
    base_code: Any,
    directions: Any = None,
    *,
    names: Sequence[str] | None = None,
    span: float = 3.0,
    probes: Any = None,
    interactive: bool | str = "auto",
    steps: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
):
    """The latent-space explorer of notebooks 01 and 02: one slider per direction.

    Args:
        model: a space, or a model :func:`as_space` knows (autoencoder, VAE, GAN).
        base_code: ``(D,)`` the point the sliders start from.
        directions: ``(K, D)``, e.g. ``torch.diag(std)`` (one neuron each, in standard deviations) or
            GANSpace's ``directions * spread[:, None]``; default the space's axes.
        names: ``K`` slider names.
        span: each slider runs from ``-span`` to ``+span``.
        probes: to print what the probes read in the image.
        interactive: ``"auto"`` (live only in JupyterLab or VS Code), ``True`` or ``False``.
        steps: the values of the static fallback's grid (:func:`latent_grid_figure`).

    Returns:
        An ``ipywidgets.VBox`` when live, else the fallback Figure.
    """
    if directions is None:
        dim = torch.as_tensor(base_code).reshape(-1).shape[0]
        directions = torch.eye(dim)
    directions = torch.as_tensor(directions, dtype=torch.float32)
    names = list(names) if names is not None else [f"direction {k + 1}" for k in range(len(directions))]
    if len(names) != len(directions):
        raise ValueError(f"{len(names)} names for {len(directions)} directions")
    if not span > 0:
        raise ValueError(f"span must be positive, got {span!r}")

    def view(**values: float) -> LatentView:
        ordered = [values[f"d{k}"] for k in range(len(directions))]
        return latent_view(model, base_code, ordered, directions, probes, names=names)

    def fallback():
        return latent_grid_figure(model, base_code, directions, steps=steps, names=names)

    if not frontend_present(interactive):
        return _static(fallback())
    import ipywidgets as widgets

    controls = {
        f"d{k}": widgets.FloatSlider(
            value=0.0, min=-span, max=span, step=span / 30, description=names[k], continuous_update=True
        )
        for k in range(len(directions))
    }
    return make_widget(view, controls, latent_view_figure, fallback, interactive=True)


# --------------------------------------------------------------------------------------------------
# The flipbook: sliders that need no kernel (the book, a notebook run unattended)


def flipbook_frames(space: Any, start: Any, directions: Any, steps: Sequence[float]) -> np.ndarray:
    """The images of a :func:`flipbook`: ``start + step * directions[k]`` decoded for every direction ``k``
    and step, the others at 0, as :func:`latent_view` decodes a point.

    Args:
        space: a :class:`latentkit.spaces.Space`, or a model :func:`as_space` knows.
        start: ``(D,)`` the point every slider starts from (e.g. ``space.center()``).
        directions: ``(S, D)``, one slider each, e.g. ``torch.diag(std)[:3]`` (then a step reads in
            standard deviations).
        steps: ``P`` distances along each direction, e.g. ``np.linspace(-2.5, 2.5, 11)``; a step of 0 gives
            ``start``'s own image.

    Returns:
        ``(S, P, H, W, 3)`` uint8; one decode of ``P`` points per direction.
    """
    space = as_space(space)
    directions = torch.as_tensor(directions, dtype=torch.float32).detach().cpu()
    if directions.ndim == 1:
        directions = directions[None]
    steps = torch.as_tensor(np.asarray(steps, dtype=np.float32)).reshape(-1)
    along = torch.eye(len(directions))  # slider k moves direction k only
    return np.stack([space.decode(_moved_points(start, steps[:, None] * a, directions)) for a in along])


class Flipbook:
    """A :func:`flipbook`'s HTML: Jupyter shows it as HTML (``_repr_html_``); ``str()`` and :attr:`html` give
    the text, to write into a page."""

    def __init__(self, html: str, sliders: int, positions: int):
        self.html = html
        self.sliders, self.positions = sliders, positions

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:  # a notebook stores it as the output's text/plain: short, not the HTML
        return f"<Flipbook: {self.sliders} sliders x {self.positions} positions>"


#: Numbers the flipbooks a kernel makes, so that two of one content on one page still differ in id.
_FLIPBOOK_COUNT = itertools.count(1)

_FLIPBOOK_SCRIPT = string.Template(
    """(function () {
  var root = document.getElementById($id);
  var frames = $frames, labels = $labels, names = $names, captions = $captions;
  root.querySelectorAll("[data-slider]").forEach(function (box) {
    var k = Number(box.dataset.slider), range = box.querySelector("input"), img = box.querySelector("img");
    var label = box.querySelector("output"), caption = box.querySelector(".lk-fb-caption");
    range.disabled = false;
    range.removeAttribute("title");
    range.addEventListener("input", function () {
      var i = Number(range.value);
      img.src = frames[k][i];
      img.alt = names[k] + " at " + labels[i];
      label.textContent = labels[i];
      if (caption) caption.textContent = captions[k][i];
    });
  });
})();"""
)


def _data_uri(image: np.ndarray) -> str:
    """A ``(H, W, 3)`` uint8 image as a PNG ``data:`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")  # (H, W, 3) uint8: RGB
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _script_json(value: Any) -> str:
    """``value`` as JSON that cannot end the ``<script>`` it is written into (no ``<`` left)."""
    return json.dumps(value).replace("<", "\\u003c")


def flipbook(
    images: Any,
    *,
    labels: Sequence[str],
    title: str | None = None,
    names: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    scale: float = 2,
) -> Flipbook:
    """Sliders that flip through images computed beforehand: a latent explorer that needs no kernel.

    Each slider shows one image, moved along its own direction by ``labels[i]``; moving it swaps in the
    next image. All images are in the HTML (PNG ``data:`` URIs, drawn pixelated at ``scale`` times their
    size) with a small inline script and nothing loaded from anywhere, so the sliders move wherever the
    page's scripts run: in the book (``make book`` keeps outputs' scripts), VS Code, and JupyterLab in a
    *trusted* notebook, or when the cell has just run. A notebook opened from a file someone else ran
    (papermill, a clone) is not trusted: JupyterLab runs no script there, and shows the middle image with
    its slider disabled, beside the static figure; "Trust Notebook", or running the cell, brings it alive.

    Args:
        images: ``(S, P, H, W, 3)`` uint8: ``P`` images along each of ``S`` sliders
            (:func:`flipbook_frames`).
        labels: ``P`` names of the positions, e.g. ``"-2.5 sd"`` ... ``"+2.5 sd"``.
        title: a line above the sliders.
        names: ``S`` slider names, e.g. ``"neuron 1"``; default ``"direction 1"`` ...
        captions: ``(S, P)`` a line under each image, e.g. what the probes read in it.
        scale: each image is drawn ``scale`` times its size.

    Returns:
        A :class:`Flipbook`: the cell's output shows it; ``str()`` is its HTML. Its outermost element has
        a unique ``id`` (from the content and a count, so re-running a notebook keeps the ids) and the
        attribute ``data-latentkit-flipbook``.

    Raises:
        ValueError: images not ``(S, P, H, W, 3)`` uint8 with ``P >= 2``, or labels, names or captions
            that do not fit them.

    Example (notebook 01)::

        steps = np.linspace(-2.5, 2.5, 11)
        frames = flipbook_frames(space, space.center(), torch.diag(std), steps)
        flipbook(frames, labels=[f"{s:+.1f} sd" for s in steps], names=["neuron 1", "neuron 2", "neuron 3"])
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be (S, P, H, W, 3): P RGB images along each of S sliders, got {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), as Space.decode gives them, got {images.dtype}")
    sliders, positions, height, width = images.shape[:4]
    if sliders < 1:
        raise ValueError("images hold no slider (S = 0)")
    if positions < 2:
        raise ValueError(f"a slider needs at least 2 positions, got P = {positions}")
    labels = [str(label) for label in labels]
    if len(labels) != positions:
        raise ValueError(f"{len(labels)} labels for the {positions} positions of images {images.shape}")
    names = [str(n) for n in names] if names is not None else [f"direction {k + 1}" for k in range(sliders)]
    if len(names) != sliders:
        raise ValueError(f"{len(names)} names for the {sliders} sliders of images {images.shape}")
    if captions is not None:
        captions = [[row] if isinstance(row, str) else [str(c) for c in row] for row in captions]
        if len(captions) != sliders or any(len(row) != positions for row in captions):
            raise ValueError(
                f"captions must be (S, P) = ({sliders}, {positions}), one per image, got {len(captions)} "
                f"rows of {sorted({len(row) for row in captions})}"
            )
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")

    frames = [[_data_uri(image) for image in row] for row in images]
    content = json.dumps([frames, labels, names, captions, title, scale]).encode()
    uid = f"lk-flipbook-{hashlib.sha1(content).hexdigest()[:10]}-{next(_FLIPBOOK_COUNT)}"
    at = positions // 2  # shown first, and alone without scripts
    e = html.escape
    size = f'width="{round(width * scale)}" height="{round(height * scale)}"'
    boxes = []
    for k, name in enumerate(names):
        caption = f'<div class="lk-fb-caption">{e(captions[k][at])}</div>' if captions else ""
        boxes.append(
            f'<div class="lk-fb-slider" data-slider="{k}" style="display:flex;flex-direction:column;gap:3px">'
            f'<img src="{frames[k][at]}" alt="{e(name)} at {e(labels[at])}" {size} '
            'style="image-rendering:pixelated">'
            f'<div><label>{e(name)} <input type="range" min="0" max="{positions - 1}" step="1" '
            f'value="{at}" disabled title="moves where the page runs scripts"></label> '
            f"<output>{e(labels[at])}</output></div>{caption}</div>"
        )
    script = _FLIPBOOK_SCRIPT.substitute(
        id=_script_json(uid),
        frames=_script_json(frames),
        labels=_script_json(labels),
        names=_script_json(names),
        captions=_script_json(captions),
    )
    heading = f'<div class="lk-fb-title" style="font-weight:600">{e(title)}</div>' if title else ""
    page = (
        f'<div class="lk-flipbook" id="{uid}" data-latentkit-flipbook '
        'style="display:flex;flex-direction:column;gap:6px;font-size:13px">'
        f'{heading}<div style="display:flex;flex-wrap:wrap;gap:12px">{"".join(boxes)}</div>'
        f"<script>{script}</script></div>"
    )
    return Flipbook(page, sliders, positions)


# --------------------------------------------------------------------------------------------------
# Widgets around pure views


def frontend_present(interactive: bool | str = "auto") -> bool:
    """Whether a widget frontend will draw sliders: ``interactive`` itself when a bool, else (``"auto"``)
    whether this kernel runs in JupyterLab or VS Code, as notebook 01 tells (papermill and nbval set
    neither variable, so CI and the book get the static figure)."""
    if isinstance(interactive, bool):
        return interactive
    if interactive != "auto":
        raise ValueError(f"interactive must be True, False or 'auto', got {interactive!r}")
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


def _static(fig):
    """A fallback figure to return as a cell's value: taken off pyplot's list, so that a notebook's inline
    backend shows it once (as the value), not a second time when the cell ends."""
    if figures._pyplot_managed() and hasattr(fig, "canvas"):
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig


def _png(fig) -> bytes:
    """The figure as PNG bytes; it is closed, so a notebook's inline backend does not show it again."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    if figures._pyplot_managed():
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


def make_widget(
    view: Callable[..., Any],
    controls: Mapping[str, Any],
    draw: Callable[[Any], Any],
    fallback: Callable[[], Any],
    *,
    interactive: bool | str = "auto",
):
    """Controls that redraw ``draw(view(**values))`` whenever one moves, or ``fallback()`` without a frontend.

    The view gets the controls' values by their keys; its result's ``text`` is printed under the figure.
    A view that raises ``ValueError`` (e.g. a window outside the schedule) shows the message instead.

    Args:
        view: the pure callback, ``view(**{name: control.value})``.
        controls: name -> ipywidgets control (anything with ``value`` and ``observe``).
        draw: view result -> matplotlib Figure.
        fallback: () -> the static Figure, called only when no frontend is present.
        interactive: see :func:`frontend_present`.

    Returns:
        ``ipywidgets.VBox([*controls, image, text])`` when live, else ``fallback()``.
    """
    if not frontend_present(interactive):
        return _static(fallback())
    import ipywidgets as widgets

    image = widgets.Image(format="png")
    text = widgets.HTML()

    def update(change: Any = None) -> None:
        values = {name: control.value for name, control in controls.items()}
        try:
            shown = view(**values)
        except ValueError as error:
            text.value = f"<pre>{html.escape(str(error))}</pre>"
            return
        image.value = _png(draw(shown))
        text.value = f"<pre>{html.escape(shown.text)}</pre>"

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return widgets.VBox([*controls.values(), image, text])


__all__ = [
    "Flipbook",
    "LatentView",
    "LayerView",
    "WindowView",
    "as_space",
    "flipbook",
    "flipbook_frames",
    "frontend_present",
    "latent_grid_figure",
    "latent_view",
    "latent_view_figure",
    "latent_widget",
    "layer_view",
    "layer_view_figure",
    "layer_widget",
    "make_widget",
    "window_view",
]
