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
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentkit.layers import LayerSpec, PatchFn, combination_name, find_denoiser, layer_names, resolve
from latentkit.run import StepTracker, generate, record_calls


@dataclass
class SweepResult:
    """Images of one injection experiment (``output_type="np"``: float32 in [0, 1]).

    Attributes:
        original: O, ``(H, W, 3)``.
        edit: E, ``(H, W, 3)``.
        injected: one image per layer (or combination), ``(K, H, W, 3)``, in the order of ``names``.
        names: display names, one per image: a layer's name, or a combination's names joined by ``+``
            (:func:`latentkit.layers.combination_name`); tables are keyed by them.
        latents: final latents of the rows ``[E, O, O_1, ..., O_K]`` as the pipeline holds them
            (``(K + 2, C, h, w)``; Flux: packed ``(K + 2, tokens, C * 4)``), when asked for.
        entries: what was injected into each image, as tuples of layer names (one name for a single
            layer); default one 1-tuple per name (for rows that are not combinations).
    """

    original: np.ndarray
    edit: np.ndarray
    injected: np.ndarray
    names: list[str]
    latents: torch.Tensor | None = None
    entries: list[tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if self.entries is None:
            self.entries = [(name,) for name in self.names]
        if len(self.entries) != len(self.names):
            raise ValueError(f"{len(self.entries)} entries for {len(self.names)} names")


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


def _entries(pipe: Any, layers: Sequence[LayerSpec] | None) -> list[tuple[str, ...]]:
    """Layer specs as tuples of names, every name checked (closest names listed if unknown)."""
    if layers is None:
        return [(name,) for name in layer_names(pipe)]
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of names, got the string {layers!r}; write [{layers!r}]")
    entries = [(spec,) if isinstance(spec, str) else tuple(spec) for spec in layers]
    for entry in entries:
        if not entry:
            raise ValueError("an empty layer combination injects nothing; remove it")
        for name in entry:
            resolve(pipe, name)
    return entries


def _check_options(steps: Any, timesteps: Any, alpha: Any) -> None:
    """The sweep's own options: windows are pairs of numbers, ``alpha`` a number in [0, 1]."""
    for label, window in (("steps", steps), ("timesteps", timesteps)):
        if window is None:
            continue
        pair = isinstance(window, tuple | list) and len(window) == 2
        if not pair or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in window):
            raise ValueError(f"{label} must be a (start, stop) pair of numbers, got {window!r}")
    if steps is not None and not all(isinstance(v, numbers.Integral) for v in steps):
        raise ValueError(f"steps must be a pair of step indices (integers), got {steps!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")


#: Allowance for what a denoiser call holds beyond the layer outputs themselves (attention scores,
#: convolution intermediates, the hooks' index copies): a safety factor, not a measurement; with half the
#: free memory as the budget it errs towards smaller chunks.
_ACTIVATION_OVERHEAD = 4.0


