"""A small DCGAN with a StyleGAN-like mapping network: the GAN latent spaces z and w (Sec. 1-2).

A generator turns a random vector into an image; a discriminator learns to tell its images from the
world's, and the generator learns to fool it (Goodfellow et al., 2014). There is no encoder: the latent
space is *given* (``z ~ N(0, I)``) and the generator must make every point of it into an image.

Like StyleGAN (Karras et al., 2019), the generator first sends ``z`` through a small MLP, the *mapping
network*, to an intermediate vector ``w``; the image is synthesised from ``w``. StyleGAN found ``w``
better organised than ``z``, because the mapping can warp the round Gaussian into the shape the data
need. Here ``w`` simply enters a DCGAN-like synthesis network (no style modulation), enough to compare
the two spaces with :mod:`latentkit.properties`. The synthesis network writes the picture code of
:mod:`latentkit.models.codec` (the diffusion organism's frozen VAE), which the codec turns into pixels;
the codec is fixed, so ``z`` still wholly determines the image.

Trained by ``python -m latentkit.recipes gan``; weights in ``data/gan/``. Used by notebook
``02_gan_interpolation``.

Example::

    gan = load_gan()
    z = torch.randn(8, gan.z_dim)
    w = gan.mapping(z)  # (8, w_dim)
    images = gan.render(w)  # (8, 3, 64, 64) in [0, 1]; gan(z) does both
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.models.codec import ImageCodec, LatentDecoder, LatentEncoder, load_codec, load_own_state
from latentkit.paths import load_weights


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, w_dim): normalise z, then ``layers`` fully connected layers."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 4):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        blocks = []
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(cin, cout), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks[:-1])  # no activation after the last layer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)  # StyleGAN's pixel norm
        return self.net(z)


class Generator(nn.Module):
    """``mapping`` (z -> w), ``synthesis`` (w -> picture code), then the frozen codec (code -> image).

    Args:
        z_dim, w_dim: sizes of the two latent spaces.
        width: channels of the synthesis network at 16x16 (see :class:`LatentDecoder`).
        mapping_layers: depth of the mapping network.
        codec: the picture codec (default: the shipped one, :func:`load_codec`).
    """

    def __init__(
        self,
        z_dim: int = 32,
        w_dim: int = 32,
        width: int = 64,
        mapping_layers: int = 4,
        codec: ImageCodec | None = None,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.width, self.mapping_layers = z_dim, w_dim, width, mapping_layers
        self.codec = codec if codec is not None else load_codec()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = LatentDecoder(w_dim, width)  # w -> (N, 4, 16, 16) picture code
        # Mean of w over z ~ N(0, I), measured by the recipe: the centre of the w space.
        self.register_buffer("w_mean", torch.zeros(w_dim))

    def render(self, w: torch.Tensor) -> torch.Tensor:
        """(N, w_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.codec.decode(self.synthesis(w))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.render(self.mapping(z))

    def config(self) -> dict:
        return {
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "width": self.width,
            "mapping_layers": self.mapping_layers,
        }


def discriminator(width: int = 64) -> LatentEncoder:
    """Picture codes (N, 4, 16, 16) -> (N, 1) realness logits, with a minibatch-spread feature.

    The discriminator judges the codec's picture codes, the format the generator writes; the spread of
    its features across the batch (ProGAN, StyleGAN) lets it punish a generator that draws one image for
    every ``z``.
    """
    return LatentEncoder(1, width, minibatch_std=True)


def load_gan(device: str = "cpu") -> Generator:
    """The shipped generator (EMA weights) from ``data/gan/`` (fp16 on disk, fp32 in memory), eval mode.

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, cfg = load_weights("gan", "generator.safetensors", recipe="gan")
    model = Generator(
        z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], width=cfg["width"], mapping_layers=cfg["mapping_layers"]
    )
    load_own_state(model, state)
    return model.to(resolve_device(device)).eval()


__all__ = ["Generator", "MappingNetwork", "discriminator", "load_gan"]
