"""A latent GAN with a StyleGAN-like mapping network: the GAN latent spaces z and w (Sec. 1-2).

A generator turns a random vector into an image; a discriminator learns to tell its images from the
world's, and the generator learns to fool it (Goodfellow et al., 2014). There is no encoder: the latent
space is *given* (``z ~ N(0, I)``) and the generator must make every point of it into an image.

Like StyleGAN (Karras et al., 2019), the generator first sends ``z`` through a small MLP, the *mapping
network*, to an intermediate vector ``w``; the image is synthesised from ``w``. StyleGAN found ``w``
better organised than ``z``, because the mapping can warp the round Gaussian into the shape the data
need. Here ``w`` enters a small synthesis MLP (no style modulation), enough to compare the two spaces
with :mod:`latentkit.properties`. The game is played in a compact code space, as latent GANs do
(Achlioptas et al., 2018): the synthesis MLP writes a code of the fitted autoencoder's bottleneck
(:mod:`latentkit.models.autoencoder`), the autoencoder's decoder (frozen, part of the generator) turns it
into the picture code of :mod:`latentkit.models.codec`, and the shared codec into pixels. Everything after
``z`` is a fixed function, so ``z`` still wholly determines the image.

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
import torch.nn.functional as F
from torch import nn

from latentkit.models.codec import ImageCodec, LatentDecoder, load_codec, load_own_state
from latentkit.paths import load_weights


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN's pixel norm: each row scaled to unit root mean square."""
    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def categories_of(z: torch.Tensor, categories: tuple[int, ...]) -> list[torch.Tensor]:
    """The discrete part of ``z``: for each block of ``categories`` (its first ``sum(categories)``
    coordinates, block by block), the index of the block's largest coordinate, (N,) int64 each.

    For ``z ~ N(0, I)`` every category of a block is equally likely, so a Gaussian z draws the discrete
    latent uniformly."""
    out, start = [], 0
    for k in categories:
        out.append(z[:, start : start + k].argmax(1))
        start += k
    return out


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, w_dim): normalise z, then ``layers`` fully connected layers.

    With ``categories`` (the third GAN design, see :class:`Generator`), z's first ``sum(categories)``
    coordinates are read as discrete choices: each block becomes the one-hot code of its largest
    coordinate (:func:`categories_of`); only the rest of z, the continuous part, is normalised.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        layers: int = 4,
        categories: tuple[int, ...] = (),
        hidden: int | None = None,
    ):
        super().__init__()
        self.categories = tuple(int(k) for k in categories)
        if sum(self.categories) > z_dim:
            raise ValueError(f"categories {self.categories} need {sum(self.categories)} of z's {z_dim} dims")
        dims = [z_dim] + [hidden or w_dim] * (layers - 1) + [w_dim]
        blocks = []
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(cin, cout), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks[:-1])  # no activation after the last layer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.categories:
            return self.net(pixel_norm(z))
        d = sum(self.categories)
        chosen = categories_of(z, self.categories)
        one_hots = [F.one_hot(c, k).to(z.dtype) for c, k in zip(chosen, self.categories, strict=True)]
        rest = [pixel_norm(z[:, d:])] if z.shape[1] > d else []
        return self.net(torch.cat([*one_hots, *rest], 1))


class CodeSynthesis(nn.Module):
    """w (N, w_dim) -> a code of the fitted autoencoder's bottleneck (N, code_dim): an MLP.

    The MLP writes the code standardised (each coordinate about zero mean and unit variance over real
    images), and the buffers ``code_mean`` and ``code_std`` (measured by the recipe on the autoencoder's
    codes of training images) scale it back, so that the discriminator and the generator work on numbers
    of one size whatever the autoencoder's scale.
    """

    def __init__(self, w_dim: int, code_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        dims = [w_dim] + [hidden] * layers
        blocks = []
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(cin, cout), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, code_dim))
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_std", torch.ones(code_dim))

    def standardised(self, w: torch.Tensor) -> torch.Tensor:
        """(N, w_dim) -> (N, code_dim) standardised codes (what the discriminator judges)."""
        return self.net(w)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w) * self.code_std + self.code_mean


