"""The picture format the strict-sense organisms draw in: the diffusion organism's frozen VAE (Sec. 2.1).

The autoencoder, the VAE and the GAN of notebooks 01 and 02 do not paint 64x64x3 pixels directly. They
read and write the 16x16x4 *picture code* of the miniature Stable Diffusion's own image autoencoder
(``data/tiny-sd/vae``), and that fixed, frozen codec turns the code into pixels. Two reasons:

* **Two CPU cores.** A GAN that paints pixels needs hours of GPU time to draw crisp objects; trained
  here for half an hour it drew textured backgrounds with no objects at all, and a three-neuron
  autoencoder trained on pixels could not keep even the object's colour. In the codec's 16x16x4 format
  the same networks learn in minutes, and the codec draws the edges and textures.
* **One ruler.** Every organism, strict or broad, then ends in the same last stage, so differences
  between them in notebooks 01-06 come from where the representation lives, not from pixel skills.

The argument of the paper is untouched: the codec is a fixed function with no randomness and no input of
its own, so a point of the autoencoder's bottleneck or of the GAN's ``z`` still *wholly determines* the
image (Sec. 2.1: synthesis in the strict sense). Stable Diffusion works in such a codec's latent too.

The codec is part of each model (``model.codec``, moved with ``model.to``) but not of its weights file:
:func:`own_state` leaves it out when a model is exported and :func:`load_own_state` puts the shipped
codec back. :class:`LatentEncoder` and :class:`LatentDecoder` are the convolutional stacks the three
organisms share.

Example::

    codec = load_codec()
    codes = codec.encode(images)  # (N, 3, 64, 64) in [0, 1] -> (N, 4, 16, 16), about unit variance
    images = codec.decode(codes)  # -> (N, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit import autocast

#: The picture code's shape: (channels, height, width).
CODE_SHAPE = (4, 16, 16)

#: Prefix of the codec's entries in a model's state dict (left out of exported weights).
CODEC_PREFIX = "codec."


class ImageCodec(nn.Module):
    """A frozen ``AutoencoderKL``: images in [0, 1] <-> picture codes scaled to about unit variance.

    Args:
        vae: a diffusers ``AutoencoderKL`` with 4 latent channels and a 4x downsampling (the organism's);
            its ``scaling_factor`` brings the codes to unit variance.
    """

    def __init__(self, vae):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.scale = float(vae.config.scaling_factor)

    def train(self, mode: bool = True):
        """The codec stays in eval mode whatever its owner does: it is frozen."""
        return super().train(False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) float in [0, 1] -> (N, 4, 16, 16) codes (the posterior mean, scaled)."""
        x = images.to(self.vae.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist.mean.float() * self.scale

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, 4, 16, 16) codes -> (N, 3, 64, 64) float in [0, 1].

        Under bf16 autocast where the hardware has it (:func:`latentkit.autocast`: x2.2 faster on this
        project's CPU, pixels within 4 of 255 of the fp32 decoder's); every strict-sense image passes here.
        """
        with autocast(codes.device.type):
            x = self.vae.decode((codes / self.scale).to(self.vae.dtype)).sample.float()
        return ((x + 1) / 2).clamp(0, 1)


def load_codec(device: str = "cpu") -> ImageCodec:
    """The organism's VAE from ``data/tiny-sd/vae`` as a frozen :class:`ImageCodec` (fp32), offline."""
    from diffusers import AutoencoderKL

    from latentkit import resolve_device
    from latentkit.paths import reading_weights, shipped

    try:
        folder = shipped("tiny-sd", "vae")
    except FileNotFoundError as missing:
        raise FileNotFoundError(
            f"{missing} The autoencoder, the VAE and the GAN draw through the miniature Stable Diffusion's "
            "VAE (data/tiny-sd/vae); rebuild it with `python -m latentkit.recipes sd_vae`."
        ) from None
    restore = "restore it with `git checkout data/`, or rebuild it with `python -m latentkit.recipes sd_vae`"
    with reading_weights(folder, restore):
        vae = AutoencoderKL.from_pretrained(
            folder,
            local_files_only=True,
            torch_dtype=torch.float32,
            low_cpu_mem_usage=False,  # no accelerate
        )
    # channels_last: the layout the CPU's convolutions run fastest in (x1.2 in fp32, and with bf16)
    return ImageCodec(vae.to(memory_format=torch.channels_last)).to(resolve_device(device))


def own_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` without the shared codec: what a strict-sense organism exports."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(CODEC_PREFIX)}


def load_own_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load exported weights (no codec entries) into ``model``, whose codec is already in place.

    Strict about everything else: a missing or unexpected entry outside the codec is an error.
    """
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(CODEC_PREFIX)]
    if missing or unexpected:
        raise RuntimeError(
            f"the weights do not fit {type(model).__name__}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}. They were probably exported by another version of its recipe; retrain "
            "with `python -m latentkit.recipes <name> --fresh`."
        )
    return model


def _upsample(cin: int, cout: int) -> nn.Sequential:
    """Double the resolution: nearest-neighbour upsampling, 3x3 convolution, batch norm."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, 1, 1),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
    )


class LatentDecoder(nn.Module):
    """A vector (N, in_dim) -> a picture code (N, 4, 16, 16): MLP to 4x4, then two upsamplings.

    The autoencoder's and the VAE's decoder (the GAN ends in the fitted autoencoder's).

    Args:
        in_dim: size of the vector (the bottleneck, the VAE latent, the GAN's w).
        width: channels at 16x16; 8x8 and 4x4 have ``2 * width``.
    """

    def __init__(self, in_dim: int, width: int = 64):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(
            nn.Linear(in_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 2 * width * 16), nn.LeakyReLU(0.2)
        )
        self.net = nn.Sequential(
            _upsample(2 * width, 2 * width),  # (N, 2w, 8, 8)
            nn.Conv2d(2 * width, 2 * width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            _upsample(2 * width, width),  # (N, w, 16, 16)
            nn.Conv2d(width, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, CODE_SHAPE[0], 3, 1, 1),  # (N, 4, 16, 16)
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(v).view(-1, 2 * self.width, 4, 4))


class LatentEncoder(nn.Module):
    """A picture code (N, 4, 16, 16) -> a vector (N, out_dim): two strided convolutions, then an MLP.

    The autoencoder's and the VAE's encoder.

    Args:
        out_dim: size of the output vector.
        width: channels at 16x16; 8x8 and 4x4 have ``2 * width``.
    """

    def __init__(self, out_dim: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(CODE_SHAPE[0], width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),  # (N, 2w, 8, 8)
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1),  # (N, 2w, 4, 4)
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (N, 32w)
        )
        self.head = nn.Sequential(nn.Linear(32 * width, 256), nn.LeakyReLU(0.2), nn.Linear(256, out_dim))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(codes))


__all__ = [
    "CODE_SHAPE",
    "ImageCodec",
    "LatentDecoder",
    "LatentEncoder",
    "load_codec",
    "load_own_state",
    "own_state",
]
