"""Fig. 4 of the paper: its two probes on every candidate latent space, and the table of its marks.

Sec. 3 scores each candidate of :mod:`latentkit.candidates` by eye, after two probes: noise "in the same
distribution as the latent space in question" added at growing strength, and the embedding of a content
word ('A dog'; here a shape of the world, 'star': :data:`CONTENT_WORD`) added to points of the space.
This module runs both probes (:func:`run_probes`), reads what they did (:func:`read_probes`: the probes'
factors, or the similarity suite for real models; a zero-shot tiny-CLIP reader of the shape as a second
opinion), and puts the measured properties beside the paper's marks (:data:`PAPER_FIG4`,
:func:`fig4_table`, :func:`disagreements`). Used by notebook ``03_diffusion_latent_spaces``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from latentkit.candidates import DiffusionSpace
from latentkit.probes import IN_DISTRIBUTION_THRESHOLD
from latentkit.world import FACTORS, SHAPES, World, caption_of, parse_caption

#: The content word of the second probe (the paper adds the embedding of 'A dog'; the world has shapes).
CONTENT_WORD = "star"

#: Fig. 4 as the paper's text scores it (Sec. 3; the table itself is an image we do not have). ``?``:
#: the text gives no mark. Keys are :attr:`DiffusionSpace.candidate`.
PAPER_FIG4: dict[str, dict[str, str]] = {
    # "certainly dense ... only partially smooth and relevant ... not organized in any way"
    "initial noise": {"density": "V", "smoothness": "~", "organization": "X", "relevance": "~"},
    # "rather dense and smooth ... not visually organized ... a remarkable influence (relevance)"
    "text tokens": {"density": "~", "smoothness": "~", "organization": "X", "relevance": "V"},
    # "(especially the embedding of the End of Sentence, EOS) ... not relevant to the final image"
    "EOS / pooled": {"density": "V", "smoothness": "V", "organization": "X", "relevance": "X"},
    # "neither dense, smooth, nor organized. Its relevance to the final image is purely arbitrary."
    "VAE latent": {"density": "X", "smoothness": "X", "organization": "X", "relevance": "?"},
    # Sec. 3 scores no layer; Sec. 3.1 and 4: relevance is split across layers, no layer decides all.
    "h-space": {"density": "?", "smoothness": "?", "organization": "?", "relevance": "~"},
    "denoiser layer": {"density": "?", "smoothness": "?", "organization": "?", "relevance": "~"},
}


def with_shape(caption: str, shape: str = CONTENT_WORD) -> str:
    """The caption with its shape word replaced: ``"a small red circle ..."`` -> ``"a small red star ..."``
    (the content probe's caption)."""
    if shape not in SHAPES:
        raise ValueError(f"{shape!r} is not a shape of the world; use one of {SHAPES}")
    return caption_of({**parse_caption(caption), "shape": shape})


# ---------------------------------------------------------------------------------------------------------
# The paper's two probes (Fig. 4): noise of growing strength, and a content word added


def noise_walk(
    space: DiffusionSpace, points: torch.Tensor, strengths: Sequence[float], generator=None
) -> list[torch.Tensor]:
    """``points + s * noise`` for each strength ``s``, one noise draw for all strengths (a straight walk).

    Returns:
        One (N, ...) tensor per strength.
    """
    noise = space.noise(len(points), generator).to(points.dtype)
    return [points + s * noise for s in strengths]


def word_walk(
    space: DiffusionSpace, points: torch.Tensor, word: torch.Tensor, strengths: Sequence[float]
) -> list[torch.Tensor]:
    """``points + s * (word - centre)``: the word's point, relative to the space's centre, added.

    ``s = 1`` adds as much as the word's point differs from the average point; the point of the word
    itself (substitution) is ``word``.

    Args:
        points: (N, ...) points.
        word: (1, ...) the point of the content word, from :meth:`DiffusionSpace.points_of`.
    """
    direction = word - space.center()
    return [points + s * direction for s in strengths]


@dataclass
class ProbeRun:
    """The images of both probes on one space, every column read the same way.

    Attributes:
        space: the space's name.
        columns: column label -> (N, H, W, 3) uint8 images; ``"start"`` first, then ``"noise x s"``,
            ``"+ star x s"`` and ``"star substituted"`` (the word's own point; the same image in every row).
        word_image: (H, W, 3) uint8, the word's point decoded.
    """

    space: str
    columns: dict[str, np.ndarray]
    word_image: np.ndarray


def run_probes(
    space: DiffusionSpace,
    n: int = 16,
    seed: int = 0,
    strengths: Sequence[float] = (0.1, 0.3, 1.0),
    word_strengths: Sequence[float] = (0.5, 1.0, 2.0),
    word: str = CONTENT_WORD,
) -> ProbeRun:
    """Fig. 4's two probes on ``n`` sampled points of ``space``.

    The content word's point is that of the base caption with its shape replaced by ``word``.
    """
    gen = torch.Generator().manual_seed(seed)
    points = space.sample(n, gen)
    word_point = space.points_of([with_shape(space.base.prompt, word)])
    columns = {"start": space.decode(points)}
    for s, p in zip(strengths, noise_walk(space, points, strengths, gen), strict=True):
        columns[f"noise x {s:g}"] = space.decode(p)
    for s, p in zip(word_strengths, word_walk(space, points, word_point, word_strengths), strict=True):
        columns[f"+ {word} x {s:g}"] = space.decode(p)
    word_image = space.decode(word_point)[0]
    columns[f"{word} substituted"] = np.repeat(word_image[None], n, 0)
    return ProbeRun(space.name, columns, word_image)


def read_probes(run: ProbeRun, probes=None, shape_reader=None, word: str = CONTENT_WORD):
    """What the probes did, column by column: one row per column of ``run``.

    With ``probes`` (the organism): ``in-distribution`` share, ``changed: <aspect>`` (share of the
    aspect's factors that differ from the start image), ``read as <word>`` (probes), and with
    ``shape_reader`` (:func:`clip_shape_reader`) the mean tiny-CLIP probability of the word. Without
    probes (a real model): the similarity suite (:mod:`latentkit.similarity`) of each image to its start
    image (``structure``: SSIM, ``color``: hue-saturation histograms, ``texture``: LBP histograms).

    A row ``"another sample"`` is added after ``"start"``: each start image against the next one, an
    independent sample of the space (what a whole resampling changes: relevance, in the small).

    Returns:
        A pandas DataFrame indexed by column label.
    """
    import pandas as pd

    from latentkit.world import ASPECTS

    start = run.columns["start"]
    columns = {"start": start, "another sample": np.roll(start, 1, axis=0)}
    columns.update((k, v) for k, v in run.columns.items() if k != "start")
    rows = {}
    if probes is None:
        from latentkit.similarity import similarities

        for label, images in columns.items():
            rows[label] = {f"{k} to start": float(np.mean(v)) for k, v in similarities(images, start).items()}
        return pd.DataFrame(rows).T
    labels0 = _factor_labels(probes.read(start))
    for label, images in columns.items():
        readout = probes.read(images)
        labels = _factor_labels(readout)
        row = {
            "in-distribution": float(
                (probes.in_distribution(images, readout) >= IN_DISTRIBUTION_THRESHOLD).mean()
            )
        }
        for aspect, factors in ASPECTS.items():
            idx = [list(FACTORS).index(f) for f in factors]
            row[f"changed: {aspect}"] = float((labels[:, idx] != labels0[:, idx]).mean())
        row[f"read as {word}"] = float((readout.labels["shape"] == SHAPES.index(word)).mean())
        if shape_reader is not None:
            row[f"CLIP P({word})"] = float(shape_reader(images)[:, SHAPES.index(word)].mean())
        rows[label] = row
    return pd.DataFrame(rows).T


def _factor_labels(readout) -> np.ndarray:
    return np.stack([readout.labels[f] for f in FACTORS], 1)


@torch.no_grad()
def clip_shape_reader(clip, tokenizer, n_captions: int = 64, seed: int = 0):
    """A zero-shot shape classifier from the tiny CLIP (:func:`latentkit.models.tiny_sd.load_clip`).

    Each shape's text embedding is the mean of the (unit) embeddings of ``n_captions`` random training
    captions with that shape (CLIP's prompt ensembling); an image's shape probabilities are the softmax
    of its scaled cosine similarity to the six. A second reader of the content probe, independent of the
    probes. Real models have no such CLIP here (notebook 03 says so).

    Returns:
        ``read(images) -> (N, 6)`` probabilities in :data:`latentkit.world.SHAPES` order.
    """
    from latentkit.models.tiny_sd import clip_pixels

    device = next(clip.parameters()).device
    factors = World(64).sample_factors(n_captions, seed, split="all")
    classes = []
    for shape in SHAPES:
        captions = [with_shape(c, shape) for c in World.caption(factors)]
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        ).input_ids
        text = _features(clip.get_text_features(input_ids=ids.to(device)))
        classes.append(torch.nn.functional.normalize(text.mean(0), dim=0))
    classes = torch.stack(classes)  # (6, P)
    scale = clip.logit_scale.detach().exp().float()

    @torch.no_grad()
    def read(images) -> np.ndarray:
        pixels = clip_pixels(np.asarray(images)).to(device)
        image = torch.nn.functional.normalize(_features(clip.get_image_features(pixel_values=pixels)), dim=1)
        return (scale * image @ classes.T).softmax(1).cpu().numpy()

    return read


