"""A (beta-)VAE with a small latent: the autoencoder that comes with its own sampling distribution (Sec. 1-2).

Where the plain autoencoder maps an image to one point, a variational autoencoder (Kingma and Welling,
2014) maps it to a small Gaussian cloud, ``N(mu, sigma^2)``, and is trained so that the clouds of all
images together fill the prior ``N(0, I)``. That is what makes the latent space *dense* by design: any
point drawn from the prior should decode to a plausible image. ``beta > 1`` (Higgins et al., 2017) trades
reconstruction for a tidier, more disentangled space, the "independent directions" of Sec. 2.1.

Trained by ``python -m latentkit.recipes vae``; weights in ``data/vae/``.

Example::

    vae = load_vae()
    mu, logvar = vae.encode(images)  # images: (N, 3, 64, 64) in [0, 1] -> (N, latent_dim) each
    samples = vae.decode(torch.randn(8, vae.latent_dim))  # (8, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.paths import load_weights


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class VAE(nn.Module):
    """Gaussian encoder ``q(z|x)``, prior ``N(0, I)``, decoder ``p(x|z)``; images (N, 3, 64, 64) in [0, 1].

    Args:
        latent_dim: dimensions of z.
        width: channels of the first convolution; the deepest layers have ``4 * width``.
        beta: weight of the KL term in :meth:`loss` (1: the plain VAE).
    """

    def __init__(self, latent_dim: int = 10, width: int = 32, beta: float = 1.0):
        super().__init__()
        self.latent_dim, self.width, self.beta = latent_dim, width, beta
        w = width
        self.encoder = nn.Sequential(
            _down(3, w),  # (N, w, 32, 32)
            _down(w, 2 * w),  # (N, 2w, 16, 16)
            _down(2 * w, 4 * w),  # (N, 4w, 8, 8)
            _down(4 * w, 4 * w),  # (N, 4w, 4, 4)
            nn.Flatten(),  # (N, 64w)
            nn.Linear(64 * w, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 2 * latent_dim),  # (N, 2 * latent_dim): mu and log-variance
        )
        self.decoder_in = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 64 * w), nn.LeakyReLU(0.2)
        )
        self.decoder = nn.Sequential(
            _up(4 * w, 4 * w),  # (N, 4w, 8, 8)
            _up(4 * w, 2 * w),  # (N, 2w, 16, 16)
            _up(2 * w, w),  # (N, w, 32, 32)
            nn.ConvTranspose2d(w, 3, 4, 2, 1),  # (N, 3, 64, 64)
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 64, 64) in [0, 1] -> ``mu, logvar``, each (N, latent_dim)."""
        mu, logvar = self.encoder((x - 0.5) / 0.5).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 6)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, 64, 64) in [0, 1]."""
        h = self.decoder_in(z).view(-1, 4 * self.width, 4, 4)  # (N, 4w, 4, 4)
        return self.decoder(h)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Encode, draw ``z = mu + sigma * eps`` (the reparameterisation trick), decode.

        Returns:
            ``recon (N, 3, 64, 64), mu (N, latent_dim), logvar (N, latent_dim)``.
        """
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (N, latent_dim)
        return self.decode(z), mu, logvar

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per image: summed squared error + ``beta`` * KL(q(z|x) || N(0, I)).

        Returns:
            dict with ``loss``, ``recon`` and ``kl`` (scalars, means over the batch).
        """
        recon, mu, logvar = self(x, generator)
        rec = ((recon - x) ** 2).sum((1, 2, 3)).mean()
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
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


__all__ = ["VAE", "load_vae"]