class Generator(nn.Module):
    """``mapping`` (z -> w), ``synthesis`` (w -> bottleneck code), ``decoder`` (code -> picture code), codec.

    A *latent GAN* (Achlioptas et al., 2018): the adversarial game is played in the bottleneck of the
    fitted autoencoder (``data/autoencoder-fitted/``, :func:`latentkit.models.autoencoder.load_autoencoder`),
    whose decoder the generator ends in, frozen; the shared codec turns its picture code into pixels. A
    GAN that drew picture codes itself (this organism's first design) reached 9% valid samples after
    12,000 steps on one CPU core: the adversarial game had to learn the object's shape from scratch,
    which the autoencoder's reconstruction loss learns far faster. ``z`` still wholly determines the
    image: everything after it is a fixed function.

    Args:
        z_dim, w_dim: sizes of the two latent spaces.
        code_dim: the autoencoder's bottleneck width.
        hidden, synthesis_layers: width and depth of the synthesis MLP.
        mapping_layers: depth of the mapping network.
        decoder_width: channels of the autoencoder's decoder (see :class:`LatentDecoder`).
        codec: the picture codec (default: the shipped one, :func:`load_codec`).
    """

    def __init__(
        self,
        z_dim: int = 32,
        w_dim: int = 32,
        code_dim: int = 16,
        hidden: int = 256,
        synthesis_layers: int = 3,
        mapping_layers: int = 4,
        decoder_width: int = 64,
        codec: ImageCodec | None = None,
        categories: tuple[int, ...] = (),
        mapping_hidden: int | None = None,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.code_dim = z_dim, w_dim, code_dim
        self.mapping_hidden = mapping_hidden
        self.hidden, self.synthesis_layers, self.mapping_layers = hidden, synthesis_layers, mapping_layers
        self.decoder_width = decoder_width
        self.codec = codec if codec is not None else load_codec()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, categories, mapping_hidden)
        self.synthesis = CodeSynthesis(w_dim, code_dim, hidden, synthesis_layers)
        # The fitted autoencoder's decoder, frozen: bottleneck code -> (N, 4, 16, 16) picture code.
        self.decoder = LatentDecoder(code_dim, decoder_width).requires_grad_(False)
        # Mean of w over z ~ N(0, I), measured by the recipe: the centre of the w space.
        self.register_buffer("w_mean", torch.zeros(w_dim))

    def train(self, mode: bool = True):
        """The borrowed decoder stays in eval mode (its batch norm statistics are the autoencoder's)."""
        super().train(mode)
        self.decoder.train(False)
        return self

    def render(self, w: torch.Tensor) -> torch.Tensor:
        """(N, w_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.codec.decode(self.decoder(self.synthesis(w)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.render(self.mapping(z))

    def config(self) -> dict:
        return {
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "code_dim": self.code_dim,
            "hidden": self.hidden,
            "synthesis_layers": self.synthesis_layers,
            "mapping_layers": self.mapping_layers,
            "decoder_width": self.decoder_width,
            "categories": list(self.mapping.categories),
            "mapping_hidden": self.mapping_hidden,
        }


class CodeDiscriminator(nn.Module):
    """Standardised bottleneck codes (N, code_dim) -> (N, 1) realness logits, with a minibatch-spread
    feature: the spread of its features across the batch (ProGAN, StyleGAN) lets it punish a generator
    that draws one image for every ``z``."""

    def __init__(self, code_dim: int, hidden: int = 256):
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(code_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)
        )
        self.head = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.features(codes)
        spread = h.std(0).mean().expand(len(h), 1)  # (N, 1)
        return self.head(torch.cat([h, spread], 1))


def load_gan(device: str = "cpu") -> Generator:
    """The shipped generator (EMA weights) from ``data/gan/`` (fp16 on disk, fp32 in memory), eval mode.

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, cfg = load_weights("gan", "generator.safetensors", recipe="gan")
    keys = ("z_dim", "w_dim", "code_dim", "hidden", "synthesis_layers", "mapping_layers", "decoder_width")
    if missing := [k for k in keys if k not in cfg]:
        raise RuntimeError(
            f"data/gan/config.json lacks {missing}: these weights come from an older GAN design (it drew "
            "picture codes itself); retrain with `python -m latentkit.recipes gan` (after the autoencoder "
            "recipe: it draws in the fitted autoencoder's bottleneck)"
        )
    extra = {"categories": tuple(cfg.get("categories", ())), "mapping_hidden": cfg.get("mapping_hidden")}
    model = Generator(**{k: cfg[k] for k in keys}, **extra)
    load_own_state(model, state)
    return model.to(resolve_device(device)).eval()


__all__ = ["CodeDiscriminator", "CodeSynthesis", "Generator", "MappingNetwork", "load_gan"]
