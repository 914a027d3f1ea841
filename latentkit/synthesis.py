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
- layers of a strict-sense organism (the autoencoder's and the VAE's decoder, the GAN's generator), its code
  first: ``read_with_probes(probes, strict_layer_injection(model, probes, 16)).observations``, the same
  sweep as a diffusion model's, so both kinds of model are measured on one footing;
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

import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from latentkit.aspects import Run, differing_pairs, layer_label
from latentkit.injection import SweepResult, _inject_from_row, _mix
from latentkit.layers import list_model_layers, resolve, strict_model
from latentkit.run import forward, generate
from latentkit.spaces import Space
from latentkit.world import FACTORS, Factors, World, caption_of, parse_caption

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
        """``"strict"`` (the whole interval at or above :data:`STRICT`), ``"broad"`` (wholly below),
        ``"undecided"`` (the interval straddles it), or ``"undetermined"`` when nothing was measured (no
        factor counted in any run, e.g. no valid injected image)."""
        if np.isnan(self.index):
            return "undetermined"
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
        sense = {
            "strict": "synthesis in the strict sense",
            "broad": "synthesis in the broad sense",
            "undetermined": "undetermined: no factor counted in any (valid) run",
        }
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
    counted = (~np.isnan(grid)).any(axis=0)  # (S, F)
    if np.isnan(share).all():  # e.g. no injected image was valid: undetermined, never 0 or 1
        table = pd.DataFrame(decided, index=pd.Index(spaces, name="space"), columns=list(FACTORS))
        table["share"] = table["ci_low"] = table["ci_high"] = np.nan
        table["n_factors"], table["n_pairs"] = 0, 0
        return SynthesisIndex(table, float("nan"), spaces[0], (float("nan"), float("nan")), list(FACTORS))
    rng = np.random.default_rng(seed)
    boot_share = np.stack(
        [_shares(grid[rng.integers(0, len(pairs), len(pairs))]) for _ in range(n_boot)]
    )  # (n_boot, S)
    tail = 100 * (1 - level) / 2
    low, high = _nan(np.nanpercentile, boot_share, [tail, 100 - tail], axis=0)
    index_low, index_high = _nan(np.nanpercentile, _nan(np.nanmax, boot_share, axis=1), [tail, 100 - tail])
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


# ---------------------------------------------------------------------------------------------------------
# Injection into the layers of the strict-sense organisms (the autoencoder, the VAE, the GAN)

#: The name under which :func:`strict_layer_injection` injects a strict-sense organism's code, the only
#: input of its decoder (the autoencoder's bottleneck, the VAE's z, the GAN's z), first among its layers.
CODE = "code"


def strict_layer_injection(
    model: torch.nn.Module,
    probes=None,
    pairs_or_n: int | Sequence[tuple[str, str]] = 16,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    *,
    alpha: float = 1.0,
) -> list[Run]:
    """The injection sweep of notebook 04 on a strict-sense organism's own layers, one decoding per pair.

    For each O/E pair the model decodes, in one batch, the codes ``[c_E, c_O, c_O, ..., c_O]`` into

        rows  [E, O, O_1, ..., O_K]

    where the copy of the :data:`CODE` entry gets E's code instead of O's, and a patch
    (:func:`latentkit.run.forward`) on layer k copies row E's activation into row O_k, as
    :func:`latentkit.injection.sweep` does in a denoiser. The runs are read exactly as the diffusion
    sweeps are: ``synthesis_index(read_with_probes(probes, runs, count=...).observations)``.

    Where O and E come from:

    - autoencoder and VAE: world images drawn from caption pairs (without jitter), encoded (the VAE: its
      posterior mean). The runs' prompts are those captions, so ``count="prompted"`` counts a factor when
      the model's decodings of O and of E show it as their captions say, as for the diffusion sweeps.
    - GAN: it has no encoder, so ``2 n`` codes ``z ~ N(0, I)`` are drawn with ``seed`` and the runs'
      prompts are what the probes read in the decoded O and E. Read GAN runs with ``count="read"`` (the
      factors the probes read apart in O and E, as :func:`input_injection` counts): with ``"prompted"``
      every factor would count, also those O and E share, which O_k "takes from E" by keeping O's.

    What holds by construction: each of these decoders is a chain whose only input is the code, so a
    layer's whole activation, replaced by E's, makes everything after it E's. At every layer, and for the
    code, O_k is E (bit for bit on the CPU, as the tests check), so every share equals the code's: one
    space decides everything, at every depth. The diffusion models' layers are measured the same way.

    Args:
        model: :func:`latentkit.models.autoencoder.load_autoencoder`, :func:`~latentkit.models.vae.load_vae`
            or :func:`~latentkit.models.gan.load_gan`, in eval mode.
        probes: :func:`latentkit.probes.load_probes`; needed for the GAN (its captions), not used otherwise.
        pairs_or_n: ``(O caption, E caption)`` pairs (autoencoder and VAE), or a number of pairs: drawn by
            :func:`latentkit.aspects.differing_pairs` (every factor differs) or, for the GAN, sampled.
        seed: seeds the drawn pairs or the GAN's codes.
        layers: what to inject, in the order of the table: :data:`CODE` and names of
            :func:`latentkit.layers.list_model_layers` (any module path outside the codec works); default
            the code, then every listed layer in forward order.
        alpha: blend, ``O_k <- (1 - alpha) O_k + alpha E`` at the injected layer; 1 replaces, 0 changes
            nothing.

    Returns:
        One :class:`latentkit.aspects.Run` per pair (``seed`` as given; ``original`` and ``edit``:
        ``{"prompt": caption, "code": (1, D) tensor}``); each ``result`` a
        :class:`latentkit.injection.SweepResult` with ``names`` = the injected entries. Cost: one
        decoding at batch ``K + 2`` per pair.

    Raises:
        TypeError: for a model that is not a strict-sense organism.
        ValueError: a model in training mode, an unknown layer (with the closest names), repeated
            entries, a bad ``alpha`` or ``pairs_or_n``, caption pairs for the GAN, or the GAN without
            probes.
    """
    spec = strict_model(model)
    if spec is None:
        raise TypeError(
            f"strict_layer_injection takes the autoencoder, the VAE or the GAN, got {type(model).__name__}; "
            "for a diffusers pipeline use latentkit.aspects.run_sweeps"
        )
    if model.training:
        raise ValueError(
            f"the {type(model).__name__} is in training mode: its batch norm would mix the rows of the "
            "batch (O would see E everywhere); call model.eval() first"
        )
    names = [CODE, *(layer.name for layer in list_model_layers(model))] if layers is None else list(layers)
    if not names:
        raise ValueError(f"no layers to inject: pass e.g. layers=[{CODE!r}, 'decoder.net.6'], or None")
    if len(set(names)) != len(names):
        raise ValueError(f"layers names an entry twice: {names}")
    for name in names:
        if name != CODE:
            resolve(model, name)  # unknown names fail here, with the closest valid ones, before any work
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha must be a number in [0, 1] (1 replaces O's activation by E's), got {alpha!r}"
        )
    codes_o, codes_e, captions = _strict_pairs(model, spec.code_dim, probes, pairs_or_n, seed)
    decode = getattr(model, spec.decode)
    runs = []
    for i in range(len(codes_o)):
        c_o, c_e = codes_o[i : i + 1], codes_e[i : i + 1]  # (1, D) each
        result = _strict_sweep(decode, model, c_o, c_e, names, float(alpha))
        if captions is None:  # the GAN: what the probes read in this run's O and E
            read = probes.read(np.stack([result.original, result.edit]))
            caption_o, caption_e = caption_of(read.names(0)), caption_of(read.names(1))
        else:
            caption_o, caption_e = captions[i]
        o_args = {"prompt": caption_o, "code": c_o.cpu()}
        e_args = {"prompt": caption_e, "code": c_e.cpu()}
        runs.append(Run(i, int(seed), o_args, e_args, result))
    return runs


