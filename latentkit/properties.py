"""The paper's four properties of a latent space, as measurements (Sec. 1 and the list in Sec. 3).

The paper scores each candidate space by eye, with V (full compliance), ~ (partial) and X (complete
absence) in its Fig. 4. Here each property is a function of a :class:`latentkit.spaces.Space` and the
probes (:mod:`latentkit.probes`) that returns a value in [0, 1], a 95% bootstrap confidence interval and
the verdict those marks stand for. What each number means, in the paper's words and ours:

============  ===============================================  ============================================
property      the paper (Sec. 3)                                measured as
============  ===============================================  ============================================
density       "any point belonging to the latent space          share of points sampled from the space's own
              distribution outputs in-distribution images"      distribution whose image is in-distribution
smoothness    "moving around a point that generates an          straightness of decoded paths (PPL-style
              in-distribution image yields similar,             finite differences) x share of small steps
              in-distribution images"                           that stay in-distribution
organization  "the similarity between two points mirrors        mean of: rank agreement of latent and factor
              humanly perceived similarity, and the points      distances; chance-corrected linear
              in between are mixtures of the former images"     decodability of factors; midpoints that mix
                                                                the endpoints' factors
relevance     "a change in this space results in notable        share of the image's factors that change when
              changes to the output image"                      the point is resampled, relative to chance
============  ===============================================  ============================================

"Perceived similarity" and "in-distribution" are read by the probes: the factors they name, the
in-distribution score of :meth:`latentkit.probes.Probes.in_distribution`, and their internal features as
a stand-in for LPIPS (no pretrained perceptual network is available offline). Each function's docstring
gives the exact definition; :data:`VERDICTS` holds the thresholds. Notebooks 01 and 02 run them.

Example::

    results = measure_all(autoencoder_space(load_autoencoder()), load_probes(), seed=0)
    as_table(results)  # one row per property: value, 95% interval, verdict
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import spearmanr

from latentkit import full_precision
from latentkit.probes import IN_DISTRIBUTION_THRESHOLD
from latentkit.spaces import Space, fit_linear_classifier, span_basis
from latentkit.world import FACTORS

#: Fig. 4's marks from a value in [0, 1]: ``V`` at or above 0.7, ``~`` at or above 0.3, ``X`` below.
#: One table for all four properties, fixed before any model was measured.
VERDICTS: dict[str, float] = {"V": 0.7, "~": 0.3}

#: What the paper predicts for a latent space that synthesises "in the strict sense" (Sec. 2.1: "these
#: representations are dense, smooth, organized, and relevant").
STRICT_SYNTHESIS: dict[str, str] = {
    "density": "V",
    "smoothness": "V",
    "organization": "V",
    "relevance": "V",
}

PROPERTIES = ("density", "smoothness", "organization", "relevance")
_BOOTSTRAP = 200  # resamples for every confidence interval


def verdict(value: float, ci: tuple[float, float] | None = None) -> str:
    """The Fig. 4 mark of a value in [0, 1], from :data:`VERDICTS`.

    With its 95% interval ``ci``, the mark is the interval's: when the whole interval lies in one band,
    that band's mark; when it straddles a threshold, the marks of its two ends joined by a slash
    (``"~/V"``, ``"X/~"``, or ``"X/V"`` across both thresholds): undecided between them
    (:func:`is_undecided`). A mark is never read from the point value alone when an interval says the
    measurement cannot tell.
    """
    if ci is not None:
        low, high = verdict(ci[0]), verdict(ci[1])
        return low if low == high else f"{low}/{high}"
    if value >= VERDICTS["V"]:
        return "V"
    return "~" if value >= VERDICTS["~"] else "X"


def is_undecided(mark: str) -> bool:
    """Whether a :func:`verdict` mark is undecided (its interval straddles a threshold: ``"~/V"``)."""
    return "/" in mark


@dataclass
class PropertyResult:
    """One property measured on one space.

    Attributes:
        property: "density", "smoothness", "organization" or "relevance".
        space: the space's name.
        value: in [0, 1].
        ci: (low, high) 95% bootstrap interval of ``value``.
        verdict: "V", "~" or "X" where the interval lies in one band, else undecided between the marks of
            its ends, e.g. "~/V" (see :func:`verdict`).
        components: the parts the value is made of, and other diagnostics, by name.
        n: how many points (density, organization) or pairs (smoothness, relevance) the value was measured
            on, as each property function sets it; 0 when not given (a result made by hand).
    """

    property: str
    space: str
    value: float
    ci: tuple[float, float]
    verdict: str = field(init=False)
    components: dict[str, float] = field(default_factory=dict)
    n: int = 0

    def __post_init__(self) -> None:
        bad = [v for v in (self.value, *self.ci) if not -1e-9 <= v <= 1 + 1e-9]  # NaN fails too
        if bad:
            raise ValueError(
                f"{self.property} of {self.space}: value {self.value!r} and interval {self.ci!r} must lie "
                "in [0, 1]; a measurement outside it is a bug, not something to clip"
            )
        self.value = float(min(max(self.value, 0.0), 1.0))  # float rounding only
        self.ci = (float(min(max(self.ci[0], 0.0), 1.0)), float(min(max(self.ci[1], 0.0), 1.0)))
        self.verdict = verdict(self.value, self.ci)
        self.components = {k: float(v) for k, v in self.components.items()}

    def __str__(self) -> str:
        low, high = self.ci
        return f"{self.property} of {self.space}: {self.value:.2f} [{low:.2f}, {high:.2f}] {self.verdict}"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(replicates, [2.5, 97.5])
    return float(lo), float(hi)


def _bootstrap_mean(x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of the mean of ``x: (N,)`` over bootstrap resamples."""
    idx = rng.integers(0, len(x), (_BOOTSTRAP, len(x)))
    return _interval(x[idx].mean(1))


