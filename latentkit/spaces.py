"""Spaces: anything that can be sampled, nudged, interpolated and decoded into an image.

The paper asks the same four questions of very different things: the bottleneck of an autoencoder, the
``z`` of a GAN, and, for diffusion models, the initial noise, the text embeddings, the VAE latents and
the U-Net's layers (Sec. 1, Sec. 3). To ask them with one piece of code (:mod:`latentkit.properties`),
each of these is wrapped as a :class:`Space`:

=====================  ==================================================================================
``sample(n, gen)``     ``n`` points from the space's own distribution, a tensor (N, ...)
``perturb(p, s, gen)`` a step of size ``s`` in the space's own noise distribution
``interpolate(a,b,t)`` points between ``a`` and ``b`` (lerp, or slerp for Gaussian spaces)
``decode(p)``          the images the points stand for, (N, H, W, 3) uint8
``encode(images)``     optional: the points of given images
``name``               how tables and figures call it
=====================  ==================================================================================

A new space (a diffusion model's text embeddings, say) subclasses :class:`Space` and implements
``sample`` and ``decode_float``; everything else has a default. Used by notebooks 01 and 02.

Example::

    space = autoencoder_space(load_autoencoder())
    points = space.sample(8, torch.Generator().manual_seed(0))  # (8, 3)
    images = space.decode(space.interpolate(points[:4], points[4:], 0.5))  # (4, 64, 64, 3) uint8
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from latentkit.world import FACTORS, Factors, World

_DECODE_CHUNK = 256  # points decoded at once; keeps memory flat on a laptop
_JITTER = 1.5  # the world's jitter range in pixels (+-); FactorSpace stores jitter / _JITTER in [-1, 1]


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)``; ``a, b: (N, ...)``, ``t`` a float or (N,)."""
    t = _as_t(t, a)
    return a + t * (b - a)


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, center: torch.Tensor | None = None
) -> torch.Tensor:
    """Spherical interpolation around ``center`` (default 0), as used for Gaussian GAN latents.

    Moving along the great circle keeps the norm typical of a high-dimensional Gaussian, where a
    straight line passes through the unusually short vectors near the centre (White, 2016).

    Args:
        a, b: (N, ...) endpoints.
        t: float or (N,) in [0, 1].
        center: (...) point the arc turns around (the distribution's mean).
    """
    if center is not None:
        return slerp(a - center, b - center, t) + center
    t = _as_t(t, a)
    fa, fb = a.flatten(1), b.flatten(1)  # (N, D)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7)).view(-1, *([1] * (a.ndim - 1)))  # (N, 1, ...)
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    nearly_parallel = so.abs() < 1e-6  # sin(omega) ~ 0: fall back to a straight line
    return torch.where(nearly_parallel, a + t * (b - a), out)


def _as_t(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor broadcastable against ``like: (N, ...)``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 1:
        if len(t) != len(like):
            raise ValueError(f"t has {len(t)} values for {len(like)} points; pass one t per point or a float")
        t = t.view(-1, *([1] * (like.ndim - 1)))
    elif t.ndim > 1:
        raise ValueError(
            f"t must be a float or a 1-D tensor (one value per point), got shape {tuple(t.shape)}"
        )
    return t


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) float in [0, 1] -> (N, H, W, 3) uint8 (rounded)."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


