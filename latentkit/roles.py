"""Layer roles (Sec. 3.1): which layer holds structure, content or surface, decided only where the data can.

The paper reads Fig. 5 by eye: this layer composes the structure, that one the content, another the
surface and colours. :mod:`latentkit.aspects` measures, per layer, the share of runs in which O took E's
value in each aspect. This module turns those shares into *roles*, with three safeguards a reading by eye
lacks:

- **only valid images decide**: a run counts for a layer only if its injected image passes the probes'
  in-distribution test; a layer with fewer than ``min_valid`` valid runs is ``"undetermined"``, never
  given a share of 0 or 1 (a broken image "takes" E's colour as easily as it loses its shape);
- **intervals decide, not means**: each share has a bootstrap interval over O/E pairs; a role whose
  interval straddles its threshold is ``"undecided"``;
- **ties are ties**: when several layers share the top share of an aspect, all are reported.

Then the comparisons the paper draws from the roles: where each aspect's own layer sits in the forward
pass, and whether two models put it in a different place (:func:`compare_places`, claim C4); and whether
layers that do the same job in two models are more alike than others (:func:`same_role_alignment`).
Used by notebooks ``04_layer_injection``, ``05_across_architectures`` and ``06_strict_and_broad_synthesis``.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentkit.aspects import aspect_table
from latentkit.layers import Layer
from latentkit.world import ASPECTS

#: A layer needs at least this many runs with a valid injected image before a role is read from it.
MIN_VALID = 4
#: Specialised in an aspect: share >= HIGH there and <= LOW in every other measured aspect.
HIGH, LOW = 0.5, 0.25
#: Two places in the forward pass differ when their relative depths are more than this apart.
APART = 0.25


def valid_only(observations: pd.DataFrame, min_valid: int = 1) -> pd.DataFrame:
    """The observations with every factor and ``whole`` value of an invalid injected image set to NaN.

    A run's injected image is valid when its ``in_distribution`` observation is 1; the
    ``in_distribution`` rows themselves are kept, so the share of valid images stays measurable. A layer
    with fewer than ``min_valid`` valid runs loses all its values (undetermined: a share read from one or
    two images is not evidence).
    """
    valid = observations[observations.measure == "in_distribution"].set_index(["pair", "seed", "layer"])
    if valid.empty:
        raise ValueError("the observations have no in_distribution rows: read them with read_with_probes")
    ok = valid["value"] == 1.0
    enough = ok.groupby(level="layer").sum() >= min_valid
    keys = pd.MultiIndex.from_frame(observations[["pair", "seed", "layer"]])
    keep = (
        ok.reindex(keys).fillna(False).to_numpy()
        & enough.reindex(observations["layer"]).fillna(False).to_numpy()
    )
    keep |= (observations.measure == "in_distribution").to_numpy()
    out = observations.copy()
    out.loc[~keep, "value"] = np.nan
    return out


def role_table(
    observations: pd.DataFrame,
    layers: Sequence[Layer],
    *,
    high: float = HIGH,
    low: float = LOW,
    min_valid: int = MIN_VALID,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    only: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per layer: its valid share, each aspect's share among valid runs, and its role.

    Args:
        observations: :attr:`latentkit.aspects.Reading.observations` (from ``read_with_probes``).
        layers: the pipeline's layers (:func:`latentkit.layers.list_layers`), in depth order.
        high, low: the specialisation thresholds (see :data:`HIGH`).
        min_valid: valid runs a layer needs (see :data:`MIN_VALID`).
        n_boot, level, seed: the bootstrap over O/E pairs.
        only: judge only these layers (e.g. without the trivial and duplicate ones of
            :func:`latentkit.injection.equivalences`); relative depths still count every layer.

    Returns:
        Indexed by layer name (depth order): ``depth`` (0..1, relative), ``group``, ``runs``, ``valid``
        (runs with a valid injected image), ``valid_share`` with ``valid_low``/``valid_high``, then per
        aspect ``<aspect>``, ``<aspect>_low``, ``<aspect>_high`` (NaN where undetermined), and ``role``:
        an aspect, ``"mixed"`` (one aspect surely at ``high`` or more and another surely above
        ``low``), ``"weak"`` (every
        aspect surely below ``high``), ``"undecided"`` (an interval straddles a threshold) or
        ``"undetermined"`` (fewer than ``min_valid`` valid runs).
    """
    if min_valid < 1:
        raise ValueError(f"min_valid={min_valid} must be at least 1")
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    keep = [x.name for x in layers if only is None or x.name in only]
    observations = observations[observations.layer.isin(keep)]
    filtered = valid_only(observations)
    table = aspect_table(filtered, layers, n_boot=n_boot, level=level, seed=seed).set_index(
        ["layer", "aspect"]
    )
    ids = observations[observations.measure == "in_distribution"]
    runs = ids.groupby("layer")["value"].size()
    valid = ids.groupby("layer")["value"].sum()
    last = max(len(layers) - 1, 1)
    rows = {}
    for layer in layers:
        name = layer.name
        if name not in runs.index or name not in keep:
            continue
        vid = table.loc[(name, "in_distribution")]
        row = {
            "depth": layer.depth / last if len(layers) > 1 else 0.0,
            "group": layer.group,
            "runs": int(runs[name]),
            "valid": int(valid[name]),
            "valid_share": vid["mean"],
            "valid_low": vid["ci_low"],
            "valid_high": vid["ci_high"],
        }
        enough = row["valid"] >= min_valid
        for aspect in ASPECTS:
            cell = table.loc[(name, aspect)] if (name, aspect) in table.index else None
            usable = enough and cell is not None and cell["n"] > 0
            row[aspect] = cell["mean"] if usable else np.nan
            row[f"{aspect}_low"] = cell["ci_low"] if usable else np.nan
            row[f"{aspect}_high"] = cell["ci_high"] if usable else np.nan
        row["role"] = _role(row, high, low) if enough else "undetermined"
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _role(row: Mapping[str, float], high: float, low: float) -> str:
    """The role that the intervals of one layer's aspects support, or "undecided"."""
    measured = [a for a in ASPECTS if not np.isnan(row[a])]
    if not measured:
        return "undetermined"
    lo = {a: row[f"{a}_low"] for a in measured}
    hi = {a: row[f"{a}_high"] for a in measured}
    sure_high = [a for a in measured if lo[a] >= high]
    if len(sure_high) >= 2:
        return "mixed"
    if len(sure_high) == 1:
        (a,) = sure_high
        others = [b for b in measured if b != a]
        if all(hi[b] <= low for b in others):
            return a
        return "mixed" if any(lo[b] > low for b in others) else "undecided"
    if all(hi[a] < high for a in measured):
        return "weak"
    return "undecided"