def _features(out) -> torch.Tensor:
    """transformers 5 returns a model output (features in ``pooler_output``), 4.x a tensor."""
    return (out.pooler_output if hasattr(out, "pooler_output") else out).float()


# ---------------------------------------------------------------------------------------------------------
# Fig. 4 as a table


def fig4_table(results, paper: Mapping[str, Mapping[str, str]]):
    """Candidate x property: ``value [low, high] mark``, with the paper's mark in a second column level.

    Args:
        results: :class:`latentkit.properties.PropertyResult` of several spaces.
        paper: space name -> property -> the paper's mark (``V``, ``~``, ``X`` or ``?``).

    Returns:
        A pandas DataFrame indexed by space, columns ``(property, "measured" | "paper")``.
    """
    import pandas as pd

    from latentkit.properties import PROPERTIES

    rows: dict[str, dict[tuple[str, str], str]] = {}
    for r in results:
        row = rows.setdefault(r.space, {})
        row[(r.property, "measured")] = f"{r.value:.2f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}] {r.verdict}"
        row[(r.property, "paper")] = paper.get(r.space, {}).get(r.property, "?")
    columns = pd.MultiIndex.from_product([PROPERTIES, ["measured", "paper"]])
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)


#: The components of each property that say why it came out as it did (see :mod:`latentkit.properties`).
KEY_COMPONENTS: dict[str, tuple[str, ...]] = {
    "density": ("median in-distribution score",),
    "smoothness": ("straightness", "stays in distribution"),
    "organization": ("distance agreement", "linear decodability", "midpoints mix endpoints"),
    "relevance": ("aspect structure", "aspect content", "aspect surface"),
}


