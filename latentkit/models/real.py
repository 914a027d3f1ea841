"""The paper's real models (Sec. 3.1), loaded by hub id or local folder, offline first.

The paper injects six models: Stable Diffusion 1.4, 2 and XL and the Kandinsky 2.2 decoder (U-Nets),
Stable Diffusion 3.5 and Flux (transformers). :data:`REGISTRY` maps their common hub ids to the diffusers
pipeline class and the model's own sampling defaults; :func:`load_pipeline` returns both, as a
:class:`RealModel`::

    from latentkit.models.real import load_pipeline

    model = load_pipeline("CompVis/stable-diffusion-v1-4")  # or a local folder
    image = model.pipe("a red star", **model.call_kwargs()).images[0]

Weights are looked up in the Hugging Face cache first (``local_files_only=True``); only when they are
not there, and the hub is not switched off (``HF_HUB_OFFLINE=1``), are they downloaded. A model that
cannot be had raises :class:`ModelNotAvailable`, which says how to download it, where the cache is and
how to pass a folder instead. A local folder (``save_pretrained`` or ``hf download --local-dir``) is
recognised by the ``_class_name`` of its ``model_index.json``.

The tests load tiny random builds saved in each family's layout (:func:`latentkit.tiny.save_tiny`):
``tests/test_real_models.py``.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

__all__ = ["REGISTRY", "Defaults", "ModelNotAvailable", "RealModel", "load_pipeline"]


class ModelNotAvailable(FileNotFoundError):
    """The weights of a supported model are neither cached nor downloadable here."""


@dataclass(frozen=True)
class Defaults:
    """A model's own sampling settings (from its model card) and its dtype on a GPU.

    ``extra`` holds further pipeline arguments (e.g. FLUX.1-schnell's ``max_sequence_length=256``).
    """

    arch: str
    pipeline: str
    steps: int
    guidance_scale: float
    height: int
    width: int
    gpu_dtype: torch.dtype
    extra: dict[str, Any] = field(default_factory=dict)

    def call_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Pipeline call arguments: these defaults, overridden by ``overrides``."""
        kwargs = {
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "height": self.height,
            "width": self.width,
            **self.extra,
        }
        kwargs.update(overrides)
        return kwargs


_F16, _BF16 = torch.float16, torch.bfloat16

#: Hub id -> defaults. ``arch`` uses the names of :mod:`latentkit.tiny`. The Kandinsky 2.2 decoder is
#: conditioned on CLIP image embeddings (``image_embeds=``), made by its prior, which is not loaded here.
REGISTRY: dict[str, Defaults] = {
    "CompVis/stable-diffusion-v1-4": Defaults("sd1", "StableDiffusionPipeline", 50, 7.5, 512, 512, _F16),
    "stabilityai/stable-diffusion-2-1": Defaults("sd2", "StableDiffusionPipeline", 50, 7.5, 768, 768, _F16),
    "stabilityai/stable-diffusion-2-1-base": Defaults(
        "sd2", "StableDiffusionPipeline", 50, 7.5, 512, 512, _F16
    ),
    "stabilityai/stable-diffusion-xl-base-1.0": Defaults(
        "sdxl", "StableDiffusionXLPipeline", 50, 5.0, 1024, 1024, _F16
    ),
    "kandinsky-community/kandinsky-2-2-decoder": Defaults(
        "kandinsky22", "KandinskyV22Pipeline", 50, 4.0, 768, 768, _F16
    ),
    "stabilityai/stable-diffusion-3.5-medium": Defaults(
        "sd3", "StableDiffusion3Pipeline", 40, 4.5, 1024, 1024, _BF16
    ),
    "stabilityai/stable-diffusion-3.5-large": Defaults(
        "sd3", "StableDiffusion3Pipeline", 28, 3.5, 1024, 1024, _BF16
    ),
    "black-forest-labs/FLUX.1-schnell": Defaults(
        "flux", "FluxPipeline", 4, 0.0, 1024, 1024, _BF16, {"max_sequence_length": 256}
    ),
    "black-forest-labs/FLUX.1-dev": Defaults("flux", "FluxPipeline", 50, 3.5, 1024, 1024, _BF16),
}

#: Hub ids that need the model's licence accepted on its hub page (and a token) before downloading.
GATED = {
    "stabilityai/stable-diffusion-3.5-medium",
    "stabilityai/stable-diffusion-3.5-large",
    "black-forest-labs/FLUX.1-dev",
}


@dataclass
class RealModel:
    """A loaded pipeline, with the id it came from and the defaults it samples with.

    Attributes:
        pipe: the diffusers pipeline, on its device, progress bar off.
        source: the hub id or local folder it was loaded from.
        reference: the registry id whose defaults apply (for a folder: the closest family member).
        defaults: sampling defaults; for a local folder the image size follows the folder's config.
    """

    pipe: Any
    source: str
    reference: str
    defaults: Defaults

    @property
    def organism(self) -> bool:
        """Whether this is one of latentkit's organisms, whose images the probes can read."""
        from latentkit.models import ORGANISMS

        return self.reference in ORGANISMS

    @property
    def arch(self) -> str:
        """Family name, as in :mod:`latentkit.tiny`: sd1, sd2, sdxl, kandinsky22, sd3 or flux."""
        return self.defaults.arch

    def call_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Arguments for ``self.pipe(...)``: the model's defaults, overridden by ``overrides``."""
        return self.defaults.call_kwargs(**overrides)


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cache_dir() -> Path:
    """The hub cache as the environment says *now* (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub lookup raises: OSError (incl. the hub's LocalEntryNotFoundError) or HTTP errors."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _not_available(model_id: str, cache: Path, why: str) -> ModelNotAvailable:
    gated = (
        f"\n  {model_id} is gated: accept its licence at https://huggingface.co/{model_id} and log in "
        "(`hf auth login`) first."
        if model_id in GATED
        else ""
    )
    return ModelNotAvailable(
        f"{model_id} is not available here ({why}).\n"
        f"Get it on a machine with network access:\n"
        f"  hf download {model_id}\n"
        f"  (older huggingface_hub: huggingface-cli download {model_id}){gated}\n"
        f"It is then cached under {cache} (HF_HUB_CACHE, or $HF_HOME/hub; set HF_HOME to use another "
        "cache). Or download it into a folder and pass the folder:\n"
        f"  hf download {model_id} --local-dir models/{model_id.split('/')[-1]}\n"
        f"  load_pipeline('models/{model_id.split('/')[-1]}')"
    )


def _unknown(model: str) -> ValueError:
    ids = sorted(REGISTRY)
    lowered = {i.lower(): i for i in ids}
    close = difflib.get_close_matches(model.lower(), list(lowered), n=3, cutoff=0.4)
    close += [i.lower() for i in ids if model.lower() in i.lower() and i.lower() not in close]
    hint = f" Did you mean {', '.join(repr(lowered[c]) for c in close[:3])}?" if close else ""
    return ValueError(
        f"{model!r} is neither a supported model id nor an existing folder.{hint}\n"
        f"Supported ids: {', '.join(ids)}.\n"
        "For another model, download it (`hf download <id> --local-dir <folder>`) and pass the folder."
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _detect(folder: Path) -> str:
    """The registry id whose defaults fit the pipeline saved in ``folder`` (from its configs)."""
    index = folder / "model_index.json"
    if not index.exists():
        raise ModelNotAvailable(
            f"{folder} is a folder but holds no model_index.json, so it is no saved diffusers pipeline. "
            "Pass the folder that `hf download <id> --local-dir <folder>` or `pipe.save_pretrained(folder)` "
            "wrote (it holds model_index.json and unet/ or transformer/, vae/ ...)."
        )
    name = _read_json(index).get("_class_name", "")
    if name == "StableDiffusionPipeline":
        unet = _read_json(folder / "unet" / "config.json")
        scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
        if not unet.get("use_linear_projection"):  # SD 1.x projects attention with 1x1 convs
            return "CompVis/stable-diffusion-v1-4"
        if scheduler.get("prediction_type") == "v_prediction":
            return "stabilityai/stable-diffusion-2-1"
        return "stabilityai/stable-diffusion-2-1-base"
    if name == "StableDiffusion3Pipeline":
        layers = _read_json(folder / "transformer" / "config.json").get("num_layers", 0)
        return f"stabilityai/stable-diffusion-3.5-{'large' if layers >= 38 else 'medium'}"
    if name == "FluxPipeline":
        guided = _read_json(folder / "transformer" / "config.json").get("guidance_embeds", False)
        return f"black-forest-labs/FLUX.1-{'dev' if guided else 'schnell'}"
    for model_id, defaults in REGISTRY.items():
        if defaults.pipeline == name:
            return model_id
    supported = sorted({d.pipeline for d in REGISTRY.values()})
    raise ValueError(
        f"{folder} holds a {name or 'pipeline of unknown class'} (model_index.json _class_name); "
        f"load_pipeline knows {', '.join(supported)}. "
        "Load it with diffusers.DiffusionPipeline.from_pretrained."
    )


def _native_size(pipe: Any, fallback: int) -> int:
    """Image side the denoiser was configured for: sample_size x the autoencoder's downscaling."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    sample = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if not isinstance(sample, int) or type(pipe).__name__ == "FluxPipeline":  # Flux has no sample_size
        return fallback
    if getattr(pipe, "movq", None) is not None:  # Kandinsky: MoVQ downscales 2 ** (levels - 1)
        return sample * 2 ** (len(pipe.movq.config.block_out_channels) - 1)
    return sample * getattr(pipe, "vae_scale_factor", 8)


def load_pipeline(
    model: str | os.PathLike,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    local_files_only: bool | None = None,
    **kwargs: Any,
) -> RealModel:
    """Load one of the paper's real models, by hub id (see :data:`REGISTRY`) or local folder.

    Args:
        model: a hub id such as ``"CompVis/stable-diffusion-v1-4"``, or a folder holding a saved pipeline
            (``model_index.json`` + component folders); its family is read from ``_class_name``.
        device: ``"auto"`` or a torch device string (see :func:`latentkit.resolve_device`).
        dtype: weights' dtype; default the model's own on CUDA (fp16 for SD 1/2/XL and Kandinsky, bf16 for
            SD 3.5 and Flux), fp32 elsewhere.
        local_files_only: ``True``: the cache only; ``False``: ask the hub straight away; ``None``
            (default): the cache first, then the hub unless ``HF_HUB_OFFLINE=1``.
        **kwargs: passed to ``from_pretrained`` (e.g. ``safety_checker=None``, ``variant="fp16"``).

    Returns:
        A :class:`RealModel`: ``.pipe`` and ``.defaults`` (``.call_kwargs()`` for ``pipe(...)``).

    Raises:
        ModelNotAvailable: (a ``FileNotFoundError``) the weights are not cached and cannot be downloaded
            here; the message gives the ``hf download`` command, the cache and the folder alternative.
        ValueError: an unknown id, with the closest supported ones.
    """
    import diffusers

    from latentkit import resolve_device

    device = resolve_device(device)
    source = os.fspath(model)
    folder = Path(source).expanduser()
    is_folder = folder.is_dir()
    if is_folder:
        reference = _detect(folder)
    elif source in REGISTRY:
        reference = source
    else:
        raise _unknown(source)
    defaults = REGISTRY[reference]
    if dtype is None:
        dtype = defaults.gpu_dtype if device.startswith("cuda") else torch.float32
    cls = getattr(diffusers, defaults.pipeline)

    if is_folder:
        pipe = cls.from_pretrained(folder, dtype=dtype, local_files_only=True, **kwargs)
        size = _native_size(pipe, defaults.height)
        defaults = replace(defaults, height=size, width=size)
    else:
        pipe = _from_hub(cls, source, dtype, local_files_only, kwargs)
    pipe.set_progress_bar_config(disable=True)
    return RealModel(pipe=pipe.to(device), source=source, reference=reference, defaults=defaults)


def _from_hub(cls: Any, model_id: str, dtype: torch.dtype, local_files_only: bool | None, kwargs: dict):
    """``cls.from_pretrained(model_id)``, cache first; hub failures become :class:`ModelNotAvailable`."""
    cache = Path(kwargs.pop("cache_dir", None) or _cache_dir())
    errors = _hub_errors()
    offline = _offline()

    def load(only: bool):
        return cls.from_pretrained(model_id, dtype=dtype, local_files_only=only, cache_dir=cache, **kwargs)

    if local_files_only is not False:
        try:
            return load(True)
        except errors:
            if local_files_only or offline:
                why = "HF_HUB_OFFLINE=1" if offline else "local_files_only=True"
                raise _not_available(model_id, cache, f"not in the cache, and {why}") from None
    try:
        return load(False)
    except errors as error:
        reason = f"the download failed: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
        raise _not_available(model_id, cache, reason) from None