def _labels(readout) -> np.ndarray:
    """(N, n_factors) int labels from a readout, in :data:`FACTORS` order."""
    return np.stack([readout.labels[f] for f in FACTORS], axis=1)


# ---------------------------------------------------------------------------------------------------------
# Perceptual features: the probes' own view of an image, in place of LPIPS


@torch.no_grad()
def probe_features(probes, images) -> np.ndarray:
    """(N, F) float64 features in which squared distance plays the role of LPIPS.

    Two parts, each scaled to unit length (as LPIPS normalises each layer) and then weighted equally:
    the probes' 256-d trunk activations, which carry shape, colours, texture and size, and their 16x16
    object mask, which carries position. A probe object with its own ``features(images)`` method (a
    test stub) is used as is.

    Args:
        probes: a :class:`latentkit.probes.Probes`.
        images: (N, H, W, 3) uint8, or float in [0, 1] (array or tensor).
    """
    if hasattr(probes, "features"):
        return np.asarray(probes.features(images), np.float64)
    from latentkit.probes import as_image_tensor

    net, parts = probes.net, []
    for chunk in torch.split(as_image_tensor(images), 256):
        x = chunk.to(probes.device)
        h2 = net.mid(net.stem((x - 0.5) / 0.5))  # (B, 2w, 16, 16)
        h3 = net.deep(h2)  # (B, 4w, 8, 8)
        trunk = net.trunk(torch.cat([h3.mean((2, 3)), h3.amax((2, 3))], 1))  # (B, 256)
        up = torch.nn.functional.interpolate(h3, scale_factor=2, mode="nearest")
        mask = torch.sigmoid(net.mask_head(torch.cat([h2, up], 1))[:, 0]).flatten(1)  # (B, 256)
        unit = [p.double() / p.double().norm(dim=1, keepdim=True).clamp_min(1e-12) for p in (trunk, mask)]
        parts.append(torch.cat(unit, 1).cpu() / np.sqrt(2))
    return torch.cat(parts).numpy()


# ---------------------------------------------------------------------------------------------------------
# The four properties


#: Confidence of the first stage's interval in :func:`density`'s two-stage design: it stops early only when
#: this interval already lies in one band, so an early stop is rarer than a 95% interval would make it.
DENSITY_FIRST_LEVEL = 0.99