def disagreements(results, paper: Mapping[str, Mapping[str, str]]):
    """Where the measured mark differs from a mark the paper gives (``?`` marks are skipped, and so are
    undecided measured marks such as ``~/V``, whose interval straddles a threshold: they differ from
    nothing yet).

    Returns:
        A pandas DataFrame: space, property, paper, measured, value, and ``parts``: the property's
        :data:`KEY_COMPONENTS`, e.g. ``"straightness 0.41, stays in distribution 1.00"``.
    """
    import pandas as pd

    from latentkit.properties import is_undecided

    rows = [
        {
            "space": r.space,
            "property": r.property,
            "paper": mark,
            "measured": r.verdict,
            "value": r.value,
            "parts": ", ".join(
                f"{k} {r.components[k]:.2f}" for k in KEY_COMPONENTS[r.property] if k in r.components
            ),
        }
        for r in results
        if (mark := paper.get(r.space, {}).get(r.property, "?")) != "?"
        and not is_undecided(r.verdict)
        and mark != r.verdict
    ]
    return pd.DataFrame(rows, columns=["space", "property", "paper", "measured", "value", "parts"])


__all__ = [
    "CONTENT_WORD",
    "KEY_COMPONENTS",
    "PAPER_FIG4",
    "ProbeRun",
    "clip_shape_reader",
    "disagreements",
    "fig4_table",
    "noise_walk",
    "read_probes",
    "run_probes",
    "with_shape",
    "word_walk",
]
