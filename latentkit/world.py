"""The shapes world: a procedural, seeded image generator whose every factor is known.

The paper scores latent spaces by eye. To *measure* instead, we need images whose causes we know. Every
image here has one object on a background, and six factors, which stand for the paper's three aspects of
an image (Sec. 3.1):

==============  =====================================  ==================================
aspect          factor                                 values
==============  =====================================  ==================================
structure       ``position`` (3x3 grid + jitter),      top left ... bottom right
                ``size``                               small, large
content         ``shape``                              circle, square, triangle, star, ...
surface         ``color`` (object), ``background``,    red, orange, ...; white, black, ...
                ``texture`` (background)               plain, striped, dotted, checkered
==============  =====================================  ==================================

Captions follow one fixed grammar::

    "a large red star at the top left on a striped white background"

Rendering is vectorised NumPy with analytic anti-aliasing (signed distances), deterministic bit for bit for
a given seed. Used by notebook ``00_the_shapes_world`` and by every model organism's training recipe.

Example::

    world = World()  # 64x64 images
    batch = world.sample(16, seed=0)  # images (16, 64, 64, 3) uint8, factors, captions
    batch.captions[0]
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# The factors and their values. Order matters: a factor's integer label is its index in these tuples.

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross")
COLORS = {  # object colours, chosen far apart in RGB so a slight colour shift cannot swap them
    "red": (220, 40, 40),
    "orange": (245, 145, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "purple": (150, 50, 190),
}
BACKGROUNDS = {  # background colours, chosen to contrast with every object colour
    "white": (238, 238, 232),
    "black": (28, 28, 32),
    "grey": (125, 125, 125),
    "pink": (245, 185, 205),
}
TEXTURES = ("plain", "striped", "dotted", "checkered")
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
SIZES = ("small", "large")

#: Categorical factors and their values, in a fixed order.
FACTORS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "background": tuple(BACKGROUNDS),
    "texture": TEXTURES,
    "position": POSITIONS,
    "size": SIZES,
}

#: Which of the paper's three aspects each factor stands for (Sec. 3.1: structure, content, surface).
ASPECTS: dict[str, tuple[str, ...]] = {
    "structure": ("position", "size"),
    "content": ("shape",),
    "surface": ("color", "background", "texture"),
}

#: (shape, colour) pairs never shown in training, one per shape and colour, so that a model organism can be
#: asked for combinations it has never seen (the quality report of the diffusion organism uses them).
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("circle", "purple"),
    ("square", "yellow"),
    ("triangle", "blue"),
    ("star", "green"),
    ("heart", "orange"),
    ("cross", "red"),
)

# Geometry, in pixels of a 64x64 image; other sizes scale linearly.
_GRID = (0.2, 0.5, 0.8)  # cell centres as a fraction of the side
_RADIUS = {"small": 6.5, "large": 10.0}
_JITTER = 1.5  # uniform jitter of the centre, +- pixels
_EXTENT = 0.95  # every shape fits in a disc of _EXTENT * radius
_TEXTURE_PERIOD = 8.0
_TEXTURE_MIX = 0.22  # how far the texture's second tone moves towards black or white


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"image size must be an int, got {type(size).__name__}")
    if size < 32 or size % 16:
        raise ValueError(
            f"image size must be a multiple of 16 and at least 32 (the 3x3 grid and the VAE's "
            f"downsampling need it), got {size}. Try {max(32, 16 * round(size / 16))}."
        )
    return int(size)


def _unknown(factor: str, value: object) -> ValueError:
    values = FACTORS[factor]
    close = difflib.get_close_matches(str(value), values, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {factor} {value!r}; the world knows {list(values)}.{hint}")


# ---------------------------------------------------------------------------------------------------------
# Factors of a batch of images


@dataclass
class Factors:
    """The factors of N images, as integer labels (index into :data:`FACTORS`) and float geometry.

    Attributes:
        shape, color, background, texture, position, size: (N,) int64 labels.
        jitter: (N, 2) float32, offset of the shape's centre from its grid cell centre, in 64-px pixels.
    """

    shape: np.ndarray
    color: np.ndarray
    background: np.ndarray
    texture: np.ndarray
    position: np.ndarray
    size: np.ndarray
    jitter: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.shape)
        for name, values in FACTORS.items():
            arr = np.asarray(getattr(self, name), dtype=np.int64).reshape(-1)
            if len(arr) != n:
                raise ValueError(f"factor {name!r} has {len(arr)} entries, shape has {n}")
            if n and (arr.min() < 0 or arr.max() >= len(values)):
                raise ValueError(
                    f"factor {name!r} labels must be in 0..{len(values) - 1}, got {arr.min()}..{arr.max()}"
                )
            setattr(self, name, arr)
        jitter = np.asarray(self.jitter, dtype=np.float32).reshape(n, 2)
        self.jitter = jitter

    def __len__(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> Factors:
        index = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        index = np.atleast_1d(index)
        return Factors(**{k: getattr(self, k)[index] for k in (*FACTORS, "jitter")})

    @classmethod
    def from_names(cls, jitter: np.ndarray | None = None, **names: Sequence[str] | str) -> Factors:
        """Build factors from value names; a single string applies to every image.

        Example: ``Factors.from_names(shape=["star", "heart"], color="red", background="white",
        texture="plain", position=["top left", "center"], size="large")``.
        """
        missing = [f for f in FACTORS if f not in names]
        extra = [f for f in names if f not in FACTORS]
        if missing or extra:
            raise ValueError(
                f"Factors.from_names needs exactly the factors {list(FACTORS)}; "
                f"missing {missing}, unexpected {extra}"
            )
        lists = {k: [v] if isinstance(v, str) else list(v) for k, v in names.items()}
        n = max(len(v) for v in lists.values())
        labels = {}
        for factor, values in lists.items():
            if len(values) not in (1, n):
                raise ValueError(f"factor {factor!r} has {len(values)} values, others have {n}")
            idx = []
            for v in values:
                if v not in FACTORS[factor]:
                    raise _unknown(factor, v)
                idx.append(FACTORS[factor].index(v))
            labels[factor] = np.array(idx * (n if len(idx) == 1 else 1), dtype=np.int64)
        if jitter is None:
            jitter = np.zeros((n, 2), np.float32)
        return cls(**labels, jitter=jitter)

    def names(self, i: int) -> dict[str, str]:
        """The factor values of image ``i`` as names."""
        return {f: FACTORS[f][int(getattr(self, f)[i])] for f in FACTORS}

    def labels(self) -> dict[str, np.ndarray]:
        """The categorical labels as a dict ``factor -> (N,) int64``."""
        return {f: getattr(self, f) for f in FACTORS}


@dataclass
class Batch:
    """Images with their factors and captions.

    Attributes:
        images: (N, H, W, 3) uint8.
        factors: the :class:`Factors` that produced them.
        captions: N strings from the caption grammar.
        centroids: (N, 2) float32, exact (x, y) centroid of the object's coverage, in pixels of this size.
        masks: (N, H, W) float32 object coverage in [0, 1], only when asked for.
    """

    images: np.ndarray
    factors: Factors
    captions: list[str]
    centroids: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------------------------------------------------
# Shapes as signed distances in unit coordinates (y up, the shape inside the unit disc). Negative inside.
# Distances need only be exact near the edge, where they set the anti-aliased coverage.


def _box(x, y, hx, hy):
    return np.maximum(np.abs(x) - hx, np.abs(y) - hy)


def _sd_circle(x, y):
    return np.sqrt(x * x + y * y) - _EXTENT


def _sd_square(x, y):
    half = _EXTENT / np.sqrt(2.0)
    return _box(x, y, half, half)


def _sd_triangle(x, y):
    r = _EXTENT  # circumradius; apex up, centroid at the origin
    c, s = np.sqrt(3.0) / 2, 0.5
    return np.maximum(np.maximum(-y - s * r, c * x + s * y - s * r), -c * x + s * y - s * r)


def _sd_star(x, y, inner=0.45):
    # Fold the point into the wedge between the up-pointing spike and the next inner corner.
    k = 2 * np.pi / 5
    theta = np.arctan2(x, y)
    theta = theta - k * np.round(theta / k)
    rho = np.sqrt(x * x + y * y)
    qx, qy = np.abs(rho * np.sin(theta)), rho * np.cos(theta)
    ax, ay = 0.0, _EXTENT
    bx, by = inner * _EXTENT * np.sin(k / 2), inner * _EXTENT * np.cos(k / 2)
    ex, ey = bx - ax, by - ay
    return (ex * (qy - ay) - ey * (qx - ax)) / np.hypot(ex, ey)


def _sd_heart(x, y):
    r = 0.45
    lobes = np.minimum(np.hypot(x - 0.4, y - 0.28), np.hypot(x + 0.4, y - 0.28)) - r
    tip = np.maximum((np.abs(x) + np.abs(y + 0.04) - 0.86) / np.sqrt(2.0), y - 0.28)
    return np.minimum(lobes, tip)


def _sd_cross(x, y):
    arm, half = 0.3, 0.88
    return np.minimum(_box(x, y, half, arm), _box(x, y, arm, half))


_SDF = {
    "circle": _sd_circle,
    "square": _sd_square,
    "triangle": _sd_triangle,
    "star": _sd_star,
    "heart": _sd_heart,
    "cross": _sd_cross,
}


# ---------------------------------------------------------------------------------------------------------
# The world


class World:
    """Renders images of the shapes world at one size.

    Args:
        size: image side in pixels, a multiple of 16 and at least 32 (default 64).
    """

    def __init__(self, size: int = 64):
        self.size = _check_size(size)
        self.scale = self.size / 64.0
        self._colors = np.array(list(COLORS.values()), np.float32)
        self._backgrounds = self._render_backgrounds()  # (n_bg, n_tex, H, W, 3) uint8
        half = _EXTENT * _RADIUS["large"] + _JITTER + 1.5  # coverage reaches 0.5 px past the edge
        self._window = int(np.ceil(2 * half * self.scale)) + 2
        self._centroid_offsets = self._measure_centroid_offsets()

    def __repr__(self) -> str:
        return f"World(size={self.size})"

    # -- geometry ---------------------------------------------------------------------------------------

    def centers(self, factors: Factors) -> np.ndarray:
        """(N, 2) float32 (x, y) pixel centre at which each shape is drawn: grid cell centre + jitter."""
        row, col = np.divmod(factors.position, 3)
        grid = np.asarray(_GRID, np.float32) * self.size
        return np.stack([grid[col], grid[row]], axis=1) + factors.jitter * self.scale

    def radii(self, factors: Factors) -> np.ndarray:
        """(N,) float32 radius in pixels of the disc each shape is drawn in."""
        r = np.array([_RADIUS[s] for s in SIZES], np.float32) * self.scale
        return r[factors.size]

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Grid cell (0..8, row-major from top left) of pixel positions ``xy: (N, 2)``."""
        xy = np.asarray(xy, np.float32) / self.size
        edges = np.array([(_GRID[0] + _GRID[1]) / 2, (_GRID[1] + _GRID[2]) / 2], np.float32)
        col = np.searchsorted(edges, xy[:, 0])
        row = np.searchsorted(edges, xy[:, 1])
        return (row * 3 + col).astype(np.int64)

    def center_from_centroid(self, shape: np.ndarray, size: np.ndarray, centroid: np.ndarray):
        """Invert :meth:`centers` for rendering: the drawing centre whose object has ``centroid``."""
        r = np.array([_RADIUS[s] for s in SIZES], np.float32)[size] * self.scale
        return np.asarray(centroid, np.float32) - self._centroid_offsets[shape] * r[:, None]

    # -- sampling ---------------------------------------------------------------------------------------

    def sample_factors(self, n: int, seed: int | np.random.Generator, split: str = "all") -> Factors:
        """Draw ``n`` factor combinations, each factor uniform and independent (balanced).

        Args:
            n: number of images.
            seed: an int or a NumPy Generator.
            split: ``"all"``; ``"train"`` never yields a :data:`HELD_OUT` (shape, colour) pair;
                ``"heldout"`` yields only those pairs.
        """
        if split not in ("all", "train", "heldout"):
            raise ValueError(f"split must be 'all', 'train' or 'heldout', got {split!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        labels = {f: rng.integers(0, len(v), n) for f, v in FACTORS.items()}
        jitter = rng.uniform(-_JITTER, _JITTER, (n, 2)).astype(np.float32)
        held = np.array([[SHAPES.index(s), FACTORS["color"].index(c)] for s, c in HELD_OUT])
        if split == "heldout":
            pick = rng.integers(0, len(held), n)
            labels["shape"], labels["color"] = held[pick, 0], held[pick, 1]
        elif split == "train":
            is_held = np.zeros((len(SHAPES), len(COLORS)), bool)
            is_held[held[:, 0], held[:, 1]] = True
            bad = is_held[labels["shape"], labels["color"]]
            while bad.any():  # redraw the colour of held-out pairs; stays balanced per factor
                labels["color"][bad] = rng.integers(0, len(COLORS), bad.sum())
                bad = is_held[labels["shape"], labels["color"]]
        return Factors(**labels, jitter=jitter)

    def sample(
        self, n: int, seed: int | np.random.Generator = 0, split: str = "all", masks: bool = False
    ) -> Batch:
        """Draw and render ``n`` images. Same seed, same images, bit for bit."""
        return self.render(self.sample_factors(n, seed, split), masks=masks)

    def batches(
        self, n: int, batch_size: int = 1024, seed: int = 0, split: str = "all", masks: bool = False
    ) -> Iterator[Batch]:
        """Yield ``n`` images in batches without holding them all in memory (for training loops)."""
        rng = np.random.default_rng(seed)
        for start in range(0, n, batch_size):
            yield self.render(self.sample_factors(min(batch_size, n - start), rng, split), masks=masks)

    # -- rendering --------------------------------------------------------------------------------------

    def render(self, factors: Factors, masks: bool = False, centers: np.ndarray | None = None) -> Batch:
        """Render images for the given factors.

        Args:
            factors: N factor combinations.
            masks: also return the object's coverage masks (N, H, W).
            centers: optional (N, 2) pixel centres overriding position + jitter (used by the probes'
                in-distribution score to redraw an image where its object was found).
        """
        if not isinstance(factors, Factors):
            raise TypeError(f"render takes a Factors, got {type(factors).__name__}")
        n, size, win = len(factors), self.size, self._window
        images = self.backgrounds(factors)  # (N, H, W, 3), a copy (fancy indexing)
        centers = self.centers(factors) if centers is None else np.asarray(centers, np.float32)
        if centers.shape != (n, 2):
            raise ValueError(f"centers must have shape ({n}, 2), got {centers.shape}")
        radii = self.radii(factors)
        # Each object is drawn in a win x win window placed around it (shifted inside the image).
        x0 = np.clip(np.floor(centers[:, 0]).astype(np.int64) - win // 2, 0, size - win)
        y0 = np.clip(np.floor(centers[:, 1]).astype(np.int64) - win // 2, 0, size - win)
        offs = np.arange(win)
        xs = x0[:, None] + offs  # (N, win) pixel columns
        ys = y0[:, None] + offs  # (N, win) pixel rows
        cover = np.zeros((n, win, win), np.float32)
        for k, name in enumerate(SHAPES):
            idx = np.flatnonzero(factors.shape == k)
            if not len(idx):
                continue
            r = radii[idx, None, None]
            u = (xs[idx, None, :] + 0.5 - centers[idx, 0, None, None]) / r  # pixel centres, unit coords
            v = -(ys[idx, :, None] + 0.5 - centers[idx, 1, None, None]) / r
            cover[idx] = np.clip(0.5 - _SDF[name](u, v) * r, 0.0, 1.0)
        rows = ys[:, :, None]
        cols = xs[:, None, :]
        b = np.arange(n)[:, None, None]
        under = images[b, rows, cols].astype(np.float32)  # (N, win, win, 3)
        color = self._colors[factors.color][:, None, None, :]
        a = cover[..., None]
        images[b, rows, cols] = np.rint(under + a * (color - under)).astype(np.uint8)
        # Exact centroid of the coverage, in pixel coordinates (pixel centres at +0.5).
        mass = cover.sum(axis=(1, 2))
        cx = (cover.sum(axis=1) * (xs + 0.5)).sum(axis=1) / mass
        cy = (cover.sum(axis=2) * (ys + 0.5)).sum(axis=1) / mass
        full = None
        if masks:
            full = np.zeros((n, size, size), np.float32)
            full[b, rows, cols] = cover
        return Batch(
            images=images,
            factors=factors,
            captions=self.caption(factors),
            centroids=np.stack([cx, cy], axis=1).astype(np.float32),
            masks=full,
        )

    def backgrounds(self, factors: Factors) -> np.ndarray:
        """(N, H, W, 3) uint8: the backgrounds of ``factors`` with no object drawn (a broken image)."""
        return self._backgrounds[factors.background, factors.texture]

    def _render_backgrounds(self) -> np.ndarray:
        s, p = self.size, _TEXTURE_PERIOD * self.scale
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
        patterns = {
            "plain": np.zeros((s, s), np.float32),
            "striped": (np.floor((xx + yy) / (p / 2)) % 2).astype(np.float32),
            "dotted": (np.hypot((xx % p) - p / 2, (yy % p) - p / 2) < 0.22 * p).astype(np.float32),
            "checkered": ((np.floor(xx / p) + np.floor(yy / p)) % 2).astype(np.float32),
        }
        out = np.zeros((len(BACKGROUNDS), len(TEXTURES), s, s, 3), np.uint8)
        for i, base in enumerate(BACKGROUNDS.values()):
            base = np.array(base, np.float32)
            target = 0.0 if base.mean() > 128 else 255.0
            second = base + _TEXTURE_MIX * (target - base)
            for j, name in enumerate(TEXTURES):
                m = patterns[name][..., None]
                out[i, j] = np.rint(base * (1 - m) + second * m).astype(np.uint8)
        return out

    def _measure_centroid_offsets(self) -> np.ndarray:
        """(n_shapes, 2) centroid minus drawing centre, in units of the radius (x right, y down)."""
        g = (np.arange(256, dtype=np.float32) + 0.5) / 128.0 - 1.0
        u, v = np.meshgrid(g, -g)
        offsets = []
        for name in SHAPES:
            inside = (_SDF[name](u, v) < 0).astype(np.float64)
            offsets.append([(inside * u).sum() / inside.sum(), -(inside * v).sum() / inside.sum()])
        return np.array(offsets, np.float32)

    # -- captions ---------------------------------------------------------------------------------------

    @staticmethod
    def caption(factors: Factors) -> list[str]:
        """Captions from the fixed grammar, one per image."""
        return [caption_of(factors.names(i)) for i in range(len(factors))]


_TEXTURE_WORD = {"plain": "plain", "striped": "striped", "dotted": "dotted", "checkered": "checkered"}


def caption_of(names: dict[str, str]) -> str:
    """``"a {size} {color} {shape} at the {position} on a {texture} {background} background"``."""
    return (
        f"a {names['size']} {names['color']} {names['shape']} at the {names['position']} "
        f"on a {_TEXTURE_WORD[names['texture']]} {names['background']} background"
    )


_CAPTION_RE = re.compile(
    r"^a (?P<size>\w+) (?P<color>\w+) (?P<shape>\w+) at the (?P<position>[\w ]+?) "
    r"on a (?P<texture>\w+) (?P<background>\w+) background$"
)


def parse_caption(caption: str) -> dict[str, str]:
    """Read the factor names back from a caption of the grammar; a clear error for anything else."""
    match = _CAPTION_RE.match(caption.strip().lower())
    if not match:
        raise ValueError(
            f"{caption!r} does not follow the caption grammar "
            "'a <size> <color> <shape> at the <position> on a <texture> <background> background', "
            "e.g. 'a large red star at the top left on a striped white background'"
        )
    names = match.groupdict()
    for factor, value in names.items():
        if value not in FACTORS[factor]:
            raise _unknown(factor, value)
    return names


def vocabulary() -> list[str]:
    """Every word the caption grammar can produce, sorted (the tokenizer is built from it)."""
    words = {"a", "at", "the", "on", "background"}
    for values in FACTORS.values():
        for value in values:
            words.update(value.split())
    return sorted(words)