def density(space: Space, probes, n: int = 512, seed: int = 0, first: int | None = None) -> PropertyResult:
    """Share of points sampled from the space's own distribution that decode to in-distribution images.

    ``value = mean_i [ in_distribution(decode(x_i)) >= IN_DISTRIBUTION_THRESHOLD ]``, ``x_i ~ space.sample``
    (the threshold is the probes' calibrated one, :data:`latentkit.probes.IN_DISTRIBUTION_THRESHOLD`).
    The interval resamples the points used.

    With ``first`` (fewer than ``n``), two stages: the first ``first`` of the ``n`` draws are decoded, and
    when the :data:`DENSITY_FIRST_LEVEL` (99%) Jeffreys interval of their share already lies in one band of
    :data:`VERDICTS`, the measurement stops there (its ``n`` says so); otherwise the other draws are decoded
    too and the result is the one-stage result on the same ``n`` points. A space far from a threshold (the
    world's own factors at 1.00, a GAN at 0.18) is decided by a quarter of the points; one near a threshold
    gets all of them, where they are needed to decide it. The first stage decides a mark wrongly in at most
    about 1% of runs on either side (its interval is a 99% one), which adds little to the 2.5% a side of
    the 95% interval reported.
    """
    from scipy.stats import beta

    points = space.sample(n, _generator(seed))
    first = n if first is None else max(1, min(int(first), n))
    scores = np.asarray(probes.in_distribution(space.decode(points[:first])))
    if first < n:
        k, tail = int((scores >= IN_DISTRIBUTION_THRESHOLD).sum()), (1 - DENSITY_FIRST_LEVEL) / 2
        low = beta.ppf(tail, k + 0.5, first - k + 0.5) if k > 0 else 0.0
        high = beta.ppf(1 - tail, k + 0.5, first - k + 0.5) if k < first else 1.0
        if is_undecided(verdict(k / first, (low, high))):
            rest = np.asarray(probes.in_distribution(space.decode(points[first:])))
            scores = np.concatenate([scores, rest])
    ok = (scores >= IN_DISTRIBUTION_THRESHOLD).astype(float)
    return PropertyResult(
        "density",
        space.name,
        ok.mean(),
        _bootstrap_mean(ok, np.random.default_rng(seed)),
        components={"median in-distribution score": float(np.median(scores))},
        n=len(ok),
    )


def _trimmed(speed: np.ndarray) -> np.ndarray:
    """The local speeds between their 1st and 99th percentile, as StyleGAN trims them for PPL."""
    lo, hi = np.percentile(speed, [1, 99])
    return speed[(speed >= lo) & (speed <= hi)]


def _straightness(speed: np.ndarray, chord: np.ndarray) -> float:
    """``min(1, mean chord / mean trimmed speed)`` of paths with these local speeds and chords, (N,) each."""
    kept = _trimmed(speed)
    mean_speed = kept.mean() if kept.size else 0.0
    return 1.0 if mean_speed == 0 else min(1.0, float(chord.mean() / mean_speed))


