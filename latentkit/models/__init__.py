"""The model organisms (paper Sec. 2-3): small models of each family, trained on the shapes world.

- :mod:`latentkit.models.autoencoder`: a convolutional autoencoder with a 3-neuron bottleneck (Fig. 2);
- :mod:`latentkit.models.vae`: a (beta-)VAE with a small Gaussian latent;
- :mod:`latentkit.models.gan`: a latent GAN with a StyleGAN-like mapping network (z and w), in the fitted
  autoencoder's bottleneck;
- :mod:`latentkit.models.tiny_sd`: a Stable Diffusion in miniature (``StableDiffusionPipeline`` with a
  tiny CLIP text encoder, an ``AutoencoderKL`` and a ``UNet2DConditionModel`` in SD's layout);
  ``load_organism()`` loads the shipped one from ``data/tiny-sd/``;
- :mod:`latentkit.models.tiny_dit`: the same organism with a transformer denoiser (SD3's MMDiT in a
  ``StableDiffusion3Pipeline``, same CLIP, VAE and world), from ``data/tiny-sd3/``;
- :mod:`latentkit.models.real`: the paper's real pipelines (SD 1.4/1.5, 2, XL, Kandinsky 2.2, SD 3.5,
  Flux, PixArt, with their turbo/schnell variants), ``load_pipeline(id_or_folder)``, offline first, with
  each model's sampling defaults; an organism's folder loads as that organism.

Submodules are imported on use, so ``import latentkit.models`` loads no model and no diffusers.
"""

import difflib
import os
from pathlib import Path
from typing import Any

#: Names :func:`load_model` takes besides hub ids and folders: the organisms shipped in ``data/``.
ORGANISMS = ("organism", "organism-sd3")


def load_model(model: str = "organism", device: str = "auto", **kwargs: Any):
    """Any model latentkit can study, by one name: an organism, a hub id or a saved pipeline folder.

    An organism loads through the same :func:`latentkit.models.real.load_pipeline` as a real model, from
    its shipped folder, with the defaults that folder's ``latentkit_defaults.json`` gives.

    Args:
        model: ``"organism"`` (the miniature SD of ``data/tiny-sd/``), ``"organism-sd3"`` (the transformer
            organism of ``data/tiny-sd3/``), a hub id of
            :data:`latentkit.models.real.REGISTRY` (e.g. ``"CompVis/stable-diffusion-v1-4"``) or a folder.
        device: ``"auto"`` or a torch device string.
        **kwargs: passed to :func:`latentkit.models.real.load_pipeline` (e.g. ``dtype=``).

    Returns:
        A :class:`latentkit.models.real.LoadedModel` (``.pipe``, ``.call_kwargs()``); ``.organism`` tells
        whether the probes can read its images (the organisms draw the shapes world).

    Raises:
        latentkit.models.real.ModelNotAvailable: real weights that are not cached (the message says how
            to download them).
        ValueError: a name that is neither an organism, nor a hub id of the registry, nor a folder (the
            message lists every name, the closest first).
    """
    from latentkit.models.real import REGISTRY, load_pipeline

    if isinstance(model, bool) or not isinstance(model, str | os.PathLike):
        raise TypeError(f"model must be a name or a folder (a str or a path), got {model!r}")
    if model not in ORGANISMS and os.fspath(model) not in REGISTRY and not Path(model).expanduser().is_dir():
        raise _unknown_model(os.fspath(model), [*ORGANISMS, *REGISTRY])
    if model in ORGANISMS:
        from latentkit.models import tiny_dit, tiny_sd
        from latentkit.paths import shipped

        folder = shipped(tiny_sd.SD_DIR if model == "organism" else tiny_dit.SD3_DIR)
        loaded = load_pipeline(folder, device=device, **kwargs)
        loaded.source = model
        return loaded
    return load_pipeline(model, device=device, **kwargs)


def _unknown_model(model: str, names: list[str]) -> ValueError:
    """Every name :func:`load_model` takes, closest to ``model`` first (a hub id also by its last part)."""

    def closeness(name: str) -> float:
        return max(
            difflib.SequenceMatcher(None, model.lower(), part.lower()).ratio()
            for part in (name, name.split("/")[-1])
        )

    ranked = sorted(names, key=closeness, reverse=True)
    if Path(model).expanduser().is_file():
        what = "a file; pass the folder that holds the pipeline's model_index.json, or a name"
    else:
        what = f"no model name or folder; did you mean {ranked[0]!r}?"
    return ValueError(
        f"model={model!r} is {what} load_model takes, closest first: {', '.join(ranked)}; or a folder "
        "holding a saved pipeline (model_index.json)"
    )