def _strict_pairs(
    model: torch.nn.Module, code_dim: str, probes, pairs_or_n, seed: int
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]] | None]:
    """O's and E's codes (P, D) on the model's device, and the caption pairs (``None`` for the GAN)."""
    device = next(model.parameters()).device
    is_n = isinstance(pairs_or_n, int) and not isinstance(pairs_or_n, bool)
    if is_n and pairs_or_n < 1:
        raise ValueError(f"pairs_or_n={pairs_or_n} must be at least 1 (the number of O/E pairs)")
    if not hasattr(model, "encode"):  # the GAN: sample its codes, caption them with the probes later
        if not is_n:
            raise ValueError(
                "the GAN has no encoder, so a world image cannot be turned into its z: pass the number of "
                "O/E pairs to sample (pairs_or_n=16), not captions"
            )
        if probes is None:
            raise ValueError("the GAN's O and E are captioned by what the probes read: pass load_probes()")
        z = torch.randn(
            2, pairs_or_n, getattr(model, code_dim), generator=torch.Generator().manual_seed(seed)
        )
        return z[0].to(device), z[1].to(device), None
    pairs = differing_pairs(pairs_or_n, seed=seed) if is_n else [tuple(pair) for pair in pairs_or_n]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError("pairs_or_n must be a number of pairs or a list of (O caption, E caption) pairs")
    captions = [caption for pair in pairs for caption in pair]  # O0, E0, O1, E1, ...
    factors = Factors.from_names(**{f: [parse_caption(c)[f] for c in captions] for f in FACTORS})
    images = World(64).render(factors).images  # (2P, 64, 64, 3) uint8
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)  # (2P, 3, 64, 64)
    with torch.no_grad():
        codes = model.encode(x)
    codes = codes[0] if isinstance(codes, tuple) else codes  # the VAE: (mu, logvar); its code is mu
    return codes[0::2], codes[1::2], pairs


def _every_call() -> bool:
    """The injection window of a decoder: it has no denoising steps, so every call of a layer."""
    return True


def _strict_sweep(
    decode: Callable[[torch.Tensor], torch.Tensor],
    model: torch.nn.Module,
    code_o: torch.Tensor,
    code_e: torch.Tensor,
    names: Sequence[str],
    alpha: float,
) -> SweepResult:
    """One batched decoding of ``[E, O, O_1, ..., O_K]``, entry k injected into row ``2 + k``."""
    n_rows = len(names) + 2
    codes = [code_e, code_o] + [_mix(code_o, code_e, alpha) if name == CODE else code_o for name in names]
    fns = {
        name: _inject_from_row(0, [2 + k], n_rows, alpha, _every_call)
        for k, name in enumerate(names)
        if name != CODE
    }
    images = forward(model, lambda: decode(torch.cat(codes)), fns)  # (K + 2, 3, H, W) in [0, 1]
    rows = images.permute(0, 2, 3, 1).float().cpu().numpy()  # (K + 2, H, W, 3)
    return SweepResult(rows[1], rows[0], rows[2:], list(names))


__all__ = [
    "CODE",
    "INPUTS",
    "STRICT",
    "SynthesisIndex",
    "add_input_injection",
    "input_injection",
    "space_injection",
    "strict_layer_injection",
    "synthesis_index",
]
