"""Which aspect of the image each layer carries: measuring an injection sweep (paper Sec. 3.1, Fig. 5).

The paper looks at the grid of Fig. 5 (one image per layer: O with that layer of E injected) and names
what each layer moved: the image's *structure*, its *content*, or its *surface* details and colours. Here
the same judgement is a number with a confidence interval, two ways:

- **with probes** (the shapes world and its organisms): the probes read the six factors of O, of E and of
  every injected image O_L. For each factor, O_L either took E's value or did not; a layer's share of an
  aspect is the mean over that aspect's factors (:data:`latentkit.world.ASPECTS`: position and size are
  structure, shape is content, colour, background and texture are surface). A factor of a run counts only
  when the probes read O *and* E as their prompts say (otherwise "took E's value" means nothing);
  :attr:`Reading.agreement` reports how often that held. Also measured: ``all`` (the mean over all six
  factors), ``whole`` (O_L took E's value in *every* factor, in the runs where all six count: the layer
  decided the whole image, as a strictly synthetic latent space would) and ``in_distribution`` (O_L is
  still a valid world image).
- **without probes** (real images): the similarity suite of :mod:`latentkit.similarity`, baseline
  subtracted as in the paper's public code: ``score(O_L, E) - score(O, E)`` for ``structure`` (SSIM),
  ``color`` (hue-saturation histograms) and ``texture`` (local binary patterns); colour and texture are
  the two surface measures.

Both give a long table of observations (one value per run, layer and measure) that :func:`aspect_table`
turns into a tidy summary with bootstrap intervals, resampling O/E *pairs* (runs of one pair with several
seeds are not independent). Pairs come from :func:`differing_pairs`, which makes O and E differ in every
factor, so that every factor can move.

Example::

    pairs = differing_pairs(8, seed=0)  # [(O caption, E caption), ...]
    runs = run_sweeps(pipe, pairs, seeds=[0, 1], num_inference_steps=25, guidance_scale=4.0)
    reading = read_with_probes(load_probes(), runs)
    aspect_table(reading.observations, layers=list_layers(pipe, shapes=False))

Used by notebook ``04_layer_injection``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latentkit.injection import SweepResult, sweep
from latentkit.layers import Layer, group_of, layer_label
from latentkit.probes import IN_DISTRIBUTION_THRESHOLD, Probes
from latentkit.similarity import SCORES, baseline_subtracted
from latentkit.world import ASPECTS, FACTORS, HELD_OUT, caption_of, parse_caption

#: The probes' summary rows, in display order: the paper's three aspects, then the whole-image tests.
PROBE_ASPECTS = (*ASPECTS, "all", "whole", "in_distribution")
#: The similarity suite's measures (as named in the observations) -> its summary rows, which are the keys of
#: :data:`latentkit.similarity.SCORES` (``color`` and ``texture`` both read the surface).
SIMILARITY_MEASURES = {"ssim": "structure", "hue_saturation": "color", "lbp": "texture"}
SIMILARITY_ASPECTS = tuple(SIMILARITY_MEASURES.values())
#: How O and E get their initial noise. ``"shared"``, the paper's protocol (its public code seeds both
#: images with one generator): E starts from O's noise and differs only in its prompt, so an injected
#: layer can only carry what the prompt changed. ``"separate"``: E starts from the noise of
#: ``seed + EDIT_SEED_OFFSET``, so E also differs in its composition, and a layer may carry that too.
NOISE_PROTOCOLS = ("shared", "separate")
EDIT_SEED_OFFSET = 1000

_ASPECT_OF = {factor: aspect for aspect, factors in ASPECTS.items() for factor in factors}
_COLUMNS = ["layer", "group", "depth", "aspect", "mean", "ci_low", "ci_high", "n"]
# One row per run, layer (its display name and its group, from the entry it names) and measure.
_OBSERVATION_COLUMNS = ["pair", "seed", "layer", "group", "measure", "value"]


# ---------------------------------------------------------------------------------------------------------
# O/E pairs


def differing_pairs(n: int, seed: int = 0, split: str = "train") -> list[tuple[str, str]]:
    """``n`` (O caption, E caption) pairs whose factors differ in every one of the six factors.

    O's factors are drawn uniformly; each of E's factors is drawn uniformly among the values O does not
    have. With ``split="train"`` neither image uses a held-out (shape, colour) pair of
    :data:`latentkit.world.HELD_OUT`, so the organism is asked only for combinations it was trained on.

    Args:
        n: number of pairs, at least 1.
        seed: seeds the draw; the same seed gives the same pairs.
        split: ``"train"`` (default) or ``"all"``.

    Returns:
        A list of ``n`` caption pairs, e.g. ``("a small red star at the center on a plain white
        background", "a large blue circle at the top left on a dotted black background")``.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int (number of O/E pairs), got {n!r}")
    if split not in ("train", "all"):
        raise ValueError(f"split must be 'train' or 'all', got {split!r}")
    rng = np.random.default_rng(seed)
    held = set(HELD_OUT) if split == "train" else set()
    pairs = []
    while len(pairs) < n:
        o = {f: str(rng.choice(values)) for f, values in FACTORS.items()}
        e = {f: str(rng.choice([v for v in values if v != o[f]])) for f, values in FACTORS.items()}
        if (o["shape"], o["color"]) in held or (e["shape"], e["color"]) in held:
            continue  # redraw the whole pair: rejecting keeps every factor uniform given the split
        pairs.append((caption_of(o), caption_of(e)))
    return pairs