@dataclass
class OwnLayer:
    """An aspect's own layer in one model: the specialised layer(s) with the top share, ties kept."""

    aspect: str
    layers: list[str]
    share: float
    depth: float  # relative depth of the layer (mean over tied layers); NaN when there is none

    @property
    def tie(self) -> bool:
        return len(self.layers) > 1


def own_layer(roles: pd.DataFrame, aspect: str) -> OwnLayer:
    """The layer(s) whose role is ``aspect`` with the largest share; several when they tie exactly."""
    mine = roles[roles["role"] == aspect]
    if mine.empty:
        return OwnLayer(aspect, [], float("nan"), float("nan"))
    top = float(mine[aspect].max())
    tied = mine[np.isclose(mine[aspect], top, rtol=0, atol=1e-12)]
    return OwnLayer(aspect, list(tied.index), top, float(tied["depth"].mean()))


#: Roles that might still turn out to be any aspect's, with more valid images or pairs.
UNSURE_ROLES = ("undecided", "undetermined")


def has_own_layer(roles: pd.DataFrame, aspect: str) -> str:
    """Does ``aspect`` have a layer of its own (Sec. 3.1's split)? ``"yes"`` when some judged layer's
    role is ``aspect``; else ``"undecided"`` when some layer's role is still open
    (:data:`UNSURE_ROLES`: it could be ``aspect``'s with more data); else ``"no"``.

    A decision, not a list: which layers are specialised changes from seed to seed at a few pairs, while
    whether the aspect has one is what the paper claims (:func:`own_layer` names them).
    """
    if (roles["role"] == aspect).any():
        return "yes"
    return "undecided" if roles["role"].isin(UNSURE_ROLES).any() else "no"