def _straightness_replicates(speed: np.ndarray, chord: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(:data:`_BOOTSTRAP`,) straightness of paths resampled with replacement, each resample trimmed anew.

    The trimming is part of the estimate, so each resample redoes it. Resampling under the trimming of
    the whole sample instead made the interval too narrow wherever the speeds are heavy-tailed (on
    notebook 03's diffusion spaces, seeds 0-9: the EOS vector's value moved with a standard deviation of
    0.115 between seeds against 0.089 implied by its intervals; trimmed anew, 0.115; on lognormal speeds
    (sigma 2) the 95% interval held the mean estimate in 0.83 of samples, trimmed anew in 0.95).
    """
    n = len(speed)
    return np.array([_straightness(speed[i], chord[i]) for i in rng.integers(0, n, (_BOOTSTRAP, n))])


def smoothness(
    space: Space, probes, n: int = 256, seed: int = 0, epsilon: float = 1e-4, step: float = 0.1
) -> PropertyResult:
    """How gently the image changes as one moves through the space, and whether small steps stay valid.

    Two parts, multiplied (both must hold):

    * **straightness** of decoded paths, in the spirit of StyleGAN's perceptual path length (PPL;
      Karras et al., 2019). For ``n`` pairs of samples ``(a, b)`` and ``t ~ U(0, 1)``, the images at
      ``interpolate(a, b, t)`` and ``t + epsilon`` are compared in :func:`probe_features` space; the local
      speed ``|f(t + eps) - f(t)| / eps`` is trimmed to its 1st-99th percentile, as in StyleGAN. Then
      ``straightness = min(1, mean |f(b) - f(a)| / mean speed)``: the distance the path has to cover
      divided by the distance it does cover. A path that morphs evenly scores near 1; one that wiggles
      scores lower, and one that jumps at every step (a scrambled decoder) scores near 0. StyleGAN's PPL
      itself, ``mean |f(t + eps) - f(t)|^2 / eps^2`` (trimmed), is reported as a component.
    * **stays in distribution**: among sampled points whose image is in-distribution, the share whose
      neighbour ``perturb(x, step)`` (a step of a tenth of the space's own spread) is in-distribution too.
      Always this one conditional share, however few the valid origins (a space with none has no valid
      neighbourhood to stay in, and scores 0): with few of them its interval is wide, never a different
      quantity. The number of valid origins is reported as a component.

    The interval multiplies resampled straightness (each resample of the paths trimmed anew:
    :func:`_straightness_replicates`) by draws of the share's Jeffreys interval (a Beta posterior, honest
    with few valid origins), independently.
    """
    gen = _generator(seed)
    a, b = space.sample(n, gen), space.sample(n, gen)
    t = torch.rand(n, generator=gen) * (1 - epsilon)
    with full_precision():  # the path in fp32: images epsilon apart, a difference bf16 would drown
        f0 = probe_features(probes, space.decode_float(space.interpolate(a, b, t)))
        f1 = probe_features(probes, space.decode_float(space.interpolate(a, b, t + epsilon)))
        fa, fb = probe_features(probes, space.decode_float(a)), probe_features(probes, space.decode_float(b))
    speed = np.linalg.norm(f1 - f0, axis=1) / epsilon  # (n,)
    chord = np.linalg.norm(fa - fb, axis=1)

    origin_ok = np.asarray(probes.in_distribution(space.decode(a))) >= IN_DISTRIBUTION_THRESHOLD
    near = space.perturb(a, step, gen)
    near_ok = (np.asarray(probes.in_distribution(space.decode(near))) >= IN_DISTRIBUTION_THRESHOLD).astype(
        float
    )
    stays = near_ok[origin_ok]  # one neighbour per valid origin: 1 if it is valid too
    m, k = len(stays), int(stays.sum())

    rng = np.random.default_rng(seed)
    # The share's uncertainty: Jeffreys' interval (draws of Beta(k + 1/2, m - k + 1/2)), which stays honest
    # with a handful of valid origins, where resampling them would not (0 of 2 resamples to [0, 0]).
    stay_draws = rng.beta(k + 0.5, m - k + 0.5, _BOOTSTRAP) if m else np.zeros(_BOOTSTRAP)
    reps = _straightness_replicates(speed, chord, rng) * stay_draws
    straight, stay = _straightness(speed, chord), (k / m if m else 0.0)
    low, high = _interval(reps)
    # Jeffreys' interval reaches 1 when every neighbour stays valid, and 0 when none does (Brown, Cai and
    # DasGupta, 2001): the interval always holds the value.
    ci = (min(low, straight * stay), max(high, straight * stay))
    kept = _trimmed(speed)
    ppl = float((kept**2).mean()) if kept.size else 0.0
    return PropertyResult(
        "smoothness",
        space.name,
        straight * stay,
        ci,
        components={
            "straightness": straight,
            "stays in distribution": stay,
            "valid origins": int(origin_ok.sum()),
            "PPL (probe features)": ppl,
        },
        n=n,
    )


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def _chance_corrected(accuracy: np.ndarray, majority: np.ndarray) -> np.ndarray:
    """``(accuracy - majority) / (1 - majority)`` per factor; 0 where a factor never varies."""
    varies = majority < 1
    return np.where(varies, (accuracy - majority) / np.where(varies, 1 - majority, 1.0), 0.0)


#: Folds of the cross-validated linear decodability, and the weight decay of its classifiers: with a few
#: hundred points in up to 32 dimensions, the near-unregularised fit (1e-3) memorised its training third
#: and scored below chance on the rest (chance-corrected scores down to -2.25); 0.1 keeps a space without
#: linear information near 0 (within 0.35 for 256 random points, all factors) and reads a factor along one
#: direction of 32 at 0.80 (tests/test_properties.py).
DECODABILITY_FOLDS, DECODABILITY_L2 = 5, 0.1


def linear_decodability(points: torch.Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which factors a linear classifier reads from the point, cross-validated.

    The points are split into :data:`DECODABILITY_FOLDS` folds; for each fold a multinomial logistic
    regression per factor (weight decay :data:`DECODABILITY_L2`, features standardised on the other folds)
    is fitted on the other folds and tested on it, so every point is tested once, by a classifier that
    never saw it. Chance: the accuracy of always answering the training folds' most frequent label; a
    factor that never varies scores 0 (nothing there to organise).

    Args:
        points: (N, ...) points.
        labels: (N, n_factors) labels read from their images, in :data:`FACTORS` order.

    Returns:
        ``hits``: (N, n_factors) bool, point classified correctly when held out; ``majority``: (n_factors,)
        the chance accuracy. The per-factor score is ``_chance_corrected(hits.mean(0), majority)``.
    """
    x = points.flatten(1).double()
    n = len(x)
    folds = np.arange(n) % min(DECODABILITY_FOLDS, n)
    hits = np.zeros((n, len(FACTORS)), dtype=bool)
    chance_hits = np.zeros((n, len(FACTORS)), dtype=bool)
    for fold in np.unique(folds):
        train, test = torch.as_tensor(folds != fold), torch.as_tensor(folds == fold)
        mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
        x_train, x_test = (x[train] - mean) / std, (x[test] - mean) / std
        if x_train.shape[1] > len(x_train):  # one projection per fold serves the six factors' fits
            vh = span_basis(x_train)
            x_train, x_test = x_train @ vh.T, x_test @ vh.T
        x_test = torch.cat([x_test, torch.ones(int(test.sum()), 1, dtype=x.dtype)], 1)
        for j, factor in enumerate(FACTORS):
            k = len(FACTORS[factor])
            y = torch.as_tensor(labels[:, j], dtype=torch.long)
            if len(torch.unique(y[train])) == 1:  # nothing to learn: the classifier answers that label
                hits[test.numpy(), j] = (y[test] == y[train][0]).numpy()
            else:
                w = fit_linear_classifier(x_train, y[train], k, l2=DECODABILITY_L2)
                hits[test.numpy(), j] = ((x_test @ w).argmax(1) == y[test]).numpy()
            common = int(np.bincount(labels[train.numpy(), j], minlength=k).argmax())
            chance_hits[test.numpy(), j] = labels[test.numpy(), j] == common
    varies = np.array([len(np.unique(labels[:, j])) > 1 for j in range(len(FACTORS))])
    majority = np.where(varies, chance_hits.mean(0), 1.0)
    return hits, majority