class Space:
    """A space whose points decode to images. Subclasses implement :meth:`sample` and :meth:`decode_float`.

    Attributes:
        name: shown in tables and figures, e.g. ``"GAN z"``.
        interpolation: the default of :meth:`interpolate`, ``"lerp"`` or ``"slerp"``.
    """

    name: str = "space"
    interpolation: str = "lerp"
    #: What the space is made of, for :mod:`latentkit.reuse`: the models (and settings) its points are
    #: decoded by. None for a space built by hand around a function: its results are never reused.
    source: tuple | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def fingerprint_parts(self) -> dict | None:
        """Everything the space's images depend on (:mod:`latentkit.reuse`), or None when unknown."""
        if self.source is None:
            return None
        return {"name": self.name, "interpolation": self.interpolation, "source": self.source}

    # -- to implement ------------------------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points (N, ...) from the space's own distribution."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n, generator)")

    def decode_float(self, points: torch.Tensor) -> torch.Tensor:
        """(N, ...) points -> (N, H, W, 3) float images in [0, 1] on the CPU (no rounding, for gradients
        of appearance such as the path length in :func:`latentkit.properties.smoothness`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode_float(points)")

    # -- defaults ----------------------------------------------------------------------------------------

    def decode(self, points: torch.Tensor) -> np.ndarray:
        """(N, ...) points -> (N, H, W, 3) uint8 images."""
        return to_uint8(self.decode_float(points))

    def encode(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 images -> (N, ...) points. Only spaces with an encoder have it."""
        raise NotImplementedError(
            f"the space {self.name!r} has no encoder: its points can be sampled and decoded, but an image "
            "cannot be turned back into a point. (GANs have no encoder; an autoencoder or VAE space does.)"
        )

    def center(self) -> torch.Tensor:
        """(...) mean of the space's distribution; by default estimated once from 4096 samples."""
        if not hasattr(self, "_center"):
            self._center = self.sample(4096, torch.Generator().manual_seed(12345)).mean(0)
        return self._center

    def perturb(
        self, points: torch.Tensor, scale: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Step ``points + scale * (x - center)`` with ``x`` a fresh sample: noise shaped like the space.

        ``scale = 1`` moves as far as the distance from the centre to a typical point, so ``scale``
        reads as "a fraction of the space's own spread" in every space, whatever its units.
        """
        noise = self.sample(len(points), generator) - self.center()
        return points + scale * noise.to(points.device, points.dtype)

    def interpolate(
        self, a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, mode: str | None = None
    ) -> torch.Tensor:
        """Points between ``a`` and ``b`` (N, ...), ``t`` a float or (N,); ``mode`` "lerp" or "slerp"."""
        mode = mode or self.interpolation
        if mode == "lerp":
            return lerp(a, b, t)
        if mode == "slerp":
            return slerp(a, b, t, center=self.center())
        raise ValueError(f"mode must be 'lerp' or 'slerp', got {mode!r}")


class GaussianSpace(Space):
    """Points ``mean + chol @ eps`` with ``eps ~ N(0, I)``, decoded by a network.

    Args:
        name: for tables and figures.
        decoder: (N, D) -> (N, 3, H, W) float in [0, 1] (a torch module's forward or ``decode``).
        mean: (D,) centre of the distribution.
        chol: (D, D) lower Cholesky factor of the covariance (default identity).
        encoder: optional (N, 3, H, W) float in [0, 1] -> (N, D).
        device: where the decoder runs; points are returned on the CPU.
        interpolation: default interpolation, "slerp" suits N(0, I) latents.
        source: the models behind the decoder, for :mod:`latentkit.reuse` (None: never reused).
    """

    def __init__(
        self,
        name: str,
        decoder: Callable[[torch.Tensor], torch.Tensor],
        mean: torch.Tensor,
        chol: torch.Tensor | None = None,
        encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str = "cpu",
        interpolation: str = "lerp",
        source: tuple | None = None,
    ):
        self.name, self.interpolation, self.device = name, interpolation, device
        self.decoder, self.encoder, self.source = decoder, encoder, source
        self.mean = torch.as_tensor(mean, dtype=torch.float32).cpu()  # (D,)
        d = len(self.mean)
        self.chol = torch.eye(d) if chol is None else torch.as_tensor(chol, dtype=torch.float32).cpu()

    @property
    def dim(self) -> int:
        return len(self.mean)

    def fingerprint_parts(self) -> dict | None:
        parts = super().fingerprint_parts()
        return None if parts is None else {**parts, "mean": self.mean, "chol": self.chol}

    def center(self) -> torch.Tensor:
        return self.mean

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, self.dim, generator=generator)  # (N, D)
        return self.mean + eps @ self.chol.T

    @torch.no_grad()
    def decode_float(self, points: torch.Tensor) -> torch.Tensor:
        chunks = [
            self.decoder(chunk.float().to(self.device)).float().cpu()
            for chunk in torch.split(points, _DECODE_CHUNK)
        ]
        return torch.cat(chunks).permute(0, 2, 3, 1).clamp(0, 1)  # (N, H, W, 3)

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        if self.encoder is None:
            return super().encode(images)
        x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
        return torch.cat(
            [self.encoder(c.to(self.device)).float().cpu() for c in torch.split(x, _DECODE_CHUNK)]
        )


class MappedSpace(Space):
    """The image of a Gaussian under a network, like StyleGAN's ``w = mapping(z)``.

    Sampling draws ``z ~ N(0, I)`` and maps it; the points live in the mapped space, and so do
    :meth:`perturb` (a step towards a fresh mapped sample) and interpolation (lerp, as StyleGAN does in w).

    Args:
        name: for tables and figures.
        mapping: (N, z_dim) -> (N, D).
        decoder: (N, D) -> (N, 3, H, W) float in [0, 1].
        z_dim: size of the Gaussian input.
        device: where the networks run; points are returned on the CPU.
        source: the models behind it, for :mod:`latentkit.reuse` (None: never reused).
    """

    def __init__(
        self, name: str, mapping, decoder, z_dim: int, device: str = "cpu", source: tuple | None = None
    ):
        self.name, self.mapping, self.decoder, self.z_dim, self.device = name, mapping, decoder, z_dim, device
        self.source = source

    def fingerprint_parts(self) -> dict | None:
        parts = super().fingerprint_parts()
        return None if parts is None else {**parts, "z_dim": self.z_dim}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.z_dim, generator=generator)  # (N, z_dim)
        return torch.cat(
            [self.mapping(c.to(self.device)).float().cpu() for c in torch.split(z, _DECODE_CHUNK)]
        )

    @torch.no_grad()
    def decode_float(self, points: torch.Tensor) -> torch.Tensor:
        chunks = [
            self.decoder(c.float().to(self.device)).float().cpu() for c in torch.split(points, _DECODE_CHUNK)
        ]
        return torch.cat(chunks).permute(0, 2, 3, 1).clamp(0, 1)  # (N, H, W, 3)


class FactorSpace(Space):
    """The world's own factors as a space: the ideal latent space, known to be right by construction.

    A point is the one-hot code of each factor followed by the jitter, 33 numbers in all::

        [shape(6) | color(6) | background(4) | texture(4) | position(9) | size(2) | jitter(2)]

    Decoding takes the largest entry of each one-hot block and renders it with the world, so a midpoint
    between two points shows one of the two endpoints' values (ties go to the lower index), and a small
    step changes nothing but the jitter. Tests and notebooks use it as the reference a learned space is
    compared with.

    Args:
        world: the renderer (64x64 by default).
    """

    name = "world factors (ideal)"

    def __init__(self, world: World | None = None):
        self.world = world or World(64)
        self.sizes = [len(v) for v in FACTORS.values()]  # one-hot block lengths, in FACTORS order
        self.dim = sum(self.sizes) + 2
        # Reusable only for the world itself: a subclass (a test's recording world) may render otherwise.
        self.source = ("world", self.world.size) if type(self.world) is World else None

    def points_of(self, factors: Factors) -> torch.Tensor:
        """(N, 33) points of given factors."""
        blocks = [
            np.eye(k, dtype=np.float32)[getattr(factors, f)] for f, k in zip(FACTORS, self.sizes, strict=True)
        ]
        return torch.from_numpy(np.concatenate([*blocks, factors.jitter / _JITTER], axis=1))

    def factors_of(self, points: torch.Tensor) -> Factors:
        """The factors of (N, 33) points: argmax of each one-hot block, jitter clipped to range."""
        p = points.detach().cpu().numpy()
        labels, start = {}, 0
        for f, k in zip(FACTORS, self.sizes, strict=True):
            labels[f] = p[:, start : start + k].argmax(1)
            start += k
        return Factors(**labels, jitter=np.clip(p[:, start:] * _JITTER, -_JITTER, _JITTER))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return self.points_of(self.world.sample_factors(n, seed))

    def decode_float(self, points: torch.Tensor) -> torch.Tensor:
        images = self.world.render(self.factors_of(points)).images
        return torch.from_numpy(images).float() / 255

    def decode(self, points: torch.Tensor) -> np.ndarray:
        return self.world.render(self.factors_of(points)).images


# ---------------------------------------------------------------------------------------------------------
# The spaces of the model organisms


def autoencoder_space(model, device: str = "cpu") -> GaussianSpace:
    """The bottleneck of :class:`latentkit.models.autoencoder.Autoencoder`, sampled from the Gaussian
    fitted to the codes of training images (notebook 01)."""
    model = model.to(device).eval()
    return GaussianSpace(
        f"autoencoder bottleneck ({model.latent_dim} neurons)",
        decoder=model.decode,
        mean=model.code_mean,
        chol=model.code_chol,
        encoder=model.encode,
        device=device,
        source=(model,),
    )


def vae_space(model, device: str = "cpu", first_stage: bool = False) -> GaussianSpace:
    """The sampling space of :class:`latentkit.models.vae.VAE`, under N(0, I): with a second stage
    (Dai and Wipf's two-stage VAE, :class:`latentkit.models.vae.SecondStage`) its latent ``u``, decoded
    through the second stage to the first stage's ``z``; without one, ``z`` itself. Encoding gives the
    posterior mean in that space. ``first_stage``: ``z`` under N(0, I) even when there is a second stage
    (the first stage's own prior, for comparison)."""
    model = model.to(device).eval()
    if first_stage or model.second_stage is None:
        name, decoder, encoder = "", model.decode, lambda x: model.encode(x)[0]
    else:
        name, decoder, encoder = ", two-stage", model.generate, model.latent_of
    return GaussianSpace(
        f"VAE latent ({model.latent_dim} dims{name})",
        decoder=decoder,
        mean=torch.zeros(model.latent_dim),
        encoder=encoder,
        device=device,
        interpolation="slerp",
        source=(model, "first stage") if first_stage else (model,),
    )


def gan_z_space(generator, device: str = "cpu") -> GaussianSpace:
    """The input ``z ~ N(0, I)`` of :class:`latentkit.models.gan.Generator` (notebook 02)."""
    generator = generator.to(device).eval()
    return GaussianSpace(
        f"GAN z ({generator.z_dim} dims)",
        decoder=generator,
        mean=torch.zeros(generator.z_dim),
        device=device,
        interpolation="slerp",
        source=(generator,),
    )


def gan_w_space(generator, device: str = "cpu", truncation: float = 1.0) -> MappedSpace:
    """The intermediate ``w = mapping(z)`` of :class:`latentkit.models.gan.Generator` (notebook 02).

    Args:
        truncation: StyleGAN's truncation trick when below 1: every sample is pulled towards the mean w,
            ``w_mean + truncation * (w - w_mean)``, trading variety for image quality. The space is then
            that narrower distribution, and its name says so.
    """
    if not 0 < truncation <= 1:
        raise ValueError(f"truncation must be in (0, 1] (1: none; StyleGAN often uses 0.7), got {truncation}")
    generator = generator.to(device).eval()
    mean = generator.w_mean

    def mapping(z: torch.Tensor) -> torch.Tensor:
        w = generator.mapping(z)
        return w if truncation == 1 else mean + truncation * (w - mean)

    suffix = "" if truncation == 1 else f", truncation {truncation:g}"
    return MappedSpace(
        f"GAN w ({generator.w_dim} dims{suffix})",
        mapping=mapping,
        decoder=generator.render,
        z_dim=generator.z_dim,
        device=device,
        source=(generator, truncation),
    )


# ---------------------------------------------------------------------------------------------------------
# Directions in a space: the "independent directions" of Sec. 2.1


def span_basis(x: torch.Tensor) -> torch.Tensor:
    """(min(N, D), D) orthonormal rows spanning the points ``x`` (N, D): ``Vh`` of the SVD ``x = U S Vh``.

    ``x @ span_basis(x).T`` are the points' coordinates in their own span, where
    :func:`fit_linear_classifier` fits when there are more dimensions than points; a caller fitting
    several classifiers on the same points projects them once and fits on the coordinates.
    """
    return torch.linalg.svd(x, full_matrices=False)[2]


def fit_linear_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float = 1e-3) -> torch.Tensor:
    """Multinomial logistic regression by L-BFGS (deterministic; no scikit-learn needed).

    Args:
        x: (N, D) features, best standardised.
        y: (N,) int64 labels in ``0..classes-1``.
        classes: number of classes.
        l2: weight decay on the weights (not the bias).

    Returns:
        (D + 1, classes) weights; the last row is the bias: ``logits = [x, 1] @ weights``.

    With more dimensions than points (a layer's activation, tens of thousands of numbers, read from a
    few dozen points) the fit runs in the points' own span: ``x = U S Vh`` (thin SVD), the classifier is
    fitted on the N coordinates ``U S`` and its weights mapped back by ``Vh``. It is the same fit, not an
    approximation: L-BFGS started at zero only ever moves along the span of the gradients, which lie in
    the span of the points, and the rotation ``Vh`` keeps every dot product and the weight decay as they
    were; only the cost changes (N instead of D numbers per class, 100x less at 65,536 dimensions).
    """
    x = x.double()
    if x.shape[1] > len(x):
        vh = span_basis(x)
        w = fit_linear_classifier(x @ vh.T, y, classes, l2)  # x @ Vh^T = U S, the points in their span
        return torch.cat([vh.T @ w[:-1], w[-1:]])
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # (N, D + 1)
    weights = torch.zeros(x1.shape[1], classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([weights], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x1 @ weights, y) + l2 * weights[:-1].pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weights.detach()


def linear_boundary(points: torch.Tensor, positive: np.ndarray) -> torch.Tensor:
    """Unit normal (D,) of the linear boundary separating ``positive`` points from the others.

    The InterFaceGAN recipe (Shen et al., 2020): fit a linear classifier for a binary attribute on
    latent points; its normal is the direction along which the attribute flips. Points are used as they
    are (not standardised), so the direction lives in the space's own coordinates.

    Args:
        points: (N, D).
        positive: (N,) bool.
    """
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise ValueError("linear_boundary needs points on both sides (positive has a single value)")
    x = points.flatten(1).double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    w = fit_linear_classifier((x - mean) / std, torch.as_tensor(positive, dtype=torch.long), 2)
    normal = (w[:-1, 1] - w[:-1, 0]) / std  # back to unstandardised coordinates
    return (normal / normal.norm()).float()


def pca_directions(points: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal directions of sampled points, the GANSpace recipe (Härkönen et al., 2020).

    Args:
        points: (N, D) samples of a space (GANSpace uses w = mapping(z)).
        k: how many directions.

    Returns:
        ``directions`` (k, D) unit vectors, and ``std`` (k,): the spread of the points along each, so
        that ``center + s * std[i] * directions[i]`` walks ``s`` standard deviations.
    """
    x = points.flatten(1).double()
    x = x - x.mean(0)
    _, sing, vt = torch.linalg.svd(x, full_matrices=False)
    return vt[:k].float(), (sing[:k] / np.sqrt(len(x) - 1)).float()


def walk(start: torch.Tensor, direction: torch.Tensor, distances) -> torch.Tensor:
    """Points ``start + d * direction`` for each distance ``d``.

    Args:
        start: (N, D) points.
        direction: (D,) direction.
        distances: (S,) distances, in the units of the space.

    Returns:
        (N, S, D) points; ``.flatten(0, 1)`` gives the (N * S, D) batch to decode.
    """
    d = torch.as_tensor(distances, dtype=start.dtype)
    return start[:, None, :] + d[None, :, None] * direction.to(start.dtype)[None, None, :]


__all__ = [
    "FactorSpace",
    "GaussianSpace",
    "MappedSpace",
    "Space",
    "autoencoder_space",
    "fit_linear_classifier",
    "span_basis",
    "gan_w_space",
    "gan_z_space",
    "lerp",
    "linear_boundary",
    "slerp",
    "pca_directions",
    "to_uint8",
    "vae_space",
    "walk",
]