def free_memory(device: Any) -> int:
    """Free bytes on ``device``: CUDA's free memory there, else the machine's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def auto_chunk_size(pipe: Any, entries: Sequence[tuple[str, ...]], **pipe_kwargs: Any) -> int:
    """Copies of O per run that fit in half the free memory of the pipeline's device.

    One row of the sweep's batch holds, per denoiser call, every layer's activation once (the layers run
    one after the other, but U-Net skip connections keep the down path alive until the up path reads
    it); with classifier-free guidance each image is two rows. So a row costs about
    ``sum(layer sizes) x bytes per element x`` :data:`_ACTIVATION_OVERHEAD`, at the call's latent size
    (from one dry pass of batch 1: :func:`latentkit.layers.list_layers`).

    Returns:
        An integer in ``[1, len(entries)]``.
    """
    from latentkit.layers import list_layers

    _, denoiser = find_denoiser(pipe)
    factor = getattr(pipe, "vae_scale_factor", 8)
    height = pipe_kwargs.get("height")
    side = int(height) // factor if height else None
    shapes = [layer.shape for layer in list_layers(pipe, sample_size=side) if layer.shape]
    element = torch.finfo(denoiser.dtype).bits // 8
    halves = 2 if float(pipe_kwargs.get("guidance_scale", 1.0)) > 1.0 else 1
    per_row = halves * element * _ACTIVATION_OVERHEAD * sum(math.prod(shape) for shape in shapes)
    fit = int(0.5 * free_memory(denoiser.device) // max(per_row, 1.0)) - 2  # E and O ride along
    return max(1, min(len(entries), fit))


def _num_steps(pipe: Any, pipe_kwargs: Mapping[str, Any]) -> int:
    if "num_inference_steps" in pipe_kwargs:
        steps = pipe_kwargs["num_inference_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
        return int(steps)
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
    chunk_size: int | str | None = None,
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
            each extra run recomputes E and O; ``"auto"``: as many as fit in half the free memory of
            the device (:func:`auto_chunk_size`).
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
    _check_options(steps, timesteps, alpha)
    if chunk_size == "auto":
        chunk_size = auto_chunk_size(pipe, entries, **pipe_kwargs)
    elif chunk_size is None:
        chunk_size = max(len(entries), 1)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, 'auto' or None, got {chunk_size!r}")
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
    return SweepResult(rows[1], rows[0], rows[2:], [combination_name(e) for e in entries], final, entries)


@dataclass
class Equivalences:
    """Which injections are not findings about a layer, measured on the denoiser's own computation.

    Attributes:
        trivial: layers whose injection makes O's denoiser output equal E's at once: everything after
            them depends on nothing but their output (and the shared timestep), so under shared noise
            the injected image *is* E, by construction.
        groups: sets of two or more layers whose injections give the same denoiser output: one
            injection under several names (e.g. a layer and the next one when nothing else flows into
            the next), in depth order.
    """

    trivial: list[str]
    groups: list[tuple[str, ...]]

    def representative(self, name: str) -> str:
        """The first (shallowest) layer of ``name``'s group, or ``name`` itself."""
        return next((g[0] for g in self.groups if name in g), name)


def equivalences(pipe: Any, layers: Sequence[str] | None = None, atol: float = 1e-5) -> Equivalences:
    """Find trivial and equivalent injections from the graph, by one dry denoiser call per layer.

    The denoiser runs on a batch of two random inputs (rows E and O: different latents, different text
    states, the same timestep); layer L of row O is overwritten with row E's. If O's output then equals
    E's, L is trivial; layers whose injected outputs are equal (to ``atol`` relative to the output's
    scale) form a group. Nothing is read from the layer names, so it holds for any architecture.

    Returns:
        An :class:`Equivalences`.
    """
    from latentkit.layers import dry_inputs
    from latentkit.run import forward

    _, denoiser = find_denoiser(pipe)
    names = list(layers) if layers is not None else layer_names(pipe)
    one, two = dry_inputs(denoiser, None, seed=0), dry_inputs(denoiser, None, seed=1)
    inputs = _stack_rows(two, one)  # row 0: E, row 1: O
    outputs = {}

    def take_e(act: torch.Tensor, _name: str) -> torch.Tensor:
        return act.index_copy(0, torch.tensor([1], device=act.device), act[:1])

    def call():
        return denoiser(**inputs, return_dict=False)[0].float()

    plain = forward(denoiser, call)
    for name in names:
        outputs[name] = forward(denoiser, call, {name: take_e})[1]
    scale = float(plain.abs().max()) or 1.0
    trivial = [n for n in names if float((outputs[n] - plain[0]).abs().max()) <= atol * scale]
    groups: list[list[str]] = []
    for name in names:
        for group in groups:
            if float((outputs[name] - outputs[group[0]]).abs().max()) <= atol * scale:
                group.append(name)
                break
        else:
            groups.append([name])
    return Equivalences(trivial, [tuple(g) for g in groups if len(g) > 1])