def organization(space: Space, probes, n: int = 600, seed: int = 0, n_pairs: int = 200) -> PropertyResult:
    """Whether the space's geometry follows the images' factors; mean of three parts in [0, 1].

    * **distance agreement**: Spearman rank correlation (clipped at 0) between the Euclidean distance of
      two points and the number of factors in which their images differ, over all pairs of the first
      ``n_pairs`` points ("the similarity between two points mirrors ... similarity").
    * **linear decodability**: :func:`linear_decodability`, averaged over factors (each factor a
      direction, as in Sec. 2.1's example of a colour direction).
    * **midpoints mix the endpoints**: for ``n_pairs`` pairs, how often the image at
      ``interpolate(a, b, 0.5)`` takes each factor on which the endpoints' images differ from one of
      them; chance-corrected with what a random image would do (``2/k`` for a factor with ``k`` values),
      ``(observed - chance) / (1 - chance)``, clipped at 0 (0 if the endpoints never differ).

    Factors are read by the probes from the decoded images. The interval resamples pairs, test points and
    midpoint pairs.
    """
    gen = _generator(seed)
    points = space.sample(n, gen)
    labels = _labels(probes.read(space.decode(points)))  # (n, n_factors)
    rng = np.random.default_rng(seed)

    m = min(n_pairs, n)
    i, j = np.triu_indices(m, k=1)
    flat = points[:m].flatten(1).double()
    latent_dist = torch.cdist(flat, flat).numpy()[i, j]
    factor_dist = (labels[:m, None, :] != labels[None, :m, :]).sum(-1)[i, j]
    agreement = max(0.0, _spearman(latent_dist, factor_dist))

    hits, majority = linear_decodability(points, labels)
    per_factor = dict(zip(FACTORS, _chance_corrected(hits.mean(0), majority).tolist(), strict=True))
    decodable = max(0.0, float(np.mean(list(per_factor.values()))))

    a, b = space.sample(n_pairs, gen), space.sample(n_pairs, gen)
    ends = [_labels(probes.read(space.decode(p))) for p in (a, b, space.interpolate(a, b, 0.5))]
    la, lb, lm = ends
    differ = la != lb  # (n_pairs, n_factors): only factors the endpoints disagree on can be mixed
    from_an_end = ((lm == la) | (lm == lb)) & differ
    chance = differ * (2 / np.array([len(v) for v in FACTORS.values()]))

    def mixing(idx: np.ndarray) -> float:
        n_differ = differ[idx].sum()
        if n_differ == 0:  # the decoder never changes a factor: nothing to mix
            return 0.0
        o, c = from_an_end[idx].sum() / n_differ, chance[idx].sum() / n_differ
        return max(0.0, (o - c) / (1 - c))

    def decodability(idx: np.ndarray) -> float:
        return max(0.0, float(_chance_corrected(hits[idx].mean(0), majority).mean()))

    n_dist, n_test = len(latent_dist), len(hits)
    reps = []
    for _ in range(_BOOTSTRAP):
        d = rng.integers(0, n_dist, n_dist)
        parts = (
            max(0.0, _spearman(latent_dist[d], factor_dist[d])),
            decodability(rng.integers(0, n_test, n_test)),
            mixing(rng.integers(0, n_pairs, n_pairs)),
        )
        reps.append(np.mean(parts))
    mix = mixing(np.arange(n_pairs))
    return PropertyResult(
        "organization",
        space.name,
        float(np.mean([agreement, decodable, mix])),
        _interval(np.array(reps)),
        components={
            "distance agreement": agreement,
            "linear decodability": decodable,
            "midpoints mix endpoints": mix,
            **{f"decodability of {f}": v for f, v in per_factor.items()},
        },
        n=n,
    )


