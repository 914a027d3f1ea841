"""How well each model organism fits its world: the targets of issue 12, measured by the probes.

Every claim latentkit tests rests on the organisms. If their images are mostly invalid, density,
smoothness and organization measure the *fit*, not the *space*. This module holds one function per kind
of organism; each returns :class:`Row` s ``(organism, measure, value, target, met)``, with a 95%
interval where the value is a share, and ``benchmarks/bench_organism_quality.py`` prints them all as one
targets table.

=====================  ===========================================  ==========================================
organism               measure                                      target
=====================  ===========================================  ==========================================
autoencoder            held-out reconstructions valid               >= 0.90
                       each factor read back from reconstructions   >= 0.95 x the codec's own round trip
VAE                    held-out reconstructions valid               >= 0.90
                       samples from the prior valid                 >= 0.70
GAN                    samples valid                                >= 0.80
                       rarest factor value / its uniform share      >= 0.50 (over 1,024 samples)
                       improved precision, recall (k = 3)           >= 0.80, >= 0.60
diffusion organisms    held-out captions: shape read back           >= 0.90
                       samples' in-distribution / real renders'     >= 0.90
                       VAE round trip: shape read back              >= 0.95
=====================  ===========================================  ==========================================

"Valid" is the probes' in-distribution test (:meth:`latentkit.probes.Probes.in_distribution` at
:data:`latentkit.probes.IN_DISTRIBUTION_THRESHOLD`). The strict-sense organisms (autoencoder, VAE, GAN)
all draw through the frozen codec (:mod:`latentkit.models.codec`), so each reports, beside its density,
the **ceiling**: how often the codec's own round trip of real images passes. A space's density cannot
exceed what its last stage can draw. Rows without a target (densities without one, ceilings) have
``target`` and ``met`` None.

Example::

    rows = autoencoder_quality(n=512)
    print(format_table(rows))
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from latentkit.probes import IN_DISTRIBUTION_THRESHOLD
from latentkit.world import FACTORS, World

# ---------------------------------------------------------------------------------------------------------
# The targets (issue 12)

RECONSTRUCTIONS_VALID = 0.90  # autoencoder and VAE, held-out images
CODEC_SHARE = 0.95  # autoencoder: each factor read back at this share of the codec's own round trip
VAE_SAMPLES_VALID = 0.70
GAN_SAMPLES_VALID = 0.80
GAN_COVERAGE = 0.50  # the rarest value of any factor, as a share of its uniform share
GAN_PRECISION, GAN_RECALL = 0.80, 0.60
PR_K = 3  # neighbours of the k-NN radii (Kynkäänniemi et al., 2019, use k = 3)
DIFFUSION_SHAPE = 0.90  # held-out (shape, colour) captions
DIFFUSION_IN_DISTRIBUTION = 0.90  # samples' in-distribution score relative to real renders'
DIFFUSION_VAE_SHAPE = 0.95

#: The autoencoder's measures with a target: validity, then each factor read back (autoencoder_quality).
AUTOENCODER_MEASURES = (
    "held-out reconstructions valid",
    *(f"{f} read back from reconstructions" for f in FACTORS),
)

_CHUNK = 256  # images through a network at once
_HELDOUT_STREAM = 10**6  # images are drawn from default_rng([seed, 10**6]); training codes use [7, i < 256]


class Row(NamedTuple):
    """One measurement against its target.

    Attributes:
        organism: which model, e.g. ``"autoencoder (3 neurons)"``.
        measure: what was measured, e.g. ``"held-out reconstructions valid"``.
        value: the measurement.
        target: the value must reach it (``value >= target``); None: reported without a target.
        met: ``value >= target``, or None without a target.
        interval: 95% Wilson interval of ``value`` where it is (a multiple of) a share, else None.
        note: how the target was set, the ceiling beside it, or a diagnostic.
    """

    organism: str
    measure: str
    value: float
    target: float | None
    met: bool | None
    interval: tuple[float, float] | None = None
    note: str = ""


def _row(
    organism: str,
    measure: str,
    value: float,
    target: float | None = None,
    interval: tuple[float, float] | None = None,
    note: str = "",
) -> Row:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{organism}: {measure} is {value}; no quality row is reported with a NaN")
    met = None if target is None else bool(value >= target)
    return Row(organism, measure, value, None if target is None else float(target), met, interval, note)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / n`` (95% for ``z = 1.96``).

    Unlike the normal approximation it stays inside [0, 1] and is honest at shares near 0 or 1.
    """
    if n <= 0:
        raise ValueError(f"a share needs n >= 1 trials, got n={n}")
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _share_row(
    organism: str, measure: str, ok: np.ndarray, target: float | None = None, note: str = ""
) -> Row:
    ok = np.asarray(ok, bool)
    return _row(organism, measure, ok.mean(), target, wilson_interval(int(ok.sum()), len(ok)), note)


