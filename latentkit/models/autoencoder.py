"""A convolutional autoencoder with a three-neuron bottleneck: the paper's Fig. 2, made real (Sec. 2.1).

An encoder squeezes a 64x64 RGB image through four strided convolutions into **three numbers**, the
bottleneck; a decoder expands those three numbers back into an image. Every image of the shapes world
becomes a point in a 3-D space you can plot, and every point of that space decodes to an image.

An autoencoder has no prior: nothing says which points are "in" its latent space. So that the space can
be sampled like the others (:mod:`latentkit.spaces`), the recipe fits a Gaussian to the codes of training
images and stores it with the weights (``code_mean``, ``code_chol``).

Trained by ``python -m latentkit.recipes autoencoder``; weights in ``data/autoencoder/``. Used by
notebook ``01_autoencoder_bottleneck``.

Example::

    ae = load_autoencoder()
    codes = ae.encode(images)  # images: (N, 3, 64, 64) float in [0, 1] -> codes (N, 3)
    recon = ae.decode(codes)  # (N, 3, 64, 64) float in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.paths import load_weights


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class Autoencoder(nn.Module):
    """Encoder -> ``latent_dim`` neurons -> decoder, for (N, 3, 64, 64) images in [0, 1].

    Args:
        latent_dim: neurons in the bottleneck (3 in the paper's Fig. 2).
        width: channels of the first convolution; the deepest layers have ``4 * width``.
    """

    def __init__(self, latent_dim: int = 3, width: int = 32):
        super().__init__()
        self.latent_dim, self.width = latent_dim, width
        w = width
        self.encoder = nn.Sequential(
            _down(3, w),  # (N, w, 32, 32)
            _down(w, 2 * w),  # (N, 2w, 16, 16)
            _down(2 * w, 4 * w),  # (N, 4w, 8, 8)
            _down(4 * w, 4 * w),  # (N, 4w, 4, 4)
            nn.Flatten(),  # (N, 64w)
            nn.Linear(64 * w, 128),
            nn.LeakyReLU(0.2),
            nn.Linear(128, latent_dim),  # (N, latent_dim): the bottleneck
        )
        self.decoder_in = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.LeakyReLU(0.2), nn.Linear(128, 64 * w), nn.LeakyReLU(0.2)
        )
        self.decoder = nn.Sequential(
            _up(4 * w, 4 * w),  # (N, 4w, 8, 8)
            _up(4 * w, 2 * w),  # (N, 2w, 16, 16)
            _up(2 * w, w),  # (N, w, 32, 32)
            nn.ConvTranspose2d(w, 3, 4, 2, 1),  # (N, 3, 64, 64)
            nn.Sigmoid(),
        )
        # The Gaussian the recipe fits to the codes of training images: the space's sampling distribution.
        self.register_buffer("code_mean", torch.zeros(latent_dim))  # (latent_dim,)
        self.register_buffer("code_chol", torch.eye(latent_dim))  # (latent_dim, latent_dim), lower

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) in [0, 1] -> (N, latent_dim) bottleneck activations."""
        return self.encoder((x - 0.5) / 0.5)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, 64, 64) in [0, 1]."""
        h = self.decoder_in(code).view(-1, 4 * self.width, 4, 4)  # (N, 4w, 4, 4)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct (N, 3, 64, 64) images through the bottleneck."""
        return self.decode(self.encode(x))

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "width": self.width}


def load_autoencoder(device: str = "cpu") -> Autoencoder:
    """The shipped autoencoder from ``data/autoencoder/`` (fp16 on disk, fp32 in memory), in eval mode.

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, cfg = load_weights("autoencoder", "autoencoder.safetensors", recipe="autoencoder")
    model = Autoencoder(latent_dim=cfg["latent_dim"], width=cfg["width"])
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


__all__ = ["Autoencoder", "load_autoencoder"]