# ---------------------------------------------------------------------------------------------------------
# Running the sweeps


@dataclass
class Run:
    """One injection sweep of one O/E pair from one seed.

    Attributes:
        pair: index of the O/E pair (the bootstrap resamples pairs).
        seed: O's noise seed.
        original: O's per-image arguments (``{"prompt": ..., "seed": ...}``).
        edit: E's.
        result: the sweep's images (``result.injected``: ``(K, H, W, 3)`` float in [0, 1]).
    """

    pair: int
    seed: int
    original: dict[str, Any]
    edit: dict[str, Any]
    result: SweepResult


def _as_args(image: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(image, str):
        return {"prompt": image}
    if isinstance(image, Mapping):
        if "seed" in image or "latents" in image:
            raise ValueError("leave 'seed'/'latents' out of a pair: run_sweeps sets them from `seeds`")
        return dict(image)
    raise TypeError(
        f"each side of a pair must be a prompt or a dict of arguments, got {type(image).__name__}"
    )


def iter_sweeps(
    pipe: Any,
    pairs: Sequence[tuple[str | Mapping[str, Any], str | Mapping[str, Any]]],
    seeds: Sequence[int] = (0,),
    layers: Sequence[str] | None = None,
    noise: str = "shared",
    **sweep_kwargs: Any,
) -> Iterator[Run]:
    """Yield one :class:`Run` per pair and seed (pair-major), one sweep each; see :func:`run_sweeps`."""
    if noise not in NOISE_PROTOCOLS:
        raise ValueError(f"noise must be one of {NOISE_PROTOCOLS}, got {noise!r}")
    offset = 0 if noise == "shared" else EDIT_SEED_OFFSET
    if not len(pairs):
        raise ValueError("no O/E pairs given; make some with differing_pairs(n)")
    if not len(seeds):
        raise ValueError("no seeds given; pass e.g. seeds=[0]")
    for i, (o, e) in enumerate(pairs):
        original, edit = _as_args(o), _as_args(e)
        for s in seeds:
            o_args = {**original, "seed": int(s)}
            e_args = {**edit, "seed": int(s) + offset}
            yield Run(i, int(s), o_args, e_args, sweep(pipe, o_args, e_args, layers, **sweep_kwargs))


def run_sweeps(
    pipe: Any,
    pairs: Sequence[tuple[str | Mapping[str, Any], str | Mapping[str, Any]]],
    seeds: Sequence[int] = (0,),
    layers: Sequence[str] | None = None,
    noise: str = "shared",
    reuse: bool = False,
    **sweep_kwargs: Any,
) -> list[Run]:
    """Run :func:`latentkit.injection.sweep` for every O/E pair and every seed.

    Args:
        pipe: a diffusers pipeline (the organism: :func:`latentkit.models.tiny_sd.load_organism`).
        pairs: ``(O, E)`` prompts (e.g. from :func:`differing_pairs`), or dicts of per-image arguments
            without a seed.
        seeds: O starts from noise ``seed``; E from the same noise (``noise="shared"``, the paper's
            protocol) or from ``seed + EDIT_SEED_OFFSET`` (``noise="separate"``).
        layers: layer names (default: every layer of :func:`latentkit.layers.list_layers`).
        noise: ``"shared"`` or ``"separate"`` (:data:`NOISE_PROTOCOLS`).
        reuse: load the runs when the same pipeline (same weights), pairs, seeds, layers, protocol,
            settings and code made them before (:mod:`latentkit.reuse`: notebooks 05 and 06 repeat 04's
            sweep); else run them and store them for next time.
        **sweep_kwargs: passed to the sweep (``num_inference_steps``, ``guidance_scale``, ``steps`` ...).

    Returns:
        ``len(pairs) * len(seeds)`` runs, pair-major. Cost: one generation at batch K + 2 per run.
    """

    def compute() -> list[Run]:
        return list(iter_sweeps(pipe, pairs, seeds, layers, noise, **sweep_kwargs))

    if not reuse:
        return compute()
    from latentkit.reuse import reused

    inputs = {"pairs": list(pairs), "seeds": list(seeds), "layers": layers, "noise": noise}
    return reused("run_sweeps", compute, pipe=pipe, **inputs, settings=sweep_kwargs)


# ---------------------------------------------------------------------------------------------------------
# Reading runs with the probes


@dataclass
class Reading:
    """What the probes read from a set of runs.

    Attributes:
        observations: long table, one row per run, layer and measure: columns ``pair``, ``seed``,
            ``layer`` (display name), ``group`` (of the layers it names, :func:`latentkit.layers.group_of`;
            ``""`` when they span groups), ``measure`` (a factor, ``"whole"`` or ``"in_distribution"``)
            and ``value`` (1.0 / 0.0; NaN for a factor that did not count in that run, see
            :func:`read_with_probes`,
            and for ``"whole"`` unless all six factors counted). Feed it to :func:`aspect_table`.
        agreement: one row per factor: the share of runs in which the probes read that factor of O as
            O's prompt says (column ``O``), of E as E's (``E``), of both (``both``: the runs in which
            the factor counts with ``count="prompted"``), and in which they read O and E differently
            (``differ``: the runs it counts with ``count="read"``); a last row ``in_distribution``
            gives the share of runs whose O, E, and both are valid world images.
    """

    observations: pd.DataFrame
    agreement: pd.DataFrame


def _prompt_factors(args: Mapping[str, Any], side: str) -> dict[str, str]:
    prompt = args.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError(
            f"{side} has no caption to compare the probes with (got prompt={prompt!r}); the probes read "
            "shapes-world images only. For other images use read_with_similarity."
        )
    return parse_caption(prompt)


def read_with_probes(probes: Probes, runs: Sequence[Run], count: str = "prompted") -> Reading:
    """Read O, E and every injected image of every run with the probes.

    For each layer L and factor f of a run: did O_L take E's value of f (as the probes read E)?

    Args:
        probes: :func:`latentkit.probes.load_probes`.
        runs: from :func:`run_sweeps`, with shapes-world captions as prompts.
        count: which factors of a run count. ``"prompted"`` (strict): those the probes read in O and in
            E as the prompts say. ``"read"``: those the probes read differently in O and E, whatever the
            prompts say; use it for a model that draws a factor poorly, knowing that a misread O_L may
            then match E's reading by chance.

    Returns:
        A :class:`Reading`.
    """
    if not len(runs):
        raise ValueError("no runs to read; make them with run_sweeps(pipe, pairs)")
    if count not in ("prompted", "read"):
        raise ValueError(f"count must be 'prompted' or 'read', got {count!r}")
    rows: list[tuple[int, int, str, str, float]] = []
    o_read, e_read, differ, ends_valid = [], [], [], []
    for run in runs:
        prompted = (_prompt_factors(run.original, "O"), _prompt_factors(run.edit, "E"))
        result = run.result
        images = np.concatenate([result.original[None], result.edit[None], result.injected])  # (K+2, H, W, 3)
        readout = probes.read(images)
        valid = probes.in_distribution(images, readout) >= IN_DISTRIBUTION_THRESHOLD  # (K+2,)
        ends_valid.append(valid[:2])
        label = readout.labels  # factor -> (K+2,) labels of [O, E, O_1, ..., O_K]
        o_ok = {f: FACTORS[f][label[f][0]] == prompted[0][f] for f in FACTORS}
        e_ok = {f: FACTORS[f][label[f][1]] == prompted[1][f] for f in FACTORS}
        o_read.append([o_ok[f] for f in FACTORS])
        e_read.append([e_ok[f] for f in FACTORS])
        differ.append([label[f][0] != label[f][1] for f in FACTORS])
        if count == "prompted":
            counted = [f for f in FACTORS if o_ok[f] and e_ok[f]]
        else:
            counted = [f for f, d in zip(FACTORS, differ[-1], strict=True) if d]
        for k, (name, entry) in enumerate(zip(result.names, result.entries, strict=True)):
            took = {f: float(label[f][2 + k] == label[f][1]) for f in counted}
            group = group_of(entry)
            for f in FACTORS:
                rows.append((run.pair, run.seed, name, group, f, took.get(f, np.nan)))
            whole = float(all(took.values())) if len(counted) == len(FACTORS) else np.nan
            rows.append((run.pair, run.seed, name, group, "whole", whole))
            rows.append((run.pair, run.seed, name, group, "in_distribution", float(valid[2 + k])))
    observations = pd.DataFrame(rows, columns=_OBSERVATION_COLUMNS)
    o_read, e_read, differ = np.array(o_read), np.array(e_read), np.array(differ)  # (R, 6) bool
    ends_valid = np.array(ends_valid)  # (R, 2) bool
    agreement = pd.DataFrame(
        {
            "O": o_read.mean(0),
            "E": e_read.mean(0),
            "both": (o_read & e_read).mean(0),
            "differ": differ.mean(0),
        },
        index=pd.Index(list(FACTORS), name="factor"),
    )
    agreement.loc["in_distribution"] = [
        ends_valid[:, 0].mean(),
        ends_valid[:, 1].mean(),
        ends_valid.all(1).mean(),
        np.nan,
    ]
    return Reading(observations, agreement)


# ---------------------------------------------------------------------------------------------------------
# Reading runs with the similarity suite (no probes)


def read_with_similarity(runs: Sequence[Run]) -> pd.DataFrame:
    """Score every injected image against E with the similarity suite, baseline subtracted.

    For each run and layer L: ``score(O_L, E) - score(O, E)`` for each of
    :data:`latentkit.similarity.SCORES` (structure: SSIM; color: hue-saturation histograms; texture:
    LBP histograms). Positive: injecting L made O more like E in that respect.

    Args:
        runs: from :func:`run_sweeps` (any pipeline, any prompts).

    Returns:
        Observations for :func:`aspect_table`: columns ``pair``, ``seed``, ``layer``, ``group`` (as in
        :class:`Reading`), ``measure`` (``"ssim"``, ``"hue_saturation"``, ``"lbp"``:
        :data:`SIMILARITY_MEASURES`) and ``value`` (in [-2, 2]).
    """
    if not len(runs):
        raise ValueError("no runs to read; make them with run_sweeps(pipe, pairs)")
    rows = []
    for run in runs:
        result = run.result
        for measure, aspect in SIMILARITY_MEASURES.items():
            score = SCORES[aspect]
            values = baseline_subtracted(score, result.injected, result.edit, result.original)  # (K,)
            rows += [
                (run.pair, run.seed, name, group_of(entry), measure, float(v))
                for name, entry, v in zip(result.names, result.entries, values, strict=True)
            ]
    return pd.DataFrame(rows, columns=_OBSERVATION_COLUMNS)


# ---------------------------------------------------------------------------------------------------------
# Summary with bootstrap intervals


def _aspects_of(measure: str) -> tuple[str, ...]:
    """The summary rows a measure counts towards: a factor counts for its aspect and for ``all``."""
    if measure in _ASPECT_OF:
        return (_ASPECT_OF[measure], "all")
    if measure in ("whole", "in_distribution"):
        return (measure,)
    if measure in SIMILARITY_MEASURES:
        return (SIMILARITY_MEASURES[measure],)
    raise ValueError(
        f"unknown measure {measure!r}; observations hold factors {list(FACTORS)}, 'whole', "
        f"'in_distribution' (read_with_probes) or {list(SIMILARITY_MEASURES)} (read_with_similarity)"
    )


def _bootstrap(
    values: np.ndarray, rng: np.random.Generator, n_boot: int, level: float
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values: (P,)`` over ``n_boot`` resamples."""
    if len(values) == 1:
        return float(values[0]), float(values[0])
    idx = rng.integers(0, len(values), (n_boot, len(values)))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values[idx].mean(1), [tail, 100 - tail])
    return float(low), float(high)


def aspect_table(
    observations: pd.DataFrame,
    layers: Sequence[Layer] | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per layer and aspect: the mean over O/E pairs with a bootstrap interval.

    Per run, a layer's aspect value is the mean of its measures in that aspect (NaN ignored); per pair,
    the mean over seeds; then the mean over pairs, with a percentile interval from resampling pairs.

    Args:
        observations: from :func:`read_with_probes` (``.observations``) or :func:`read_with_similarity`.
        layers: the pipeline's layers (:func:`latentkit.layers.list_layers`), for ``group`` and
            ``depth``; without them, ``depth`` is the sweep's order and ``group`` is the observations'
            own (found from each layer's entry by the reader, never from its display name).
        n_boot: bootstrap resamples.
        level: coverage of the interval (0.95: from the 2.5th to the 97.5th percentile).
        seed: seeds the resampling.

    Returns:
        Tidy table, one row per layer and aspect, ordered by depth: ``layer``, ``group``, ``depth``,
        ``aspect`` (:data:`PROBE_ASPECTS` or :data:`SIMILARITY_ASPECTS`), ``mean``, ``ci_low``,
        ``ci_high``, ``n`` (pairs with a value; a row with ``n == 0`` has NaN statistics).
    """
    missing = {"pair", "seed", "layer", "measure", "value"} - set(observations.columns)
    if missing:
        raise ValueError(
            f"observations lack the columns {sorted(missing)}; pass read_with_probes(...).observations "
            "or read_with_similarity(...)"
        )
    if observations.empty:
        raise ValueError("observations are empty: no run was read")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be at least 1")
    names = list(dict.fromkeys(observations["layer"]))  # the sweep's order
    if layers is not None:
        meta = {layer.name: (layer.group, layer.depth) for layer in layers}
        if unknown := [name for name in names if name not in meta]:
            raise ValueError(
                f"layers {unknown[:3]} of the observations are not in `layers`; pass list_layers(pipe)"
            )
    else:
        groups = (
            observations.drop_duplicates("layer").set_index("layer")["group"].fillna("")
            if "group" in observations.columns
            else pd.Series({name: group_of(name) for name in names})  # hand-made: each names one layer
        )
        meta = {name: (str(groups[name]), depth) for depth, name in enumerate(names)}

    expanded = [
        (row.pair, row.seed, row.layer, aspect, row.value)
        for row in observations.itertuples(index=False)
        for aspect in _aspects_of(row.measure)
    ]
    frame = pd.DataFrame(expanded, columns=["pair", "seed", "layer", "aspect", "value"])
    per_run = frame.groupby(["layer", "aspect", "pair", "seed"])["value"].mean()  # NaN skipped
    per_pair = per_run.groupby(level=["layer", "aspect", "pair"]).mean().dropna()
    by_cell = {key: cell.to_numpy(float) for key, cell in per_pair.groupby(level=["layer", "aspect"])}
    order = [a for a in dict.fromkeys((*PROBE_ASPECTS, *SIMILARITY_ASPECTS)) if a in set(frame["aspect"])]

    rng = np.random.default_rng(seed)
    rows = []
    for name in sorted(names, key=lambda n: meta[n][1]):
        group, depth = meta[name]
        for aspect in order:
            values = by_cell.get((name, aspect), np.array([]))
            if len(values):
                low, high = _bootstrap(values, rng, n_boot, level)
                rows.append((name, group, depth, aspect, float(values.mean()), low, high, len(values)))
            else:
                rows.append((name, group, depth, aspect, np.nan, np.nan, np.nan, 0))
    return pd.DataFrame(rows, columns=_COLUMNS)


@dataclass
class SplitRelevance:
    """The paper's question (Sec. 3.1) answered from the probes' aspect table: is the work split?

    Attributes:
        best: aspect -> ``(layer, share)`` of the layer that moves that aspect most; ``("-", nan)`` for
            an aspect no run counted (not measured).
        specialised: aspect -> layers *specialised* in it: share ``>= high`` there and ``<= low`` in
            each other aspect that was measured for that layer.
        most_factors: ``(layer, share)`` with the largest share of the counted factors moved.
        most_whole: ``(layer, share)`` with the largest share of runs in which O_L took E's value in
            every factor; ``("-", nan)`` when no run counted all six factors.
        high, low: the thresholds.
    """

    best: dict[str, tuple[str, float]]
    specialised: dict[str, list[str]]
    most_factors: tuple[str, float]
    most_whole: tuple[str, float]
    high: float
    low: float

    @property
    def unmeasured(self) -> list[str]:
        """Aspects no run counted (e.g. a factor the model does not draw recognisably)."""
        return [a for a, (_, share) in self.best.items() if np.isnan(share)]

    @property
    def split(self) -> bool:
        """Every *measured* aspect has at least one layer of its own ("split relevance")."""
        return all(layers for a, layers in self.specialised.items() if a not in self.unmeasured)

    @property
    def single_layer_decides(self) -> bool | None:
        """Some layer turns O into E in every factor in at least ``high`` of the runs; None: unmeasured."""
        return None if np.isnan(self.most_whole[1]) else self.most_whole[1] >= self.high

    def __str__(self) -> str:
        lines = [
            f"{'aspect':10s} {'moved most by':16s} share   "
            f"specialised layers (>= {self.high} there, <= {self.low} elsewhere)"
        ]
        for aspect, (layer, share) in self.best.items():
            if aspect in self.unmeasured:
                lines.append(f"{aspect:10s} {'-':16s}     -   not measured: no run counted")
                continue
            own = ", ".join(layer_label(n) for n in self.specialised[aspect]) or "none"
            lines.append(f"{aspect:10s} {layer_label(layer):16s} {share:5.1f}   {own}")
        layer, share = self.most_factors
        lines.append(
            f"largest share of the counted factors moved by one layer: {share:.1f} ({layer_label(layer)})"
        )
        measured = ", ".join(a for a in self.best if a not in self.unmeasured)
        lines.append(f"every measured aspect ({measured}) has a layer of its own: {self.split}")
        if self.single_layer_decides is None:
            lines.append(
                "a single layer decides the whole image: not measured (no run counted all six factors)"
            )
        else:
            layer, share = self.most_whole
            label = layer_label(layer)
            lines.append(
                f"largest share of runs in which one layer moved every factor: {share:.1f} ({label})"
            )
            lines.append(f"a single layer decides the whole image: {self.single_layer_decides}")
        return "\n".join(lines)


def split_relevance(table: pd.DataFrame, high: float = 0.5, low: float = 0.25) -> SplitRelevance:
    """Which layers are specialised, and does any single layer decide the whole image?

    Args:
        table: :func:`aspect_table` of :func:`read_with_probes` observations.
        high: a layer is specialised in an aspect when it moves it in at least this share of runs ...
        low: ... and each other measured aspect in at most this share (an aspect with no counted run
            cannot be checked and is left out, so read :attr:`SplitRelevance.unmeasured` too).

    Returns:
        A :class:`SplitRelevance`; ``print`` it for the statements of notebook ``04_layer_injection``.
    """
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    if missing := [a for a in PROBE_ASPECTS[:-1] if a not in set(table["aspect"])]:
        raise ValueError(
            f"the table has no {missing} rows: split_relevance reads the probes' shares "
            "(aspect_table(read_with_probes(...).observations)), not similarity scores"
        )
    grid = as_grid(table)  # (layers, aspects), depth order

    def top(aspect: str) -> tuple[str, float]:
        column = grid[aspect]
        return ("-", float("nan")) if column.isna().all() else (str(column.idxmax()), float(column.max()))

    best = {a: top(a) for a in ASPECTS}
    specialised = {
        a: [
            str(name)
            for name, row in grid.iterrows()
            if row[a] >= high and all(not row[b] > low for b in ASPECTS if b != a)  # NaN: not measured
        ]
        for a in ASPECTS
    }
    return SplitRelevance(best, specialised, top("all"), top("whole"), high, low)


def as_grid(table: pd.DataFrame, column: str = "mean") -> pd.DataFrame:
    """One column of :func:`aspect_table` as a layer x aspect grid (rows in depth order): the heat map."""
    if column not in table.columns:
        raise ValueError(f"column must be one of {list(table.columns)}, got {column!r}")
    layers = table.sort_values("depth")["layer"].drop_duplicates()
    aspects = list(dict.fromkeys(table["aspect"]))
    return table.pivot(index="layer", columns="aspect", values=column).loc[layers, aspects]


__all__ = [
    "EDIT_SEED_OFFSET",
    "NOISE_PROTOCOLS",
    "PROBE_ASPECTS",
    "SIMILARITY_ASPECTS",
    "SIMILARITY_MEASURES",
    "Reading",
    "Run",
    "SplitRelevance",
    "as_grid",
    "aspect_table",
    "differing_pairs",
    "iter_sweeps",
    "read_with_probes",
    "read_with_similarity",
    "run_sweeps",
    "split_relevance",
]