def every_aspect_has_own_layer(roles: pd.DataFrame) -> str:
    """``"yes"`` when every aspect :func:`has_own_layer`, ``"no"`` when one surely has none, else
    ``"undecided"``."""
    answers = [has_own_layer(roles, aspect) for aspect in ASPECTS]
    if all(a == "yes" for a in answers):
        return "yes"
    return "no" if "no" in answers else "undecided"


@dataclass
class PlaceComparison:
    """Where two models put an aspect's own layer, with a bootstrap interval for the depth gap."""

    aspect: str
    a: OwnLayer
    b: OwnLayer
    gap: float
    ci: tuple[float, float]
    apart: float

    @property
    def verdict(self) -> str:
        """``"different place"``, ``"same place"``, ``"undecided"`` (the interval straddles ``apart``)
        or ``"not placed"`` (an aspect without a layer of its own in one of the models)."""
        if np.isnan(self.gap):
            return "not placed"
        if self.ci[0] > self.apart:
            return "different place"
        if self.ci[1] <= self.apart:
            return "same place"
        return "undecided"

    def __str__(self) -> str:
        if np.isnan(self.gap):
            return f"{self.aspect}: no layer of its own in both models: not placed"

        def where(o: OwnLayer) -> str:
            tie = " (tie)" if o.tie else ""
            return f"{'/'.join(o.layers)} at {o.depth:.2f}{tie}"

        return (
            f"{self.aspect}: {where(self.a)} vs {where(self.b)}; gap {self.gap:.2f} "
            f"[{self.ci[0]:.2f}, {self.ci[1]:.2f}] -> {self.verdict}"
        )


def compare_places(
    observations_a: pd.DataFrame,
    layers_a: Sequence[Layer],
    observations_b: pd.DataFrame,
    layers_b: Sequence[Layer],
    aspect: str,
    *,
    only_a: Collection[str] | None = None,
    only_b: Collection[str] | None = None,
    apart: float = APART,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    **role_kwargs,
) -> PlaceComparison:
    """Claim C4 for one aspect: do two models hold it at a different relative depth?

    ``only_a`` / ``only_b``: the layers judged in each model (see :func:`role_table`). The own layer of each
    model (:func:`own_layer` of :func:`role_table`) is found again in ``n_boot`` resamples of each model's
    O/E pairs, so the interval of the depth gap includes the uncertainty of *which* layer is the aspect's
    own (a near-tie widens it). Within a resample the rule is applied to the resampled means (a nested
    bootstrap per resample would cost ``n_boot`` squared); a resample in which a model has no layer of its
    own counts as an infinite gap, so an unsure place widens the interval instead of vanishing.
    """
    if aspect not in ASPECTS:
        raise ValueError(f"aspect must be one of {list(ASPECTS)}, got {aspect!r}")
    rng = np.random.default_rng(seed)
    models = ((observations_a, layers_a, only_a), (observations_b, layers_b, only_b))
    own = [
        own_layer(role_table(o, ls, seed=seed, only=only, **role_kwargs), aspect) for o, ls, only in models
    ]
    gap = abs(own[0].depth - own[1].depth)
    if np.isnan(gap):
        return PlaceComparison(aspect, own[0], own[1], gap, (np.nan, np.nan), apart)
    high, low = role_kwargs.get("high", HIGH), role_kwargs.get("low", LOW)
    min_valid = role_kwargs.get("min_valid", MIN_VALID)
    arrays = [_per_pair(o, ls, only) for o, ls, only in models]
    gaps = []
    for _ in range(n_boot):
        depths = [_resampled_own_depth(*arr, aspect, rng, high, low, min_valid) for arr in arrays]
        gaps.append(abs(depths[0] - depths[1]))
    gaps = np.array(gaps)
    if np.isnan(gaps).any():  # in some resamples a model has no layer of its own: the place is unsure
        gaps = np.where(np.isnan(gaps), np.inf, gaps)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(gaps, [tail, 100 - tail])
    return PlaceComparison(aspect, own[0], own[1], float(gap), (float(low), float(high)), apart)


