"""The synthesis index: how much of the image can a single space decide on its own? (paper Sec. 1-3)

The paper's central distinction, as a number. A representation synthesises *in the strict sense* when,
"taken in isolation", it provides the (near) complete representation of the output (Sec. 1); a model
synthesises *in the broad sense* when the full information exists only across several specialised
representations (Sec. 3, conclusion: "We could not find any layer representation in these models that
would entirely be responsible for the output").

Measured with injection (:mod:`latentkit.injection`, :mod:`latentkit.aspects`): generate O and E, let
E's version of *one* space (a layer, or a whole input such as an autoencoder's code) into O's run, and let
the probes read which of the image's factors now follow E. For each space s and factor f,

    decided(s, f) = share of O/E pairs in which O_s took E's value of f   (pairs with f counted)
    share(s)      = mean over the factors of decided(s, f)                 "the share it decides alone"
    index         = max over the model's spaces of share(s)

An autoencoder's bottleneck decides every factor (its decoder has no other input): share 1, the strict
sense. Six spaces that each decide one factor give 1/6 each: the work is split and no space decides the
image. Where each diffusion organism (U-Net, transformer) sits between the two is the open question.

Two sources of observations, in the long format of :func:`latentkit.aspects.read_with_probes`:

- layers of a diffusion pipeline: ``read_with_probes(probes, run_sweeps(pipe, pairs)).observations``;
- the inputs of any model that renders from a few spaces (an autoencoder's code, a GAN's z, a diffusion
  model's noise and prompt): :func:`input_injection`, or :func:`space_injection` for one :class:`Space`;
  for a diffusion pipeline's noise and prompt with the *same* O/E pairs and counting as its layers,
  :func:`add_input_injection` adds them to the sweeps before they are read.

Example::

    reading = read_with_probes(load_probes(), run_sweeps(pipe, differing_pairs(16), seeds=[0, 1]))
    result = synthesis_index(reading.observations)
    print(result)  # per space: decided share of each factor, share, interval; the index and its space
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from latentkit.aspects import Run, layer_label
from latentkit.injection import SweepResult
from latentkit.run import generate
from latentkit.spaces import Space
from latentkit.world import FACTORS

#: An index at or above this is "synthesis in the strict sense": one space decides (almost) every factor.
#: Fixed before any model was measured, as :data:`latentkit.properties.VERDICTS` were.
STRICT = 0.9


@dataclass
class SynthesisIndex:
    """Per space, the share of the output's factors it decides alone; the model's index is the largest.

    Attributes:
        shares: one row per space (index: space name, in the order of the observations): one column per
            factor (``decided(s, f)``, NaN where no pair counted that factor), then ``share`` (mean over
            the measured factors), ``ci_low``, ``ci_high`` (bootstrap over O/E pairs), ``n_factors``
            (factors measured) and ``n_pairs``.
        index: the largest ``share``.
        space: the space that reaches it.
        ci: bootstrap interval of the index (the maximum is recomputed in every resample).
        unmeasured: factors no pair counted for any space (left out of every share).
    """

    shares: pd.DataFrame
    index: float
    space: str
    ci: tuple[float, float]
    unmeasured: list[str]

    @property
    def strict(self) -> bool:
        """Does one space decide at least :data:`STRICT` of the factors (synthesis in the strict sense)?

        The point estimate only; :attr:`verdict` says whether its interval allows the conclusion."""
        return self.index >= STRICT

    @property
    def verdict(self) -> str:
        """``"strict"`` (the whole interval at or above :data:`STRICT`), ``"broad"`` (wholly below) or
        ``"undecided"`` (the interval straddles it)."""
        if self.ci[0] >= STRICT:
            return "strict"
        if self.ci[1] < STRICT:
            return "broad"
        return "undecided"

    def __str__(self) -> str:
        factors = [f for f in FACTORS if f not in self.unmeasured]
        lines = [f"{'space':18s}" + "".join(f"{f[:8]:>9s}" for f in factors) + "    share  95% interval"]
        for name, row in self.shares.iterrows():
            cells = "".join(f"{row[f]:9.2f}" for f in factors)
            lines.append(
                f"{layer_label(str(name))[:18]:18s}{cells}    {row['share']:5.2f}  "
                f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
            )
        if self.unmeasured:
            lines.append(f"not measured (no pair counted them): {', '.join(self.unmeasured)}")
        sense = {"strict": "synthesis in the strict sense", "broad": "synthesis in the broad sense"}
        lines.append(
            f"synthesis index {self.index:.2f} [{self.ci[0]:.2f}, {self.ci[1]:.2f}] "
            f"({layer_label(self.space)}): {sense.get(self.verdict, 'undecided: the interval straddles')} "
            f"(strict from {STRICT})"
        )
        return "\n".join(lines)


def _nan(fn: Callable[..., np.ndarray], *args, **kwargs) -> np.ndarray:
    """``fn`` (a NumPy nan-function) without its warning on all-NaN slices: they stay NaN (unmeasured)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _shares(values: np.ndarray) -> np.ndarray:
    """(P, S, F) per-pair values -> (S,) shares: mean over pairs per factor, then over measured factors."""
    return _nan(np.nanmean, _nan(np.nanmean, values, axis=0), axis=1)