# ---------------------------------------------------------------------------------------------------------
# Improved precision and recall (Kynkäänniemi et al., 2019)


def _as_features(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array of features, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite features")
    return t


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) Euclidean distances, computed directly (exact zeros for equal rows, unlike the matmul form)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(features, k: int = PR_K, chunk: int = 1024) -> torch.Tensor:
    """(N,) distance from each point to its k-th nearest neighbour in the same set (itself excluded).

    Args:
        features: (N, D) with N > k.
    """
    x = _as_features(features, "features")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < len(x):
        raise ValueError(
            f"k must be an integer in 1..{len(x) - 1} (fewer than the {len(x)} points), got {k!r}"
        )
    # Sorted distances of a point start with its own 0, so its k-th neighbour is the (k + 1)-th smallest.
    return torch.cat([_distances(c, x).kthvalue(k + 1, dim=1).values for c in x.split(chunk)])


def in_manifold(reference, query, k: int = PR_K, chunk: int = 1024) -> np.ndarray:
    """(Q,) bool: does each query point fall inside some reference point's k-NN ball?

    The reference set's manifold is the union of balls around its points, each with the radius to that
    point's k-th nearest reference neighbour (:func:`knn_radii`); a query point is in it when
    ``|q - r_j| <= radius_j`` for some ``j``.

    Args:
        reference: (N, D) features, N > k.
        query: (Q, D) features.
    """
    ref, q = _as_features(reference, "reference"), _as_features(query, "query")
    if ref.shape[1] != q.shape[1]:
        raise ValueError(f"reference and query features differ in size: {ref.shape[1]} and {q.shape[1]}")
    radii = knn_radii(ref, k, chunk)  # (N,)
    inside = [(_distances(c, ref) <= radii[None]).any(1) for c in q.split(chunk)]
    return torch.cat(inside).numpy()