def _per_pair(observations: pd.DataFrame, layers: Sequence[Layer], only: Collection[str] | None):
    """Arrays for fast resampling: per layer, aspect and pair the mean over valid runs, and valid counts.

    Returns:
        ``(shares, valid, depths)``: ``(L, A, P)`` shares (NaN: no valid counted run), ``(L, P)`` valid runs,
        ``(L,)`` relative depths, for the judged layers in depth order.
    """
    keep = [x for x in layers if only is None or x.name in only]
    last = max(len(layers) - 1, 1)
    names = [x.name for x in keep]
    filtered = valid_only(observations[observations.layer.isin(names)])
    pairs = np.unique(observations["pair"])
    of_aspect = {f: a for a, fs in ASPECTS.items() for f in fs}
    rows = filtered[filtered.measure.isin(list(of_aspect))].assign(aspect=lambda d: d.measure.map(of_aspect))
    per_run = rows.groupby(["layer", "aspect", "pair", "seed"])["value"].mean()
    per_pair = per_run.groupby(level=["layer", "aspect", "pair"]).mean()
    index = pd.MultiIndex.from_product([names, list(ASPECTS), pairs], names=["layer", "aspect", "pair"])
    shares = per_pair.reindex(index).to_numpy(float).reshape(len(names), len(ASPECTS), len(pairs))
    ids = observations[(observations.measure == "in_distribution") & observations.layer.isin(names)]
    valid = (
        ids.groupby(["layer", "pair"])["value"]
        .sum()
        .reindex(pd.MultiIndex.from_product([names, pairs]), fill_value=0)
    )
    depths = np.array([x.depth / last for x in keep])
    return shares, valid.to_numpy(float).reshape(len(names), len(pairs)), depths


def _resampled_own_depth(shares, valid, depths, aspect, rng, high, low, min_valid) -> float:
    """The own layer's depth of ``aspect`` in one resample of the pairs, by the resampled means."""
    drawn = rng.integers(0, shares.shape[2], shares.shape[2])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(shares[:, :, drawn], axis=2)  # (L, A)
    enough = valid[:, drawn].sum(1) >= min_valid
    a = list(ASPECTS).index(aspect)
    others = np.delete(means, a, axis=1)
    mine = enough & (means[:, a] >= high) & np.all(~(others > low), axis=1)
    if not mine.any():
        return float("nan")
    top = np.nanmax(np.where(mine, means[:, a], -np.inf))
    tied = mine & np.isclose(means[:, a], top, rtol=0, atol=1e-12)
    return float(depths[tied].mean())