def combinations(
    names: Sequence[str], sizes: Sequence[int] = (2, 3), n: int = 50, seed: int = 0
) -> list[tuple[str, ...]]:
    """``n`` random combinations of distinct layers per size, as the paper's public code draws them.

    The public code (``ludovicaschaerf/feature-inject``) injects random sets of 2 and 3 layers together,
    50 per pair, to see what layers do jointly. Each combination is a tuple in depth order (the order of
    ``names``); repeats are drawn again, and a size with fewer possible sets than ``n`` gives them all.

    Returns:
        Tuples of layer names, to pass to :func:`sweep` as ``layers``.
    """
    import itertools

    rng = np.random.default_rng(seed)
    order = {name: i for i, name in enumerate(names)}
    out: list[tuple[str, ...]] = []
    for size in sizes:
        if not 1 <= size <= len(names):
            raise ValueError(f"combination size {size} must be in 1..{len(names)} (the number of layers)")
        total = math.comb(len(names), size)
        if total <= n:
            out += [tuple(c) for c in itertools.combinations(names, size)]
            continue
        seen: set[tuple[str, ...]] = set()
        while len(seen) < n:
            picked = rng.choice(len(names), size, replace=False)
            seen.add(tuple(sorted((names[i] for i in picked), key=order.__getitem__)))
        out += sorted(seen, key=lambda c: [order[x] for x in c])
    return out


def _stack_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two batch-1 input dicts as one batch of 2 (timesteps and id tensors shared, not stacked)."""
    out: dict[str, Any] = {}
    for key, value in a.items():
        if isinstance(value, Mapping):
            out[key] = _stack_rows(value, b[key])
        elif isinstance(value, torch.Tensor) and key not in ("timestep", "img_ids", "txt_ids", "guidance"):
            out[key] = torch.cat([value, b[key]]) if value.dim() > 1 else torch.stack([value, b[key]])
        else:
            out[key] = value
    return out


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

    E runs alone while every chosen layer's image stream is cached at every denoiser call; O runs alone
    once plain and once per entry with the cached activation of the same call mixed in. Same arguments and
    result as :func:`sweep`, used by the tests as its reference (and by the benchmark).
    """
    find_denoiser(pipe)
    _check_pair(original, edit)
    entries = _entries(pipe, layers)
    n_steps = _num_steps(pipe, pipe_kwargs)
    pipe_kwargs = {**pipe_kwargs, "num_inference_steps": n_steps}
    names = sorted({name for entry in entries for name in entry})

    # E alone, every chosen layer cached call by call: a run of O with the same arguments makes the same
    # denoiser calls in the same order (also when a step calls it twice: Flux's true CFG, SD3's
    # skip-layer guidance), so call i of O receives call i of E.
    cache, edit_run = record_calls(pipe, [edit], names, return_latents=return_latents, **pipe_kwargs)
    runs = [edit_run, generate(pipe, [original], return_latents=return_latents, **pipe_kwargs)]
    for entry in entries:
        tracker = StepTracker()
        active = _window(pipe, tracker, steps, timesteps, n_steps)

        def inject(act: torch.Tensor, name: str, tracker=tracker, active=active) -> torch.Tensor | None:
            if alpha == 0.0 or not active():
                return None
            return _mix(act, cache[name][tracker.call], alpha)

        fns = dict.fromkeys(entry, inject)
        runs.append(generate(pipe, [original], fns, tracker, return_latents, **pipe_kwargs))
    images = np.concatenate([image for image, _ in runs])  # rows [E, O, O_1, ..., O_K]
    latents = torch.cat([lat for _, lat in runs]) if return_latents else None
    return SweepResult(
        images[1], images[0], images[2:], [combination_name(e) for e in entries], latents, entries
    )