def relevance(space: Space, probes, n: int = 512, seed: int = 0) -> PropertyResult:
    """How much of the image changes when only this space changes: resample the point, compare factors.

    For ``n`` pairs of independent samples, the share of pairs whose images differ in factor ``f``,
    divided by ``1 - 1/k_f``, the share that would differ if the two images were drawn at random from
    the world; capped at 1 per factor and averaged over factors. A decoder that ignores its input scores
    0; one whose output is wholly determined by the point scores about 1. For a space that is one input
    among several (a diffusion model's noise with the prompt held fixed), the per-aspect components show
    *which* part of the image it decides (Sec. 3.1: structure, content, surface).

    The interval resamples the pairs.
    """
    from latentkit.world import ASPECTS

    gen = _generator(seed)
    a, b = space.sample(n, gen), space.sample(n, gen)
    changed = (_labels(probes.read(space.decode(a))) != _labels(probes.read(space.decode(b)))).astype(float)
    expected = np.array([1 - 1 / len(v) for v in FACTORS.values()])

    def value(idx: np.ndarray) -> float:
        return float(np.minimum(1.0, changed[idx].mean(0) / expected).mean())

    rng = np.random.default_rng(seed)
    ratio = np.minimum(1.0, changed.mean(0) / expected)
    per_factor = dict(zip(FACTORS, ratio.tolist(), strict=True))
    per_aspect = {aspect: float(np.mean([per_factor[f] for f in fs])) for aspect, fs in ASPECTS.items()}
    return PropertyResult(
        "relevance",
        space.name,
        value(np.arange(n)),
        _interval(np.array([value(rng.integers(0, n, n)) for _ in range(_BOOTSTRAP)])),
        components={
            **{f"aspect {k}": v for k, v in per_aspect.items()},
            **{f"factor {k}": v for k, v in per_factor.items()},
        },
        n=n,
    )


def direction_effect(space: Space, probes, start: torch.Tensor, direction: torch.Tensor, distance: float):
    """Which factors change when points move ``distance`` along ``direction``: share of images, per factor.

    Sec. 2.1's "independent directions": moving along a good colour direction changes the colour and
    nothing else. Returns a dict ``factor -> share of the N images whose factor changed``.

    Args:
        space: the space the points live in.
        probes: reads the factors of the decoded images.
        start: (N, D) points.
        direction: (D,) direction, in the space's own units.
        distance: how far to move.
    """
    before = _labels(probes.read(space.decode(start)))
    after = _labels(probes.read(space.decode(start + distance * direction.to(start.dtype))))
    return {f: float(v) for f, v in zip(FACTORS, (before != after).mean(0), strict=True)}


