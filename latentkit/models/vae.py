"""A (beta-)VAE with a small latent: the autoencoder that comes with its own sampling distribution (Sec. 1-2).

Where the plain autoencoder maps an image to one point, a variational autoencoder (Kingma and Welling,
2014) maps it to a small Gaussian cloud, ``N(mu, sigma^2)``, and is trained so that the clouds of all
images together fill the prior ``N(0, I)``. That is what makes the latent space *dense* by design: any
point drawn from the prior should decode to a plausible image. ``beta > 1`` (Higgins et al., 2017) trades
reconstruction for a tidier, more disentangled space, the "independent directions" of Sec. 2.1.

Like the autoencoder, it works in the picture code of :mod:`latentkit.models.codec` (the diffusion
organism's frozen VAE): the latent ``z`` wholly determines the image.

Trained by ``python -m latentkit.recipes vae``; weights in ``data/vae/``.

Example::

    vae = load_vae()
    mu, logvar = vae.encode(images)  # images: (N, 3, 64, 64) in [0, 1] -> (N, latent_dim) each
    samples = vae.decode(torch.randn(8, vae.latent_dim))  # (8, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.models.codec import ImageCodec, LatentDecoder, LatentEncoder, load_codec, load_own_state
from latentkit.paths import load_weights


class VAE(nn.Module):
    """Gaussian encoder ``q(z|x)``, prior ``N(0, I)``, decoder ``p(x|z)``, through the frozen picture codec.

    Args:
        latent_dim: dimensions of z.
        width: channels of the convolutional stacks at 16x16 (see :class:`LatentEncoder`).
        beta: weight of the KL term in :meth:`loss` (1: the plain VAE).
        codec: the picture codec (default: the shipped one, :func:`load_codec`).
    """

    def __init__(
        self, latent_dim: int = 10, width: int = 64, beta: float = 1.0, codec: ImageCodec | None = None
    ):
        super().__init__()
        self.latent_dim, self.width, self.beta = latent_dim, width, beta
        self.codec = codec if codec is not None else load_codec()
        self.encoder = LatentEncoder(2 * latent_dim, width)  # picture code -> mu and log-variance
        self.decoder = LatentDecoder(latent_dim, width)  # z -> picture code

    def posterior(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 4, 16, 16) picture codes -> ``mu, logvar``, each (N, latent_dim)."""
        mu, logvar = self.encoder(codes).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 6)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 64, 64) in [0, 1] -> ``mu, logvar``, each (N, latent_dim)."""
        return self.posterior(self.codec.encode(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, 64, 64) in [0, 1]."""
        return self.codec.decode(self.decoder(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode, draw ``z = mu + sigma * eps`` (the reparameterisation trick), decode: (N, 3, 64, 64)."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps)

    def loss(self, codes: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per image, on picture codes: summed squared error + ``beta`` * KL(q(z|x) || N(0, I)).

        Training never leaves the codec's format (the codec is frozen), so it takes (N, 4, 16, 16) codes.

        Returns:
            dict with ``loss``, ``recon`` and ``kl`` (scalars, means over the batch).
        """
        mu, logvar = self.posterior(codes)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = self.decoder(mu + torch.exp(0.5 * logvar) * eps)  # (N, 4, 16, 16)
        rec = ((recon - codes) ** 2).sum((1, 2, 3)).mean()
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1).mean()
        return {"loss": rec + self.beta * kl, "recon": rec, "kl": kl}

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "width": self.width, "beta": self.beta}


def load_vae(device: str = "cpu") -> VAE:
    """The shipped VAE from ``data/vae/`` (fp16 on disk, fp32 in memory), in eval mode.

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, cfg = load_weights("vae", "vae.safetensors", recipe="vae")
    model = VAE(latent_dim=cfg["latent_dim"], width=cfg["width"], beta=cfg["beta"])
    load_own_state(model, state)
    return model.to(resolve_device(device)).eval()


__all__ = ["VAE", "load_vae"]