def deciding_sets(
    observations: pd.DataFrame,
    entries: Sequence[tuple[str, ...]],
    *,
    min_valid: int = MIN_VALID,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """How completely each layer or combination turns O into E, from valid injected images only.

    Sec. 4 says the image comes from "the distributed contribution of the several specialized
    representations": then some *set* of layers should decide all six factors where no single layer does.

    Args:
        observations: ``read_with_probes`` observations of sweeps over ``entries`` (single layers and
            combinations, e.g. from :func:`latentkit.injection.combinations`).
        entries: the injected layer sets, as the sweeps' :attr:`~latentkit.injection.SweepResult.entries`.

    Returns:
        One row per entry (index: its display name): ``size``, ``valid`` (runs with a valid image),
        ``whole`` (share of valid runs in which O_L took E's value in every factor) with ``whole_low`` /
        ``whole_high``, and ``all`` (share of the factors moved) with its interval; NaN where fewer than
        ``min_valid`` runs are valid.
    """
    from latentkit.layers import combination_name

    filtered = valid_only(observations)
    table = aspect_table(filtered, n_boot=n_boot, level=level, seed=seed).set_index(["layer", "aspect"])
    ids = observations[observations.measure == "in_distribution"].groupby("layer")["value"].sum()
    rows = {}
    for entry in entries:
        name = combination_name(entry if len(entry) > 1 else entry[0])
        if name not in ids.index:
            continue
        row = {"size": len(entry), "valid": int(ids[name])}
        for aspect in ("whole", "all"):
            cell = table.loc[(name, aspect)] if (name, aspect) in table.index else None
            ok = row["valid"] >= min_valid and cell is not None and cell["n"] > 0
            row[aspect] = cell["mean"] if ok else np.nan
            row[f"{aspect}_low"] = cell["ci_low"] if ok else np.nan
            row[f"{aspect}_high"] = cell["ci_high"] if ok else np.nan
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def smallest_deciding_set(sets: pd.DataFrame, high: float = HIGH) -> tuple[int | None, str, list[str]]:
    """The fewest layers that together decide the whole image in at least ``high`` of the valid runs.

    Returns:
        ``(size, verdict, names)``: the smallest size with a set whose ``whole`` interval lies at or above
        ``high`` (``verdict`` ``"decided"``, ``names`` those sets); else the smallest whose interval
        reaches ``high`` (``"undecided"``); else, when some set had too few valid runs to be read (its
        ``whole`` is NaN), ``(None, "undecided", [])``: that set might still decide it; else
        ``(None, "none of the sets tried", [])``: every set tried surely falls short.
    """
    for column, verdict in (("whole_low", "decided"), ("whole_high", "undecided")):
        hits = sets[sets[column] >= high]
        if len(hits):
            size = int(hits["size"].min())
            return size, verdict, list(hits[hits["size"] == size].index)
    if sets["whole"].isna().any():
        return None, "undecided", []
    return None, "none of the sets tried", []


@dataclass
class SameRoleAlignment:
    """Are layers with the same role in two models more aligned than other pairs? (Sec. 3.1, PRH)"""

    same: float
    other: float
    n_same: int
    p: float

    @property
    def verdict(self) -> str:
        if np.isnan(self.p):
            return "not testable"
        return "yes" if self.p < 0.05 else "no"


def same_role_alignment(
    matrix: pd.DataFrame,
    roles_a: Mapping[str, str],
    roles_b: Mapping[str, str],
    n_perm: int = 5000,
    seed: int = 0,
) -> SameRoleAlignment:
    """Mean alignment of same-role layer pairs against other pairs, with a permutation test.

    Args:
        matrix: alignment of every layer of model a (rows) with every layer of b (columns).
        roles_a, roles_b: layer -> role (:func:`role_table`'s ``role``), keyed like the matrix.
        n_perm: permutations of the role labels (both models' at once).

    Returns:
        A :class:`SameRoleAlignment`; ``p`` is the share of permutations whose same-minus-other
        difference is at least the observed one (NaN when no pair, or every pair, shares a role).
    """
    ra = np.array([roles_a[r] for r in matrix.index])
    rb = np.array([roles_b[c] for c in matrix.columns])
    values = matrix.to_numpy(float)

    def split(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
        same = (x[:, None] == y[None, :]) & np.isin(x, list(ASPECTS))[:, None]
        if not same.any() or same.all():
            return np.nan, np.nan, int(same.sum())
        return float(values[same].mean()), float(values[~same].mean()), int(same.sum())

    same, other, n_same = split(ra, rb)
    if np.isnan(same):
        return SameRoleAlignment(same, other, n_same, float("nan"))
    rng = np.random.default_rng(seed)
    diffs = [split(rng.permutation(ra), rng.permutation(rb)) for _ in range(n_perm)]
    diffs = np.array([s - o for s, o, _ in diffs if not np.isnan(s)])
    return SameRoleAlignment(same, other, n_same, float(np.mean(diffs >= same - other)))


__all__ = [
    "UNSURE_ROLES",
    "every_aspect_has_own_layer",
    "has_own_layer",
    "APART",
    "HIGH",
    "LOW",
    "MIN_VALID",
    "OwnLayer",
    "PlaceComparison",
    "SameRoleAlignment",
    "compare_places",
    "deciding_sets",
    "own_layer",
    "role_table",
    "same_role_alignment",
    "smallest_deciding_set",
    "valid_only",
]
