"""A small DCGAN with a StyleGAN-like mapping network: the GAN latent spaces z and w (Sec. 1-2).

A generator turns a random vector into an image; a discriminator learns to tell its images from the
world's, and the generator learns to fool it (Goodfellow et al., 2014). There is no encoder: the latent
space is *given* (``z ~ N(0, I)``) and the generator must make every point of it into an image.

Like StyleGAN (Karras et al., 2019), the generator first sends ``z`` through a small MLP, the *mapping
network*, to an intermediate vector ``w``; the image is synthesised from ``w``. StyleGAN found ``w``
better organised than ``z``, because the mapping can warp the round Gaussian into the shape the data
need. Here ``w`` simply enters the DCGAN synthesis network (no style modulation), enough to compare the
two spaces with :mod:`latentkit.properties`.

Trained by ``python -m latentkit.recipes gan``; weights in ``data/gan/``. Used by notebook
``02_gan_interpolation``.

Example::

    gan = load_gan()
    z = torch.randn(8, gan.z_dim)
    w = gan.mapping(z)  # (8, w_dim)
    images = gan.synthesis(w)  # (8, 3, 64, 64) in [0, 1]; gan(z) does both
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

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


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU())


class Synthesis(nn.Module):
    """DCGAN generator body: w (N, w_dim) -> images (N, 3, 64, 64) in [0, 1]."""

    def __init__(self, w_dim: int, width: int = 32):
        super().__init__()
        self.width = width
        g = width
        self.fc = nn.Linear(w_dim, 8 * g * 4 * 4)
        self.bn = nn.BatchNorm2d(8 * g)
        self.net = nn.Sequential(
            _up(8 * g, 4 * g),  # (N, 4g, 8, 8)
            _up(4 * g, 2 * g),  # (N, 2g, 16, 16)
            _up(2 * g, g),  # (N, g, 32, 32)
            nn.ConvTranspose2d(g, 3, 4, 2, 1),  # (N, 3, 64, 64)
            nn.Sigmoid(),
        )

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.fc(w).view(-1, 8 * self.width, 4, 4)))  # (N, 8g, 4, 4)
        return self.net(h)


class Generator(nn.Module):
    """``mapping`` (z -> w) followed by ``synthesis`` (w -> image).

    Args:
        z_dim, w_dim: sizes of the two latent spaces.
        width: channels of the last hidden layer; the first has ``8 * width``.
        mapping_layers: depth of the mapping network.
    """

    def __init__(self, z_dim: int = 32, w_dim: int = 32, width: int = 32, mapping_layers: int = 4):
        super().__init__()
        self.z_dim, self.w_dim, self.width, self.mapping_layers = z_dim, w_dim, width, mapping_layers
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = Synthesis(w_dim, width)
        # Mean of w over z ~ N(0, I), measured by the recipe: the centre of the w space.
        self.register_buffer("w_mean", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.synthesis(self.mapping(z))

    def config(self) -> dict:
        return {
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "width": self.width,
            "mapping_layers": self.mapping_layers,
        }


class MinibatchStd(nn.Module):
    """Append the features' standard deviation across the batch as one more channel (ProGAN, StyleGAN).

    A generator that draws the same image every time gives itself away by a spread of zero, so the
    discriminator can punish that collapse; (N, C, H, W) -> (N, C + 1, H, W).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.std(0).mean().expand(x.shape[0], 1, *x.shape[2:])  # (N, 1, H, W)
        return torch.cat([x, spread], 1)


class Discriminator(nn.Module):
    """Images (N, 3, 64, 64) in [0, 1] -> (N,) realness logits.

    DCGAN's strided convolutions with LeakyReLU, a minibatch standard deviation channel against mode
    collapse, and optionally spectral normalisation (Miyato et al., 2018) of every layer.

    Args:
        width: channels of the first convolution; the last has ``8 * width``.
        spectral: spectrally normalise the layers (steadier, slower to learn).
    """

    def __init__(self, width: int = 32, spectral: bool = False):
        super().__init__()
        d = width

        def sn(layer):
            return spectral_norm(layer) if spectral else layer

        def down(cin, cout):
            return nn.Sequential(sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2))

        self.net = nn.Sequential(
            down(3, d),  # (N, d, 32, 32)
            down(d, 2 * d),  # (N, 2d, 16, 16)
            down(2 * d, 4 * d),  # (N, 4d, 8, 8)
            down(4 * d, 8 * d),  # (N, 8d, 4, 4)
            MinibatchStd(),  # (N, 8d + 1, 4, 4)
            sn(nn.Conv2d(8 * d + 1, 1, 4)),  # (N, 1, 1, 1)
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.5) / 0.5)[:, 0]


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
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


__all__ = ["Discriminator", "Generator", "MappingNetwork", "MinibatchStd", "Synthesis", "load_gan"]
