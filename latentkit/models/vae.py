"""A (beta-)VAE with a small latent: the autoencoder that comes with its own sampling distribution (Sec. 1-2).

Where the plain autoencoder maps an image to one point, a variational autoencoder (Kingma and Welling,
2014) maps it to a small Gaussian cloud, ``N(mu, sigma^2)``, and is trained so that the clouds of all
images together fill the prior ``N(0, I)``. That is what makes the latent space *dense* by design: any
point drawn from the prior should decode to a plausible image. ``beta > 1`` (Higgins et al., 2017) trades
reconstruction for a tidier, more disentangled space, the "independent directions" of Sec. 2.1.

Like the autoencoder, it works in the picture code of :mod:`latentkit.models.codec` (the diffusion
organism's frozen VAE): the latent ``z`` wholly determines the image.

**Two stages** (Dai and Wipf, 2019, "Diagnosing and enhancing VAE models"). In a world of discrete
factors the first stage's posteriors are narrow islands that leave most of N(0, I) empty, and what lies
between islands decodes to blends. So a second, small VAE (:class:`SecondStage`) learns the distribution
of the first stage's latents: its own latent ``u ~ N(0, I)`` decodes to a first-stage ``z``, which the first
stage decodes to the image. With a second stage the model's sampling distribution, and the space the
notebooks measure (:func:`latentkit.spaces.vae_space`), is ``u``.

Trained by ``python -m latentkit.recipes vae``; weights in ``data/vae/``.

Example::

    vae = load_vae()
    mu, logvar = vae.encode(images)  # images: (N, 3, 64, 64) in [0, 1] -> (N, latent_dim) each
    samples = vae.generate(torch.randn(8, vae.latent_dim))  # (8, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latentkit.models.codec import ImageCodec, LatentDecoder, LatentEncoder, load_codec, load_own_state
from latentkit.paths import load_weights


def _mlp(cin: int, cout: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cin, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, cout),
    )


class SecondStage(nn.Module):
    """The second VAE of Dai and Wipf (2019): it models the first stage's latents ``z`` with its own
    ``u ~ N(0, I)`` of the same size. MLPs; the decoder's variance ``gamma`` is learned (one number), so
    it can shrink as the fit tightens, which is what lets a second stage match the first stage's
    aggregate posterior where a fixed variance would blur it.

    Args:
        latent_dim: dimensions of z (and of u).
        hidden: width of the MLPs' three hidden layers.
    """

    def __init__(self, latent_dim: int, hidden: int = 512):
        super().__init__()
        self.latent_dim, self.hidden = latent_dim, hidden
        self.encoder = _mlp(latent_dim, 2 * latent_dim, hidden)  # z -> mu and log-variance of u
        self.decoder = _mlp(latent_dim, latent_dim, hidden)  # u -> z
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def posterior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, latent_dim) first-stage latents -> ``mu, logvar`` of u, each (N, latent_dim)."""
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 6)

    def loss(self, z: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per point (in nats, Gaussian decoder of variance ``gamma``): ``loss``, ``recon``,
        ``kl`` (scalars, means over the batch)."""
        mu, logvar = self.posterior(z)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = self.decoder(mu + torch.exp(0.5 * logvar) * eps)
        nll = ((recon - z) ** 2) / self.log_gamma.exp() + self.log_gamma + math.log(2 * math.pi)
        rec = 0.5 * nll.sum(1)
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1)
        return {"loss": (rec + kl).mean(), "recon": rec.mean(), "kl": kl.mean()}

    def config(self) -> dict:
        return {"hidden": self.hidden}


class VAE(nn.Module):
    """Gaussian encoder ``q(z|x)``, prior ``N(0, I)``, decoder ``p(x|z)``, through the frozen picture codec.

    Args:
        latent_dim: dimensions of z.
        width: channels of the convolutional stacks at 16x16 (see :class:`LatentEncoder`).
        beta: weight of the KL term in :meth:`loss` (1: the plain VAE).
        codec: the picture codec (default: the shipped one, :func:`load_codec`).
        second_stage: its :class:`SecondStage` (None: the prior is N(0, I) on z itself).
    """

    def __init__(
        self,
        latent_dim: int = 10,
        width: int = 64,
        beta: float = 1.0,
        codec: ImageCodec | None = None,
        second_stage: SecondStage | None = None,
    ):
        super().__init__()
        self.latent_dim, self.width, self.beta = latent_dim, width, beta
        self.codec = codec if codec is not None else load_codec()
        self.encoder = LatentEncoder(2 * latent_dim, width)  # picture code -> mu and log-variance
        self.decoder = LatentDecoder(latent_dim, width)  # z -> picture code
        self.second_stage = second_stage

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

    def generate(self, u: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) points of the sampling distribution's N(0, I) -> (N, 3, 64, 64) in [0, 1]: through
        the second stage's decoder to z when there is one, else ``u`` is z."""
        return self.decode(u if self.second_stage is None else self.second_stage.decoder(u))

    def latent_of(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) in [0, 1] -> (N, latent_dim): the posterior mean in the space :meth:`generate`
        reads (u with a second stage, else z)."""
        mu = self.encode(x)[0]
        return mu if self.second_stage is None else self.second_stage.posterior(mu)[0]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode, draw ``z = mu + sigma * eps`` (the reparameterisation trick), decode: (N, 3, 64, 64)."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps)

    def loss(
        self,
        codes: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Negative ELBO per image, on picture codes: summed squared error + ``beta`` * KL(q(z|x) || N(0, I)).

        Training never leaves the codec's format (the codec is frozen), so it takes (N, 4, 16, 16) codes.
        ``weights`` (broadcastable to the codes, e.g. (N, 1, 16, 16)) weight each cell's squared error, as a
        decoder variance that is smaller where they are larger (the recipe weights the object's cells:
        :func:`latentkit.recipes.common.object_weights`); None: every cell 1. Works under bf16 autocast:
        the posterior and the reconstruction are taken back to fp32 before the loss.

        Returns:
            dict with ``loss``, ``recon`` and ``kl`` (scalars, means over the batch).
        """
        mu, logvar = (p.float() for p in self.posterior(codes))
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = self.decoder(mu + torch.exp(0.5 * logvar) * eps).float()  # (N, 4, 16, 16)
        err = (recon - codes.float()) ** 2
        rec = (err if weights is None else err * weights).sum((1, 2, 3)).mean()
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1).mean()
        return {"loss": rec + self.beta * kl, "recon": rec, "kl": kl}

    def config(self) -> dict:
        stage = None if self.second_stage is None else self.second_stage.config()
        return {"latent_dim": self.latent_dim, "width": self.width, "beta": self.beta, "second_stage": stage}


def load_vae(device: str = "cpu") -> VAE:
    """The shipped VAE from ``data/vae/`` (fp16 on disk, fp32 in memory), in eval mode.

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, cfg = load_weights("vae", "vae.safetensors", recipe="vae")
    stage = cfg.get("second_stage")
    second = None if stage is None else SecondStage(cfg["latent_dim"], **stage)
    model = VAE(latent_dim=cfg["latent_dim"], width=cfg["width"], beta=cfg["beta"], second_stage=second)
    load_own_state(model, state)
    return model.to(resolve_device(device)).eval()


__all__ = ["VAE", "SecondStage", "load_vae"]