def synthesis_index(
    observations: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> SynthesisIndex:
    """Share of the factors each space decides alone, and the model's index (the largest share).

    Args:
        observations: long table with columns ``pair``, ``seed``, ``layer`` (the space), ``measure`` and
            ``value`` (1.0: in this run, O with this space injected took E's value of this factor; 0.0:
            it did not; NaN: the factor did not count in this run). Rows whose measure is not a factor
            (``whole``, ``in_distribution``) are ignored. From :func:`latentkit.aspects.read_with_probes`
            or :func:`input_injection`.
        n_boot: bootstrap resamples of the O/E pairs (runs of one pair with several seeds are averaged
            first: they are not independent).
        level: coverage of the intervals.
        seed: seeds the resampling.

    Returns:
        A :class:`SynthesisIndex`; ``print`` it for the table.
    """
    missing = {"pair", "seed", "layer", "measure", "value"} - set(observations.columns)
    if missing:
        raise ValueError(
            f"observations lack the columns {sorted(missing)}; pass read_with_probes(...).observations "
            "or input_injection(...)"
        )
    rows = observations[observations["measure"].isin(list(FACTORS))]
    if rows.empty:
        raise ValueError(
            "the observations hold no factor rows (shape, color, ...): the index needs the probes' "
            "reading (read_with_probes), not similarity scores"
        )
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be at least 1")
    spaces = list(dict.fromkeys(rows["layer"]))
    per_pair = rows.groupby(["pair", "layer", "measure"])["value"].mean()  # over seeds, NaN skipped
    pairs = sorted(set(rows["pair"]))
    grid = (
        per_pair.reindex(pd.MultiIndex.from_product([pairs, spaces, list(FACTORS)]))
        .to_numpy(float)
        .reshape(len(pairs), len(spaces), len(FACTORS))
    )  # (P, S, F)
    decided = _nan(np.nanmean, grid, axis=0)  # (S, F)
    share = _nan(np.nanmean, decided, axis=1)  # (S,)
    if np.isnan(share).all():
        raise ValueError("no factor counted in any run: nothing was measured")
    rng = np.random.default_rng(seed)
    boot_share = np.stack(
        [_shares(grid[rng.integers(0, len(pairs), len(pairs))]) for _ in range(n_boot)]
    )  # (n_boot, S)
    tail = 100 * (1 - level) / 2
    low, high = _nan(np.nanpercentile, boot_share, [tail, 100 - tail], axis=0)
    index_low, index_high = _nan(np.nanpercentile, _nan(np.nanmax, boot_share, axis=1), [tail, 100 - tail])
    counted = (~np.isnan(grid)).any(axis=0)  # (S, F)
    table = pd.DataFrame(decided, index=pd.Index(spaces, name="space"), columns=list(FACTORS))
    table["share"], table["ci_low"], table["ci_high"] = share, low, high
    table["n_factors"] = counted.sum(1)
    table["n_pairs"] = (~np.isnan(grid)).any(axis=2).sum(0)
    best = int(np.nanargmax(share))
    unmeasured = [f for j, f in enumerate(FACTORS) if not counted[:, j].any()]
    return SynthesisIndex(
        table, float(share[best]), spaces[best], (float(index_low), float(index_high)), unmeasured
    )


# ---------------------------------------------------------------------------------------------------------
# Injection of whole inputs (models with no layers to hook, or a pipeline's noise and prompt)

#: ``sample(n, generator)`` -> (N, ...) points of one input space.
Sampler = Callable[[int, torch.Generator], torch.Tensor]


def input_injection(
    render: Callable[[Mapping[str, torch.Tensor]], np.ndarray],
    samplers: Mapping[str, Sampler],
    probes,
    n: int = 256,
    seed: int = 0,
) -> pd.DataFrame:
    """Injection at the level of a model's inputs: O's inputs, with one of them taken from E.

    For ``n`` pairs, every input is sampled twice (O and E); then for each input s, O_s is rendered from
    O's inputs with s replaced by E's. A factor counts in a pair when the probes read O and E differently
    (there is no prompt to compare with); it "followed E" when O_s reads as E.

    Args:
        render: ``{input name: (N, ...) points} -> (N, H, W, 3)`` images.
        samplers: ``{input name: sample(n, generator)}``, one per input space of the model.
        probes: :func:`latentkit.probes.load_probes`.
        n: O/E pairs.
        seed: seeds the sampling.

    Returns:
        Observations for :func:`synthesis_index` (columns ``pair``, ``seed``, ``layer`` = the input's
        name, ``measure`` = a factor, ``value``), one row per pair, input and factor.
    """
    if not samplers:
        raise ValueError("no inputs: pass samplers={'name': space.sample, ...}")
    gen = torch.Generator().manual_seed(seed)
    original = {name: sample(n, gen) for name, sample in samplers.items()}
    edit = {name: sample(n, gen) for name, sample in samplers.items()}
    names = list(samplers)
    images = [render(original), render(edit)] + [render({**original, s: edit[s]}) for s in names]
    labels = probes.read(np.concatenate(images)).labels  # factor -> ((2 + S) * n,)
    rows = []
    for f in FACTORS:
        read = labels[f].reshape(2 + len(names), n)  # rows: O, E, O_1 .. O_S
        counts = read[0] != read[1]
        for k, s in enumerate(names):
            took = np.where(counts, (read[2 + k] == read[1]).astype(float), np.nan)
            rows += [(i, seed, s, f, float(v)) for i, v in enumerate(took)]
    return pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])


