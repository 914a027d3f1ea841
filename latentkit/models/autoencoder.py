"""An autoencoder with a three-neuron bottleneck: the paper's Fig. 2, made real (Sec. 2.1).

An encoder squeezes an image into **three numbers**, the bottleneck; a decoder expands those three numbers
back into an image. Every image of the shapes world becomes a point in a 3-D space you can plot, and every
point of that space decodes to an image.

The networks work in the picture code of :mod:`latentkit.models.codec` (the diffusion organism's frozen
VAE, 16x16x4): image -> codec -> encoder -> 3 numbers -> decoder -> codec -> image. The codec is fixed,
so the three numbers still wholly determine the image; see that module for why.

An autoencoder has no prior: nothing says which points are "in" its latent space. So that the space can
be sampled like the others (:mod:`latentkit.spaces`), the recipe fits a Gaussian to the codes of training
images and stores it with the weights (``code_mean``, ``code_chol``).

Trained by ``python -m latentkit.recipes autoencoder``, which trains a sweep of bottleneck widths: the
three-neuron model is in ``data/autoencoder/``, and the *fitted* one (the smallest width that reconstructs
the world well, see :mod:`latentkit.recipes.autoencoder`) in ``data/autoencoder-fitted/``
(``load_autoencoder(fitted=True)``). Used by notebook ``01_autoencoder_bottleneck``.

Example::

    ae = load_autoencoder()
    codes = ae.encode(images)  # images: (N, 3, 64, 64) float in [0, 1] -> codes (N, 3)
    recon = ae.decode(codes)  # (N, 3, 64, 64) float in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.models.codec import ImageCodec, LatentDecoder, LatentEncoder, load_codec, load_own_state
from latentkit.paths import load_weights

#: The folder (under ``data/``) of the fitted width: the smallest bottleneck that reconstructs well.
FITTED = "autoencoder-fitted"


class Autoencoder(nn.Module):
    """Image -> ``latent_dim`` neurons -> image, through the frozen picture codec.

    Args:
        latent_dim: neurons in the bottleneck (3 in the paper's Fig. 2).
        width: channels of the convolutional stacks at 16x16 (see :class:`LatentEncoder`).
        codec: the picture codec (default: the shipped one, :func:`load_codec`).
    """

    def __init__(self, latent_dim: int = 3, width: int = 64, codec: ImageCodec | None = None):
        super().__init__()
        self.latent_dim, self.width = latent_dim, width
        self.codec = codec if codec is not None else load_codec()
        self.encoder = LatentEncoder(latent_dim, width)  # picture code -> bottleneck
        self.decoder = LatentDecoder(latent_dim, width)  # bottleneck -> picture code
        # The Gaussian the recipe fits to the codes of training images: the space's sampling distribution.
        self.register_buffer("code_mean", torch.zeros(latent_dim))  # (latent_dim,)
        self.register_buffer("code_chol", torch.eye(latent_dim))  # (latent_dim, latent_dim), lower

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) in [0, 1] -> (N, latent_dim) bottleneck activations."""
        return self.encoder(self.codec.encode(x))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.codec.decode(self.decoder(code))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct (N, 3, 64, 64) images through the bottleneck."""
        return self.decode(self.encode(x))

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "width": self.width}


def load_autoencoder(device: str = "cpu", fitted: bool = False) -> Autoencoder:
    """A shipped autoencoder (fp16 on disk, fp32 in memory), in eval mode.

    Args:
        device: a torch device string or ``"auto"``.
        fitted: False: Fig. 2's three neurons (``data/autoencoder/``); True: the smallest width of the
            recipe's sweep that reconstructs the world well (``data/autoencoder-fitted/``).
    """
    from latentkit import resolve_device

    if not isinstance(fitted, bool):
        raise TypeError(f"fitted must be True or False, got {fitted!r}")
    folder = FITTED if fitted else "autoencoder"
    state, cfg = load_weights(folder, "autoencoder.safetensors", recipe="autoencoder")
    model = Autoencoder(latent_dim=cfg["latent_dim"], width=cfg["width"])
    load_own_state(model, state)
    return model.to(resolve_device(device)).eval()


__all__ = ["FITTED", "Autoencoder", "load_autoencoder"]
