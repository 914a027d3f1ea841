"""The model organisms (paper Sec. 2-3): small models of each family, trained on the shapes world.

- :mod:`latentkit.models.autoencoder`: a convolutional autoencoder with a 3-neuron bottleneck (Fig. 2);
- :mod:`latentkit.models.vae`: a (beta-)VAE with a small Gaussian latent;
- :mod:`latentkit.models.gan`: a DCGAN-like generator with a StyleGAN-like mapping network (z and w);
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
        A :class:`latentkit.models.real.RealModel` (``.pipe``, ``.call_kwargs()``); ``.organism`` tells
        whether the probes can read its images (the organisms draw the shapes world).

    Raises:
        latentkit.models.real.ModelNotAvailable: real weights that are not cached (the message says how
            to download them).
    """
    from latentkit.models.real import load_pipeline

    if model in ORGANISMS:
        from latentkit.models import tiny_dit, tiny_sd
        from latentkit.paths import shipped

        folder = shipped(tiny_sd.SD_DIR if model == "organism" else tiny_dit.SD3_DIR)
        loaded = load_pipeline(folder, device=device, **kwargs)
        loaded.source = model
        return loaded
    return load_pipeline(model, device=device, **kwargs)
