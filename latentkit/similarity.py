"""How much of E's structure, colour and texture an injected image took on, for images with no known factors.

On the shapes world the probes read factors back exactly. Real images have no known factors, so the
paper's public code scores an injected image O_L against E (and O) with three classic measures:

- **structure**: SSIM of the grey-level images;
- **surface / colour**: correlation of the hue-saturation histograms (HSV, 50 x 60 bins);
- **surface / texture**: correlation of the histograms of uniform local binary patterns (8 points,
  radius 1).

A score is read against its baseline: how similar O already was to E
(:func:`baseline_subtracted`: ``score(O_L, E) - score(O, E)``), so a layer gets credit only for what
the injection added. Unlike the public code, the LBP histogram always has the ``P + 2`` bins of the
uniform patterns (not ``max + 1`` of each image), so two histograms always have the same bins.

Images are batches ``(N, H, W, 3)``, ``uint8`` or float in [0, 1]; a single image ``(H, W, 3)`` (or a
batch of one) on either side is compared with every image on the other. Used by the notebook on
layerwise representations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import local_binary_pattern
from skimage.metrics import structural_similarity

#: ``score(a, b) -> (N,)`` for two image batches.
Score = Callable[[np.ndarray, np.ndarray], np.ndarray]
_MIN_SIDE = 7  # SSIM's default 7 x 7 window


def as_float_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """``(N, H, W, 3)`` float64 in [0, 1] from ``uint8`` or float images; ``(H, W, 3)`` gets ``N = 1``.

    Raises:
        TypeError: for another dtype.
        ValueError: for another shape, fewer than 7 pixels a side, or floats outside [0, 1].
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, H, W, 3) or (H, W, 3) RGB, got shape {images.shape}")
    if min(images.shape[1:3]) < _MIN_SIDE:
        raise ValueError(f"{name} are {images.shape[1:3]} px; SSIM needs at least {_MIN_SIDE} a side")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or float in [0, 1], got dtype {images.dtype}")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(
            f"float {name} must lie in [0, 1], got [{images.min():.3g}, {images.max():.3g}]"
            " (divide uint8-range floats by 255)"
        )
    return images.astype(np.float64)


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both batches as float ``(N, H, W, 3)``, a batch of one broadcast against the other."""
    a, b = as_float_images(a, "a"), as_float_images(b, "b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"images differ in size: {a.shape[1:3]} vs {b.shape[1:3]}")
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(f"batches of {len(a)} and {len(b)} images: give equal sizes or one image")
    n = max(len(a), len(b))
    return np.broadcast_to(a, (n, *a.shape[1:])), np.broadcast_to(b, (n, *b.shape[1:]))


def _correlation(h1: np.ndarray, h2: np.ndarray) -> float:
    """Pearson correlation of two histograms (OpenCV's ``HISTCMP_CORREL``), 1 for equal flat ones."""
    d1, d2 = h1 - h1.mean(), h2 - h2.mean()
    denominator = np.sqrt((d1 * d1).sum() * (d2 * d2).sum())
    if denominator == 0.0:
        return float(np.array_equal(h1, h2))
    return float((d1 * d2).sum() / denominator)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity of the grey-level images, per pair.

    Args:
        a: ``(N, H, W, 3)`` or ``(H, W, 3)``, uint8 or float in [0, 1].
        b: same.

    Returns:
        ``(N,)`` in [-1, 1]; 1 for identical images.
    """
    a, b = _pairs(a, b)
    return np.array(
        [structural_similarity(rgb2gray(x), rgb2gray(y), data_range=1.0) for x, y in zip(a, b, strict=True)]
    )


def hue_saturation_histogram(image: np.ndarray, bins: tuple[int, int] = (50, 60)) -> np.ndarray:
    """2-d histogram of hue and saturation of one float image ``(H, W, 3)``: ``bins`` counts."""
    hsv = rgb2hsv(image)  # (H, W, 3), every channel in [0, 1]
    hist, _, _ = np.histogram2d(hsv[..., 0].ravel(), hsv[..., 1].ravel(), bins=bins, range=((0, 1), (0, 1)))
    return hist


def color_similarity(a: np.ndarray, b: np.ndarray, bins: tuple[int, int] = (50, 60)) -> np.ndarray:
    """Correlation of the hue-saturation histograms, per pair: ``(N,)`` in [-1, 1]."""
    a, b = _pairs(a, b)
    return np.array(
        [
            _correlation(hue_saturation_histogram(x, bins), hue_saturation_histogram(y, bins))
            for x, y in zip(a, b, strict=True)
        ]
    )


def lbp_histogram(image: np.ndarray, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Normalised histogram of the uniform LBP codes (``points + 2`` bins) of one float image."""
    grey = np.round(rgb2gray(image) * 255).astype(np.uint8)  # (H, W)
    codes = local_binary_pattern(grey, points, radius, method="uniform")  # values 0..points+1
    hist, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
    return hist / hist.sum()


def texture_similarity(a: np.ndarray, b: np.ndarray, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Correlation of the local-binary-pattern histograms, per pair: ``(N,)`` in [-1, 1]."""
    a, b = _pairs(a, b)
    return np.array(
        [
            _correlation(lbp_histogram(x, points, radius), lbp_histogram(y, points, radius))
            for x, y in zip(a, b, strict=True)
        ]
    )


#: The suite, by the aspect of the image each measure reads.
SCORES: dict[str, Score] = {
    "structure": ssim,
    "color": color_similarity,
    "texture": texture_similarity,
}


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORES` between two batches: ``{name: (N,)}``."""
    return {name: score(a, b) for name, score in SCORES.items()}


def baseline_subtracted(
    score: Score, injected: np.ndarray, edit: np.ndarray, original: np.ndarray
) -> np.ndarray:
    """How much more like E each injected image is than O was: ``score(O_L, E) - score(O, E)``.

    Args:
        score: one of :data:`SCORES` (or any ``score(a, b) -> (N,)``).
        injected: the images O_L, ``(K, H, W, 3)``.
        edit: E, ``(H, W, 3)``.
        original: O, ``(H, W, 3)``.

    Returns:
        ``(K,)``: positive where injecting the layer moved O towards E in that aspect. (The public
        code clips at 0; we keep the sign, which a plot can clip.)
    """
    baseline = score(original, edit)  # (1,)
    if baseline.shape != (1,):
        raise ValueError(f"original and edit must be single images, got {len(baseline)} pairs")
    return score(injected, edit) - baseline[0]
