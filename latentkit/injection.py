"""Layer injection (paper Sec. 3.1, Fig. 5): put image E's activation of one layer into image O's generation.

Two images are generated in parallel: O (original) and E (edit). At one layer L, at every denoising step,
O's activation is overwritten by E's activation of the same step; the result shows what layer L carries
(structure, content, or surface details and colour). This is done for every layer.

The public code of the paper caches every layer of E at every step, then runs one generation of O per
layer. :func:`sweep` does the whole experiment in **one** denoising run instead: the batch holds

    rows  [E, O, O_1, O_2, ..., O_K]     (with classifier-free guidance: [uncond rows..., cond rows...])

where O and every copy O_k start from the same noise and prompt, and a hook on layer L_k overwrites row
O_k with row E *inside the same forward call*, so the activation injected is E's of exactly this step,
with no cache. Layers that are not injected into a row leave it an exact copy of O up to L_k. The cost
is one generation at batch K + 2. :func:`sweep_reference` is the slow, obvious version (cache, then one
run per layer) that the tests hold the sweep against.

Each image's pipeline arguments are given as a dict; ``"seed"`` (or ``"latents"``) fixes its noise::

    result = sweep(
        pipe,
        original={"prompt": "a red star on a plain white background", "seed": 0},
        edit={"prompt": "a blue circle on a dotted black background", "seed": 1},
        num_inference_steps=20,
    )
    result.injected[result.names.index("unet.mid_block.attentions.0")]  # (H, W, 3)

Used by the notebook on layerwise representations.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from latentkit.layers import PatchFn, find_denoiser, layer_names, patched, resolve

#: A layer name, or several names injected together into one copy of O.
LayerSpec = str | Sequence[str]
#: Keys of the per-image dicts that the sweep owns; they may not be passed as shared arguments.
_RESERVED = ("generator", "num_images_per_prompt", "output_type", "return_dict")


@dataclass
class SweepResult:
    """Images of one injection experiment (``output_type="np"``: float32 in [0, 1]).

    Attributes:
        original: O, ``(H, W, 3)``.
        edit: E, ``(H, W, 3)``.
        injected: one image per layer (or combination), ``(K, H, W, 3)``, in the order of ``names``.
        names: layer names; a combination is written ``"a+b"``.
        latents: final latents of the rows ``[E, O, O_1, ..., O_K]`` as the pipeline holds them
            (``(K + 2, C, h, w)``; Flux: packed ``(K + 2, tokens, C * 4)``), when asked for.
    """

    original: np.ndarray
    edit: np.ndarray
    injected: np.ndarray
    names: list[str]
    latents: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------------
# Steps: which denoising step is the denoiser computing?
# --------------------------------------------------------------------------------------------------


class StepTracker:
    """Counts denoising steps from the timesteps the denoiser is called with.

    A step is a run of denoiser calls with the same timestep, so pipelines that call the denoiser twice
    per step (Flux's true CFG) count once. ``index`` is -1 before the first call.
    """

    def __init__(self) -> None:
        self.index = -1
        self._last: float | None = None

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        value = float(t.flatten()[0]) if isinstance(t, torch.Tensor) else float(t)
        if value != self._last:
            self.index += 1
            self._last = value

    @contextmanager
    def attached(self, pipe: Any) -> Iterator[StepTracker]:
        """Track the steps of ``pipe``'s denoiser inside the ``with`` block (hook removed on exit)."""
        _, denoiser = find_denoiser(pipe)
        handle = denoiser.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


def _schedule(pipe: Any) -> list[float]:
    """The scheduler's timesteps, one per denoising step (second-order repeats merged)."""
    ts = [float(t) for t in pipe.scheduler.timesteps]
    return [t for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]


def _window(
    pipe: Any,
    tracker: StepTracker,
    steps: tuple[int, int] | None,
    timesteps: tuple[float, float] | None,
    num_inference_steps: int,
) -> Callable[[], bool]:
    """A function telling whether the current step is inside the injection window.

    Args:
        steps: ``(start, stop)``: inject at step indices ``start <= i < stop`` (0 = the noisiest).
        timesteps: ``(low, high)``: inject where the scheduler's timestep ``t`` has
            ``low <= t <= high`` (scheduler units: 0..1000).

    Raises:
        ValueError: for a window outside the schedule (checked now for ``steps``, at the first
            denoiser call for ``timesteps``, when the schedule is known).
    """
    if steps is not None and timesteps is not None:
        raise ValueError("give a window in steps or in timesteps, not both")
    if steps is not None:
        start, stop = steps
        if not 0 <= start <= stop <= num_inference_steps:
            raise ValueError(
                f"steps={steps} is outside the schedule: need 0 <= start <= stop <= "
                f"num_inference_steps={num_inference_steps}"
            )
        return lambda: start <= tracker.index < stop
    if timesteps is None:
        return lambda: True
    low, high = timesteps
    n_train = pipe.scheduler.config.get("num_train_timesteps", 1000)
    if not 0 <= low <= high <= n_train:
        raise ValueError(f"timesteps={timesteps} must satisfy 0 <= low <= high <= {n_train}")
    checked: list[bool] = []

    def active() -> bool:
        schedule = _schedule(pipe)
        if not checked:
            if not any(low <= t <= high for t in schedule):
                shown = [round(t, 1) for t in schedule]
                raise ValueError(f"timesteps={timesteps} contains no step of the schedule {shown}")
            checked.append(True)
        return low <= schedule[tracker.index] <= high

    return active


# --------------------------------------------------------------------------------------------------
# Batching the per-image arguments
# --------------------------------------------------------------------------------------------------


def _check_pair(original: Mapping[str, Any], edit: Mapping[str, Any]) -> None:
    if set(original) != set(edit):
        raise ValueError(
            f"original and edit must name the same arguments, got {sorted(original)} and {sorted(edit)}"
        )
    if ("seed" in original) == ("latents" in original):
        raise ValueError(
            "give each image exactly one of 'seed' (int) or 'latents' (tensor, batch 1): the copies of "
            "O must start from the same noise"
        )
    for key in original:
        o, e = original[key], edit[key]
        if isinstance(o, torch.Tensor) != isinstance(e, torch.Tensor):
            raise TypeError(f"{key!r}: one image gives a tensor, the other {type(e).__name__}")
        if isinstance(o, torch.Tensor):
            if o.shape[0] != 1 or e.shape[0] != 1:
                raise ValueError(f"{key!r} must have batch size 1, got {tuple(o.shape)}, {tuple(e.shape)}")
            if o.shape != e.shape:
                raise ValueError(
                    f"O and E differ in the shape of {key!r}: {tuple(o.shape)} vs {tuple(e.shape)}; "
                    "the two images must have the same size (and prompt-embedding length)"
                )
        elif key != "seed" and not isinstance(o, str) and o != e:
            raise ValueError(f"{key!r} must be equal for O and E (it is not batched), got {o!r}, {e!r}")


def batch_inputs(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pipeline arguments for a batch whose row ``i`` is the image described by ``rows[i]``.

    Strings become lists, tensors of batch 1 are concatenated along dim 0, ``"seed"`` becomes one
    ``torch.Generator`` per row (diffusers draws row ``i``'s noise from generator ``i``, so equal seeds
    give equal noise), anything else is passed once.
    """
    out: dict[str, Any] = {}
    for key, first in rows[0].items():
        values = [row[key] for row in rows]
        if key == "seed":
            out["generator"] = [torch.Generator().manual_seed(int(s)) for s in values]
        elif isinstance(first, str):
            out[key] = list(values)
        elif isinstance(first, torch.Tensor):
            out[key] = torch.cat(values, dim=0)
        else:
            out[key] = first
    return out


def _latents_callback(pipe: Any, store: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Arguments that make ``pipe`` hand its latents to ``store`` after every step."""
    params = inspect.signature(pipe.__call__).parameters
    if "callback_on_step_end" in params:

        def on_step_end(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            store["latents"] = kwargs["latents"]
            return {}

        return {
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
    if "callback" in params:  # older pipelines (PixArt-alpha)
        return {"callback": lambda i, t, latents: store.update(latents=latents), "callback_steps": 1}
    raise TypeError(f"{type(pipe).__name__} offers no step callback: cannot return the final latents")


def generate(
    pipe: Any,
    rows: Sequence[Mapping[str, Any]],
    fns: Mapping[str, PatchFn] | None = None,
    tracker: StepTracker | None = None,
    return_latents: bool = False,
    **pipe_kwargs: Any,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """One pipeline call for a batch of images, optionally with patched layers.

    Args:
        pipe: a diffusers pipeline.
        rows: one dict of per-image arguments per batch row (see :func:`batch_inputs`).
        fns: patches for :func:`latentkit.layers.patched`.
        tracker: a step tracker to attach for the call (the patches read its ``index``).
        return_latents: also return the final latents.
        **pipe_kwargs: shared pipeline arguments (``num_inference_steps``, ``guidance_scale``, ...).

    Returns:
        Images ``(len(rows), H, W, 3)`` (float32 in [0, 1]) and the final latents or ``None``.
    """
    if reserved := [k for k in pipe_kwargs if k in _RESERVED or k in rows[0]]:
        raise ValueError(
            f"{reserved} cannot be shared arguments here: per-image arguments (prompt, seed, latents, "
            "...) go in the original/edit dicts, and the sweep sets generator/output_type itself"
        )
    store: dict[str, torch.Tensor] = {}
    extra = _latents_callback(pipe, store) if return_latents else {}
    tracker = tracker or StepTracker()
    with torch.no_grad(), tracker.attached(pipe), patched(pipe, fns or {}):
        images = pipe(**batch_inputs(rows), **pipe_kwargs, **extra, output_type="np").images
    return np.asarray(images, dtype=np.float32), store.get("latents")


def _entries(pipe: Any, layers: Sequence[LayerSpec] | None) -> list[tuple[str, ...]]:
    """Layer specs as tuples of names, every name checked (closest names listed if unknown)."""
    if layers is None:
        return [(name,) for name in layer_names(pipe)]
    entries = [(spec,) if isinstance(spec, str) else tuple(spec) for spec in layers]
    for entry in entries:
        if not entry:
            raise ValueError("an empty layer combination injects nothing; remove it")
        for name in entry:
            resolve(pipe, name)
    return entries


def _num_steps(pipe: Any, pipe_kwargs: Mapping[str, Any]) -> int:
    if "num_inference_steps" in pipe_kwargs:
        return int(pipe_kwargs["num_inference_steps"])
    return int(inspect.signature(pipe.__call__).parameters["num_inference_steps"].default)


def _mix(rows: torch.Tensor, source: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) rows + alpha source``, exactly ``source`` at alpha = 1."""
    return source if alpha == 1.0 else (1.0 - alpha) * rows + alpha * source


def sweep(
    pipe: Any,
    original: Mapping[str, Any],
    edit: Mapping[str, Any],
    layers: Sequence[LayerSpec] | None = None,
    *,
    steps: tuple[int, int] | None = None,
    timesteps: tuple[float, float] | None = None,
    alpha: float = 1.0,
    chunk_size: int | None = None,
    return_latents: bool = False,
    **pipe_kwargs: Any,
) -> SweepResult:
    """Inject E into O at every layer (or combination), all in one denoising run per chunk.

    Args:
        pipe: any supported diffusers pipeline (see :mod:`latentkit.layers`).
        original: O's per-image arguments: ``"seed"`` or ``"latents"`` (batch 1) and what the pipeline
            takes per image (``"prompt"``, ``"negative_prompt"``, ``"prompt_embeds"``, Kandinsky's
            ``"image_embeds"`` and ``"negative_image_embeds"`` ...).
        edit: E's, with the same keys.
        layers: layer names, or tuples of names injected together into one copy; default: every
            layer of :func:`latentkit.layers.list_layers`.
        steps: inject only at steps ``start <= i < stop``; ``(k, k)`` injects nothing.
        timesteps: inject only where ``low <= t <= high`` (scheduler units).
        alpha: blend, ``O_L <- (1 - alpha) O_L + alpha E``; 1 replaces, 0 changes nothing.
        chunk_size: copies of O per run (default all): bounds memory at ``chunk_size + 2`` rows,
            each extra run recomputes E and O.
        return_latents: also return the final latents of the rows ``[E, O, O_1, ..., O_K]``.
        **pipe_kwargs: shared arguments (``num_inference_steps``, ``guidance_scale``, ``height`` ...).

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: unknown layer (with the closest names), O and E of different shapes, a window
            outside the schedule, bad ``alpha`` / ``chunk_size``.
        TypeError: a pipeline whose denoiser latentkit does not recognise.
    """
    find_denoiser(pipe)
    _check_pair(original, edit)
    entries = _entries(pipe, layers)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1]")
    chunk_size = max(len(entries), 1) if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be at least 1")
    n_steps = _num_steps(pipe, pipe_kwargs)
    pipe_kwargs.pop("num_inference_steps", None)

    images, latents = [], []  # rows [E, O] from the first chunk, then each chunk's copies
    for start in range(0, max(len(entries), 1), chunk_size):
        chunk = entries[start : start + chunk_size]
        n_rows = len(chunk) + 2  # [E, O, O_1..O_k]
        tracker = StepTracker()
        active = _window(pipe, tracker, steps, timesteps, n_steps)
        targets: dict[str, list[int]] = {}
        for k, entry in enumerate(chunk):
            for name in entry:
                targets.setdefault(name, []).append(2 + k)
        fns = {name: _inject_from_row(0, dst, n_rows, alpha, active) for name, dst in targets.items()}
        out, lat = generate(
            pipe,
            [edit, original] + [original] * len(chunk),
            fns,
            tracker,
            return_latents,
            num_inference_steps=n_steps,
            **pipe_kwargs,
        )
        keep = slice(0 if start == 0 else 2, None)
        images.append(out[keep])
        latents.append(lat[keep] if return_latents else None)
    rows = np.concatenate(images)
    final = torch.cat(latents) if return_latents else None
    return SweepResult(rows[1], rows[0], rows[2:], ["+".join(e) for e in entries], final)


def _inject_from_row(
    src: int, dst: list[int], n_rows: int, alpha: float, active: Callable[[], bool]
) -> PatchFn:
    """A patch that mixes row ``src`` into rows ``dst`` of every ``n_rows`` block of the batch.

    The denoiser's batch is ``[block_0, block_1, ...]`` with one block of ``n_rows`` per CFG half
    (uncond, cond): E's uncond row goes into the copies' uncond rows, E's cond row into their cond rows.
    """

    def fn(act: torch.Tensor, name: str) -> torch.Tensor | None:  # act: (B, ...), B = m * n_rows
        if alpha == 0.0 or not active():
            return None
        if act.shape[0] % n_rows:
            raise RuntimeError(
                f"{name!r}: batch {act.shape[0]} is not a multiple of the {n_rows} sweep rows; "
                "is num_images_per_prompt or a batched argument set elsewhere?"
            )
        halves = range(act.shape[0] // n_rows)
        dst_idx = torch.tensor([h * n_rows + d for h in halves for d in dst], device=act.device)
        src_idx = torch.tensor([h * n_rows + src for h in halves for _ in dst], device=act.device)
        return act.index_copy(0, dst_idx, _mix(act[dst_idx], act[src_idx], alpha))

    return fn


def sweep_reference(
    pipe: Any,
    original: Mapping[str, Any],
    edit: Mapping[str, Any],
    layers: Sequence[LayerSpec] | None = None,
    *,
    steps: tuple[int, int] | None = None,
    timesteps: tuple[float, float] | None = None,
    alpha: float = 1.0,
    return_latents: bool = False,
    **pipe_kwargs: Any,
) -> SweepResult:
    """The slow, obvious injection (as the paper's public code): cache E, then one run per layer.

    E runs alone while every chosen layer's image stream is cached at every step; O runs alone once
    plain and once per entry with the cached activation of the same step mixed in. Same arguments and
    result as :func:`sweep`, used by the tests as its reference (and by the benchmark).
    """
    find_denoiser(pipe)
    _check_pair(original, edit)
    entries = _entries(pipe, layers)
    n_steps = _num_steps(pipe, pipe_kwargs)
    pipe_kwargs = {**pipe_kwargs, "num_inference_steps": n_steps}
    names = sorted({name for entry in entries for name in entry})

    cache: dict[str, dict[int, torch.Tensor]] = {name: {} for name in names}
    tracker = StepTracker()

    def store(act: torch.Tensor, name: str) -> None:  # act: (m, ...), one row per CFG half
        cache[name][tracker.index] = act.clone()

    runs = [generate(pipe, [edit], dict.fromkeys(names, store), tracker, return_latents, **pipe_kwargs)]
    runs.append(generate(pipe, [original], return_latents=return_latents, **pipe_kwargs))
    for entry in entries:
        tracker = StepTracker()
        active = _window(pipe, tracker, steps, timesteps, n_steps)

        def inject(act: torch.Tensor, name: str, tracker=tracker, active=active) -> torch.Tensor | None:
            if alpha == 0.0 or not active():
                return None
            return _mix(act, cache[name][tracker.index], alpha)

        fns = dict.fromkeys(entry, inject)
        runs.append(generate(pipe, [original], fns, tracker, return_latents, **pipe_kwargs))
    images = np.concatenate([image for image, _ in runs])  # rows [E, O, O_1, ..., O_K]
    latents = torch.cat([lat for _, lat in runs]) if return_latents else None
    return SweepResult(images[1], images[0], images[2:], ["+".join(e) for e in entries], latents)