def measure_all(
    space: Space,
    probes,
    seed: int = 0,
    n: int = 512,
    reuse: bool = False,
    n_density: int | None = None,
    n_smooth: int | None = None,
) -> list[PropertyResult]:
    """The four properties of one space: organization and relevance with ``n`` samples, density and
    smoothness with their own counts. Each result's ``n`` says what it was measured on.

    ``n_density`` (default ``4 * n``) gives density its own number of points: it is the cheapest property
    (one decode per point, against two to four for the others), and a share's interval narrows as
    ``1 / sqrt(n)``, so 4x the points halve its interval (the two-stage VAE's density, about 0.35, was
    `X/~` at one seed and `~` at another with 256 points; `~` at seeds 0, 1 and 2 with 1,024). They are
    drawn in two stages (:func:`density` with ``first=n``): the first ``n``, which the other properties
    decode too, decide alone when their 99% interval lies in one band; only a space near a threshold gets
    the other ``n_density - n``. Spaces whose ``sample`` draws a prefix-consistent sequence (Gaussian
    noise, a pool's permutation) share their first ``n`` draws with the other properties, so those
    decodes are reused.

    ``n_smooth`` (default ``max(64, n // 2)``) is smoothness's number of paths: each costs about five
    decodes, so by default it gets half of ``n``, and never fewer than 64 (with fewer, the share of
    neighbours that stay valid is too coarse to place against a threshold).

    With ``reuse``, the results are loaded when the same space (same models), probes, ``seed``, ``n``,
    ``n_density``, ``n_smooth`` and code measured them before (:mod:`latentkit.reuse`: notebooks 03 and
    06 measure the spaces of 01 and 02 again), and stored for next time otherwise.
    """
    n_density = 4 * n if n_density is None else n_density
    n_smooth = max(64, n // 2) if n_smooth is None else n_smooth
    for name, value in (("n", n), ("n_density", n_density), ("n_smooth", n_smooth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"measure_all: {name} must be a whole number >= 2, got {value!r}")

    def compute() -> list[PropertyResult]:
        return [
            density(space, probes, n=n_density, seed=seed, first=min(n, n_density)),
            smoothness(space, probes, n=n_smooth, seed=seed),
            organization(space, probes, n=n, seed=seed, n_pairs=max(64, n // 3)),
            relevance(space, probes, n=n, seed=seed),
        ]

    if not reuse:
        return compute()
    from latentkit.reuse import reused

    return reused(
        "measure_all",
        compute,
        space=space,
        probes=probes,
        seed=seed,
        n=n,
        n_density=n_density,
        n_smooth=n_smooth,
    )


def as_table(results: list[PropertyResult]):
    """A pandas DataFrame, one row per (space, property): value, interval and verdict, rounded to 2."""
    import pandas as pd

    rows = [
        {
            "space": r.space,
            "property": r.property,
            "value": round(r.value, 2),
            "95% interval": f"[{r.ci[0]:.2f}, {r.ci[1]:.2f}]",
            "verdict": r.verdict,
        }
        for r in results
    ]
    return pd.DataFrame(rows).set_index(["space", "property"])


def verdict_grid(results: list[PropertyResult]):
    """Fig. 4 as a table: spaces as rows, the four properties as columns, verdict marks in the cells."""
    import pandas as pd

    grid = pd.DataFrame([{"space": r.space, "property": r.property, "verdict": r.verdict} for r in results])
    return grid.pivot(index="space", columns="property", values="verdict").reindex(columns=list(PROPERTIES))


__all__ = [
    "PROPERTIES",
    "PropertyResult",
    "STRICT_SYNTHESIS",
    "VERDICTS",
    "is_undecided",
    "as_table",
    "density",
    "direction_effect",
    "linear_decodability",
    "measure_all",
    "organization",
    "probe_features",
    "relevance",
    "smoothness",
    "verdict",
    "verdict_grid",
]