#: The names under which :func:`add_input_injection` adds a diffusion pipeline's two inputs to a run.
INPUTS = ("noise", "prompt")


def add_input_injection(pipe, runs: Sequence[Run], **call_kwargs) -> list[Run]:
    """The inputs of a diffusion pipeline injected like its layers: two more images per run.

    For each run of :func:`latentkit.aspects.run_sweeps`, O is generated again with one of its inputs
    taken from E: ``"noise"`` (O's prompt, E's initial noise) and ``"prompt"`` (E's prompt, O's noise).
    They are appended to the run's injected images under those names, so :func:`read_with_probes` reads
    them with the same pairs, the same counting and the same probes as the layers.

    Args:
        pipe: the pipeline the runs were made with.
        runs: from :func:`latentkit.aspects.run_sweeps` (O and E given by ``prompt`` and ``seed``).
        **call_kwargs: the same shared pipeline arguments as the sweeps (``num_inference_steps`` ...).

    Returns:
        New runs (the given ones are left as they were), ``names`` ending in :data:`INPUTS`. Cost: one
        generation at batch 2 per run.
    """
    out = []
    for run in runs:
        o, e = run.original, run.edit
        if "seed" not in o or "prompt" not in o:
            raise ValueError("add_input_injection needs runs whose O and E are given by 'prompt' and 'seed'")
        rows = [{**o, "seed": e["seed"]}, {**o, "prompt": e["prompt"]}]  # in the order of INPUTS
        images, _ = generate(pipe, rows, **call_kwargs)  # (2, H, W, 3)
        r = run.result
        injected, entries = np.concatenate([r.injected, images]), [*r.entries, *((i,) for i in INPUTS)]
        result = SweepResult(r.original, r.edit, injected, [*r.names, *INPUTS], entries=entries)
        out.append(Run(run.pair, run.seed, dict(o), dict(e), result))
    return out


def space_injection(space: Space, probes, n: int = 256, seed: int = 0) -> pd.DataFrame:
    """:func:`input_injection` for a model with a single input space (an autoencoder's code, a GAN's z).

    Injecting the only input replaces everything the decoder sees, so its share is 1 up to the probes'
    misreadings: the strict sense, by construction. The measurement is still worth running: it is the
    same test the diffusion organisms take, and the reference their indices are read against.
    """
    return input_injection(lambda p: space.decode(p[space.name]), {space.name: space.sample}, probes, n, seed)


__all__ = [
    "INPUTS",
    "STRICT",
    "SynthesisIndex",
    "add_input_injection",
    "input_injection",
    "space_injection",
    "synthesis_index",
]
