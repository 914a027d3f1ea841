"""Run a pipeline with hooks: the one way every experiment calls a diffusion model.

Every measurement of latentkit is a generation with something attached to the denoiser's layers: the
injection of Sec. 3.1 (:mod:`latentkit.injection`) overwrites a layer's output, the Fig. 4 candidates
(:mod:`latentkit.candidates`) read or replace one, the alignment of Sec. 3.1's last paragraph
(:mod:`latentkit.alignment`) reads many. They all go through this module, which has three entry points,
as TransformerLens has ``run_with_hooks`` and ``run_with_cache``:

- :func:`generate`: one pipeline call for a batch of images, with patches (``{layer: fn}``) attached for
  the call only, and a :class:`StepTracker` that tells the patches which denoising step is running;
- :func:`record`: the same call, returning chosen layers' activations at chosen steps (the cache);
- :func:`record_calls`: every denoiser call's activations in call order (for pipelines that call the
  denoiser more than once per step: Flux's true CFG, SD3's skip-layer guidance).

Hooks are registered only by :mod:`latentkit.layers` (tagged, and removed in ``finally``); a batch row is
described by a dict of per-image arguments (:func:`batch_inputs`)::

    rows = [{"prompt": "a red star on a plain white background", "seed": 0}]
    acts = record(pipe, rows, {"unet.mid_block": [0, 5]}, num_inference_steps=10)
    acts["unet.mid_block"].shape  # (1, 2, halves, C, H, W): rows, steps, CFG halves, ...
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from latentkit.layers import PatchFn, patched, step_hook

#: Keys that :func:`generate` sets itself; they may not be passed as shared arguments.
RESERVED = ("generator", "num_images_per_prompt", "output_type", "return_dict")


class StepTracker:
    """Counts denoising steps (and denoiser calls) from the timesteps the denoiser is called with.

    A step is a run of denoiser calls with the same timestep, so pipelines that call the denoiser twice
    per step (Flux's true CFG) count once. ``index`` is -1 before the first call; ``call`` counts every
    denoiser call (0 = the first).
    """

    def __init__(self) -> None:
        self.index = -1
        self.call = -1
        self._last: float | None = None

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        value = float(t.flatten()[0]) if isinstance(t, torch.Tensor) else float(t)
        self.call += 1
        if value != self._last:
            self.index += 1
            self._last = value

    @contextmanager
    def attached(self, pipe: Any) -> Iterator[StepTracker]:
        """Track the steps of ``pipe``'s denoiser inside the ``with`` block (hook removed on exit)."""
        with step_hook(pipe, self._pre_hook):
            yield self


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


#: Keywords diffusers pipelines still read from ``**kwargs`` (deprecated step callbacks).
_LEGACY_KEYWORDS = ("callback", "callback_steps")


class NonFiniteError(ValueError):
    """A generation produced NaN or infinite values (its images would be saved as black squares)."""


def check_call(pipe: Any, rows: Sequence[Mapping[str, Any]], pipe_kwargs: Mapping[str, Any]) -> None:
    """Validate a pipeline call before it runs (diffusers' ``check_inputs``, for what diffusers lets by).

    Raises:
        ValueError / TypeError: a keyword the pipeline does not take (with the closest names: a typo such
            as ``num_inference_step`` would otherwise be ignored and diffusers' default used), a number
            of steps that is not a positive integer, a guidance scale that is not a finite number, a
            prompt none of whose words the model's word-level tokenizer knows.

    Warns:
        UserWarning: a prompt some of whose words the tokenizer does not know (they become ``<unk>``).
    """
    if not len(rows):
        raise ValueError("no images to generate: rows is empty")
    # Pipelines take **kwargs only for deprecated callbacks; anything else there is silently ignored.
    params = [
        n for n, p in inspect.signature(pipe.__call__).parameters.items() if p.kind is not p.VAR_KEYWORD
    ]
    for key in [*pipe_kwargs, *rows[0]]:
        if key not in params and key not in ("seed", *_LEGACY_KEYWORDS):
            close = difflib.get_close_matches(key, params, n=3, cutoff=0.6)
            hint = f"did you mean {close}?" if close else f"it takes {sorted(params)}"
            raise TypeError(f"{type(pipe).__name__} takes no argument {key!r}; {hint}")
    if "num_inference_steps" in pipe_kwargs:
        steps = pipe_kwargs["num_inference_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
    for key in ("guidance_scale", "true_cfg_scale"):
        if key in pipe_kwargs:
            value = pipe_kwargs[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
            if abs(value) > 1e4:
                raise ValueError(f"{key}={value!r} is far outside any useful range (typically 0 to 20)")
    _check_words(pipe, rows)


def _check_words(pipe: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Prompts against a word-level tokenizer (the organisms'): no known word is an error, some a warning."""
    from latentkit.tokenizer import unknown_words

    tokenizer = getattr(pipe, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordLevel":
        return  # real models' BPE tokenizers read any text
    for row in rows:
        for key in ("prompt", "negative_prompt"):
            text = row.get(key)
            if not isinstance(text, str) or not text.strip():
                continue
            unknown = unknown_words(tokenizer, text)
            if not unknown:
                continue
            if len(unknown) == len(_words(text)):
                raise ValueError(
                    f"{key} {text!r}: the model knows none of its words {unknown}; it would draw the image "
                    "of an empty caption. The organisms read the shapes world's captions, e.g. "
                    "'a small red star at the center on a plain white background'"
                )
            warnings.warn(
                f"{key} {text!r}: the words {unknown} are unknown to the model's tokenizer and read as <unk>",
                stacklevel=3,
            )


def _words(text: str) -> list[str]:
    from latentkit.tokenizer import words_of

    return words_of(text)


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
        fns: patches for :func:`latentkit.layers.patched` (they exist only during the call).
        tracker: a step tracker to attach for the call (the patches read its ``index``).
        return_latents: also return the final latents.
        **pipe_kwargs: shared pipeline arguments (``num_inference_steps``, ``guidance_scale``, ...).

    Returns:
        Images ``(len(rows), H, W, 3)`` (float32 in [0, 1]) and the final latents or ``None``.
    """
    if reserved := [k for k in pipe_kwargs if k in RESERVED or k in rows[0]]:
        raise ValueError(
            f"{reserved} cannot be shared arguments here: per-image arguments (prompt, seed, latents, "
            "...) go in the rows, and latentkit sets generator/output_type itself"
        )
    check_call(pipe, rows, pipe_kwargs)
    store: dict[str, torch.Tensor] = {}
    extra = _latents_callback(pipe, store) if return_latents else {}
    tracker = tracker or StepTracker()
    with torch.no_grad(), tracker.attached(pipe), patched(pipe, fns or {}):
        images = pipe(**batch_inputs(rows), **pipe_kwargs, **extra, output_type="np").images
    images = np.asarray(images, dtype=np.float32)
    if tracker.call < 0:
        raise RuntimeError(f"{type(pipe).__name__} never called its denoiser: check num_inference_steps")
    if not np.isfinite(images).all():
        raise NonFiniteError(
            f"the generation produced NaN or infinite values ({pipe_kwargs}); with a normal guidance scale "
            f"that means damaged weights in {_source(pipe)}: restore shipped ones with `git checkout data/` "
            "or retrain them with `make weights`"
        )
    return images, store.get("latents")


def _source(pipe: Any) -> str:
    """Where ``pipe`` was loaded from (its folder or hub id), for error messages."""
    return str(getattr(getattr(pipe, "config", None), "_name_or_path", None) or type(pipe).__name__)


def forward(module: nn.Module, call: Any, fns: Mapping[str, PatchFn] | None = None) -> Any:
    """One call of a model without a pipeline (a denoiser alone, a strict-sense decoder), patched.

    Args:
        module: a denoiser or a strict-sense model whose layers :func:`latentkit.layers.resolve` names.
        call: a function of no arguments that runs it, e.g. ``lambda: decoder(codes)``.
        fns: patches, ``{layer name: fn}``, attached for the call only.

    Returns:
        What ``call`` returns (computed without gradients).
    """
    with torch.no_grad(), patched(module, fns or {}):
        return call()


class _Recorded(Exception):
    """Raised from :func:`record`'s hook once every asked-for activation is kept: it ends the call there."""


def record(
    pipe: Any,
    rows: Sequence[Mapping[str, Any]],
    layers: Mapping[str, Sequence[int]],
    **pipe_kwargs: Any,
) -> dict[str, torch.Tensor]:
    """Run ``rows`` once; each layer's image-stream activation at its steps (the activation cache).

    The call stops as soon as the last activation asked for is recorded: steps after the latest one asked
    for (and the VAE decode) are not run, since nothing they compute can change what came before.

    The first denoiser call of a step is kept (in pipelines that call the denoiser again within a step,
    Flux's true CFG or SD3's skip-layer guidance, that is the main, guided pass).

    Args:
        pipe: a diffusers pipeline.
        rows: one dict of per-image arguments per input (:func:`batch_inputs`).
        layers: ``{layer name: step indices}`` (0 = the noisiest step), each list in the order wanted.
        **pipe_kwargs: shared pipeline arguments.

    Returns:
        ``{layer: (N, S, halves, ...)}`` float32 on the CPU: ``N = len(rows)``, ``S`` steps in the order
        given, ``halves`` the classifier-free guidance copies in the batch (``[uncond, cond]``; 1 without
        guidance), then the layer's shape (``(C, H, W)`` for U-Net layers, ``(tokens, D)`` for blocks).

    Raises:
        ValueError: no rows, repeated or negative steps, or steps the schedule does not have.
    """
    if not len(rows):
        raise ValueError("no inputs: pass rows=[{'prompt': ..., 'seed': ...}, ...]")
    wanted = {name: [int(s) for s in steps] for name, steps in layers.items()}
    for name, steps in wanted.items():
        if not steps or len(set(steps)) != len(steps) or min(steps) < 0:
            raise ValueError(f"{name!r}: steps must be distinct step indices >= 0, got {steps}")
    tracker, n = StepTracker(), len(rows)
    seen: dict[str, dict[int, torch.Tensor]] = {name: {} for name in wanted}
    left = sum(len(steps) for steps in wanted.values())  # activations still to record

    def keep(act: torch.Tensor, name: str) -> None:  # act: (halves * N, ...), [uncond rows; cond rows]
        nonlocal left
        if tracker.index in wanted[name] and tracker.index not in seen[name]:
            seen[name][tracker.index] = act.reshape(-1, n, *act.shape[1:]).transpose(0, 1).float().cpu()
            left -= 1
            if not left:  # everything asked for is here: the later steps and the VAE decode would be wasted
                raise _Recorded

    try:
        generate(pipe, rows, dict.fromkeys(wanted, keep), tracker, **pipe_kwargs)
    except _Recorded:
        pass
    out = {}
    for name, steps in wanted.items():
        if missing := [s for s in steps if s not in seen[name]]:
            raise ValueError(f"steps {missing} were not run: the schedule has {tracker.index + 1} steps")
        out[name] = torch.stack([seen[name][s] for s in steps], 1)
    return out


def record_calls(
    pipe: Any, rows: Sequence[Mapping[str, Any]], names: Sequence[str], **pipe_kwargs: Any
) -> tuple[dict[str, dict[int, torch.Tensor]], tuple[np.ndarray, torch.Tensor | None]]:
    """Each layer's activation at every denoiser call, keyed by the call's index, and the call's output.

    Used to replay one image's activations into another run of the same pipeline call by call (the
    reference injection, :func:`latentkit.injection.sweep_reference`): two runs of one pipeline with the
    same arguments make the same sequence of denoiser calls, whatever the pipeline does within a step
    (Flux's true CFG calls the denoiser twice per step; SD3's skip-layer guidance adds a call in which
    the skipped layers do not run, so a layer's calls are keyed by the denoiser call, not counted).

    Returns:
        ``({layer: {call index: activation}}, (images, latents))``; pass ``return_latents=True`` in
        ``pipe_kwargs`` to get the latents.
    """
    calls: dict[str, dict[int, torch.Tensor]] = {name: {} for name in names}
    tracker = StepTracker()

    def keep(act: torch.Tensor, name: str) -> None:
        calls[name][tracker.call] = act.clone()

    return_latents = pipe_kwargs.pop("return_latents", False)
    out = generate(pipe, rows, dict.fromkeys(names, keep), tracker, return_latents, **pipe_kwargs)
    return calls, out


__all__ = [
    "NonFiniteError",
    "RESERVED",
    "StepTracker",
    "batch_inputs",
    "check_call",
    "forward",
    "generate",
    "record",
    "record_calls",
]
