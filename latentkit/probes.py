"""Probes: read the shapes world's factors back from any image.

A probe turns an image (a clean render, a decoded latent, a diffusion sample) into the factors that would
have produced it. This is what lets latentkit *measure* what a layer carries, where the paper judged by eye.

Two parts:

- :class:`ProbeNet`, a small CNN trained on renders under the degradations generated images show (blur,
  noise, colour shift; see :func:`degrade`). It classifies shape, object colour, background colour, texture
  and size, and segments the object; the **centroid** is the mass centre of the predicted mask, and the
  **position** (grid cell) is read off the centroid, so position and centroid can never disagree.
- :meth:`Probes.in_distribution`: how much an image looks like a valid world image. The predicted factors
  are rendered again at the predicted centroid and compared with the image (analysis by synthesis): a
  clean render scores near 1, pure noise near 0.

Weights ship in ``data/probes/``; ``python -m latentkit.recipes probes`` retrains them.

Example::

    probes = load_probes()
    readout = probes.read(batch.images)  # images: (N, H, W, 3) uint8 or float in [0, 1]
    readout.labels["shape"], readout.centroids
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentkit.paths import load_weights
from latentkit.world import FACTORS, Factors, World

#: Factors the network classifies directly; ``position`` comes from the centroid instead.
CLASSIFIED = ("shape", "color", "background", "texture", "size")
PROBE_SIZE = 64  # the network sees 64x64 images; others are resized (area interpolation)
E_SCALE, P_SCALE = 0.08, 0.25  # error scales of the in-distribution score (see Probes.in_distribution)
ANALYSIS_BLUR = 1.5  # px; the in-distribution score compares images smoothed this much
#: An image "is in distribution" when its score reaches this. Calibrated in notebook 00: clean and degraded
#: renders (blur 1 px, noise 0.05, colour shift 0.05) score above it, images with no object, two half
#: images or noise below it.
IN_DISTRIBUTION_THRESHOLD = 0.6


# ---------------------------------------------------------------------------------------------------------
# Input checking: one place that turns what users pass into (N, 3, 64, 64) float in [0, 1]


def as_image_tensor(images, size: int | None = PROBE_SIZE) -> torch.Tensor:
    """Validate and convert square images to a (N, 3, size, size) float32 tensor in [0, 1].

    Args:
        images: (N, H, W, 3) array or tensor with H == W, uint8 in 0..255 or float in [0, 1]; or a list
            of PIL images. A single image (H, W, 3) must be given as a batch of one (``images[None]``).
        size: side to resize to (area interpolation); ``None`` keeps the given size.
    """
    if isinstance(images, list) and images and hasattr(images[0], "convert"):  # PIL images
        images = np.stack([np.asarray(im.convert("RGB")) for im in images])
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            x = torch.from_numpy(images.astype(np.float32) / 255.0)
        elif np.issubdtype(images.dtype, np.floating):
            x = torch.from_numpy(images.astype(np.float32))
        else:
            raise TypeError(f"images must be uint8 (0..255) or float (0..1), got dtype {images.dtype}")
    elif isinstance(images, torch.Tensor):
        if images.dtype == torch.uint8:
            x = images.float() / 255.0
        elif images.is_floating_point():
            x = images.float()
        else:
            raise TypeError(f"images must be uint8 (0..255) or float (0..1), got dtype {images.dtype}")
    else:
        raise TypeError(
            "images must be a NumPy array, a torch tensor or a list of PIL images, "
            f"got {type(images).__name__}"
        )
    if x.ndim == 3 and x.shape[-1] == 3:
        raise ValueError(
            f"got a single image of shape {tuple(x.shape)}; pass a batch (N, H, W, 3), e.g. images[None]"
        )
    if x.ndim != 4 or x.shape[-1] != 3:
        hint = ""
        if x.ndim == 4 and x.shape[1] == 3:
            hint = " It looks channels-first (N, 3, H, W): use images.permute(0, 2, 3, 1)."
        raise ValueError(f"images must have shape (N, H, W, 3), got {tuple(x.shape)}.{hint}")
    if x.numel() and (x.min() < -0.01 or x.max() > 1.01):
        raise ValueError(
            f"float images must lie in [0, 1], got values in [{x.min():.2f}, {x.max():.2f}]. "
            "Images in [-1, 1] (the diffusers convention) need (images + 1) / 2."
        )
    if x.shape[1] != x.shape[2]:
        raise ValueError(f"images must be square, got H x W = {x.shape[1]} x {x.shape[2]}")
    if x.shape[0] == 0:
        raise ValueError("got an empty batch of images")
    x = x.clamp(0, 1).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


# ---------------------------------------------------------------------------------------------------------
# Degradations: what generated images look like, so that probes stay accurate on them


def degrade(
    images: torch.Tensor,
    blur: float | torch.Tensor = 0.0,
    noise: float | torch.Tensor = 0.0,
    shift: float | torch.Tensor = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blur, add noise and shift colours, per image.

    Args:
        images: (N, 3, H, W) float in [0, 1] (see :func:`as_image_tensor`).
        blur: Gaussian blur sigma in pixels, a float or an (N,) tensor (0 = none).
        noise: standard deviation of additive Gaussian noise, float or (N,).
        shift: largest per-channel colour offset, float or (N,); each channel moves by a uniform amount
            in [-shift, shift].
        generator: for reproducible noise and shifts.

    Returns:
        (N, 3, H, W) float in [0, 1].
    """
    n = images.shape[0]

    def per_image(v):
        return torch.as_tensor(v, dtype=torch.float32).expand(n).clone()

    blur, noise, shift = per_image(blur), per_image(noise), per_image(shift)
    x = _gaussian_blur(images, blur)
    if (shift > 0).any():
        u = torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1
        x = x + u * shift[:, None, None, None]
    if (noise > 0).any():
        x = x + torch.randn(x.shape, generator=generator) * noise[:, None, None, None]
    return x.clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma; x: (N, C, H, W)."""
    if not (sigma > 0).any():
        return x
    radius = int(np.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)  # (N, K)
    k = torch.where(sigma[:, None] > 0, k, (t[None] == 0).float())
    k = k / k.sum(1, keepdim=True)
    n, c, h, w = x.shape
    kernel = k.repeat_interleave(c, 0)  # (N*C, K), one kernel per image channel
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


# ---------------------------------------------------------------------------------------------------------
# The network


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ProbeNet(nn.Module):
    """A small CNN: five classification heads and an object mask.

    ``forward(x)`` takes (N, 3, 64, 64) in [0, 1] and returns a dict of logits per factor in
    :data:`CLASSIFIED` and ``"mask"``: (N, 16, 16) logits of the object's coverage (one cell per 4x4
    pixels; the soft coverage still locates the centroid to well under a pixel).
    """

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(3, 3 * w // 4, 2), _conv(3 * w // 4, w))  # (N, w, 32, 32)
        self.mid = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # (N, 2w, 16, 16)
        self.deep = nn.Sequential(_conv(2 * w, 3 * w, 2), _conv(3 * w, 4 * w))  # (N, 4w, 8, 8)
        self.mask_head = nn.Sequential(
            nn.Conv2d(6 * w, w, 1), nn.ReLU(inplace=True), nn.Conv2d(w, 1, 3, padding=1)
        )
        self.trunk = nn.Sequential(nn.Linear(8 * w, 256), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({f: nn.Linear(256, len(FACTORS[f])) for f in CLASSIFIED})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h1 = self.stem((x - 0.5) / 0.5)  # (N, w, 32, 32)
        h2 = self.mid(h1)  # (N, 2w, 16, 16)
        h3 = self.deep(h2)  # (N, 4w, 8, 8)
        up = F.interpolate(h3, scale_factor=2, mode="nearest")  # (N, 4w, 16, 16)
        mask = self.mask_head(torch.cat([h2, up], 1))[:, 0]  # (N, 16, 16)
        pooled = torch.cat([h3.mean((2, 3)), h3.amax((2, 3))], 1)  # (N, 8w)
        z = self.trunk(pooled)
        out = {f: head(z) for f, head in self.heads.items()}
        out["mask"] = mask
        return out


def mask_centroid(mask_logits: torch.Tensor, image_size: int = PROBE_SIZE) -> torch.Tensor:
    """(N, 2) centroid (x, y) in pixels of an ``image_size`` image from (N, h, w) mask logits."""
    p = torch.sigmoid(mask_logits)
    h, w = p.shape[-2:]
    ys = (torch.arange(h, dtype=p.dtype) + 0.5) * (image_size / h)
    xs = (torch.arange(w, dtype=p.dtype) + 0.5) * (image_size / w)
    mass = p.sum((1, 2)).clamp_min(1e-6)
    cx = (p.sum(1) * xs).sum(1) / mass
    cy = (p.sum(2) * ys).sum(1) / mass
    return torch.stack([cx, cy], 1)


# ---------------------------------------------------------------------------------------------------------
# Reading factors back


@dataclass
class Readout:
    """What the probes read from N images.

    Attributes:
        labels: factor -> (N,) int64 predicted label, for every factor in :data:`latentkit.world.FACTORS`.
        confidence: factor -> (N,) float, the probability of the predicted label (position: of the mask).
        centroids: (N, 2) float32 (x, y) object centroid, in pixels of the image as given.
        object_mass: (N,) float, predicted object area in 64x64 pixels (near 0: no object found).
        image_size: side of the images that were read, in pixels.
    """

    labels: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray]
    centroids: np.ndarray
    object_mass: np.ndarray
    image_size: int = PROBE_SIZE

    def __len__(self) -> int:
        return len(self.centroids)

    def names(self, i: int) -> dict[str, str]:
        """The factor names read from image ``i``."""
        return {f: FACTORS[f][int(self.labels[f][i])] for f in FACTORS}

    def agreement(self, factors: Factors) -> dict[str, np.ndarray]:
        """Per factor, a (N,) bool array: does the readout agree with the given factors?"""
        return {f: self.labels[f] == getattr(factors, f) for f in FACTORS}


class Probes:
    """A trained :class:`ProbeNet` with the reading API. Build with :func:`load_probes`."""

    def __init__(self, net: ProbeNet, device: str = "cpu", batch_size: int = 512):
        self.net = net.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.world = World(PROBE_SIZE)

    def fingerprint_parts(self) -> dict:
        """What the readings depend on (:mod:`latentkit.reuse`): the network's weights, the batch size."""
        return {"net": self.net, "batch_size": self.batch_size}

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on (N, 3, 64, 64) in chunks; every output on the CPU."""
        outs = [
            {k: v.float().cpu() for k, v in self.net(chunk.to(self.device)).items()}
            for chunk in torch.split(x, self.batch_size)
        ]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def read(self, images) -> Readout:
        """Read every factor from ``images`` ((N, H, W, 3) uint8 or float in [0, 1], square)."""
        x = as_image_tensor(images, size=None)
        side = x.shape[-1]
        out = self._forward(as_image_tensor(images) if side != PROBE_SIZE else x)
        labels, confidence = {}, {}
        for f in CLASSIFIED:
            conf, lab = out[f].softmax(1).max(1)
            labels[f], confidence[f] = lab.numpy(), conf.numpy()
        centroids = mask_centroid(out["mask"]).numpy()  # in 64x64 pixels
        labels["position"] = self.world.cell_of(centroids)
        p = torch.sigmoid(out["mask"])
        # Position confidence: how crisp the mask is (share of its mass in confident pixels).
        confidence["position"] = ((p * (p > 0.5)).sum((1, 2)) / p.sum((1, 2)).clamp_min(1e-6)).numpy()
        return Readout(
            labels={f: labels[f].astype(np.int64) for f in FACTORS},  # the world's factor order
            confidence={f: confidence[f] for f in FACTORS},
            centroids=(centroids * side / PROBE_SIZE).astype(np.float32),
            object_mass=(p.sum((1, 2)) * 16).numpy(),  # 16x16 mask -> 64x64 pixel area
            image_size=int(side),
        )

    def rerender(self, readout: Readout) -> np.ndarray:
        """(N, 64, 64, 3) uint8: the world images the readout describes, objects at their centroids."""
        factors = Factors(**readout.labels, jitter=np.zeros((len(readout), 2), np.float32))
        centroids = readout.centroids * (PROBE_SIZE / readout.image_size)
        centers = self.world.center_from_centroid(factors.shape, factors.size, centroids)
        return self.world.render(factors, centers=centers).images

    def in_distribution(self, images, readout: Readout | None = None) -> np.ndarray:
        """(N,) score in [0, 1]: how much each image looks like a valid world image.

        Analysis by synthesis: each image is compared with the render of its own predicted factors, at
        64x64. A valid but imperfect image (a decoded latent, a diffusion sample) should not be punished,
        so the comparison forgives what such images show: both are smoothed (sigma 1.5 px, which averages
        pixel noise away), the render is also tried blurred as much as the image may be (sigma 0, 1 or
        1.5 px more; the best match counts), a uniform colour shift is removed (the per-channel median of
        the difference), and only the largest channel error per pixel counts. With ``e`` the mean and
        ``p`` the 99th percentile of that error (0..1 scale), the score is
        ``exp(-(e / E_SCALE + p / P_SCALE))``: the mean catches a wrong background or texture, the
        percentile a missing, extra or misshapen object. Notebook 00 shows the calibration on clean,
        degraded and broken images.
        """
        x = as_image_tensor(images)
        if readout is None:
            readout = self.read(images)
        redrawn = as_image_tensor(self.rerender(readout))
        n = len(x)
        seen = _gaussian_blur(x, torch.full((n,), ANALYSIS_BLUR))
        best = None
        for extra in (0.0, 1.0, 1.5):  # how blurred the image may be compared with a clean render
            sigma = torch.full((n,), float(np.hypot(ANALYSIS_BLUR, extra)))
            diff = seen - _gaussian_blur(redrawn, sigma)  # (N, 3, 64, 64)
            diff = diff - diff.flatten(2).median(2).values[:, :, None, None]  # forgive a colour shift
            flat = diff.abs().amax(1).flatten(1)  # (N, 64 * 64)
            cost = flat.mean(1) / E_SCALE + flat.quantile(0.99, dim=1) / P_SCALE
            best = cost if best is None else torch.minimum(best, cost)
        return torch.exp(-best).numpy()


def load_probes(device: str = "cpu") -> Probes:
    """The shipped probes from ``data/probes/`` (fp16 weights, used in fp32).

    Args:
        device: a torch device string or ``"auto"``.
    """
    from latentkit import resolve_device

    state, config = load_weights("probes", "probes.safetensors", recipe="probes")
    net = ProbeNet(width=config["width"])
    net.load_state_dict(state)
    return Probes(net, device=resolve_device(device))


def factor_accuracy(readout: Readout, factors: Factors, centroids: np.ndarray) -> dict[str, float]:
    """Per-factor accuracy of a readout against known factors, plus the mean centroid error in pixels."""
    acc = {f: float(v.mean()) for f, v in readout.agreement(factors).items()}
    acc["centroid_error_px"] = float(np.linalg.norm(readout.centroids - centroids, axis=1).mean())
    return acc


__all__ = [
    "CLASSIFIED",
    "IN_DISTRIBUTION_THRESHOLD",
    "ProbeNet",
    "Probes",
    "Readout",
    "as_image_tensor",
    "degrade",
    "factor_accuracy",
    "load_probes",
    "mask_centroid",
]
