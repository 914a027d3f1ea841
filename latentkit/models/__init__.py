"""The model organisms (paper Sec. 2-3): small models of each family, trained on the shapes world.

- :mod:`latentkit.models.autoencoder`: a convolutional autoencoder with a 3-neuron bottleneck (Fig. 2);
- :mod:`latentkit.models.vae`: a (beta-)VAE with a small Gaussian latent;
- :mod:`latentkit.models.gan`: a DCGAN-like generator with a StyleGAN-like mapping network (z and w);
- :mod:`latentkit.models.tiny_sd`: a Stable Diffusion in miniature (``StableDiffusionPipeline`` with a
  tiny CLIP text encoder, an ``AutoencoderKL`` and a ``UNet2DConditionModel`` in SD's layout);
  ``load_organism()`` loads the shipped one from ``data/tiny-sd/``;
- :mod:`latentkit.models.real`: the paper's real pipelines (SD 1.4, 2.1, XL, Kandinsky 2.2, SD 3.5, Flux),
  ``load_pipeline(id_or_folder)``, offline first, with each model's sampling defaults.

Submodules are imported on use, so ``import latentkit.models`` loads no model and no diffusers.
"""