def precision_recall(real, fake, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones (Kynkäänniemi et al., 2019).

    ``precision``: share of generated points inside the real manifold (are the samples realistic?);
    ``recall``: share of real points inside the generated manifold (is all of the data covered?). Both
    manifolds are unions of k-NN balls (:func:`in_manifold`). Identical sets give (1, 1); far apart sets
    (0, 0); samples that are a subset of the real data precision 1 and recall below 1.

    Args:
        real: (N, D) features of real images, N > k.
        fake: (M, D) features of generated images, M > k.
        k: neighbours of the radii (the paper's 3).
    """
    return float(in_manifold(real, fake, k).mean()), float(in_manifold(fake, real, k).mean())


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _check_n(n, least: int = 1, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {n!r}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def real_images(n: int, seed: int = 0, split: str = "all"):
    """``n`` fresh world renders (a :class:`latentkit.world.Batch`), never among the strict organisms'
    training images (those come from ``default_rng([7, i])``, see
    :func:`latentkit.recipes.common.picture_codes`)."""
    return World(64).sample(n, seed=np.random.default_rng([seed, _HELDOUT_STREAM]), split=split)


def _device_of(model: torch.nn.Module) -> str:
    return str(next(model.parameters()).device)


@torch.no_grad()
def _through(fn: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, device: str) -> np.ndarray:
    """(N, 64, 64, 3) uint8 -> ``fn`` on (B, 3, 64, 64) floats in [0, 1] -> (N, 64, 64, 3) uint8."""
    from latentkit.spaces import to_uint8

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)  # (N, 3, 64, 64)
    out = [fn(c.to(device)).float().cpu() for c in x.split(_CHUNK)]
    return to_uint8(torch.cat(out).permute(0, 2, 3, 1))


def _valid(probes, images: np.ndarray, readout=None) -> np.ndarray:
    """(N,) bool: the probes' in-distribution test."""
    return np.asarray(probes.in_distribution(images, readout)) >= IN_DISTRIBUTION_THRESHOLD


def _sampled(space, probes, n: int, seed: int):
    """Images of ``n`` points of ``space``, their readout and whether each is valid: the draw of
    :func:`latentkit.properties.density` (``space.sample(n, Generator().manual_seed(seed))``)."""
    images = space.decode(space.sample(n, torch.Generator().manual_seed(seed)))  # (N, 64, 64, 3) uint8
    readout = probes.read(images)
    return images, readout, _valid(probes, images, readout)


def _codec_ceiling(codec, images: np.ndarray, device: str) -> np.ndarray:
    """(N, 64, 64, 3) uint8: the codec's own round trip (encode, decode) of real images."""
    return _through(lambda x: codec.decode(codec.encode(x)), images, device)


def _probes(probes, device: str):
    if probes is not None:
        return probes
    from latentkit.probes import load_probes

    return load_probes(device)


# ---------------------------------------------------------------------------------------------------------
# The strict-sense organisms


def autoencoder_quality(
    model=None, probes=None, n: int = 512, seed: int = 0, device: str = "cpu"
) -> list[Row]:
    """The autoencoder against its targets, on ``n`` held-out world images (:func:`real_images`).

    Rows: reconstructions valid (>= :data:`RECONSTRUCTIONS_VALID`); each of the six factors read back
    from the reconstructions, against :data:`CODEC_SHARE` x what the probes read from the codec's own
    round trip of the same images (the ceiling, in the row's note); density (samples of the Gaussian
    fitted to its codes, as :func:`latentkit.spaces.autoencoder_space` draws them; no target) and the
    codec round trip's validity beside it (the ceiling).

    Args:
        model: an :class:`latentkit.models.autoencoder.Autoencoder` (default: the shipped one).
        probes: a :class:`latentkit.probes.Probes` (default: the shipped ones).
        n: images for each measurement.
        seed: picks the images and the samples.
        device: where to load what is not given.
    """
    from latentkit.spaces import autoencoder_space

    n, seed = _check_n(n), _check_seed(seed)
    if model is None:
        from latentkit.models.autoencoder import load_autoencoder

        model = load_autoencoder(device)
    probes, device = _probes(probes, device), _device_of(model)
    name = f"autoencoder ({model.latent_dim} neurons)"

    batch = real_images(n, seed)
    recon = _through(model, batch.images, device)  # (N, 64, 64, 3)
    ceiling = _codec_ceiling(model.codec, batch.images, device)
    recon_read, ceiling_read = probes.read(recon), probes.read(ceiling)
    recon_agree, ceiling_agree = recon_read.agreement(batch.factors), ceiling_read.agreement(batch.factors)

    rows = [
        _share_row(name, AUTOENCODER_MEASURES[0], _valid(probes, recon, recon_read), RECONSTRUCTIONS_VALID)
    ]
    for f, measure in zip(FACTORS, AUTOENCODER_MEASURES[1:], strict=True):
        top = float(ceiling_agree[f].mean())
        rows.append(
            _share_row(
                name,
                measure,
                recon_agree[f],
                CODEC_SHARE * top,
                note=f"{CODEC_SHARE:.2f} x codec ceiling {top:.3f}",
            )
        )
    *_, ok = _sampled(autoencoder_space(model, device), probes, n, seed)
    rows.append(_share_row(name, "density: samples of the fitted Gaussian valid", ok, note="no target"))
    rows.append(_share_row(name, "ceiling: codec round trip valid", _valid(probes, ceiling, ceiling_read)))
    return rows


def vae_quality(model=None, probes=None, n: int = 512, seed: int = 0, device: str = "cpu") -> list[Row]:
    """The VAE against its targets: held-out reconstructions (decoded posterior means) valid
    (>= :data:`RECONSTRUCTIONS_VALID`), samples of its sampling distribution valid (>=
    :data:`VAE_SAMPLES_VALID`, its density: N(0, I) through the second stage when it has one), and beside
    them the codec round trip's validity (the ceiling) and, with a second stage, the first stage's own
    prior (N(0, I) on z: what the second stage is there to improve on).

    Args:
        model: a :class:`latentkit.models.vae.VAE` (default: the shipped one).
        probes, n, seed, device: as in :func:`autoencoder_quality`.
    """
    from latentkit.spaces import vae_space

    n, seed = _check_n(n), _check_seed(seed)
    if model is None:
        from latentkit.models.vae import load_vae

        model = load_vae(device)
    probes, device = _probes(probes, device), _device_of(model)
    name = f"VAE ({model.latent_dim} dims, beta {model.beta:g})"

    batch = real_images(n, seed)
    recon = _through(lambda x: model.decode(model.encode(x)[0]), batch.images, device)
    ceiling = _codec_ceiling(model.codec, batch.images, device)
    *_, ok = _sampled(vae_space(model, device), probes, n, seed)
    rows = [
        _share_row(name, "held-out reconstructions valid", _valid(probes, recon), RECONSTRUCTIONS_VALID),
        _share_row(name, "density: samples of the prior valid", ok, VAE_SAMPLES_VALID),
        _share_row(name, "ceiling: codec round trip valid", _valid(probes, ceiling)),
    ]
    if model.second_stage is not None:
        *_, alone = _sampled(vae_space(model, device, first_stage=True), probes, n, seed)
        rows.append(_share_row(name, "first stage alone: N(0, I) on z valid", alone))
    return rows


def factor_coverage(readout) -> tuple[float, tuple[float, float], str]:
    """The rarest factor value among images, as a share of its uniform share (1: all equally common).

    ``min over factors f and values v of (count(v) / N) * len(FACTORS[f])``: 0 when a value never
    appears, 1 when every value of every factor is exactly as common as the world makes it.

    Args:
        readout: a :class:`latentkit.probes.Readout` of the images.

    Returns:
        ``(ratio, interval, "factor=value")`` of the rarest value; the interval is the Wilson interval of
        that value's share, in the same units (it does not account for having picked the rarest).
    """
    n, worst = len(readout), None
    for f, values in FACTORS.items():
        counts = np.bincount(readout.labels[f], minlength=len(values))  # (K,)
        v = int(counts.argmin())
        if worst is None or counts[v] * len(values) < worst[0] * worst[1]:
            worst = (int(counts[v]), len(values), f, v)
    count, k, factor, v = worst
    low, high = wilson_interval(count, n)
    return count / n * k, (low * k, high * k), f"{factor}={FACTORS[factor][v]}"


def gan_quality(
    generator=None, probes=None, n: int = 1024, seed: int = 0, device: str = "cpu", autoencoder=None
) -> list[Row]:
    """The GAN against its targets, on ``n`` samples of ``z ~ N(0, I)`` and ``n`` real renders.

    Rows: samples valid (>= :data:`GAN_SAMPLES_VALID`, its density); beside it its ceiling, the validity
    of real images reconstructed by the autoencoder whose decoder the generator ends in (the GAN can draw
    no better than that decoder), and the codec round trip's; the rarest factor value's share of its
    uniform share, as the probes read the samples (>= :data:`GAN_COVERAGE`; :func:`factor_coverage`);
    improved precision and recall with k = 3 (>= :data:`GAN_PRECISION`, :data:`GAN_RECALL`;
    :func:`precision_recall`).

    Precision and recall live in the probes' feature space as :func:`latentkit.properties.probe_features`
    defines it: the probe CNN's penultimate features (the 256-d trunk that feeds its factor heads), scaled
    to unit length, beside its 16x16 object mask, scaled to unit length too. The trunk is pooled over the
    image and barely sees where the object is; the mask carries the position.

    Args:
        generator: a :class:`latentkit.models.gan.Generator` (default: the shipped one).
        probes, seed, device: as in :func:`autoencoder_quality`.
        n: samples and real renders (the issue's 1,024); at least ``PR_K + 1``.
        autoencoder: the :class:`latentkit.models.autoencoder.Autoencoder` whose bottleneck the GAN draws
            in (default: the shipped fitted one, ``load_autoencoder(fitted=True)``).
    """
    from latentkit.properties import probe_features
    from latentkit.spaces import gan_z_space

    n, seed = _check_n(n, least=PR_K + 1), _check_seed(seed)
    if generator is None:
        from latentkit.models.gan import load_gan

        generator = load_gan(device)
    probes, device = _probes(probes, device), _device_of(generator)
    name = f"GAN (z {generator.z_dim} dims)"

    batch = real_images(n, seed)
    samples, readout, ok = _sampled(gan_z_space(generator, device), probes, n, seed)
    ceiling = _codec_ceiling(generator.codec, batch.images, device)
    if autoencoder is None:
        from latentkit.models.autoencoder import load_autoencoder

        autoencoder = load_autoencoder(device, fitted=True)
    own = _through(autoencoder, batch.images, device)  # real images through the GAN's autoencoder
    ratio, interval, rarest = factor_coverage(readout)
    real_f, fake_f = probe_features(probes, batch.images), probe_features(probes, samples)
    measures = {
        "precision": (in_manifold(real_f, fake_f), GAN_PRECISION),
        "recall": (in_manifold(fake_f, real_f), GAN_RECALL),
    }
    return [
        _share_row(name, "density: samples valid", ok, GAN_SAMPLES_VALID),
        _share_row(name, "ceiling: its autoencoder's reconstructions valid", _valid(probes, own)),
        _share_row(name, "ceiling: codec round trip valid", _valid(probes, ceiling)),
        _row(
            name,
            f"rarest factor value / uniform share ({n} samples)",
            ratio,
            GAN_COVERAGE,
            interval,
            note=f"rarest: {rarest}",
        ),
        *(
            _share_row(name, f"improved {m} (k={PR_K}, probe features)", inside, target)
            for m, (inside, target) in measures.items()
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# The diffusion organisms


def diffusion_quality(
    organism: str = "organism", probes=None, n: int = 512, seed: int = 0, device: str = "cpu", pipe=None
) -> list[Row]:
    """A diffusion organism against its targets, from :func:`latentkit.models.tiny_sd.quality` on ``n``
    captions of the world's held-out (shape, colour) pairs.

    Rows: shape read back from the samples (>= :data:`DIFFUSION_SHAPE`); the samples' mean in-distribution
    score divided by that of real renders of the same factors (>= :data:`DIFFUSION_IN_DISTRIBUTION`; both
    means in the note: ``tiny_sd.quality`` reports mean scores, so this is a ratio of means, not of
    shares passing the threshold); shape read back after the VAE's round trip of the real renders
    (>= :data:`DIFFUSION_VAE_SHAPE`).

    Args:
        organism: ``"organism"`` (U-Net, ``data/tiny-sd``) or ``"organism-sd3"`` (MMDiT, ``data/tiny-sd3``).
        probes, seed, device: as in :func:`autoencoder_quality`.
        n: captions (images generated).
        pipe: the pipeline to measure instead of the shipped one (``organism`` then only names it).
    """
    from latentkit.models import ORGANISMS, load_model, tiny_sd

    if organism not in ORGANISMS:
        close = difflib.get_close_matches(str(organism), ORGANISMS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"organism must be one of {list(ORGANISMS)}, got {organism!r}.{hint}")
    n, seed = _check_n(n), _check_seed(seed)
    if pipe is None:
        pipe = load_model(organism, device).pipe
    probes = _probes(probes, device)
    name = f"{organism} ({'U-Net' if organism == 'organism' else 'MMDiT'})"

    report = tiny_sd.quality(pipe, probes, n=n, seed=seed, split="heldout")
    generated, real, vae = report["generated"], report["real"], report["vae_round_trip"]

    def share(measure: str, value: float, target: float) -> Row:
        hits = int(round(value * n))  # quality() reports the share of n images
        return _row(name, measure, value, target, wilson_interval(hits, n))

    ratio = generated["in_distribution"] / real["in_distribution"]
    return [
        share("held-out captions: shape read back", generated["shape"], DIFFUSION_SHAPE),
        _row(
            name,
            "samples' in-distribution score / real renders'",
            ratio,
            DIFFUSION_IN_DISTRIBUTION,
            note=f"mean score {generated['in_distribution']:.3f} vs real {real['in_distribution']:.3f}",
        ),
        share("VAE round trip: shape read back", vae["shape"], DIFFUSION_VAE_SHAPE),
    ]


# ---------------------------------------------------------------------------------------------------------
# All of them


def fitted_autoencoder_quality(probes=None, n: int = 512, seed: int = 0, device: str = "cpu") -> list[Row]:
    """:func:`autoencoder_quality` of the fitted autoencoder (``data/autoencoder-fitted/``): the smallest
    width of the recipe's sweep that reconstructs well, where the targets apply."""
    from latentkit.models.autoencoder import load_autoencoder

    return autoencoder_quality(load_autoencoder(device, fitted=True), probes, n=n, seed=seed, device=device)


#: Every part of the targets table, by the name the benchmark's ``--only`` takes.
PARTS: dict[str, Callable[..., list[Row]]] = {
    "autoencoder": autoencoder_quality,
    "autoencoder-fitted": fitted_autoencoder_quality,
    "vae": vae_quality,
    "gan": gan_quality,
    "organism": partial(diffusion_quality, "organism"),
    "organism-sd3": partial(diffusion_quality, "organism-sd3"),
}


def format_table(rows: list[Row]) -> str:
    """A plain-text targets table: organism, measure, value [95% interval], target, met, note."""
    cells = [("organism", "measure", "value [95% interval]", "target", "met", "note")]
    for r in rows:
        value = f"{r.value:.3f}" + (f" [{r.interval[0]:.3f}, {r.interval[1]:.3f}]" if r.interval else "")
        target = "" if r.target is None else f">= {r.target:.3f}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        cells.append((r.organism, r.measure, value, target, met, r.note))
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(5)) + "  " + c[5] for c in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


__all__ = [
    "PARTS",
    "Row",
    "autoencoder_quality",
    "diffusion_quality",
    "factor_coverage",
    "format_table",
    "gan_quality",
    "in_manifold",
    "knn_radii",
    "precision_recall",
    "real_images",
    "vae_quality",
    "wilson_interval",
]
