"""Which space is *the* latent space of a diffusion model? The candidates of the paper's Fig. 4, as spaces.

Sec. 3 of the paper goes through the places in a (latent) diffusion model that could be called its
latent space and scores each by eye on density, smoothness, organization and relevance (Fig. 4). Here
each candidate is a :class:`latentkit.spaces.Space`, so the functions of :mod:`latentkit.properties`
measure it with the same ruler that measured the autoencoder and the GAN:

=====================  ====================================  ============================================
candidate              a point is                            decoded by
=====================  ====================================  ============================================
initial noise          the Gaussian latents the sampler      the pipeline, from these ``latents=``, with
                       starts from, (C, h, w)                the base prompt
text tokens            the text encoder's output for a       the pipeline with ``prompt_embeds=``, from
                       caption, one vector per token (L, D)  the base noise
EOS / pooled           the text encoder's state at the       the base caption's embeddings with that one
                       end-of-sentence token (D,)            position replaced, from the base noise
VAE latent             the final latent, before the VAE      ``vae.decode`` alone
                       decoder, (C, h, w)
denoiser layer at t    a layer's activation at chosen        the base generation with the layer's output
(h-space: mid block)   steps, (S, halves, C, H, W)           replaced at those steps (a temporary hook)
=====================  ====================================  ============================================

Every candidate holds the rest of the generation fixed: a :class:`BaseGeneration` (one caption of the
world, one noise seed, the pipeline settings). A candidate's points are sampled as the model meets them:
Gaussian noise; the text encoder's output for random training captions; the VAE latents of world images; a
layer's activations in generations of random (caption, noise) pairs. "Noise from the space's own
distribution" (Fig. 4's first probe, :meth:`DiffusionSpace.perturb`) is Gaussian with each
coordinate's own spread, measured on the space's samples. The second probe of Fig. 4 adds the point of a
content word (the paper's 'A dog'; here a shape, 'star') to points of the space; both probes, and the
table of the paper's marks, are in :mod:`latentkit.fig4`; DDIM inversion in :mod:`latentkit.inversion`.

The text spaces use the pipeline's own tokenizer and text encoder (``pipe.encode_prompt``), so the same
code runs on a real Stable Diffusion 1.x/2.x (:func:`latentkit.models.real.load_pipeline`). Used by
notebook ``03_diffusion_latent_spaces``.

Example::

    pipe = load_organism()
    base = BaseGeneration.from_world(seed=0, num_inference_steps=10)
    space = TokenSpace(pipe, base)
    points = space.sample(8, torch.Generator().manual_seed(0))  # (8, 20, 128)
    images = space.decode(space.perturb(points, 0.5))  # (8, 64, 64, 3) uint8
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from latentkit.inversion import invert, schedule_timesteps
from latentkit.layers import find_denoiser, resolve
from latentkit.run import StepTracker, generate, record
from latentkit.spaces import Space, slerp
from latentkit.world import FACTORS, Factors, World, parse_caption

_REFERENCE_N = 512  # samples that estimate a space's centre and per-coordinate spread
_DECODE_BATCH = 64  # images per pipeline call


# ---------------------------------------------------------------------------------------------------------
# What a candidate holds fixed


@dataclass(frozen=True)
class BaseGeneration:
    """The generation a candidate varies one part of: a caption, a noise seed, the pipeline settings.

    Attributes:
        prompt: the base caption (a sentence of the world's grammar for the organism).
        seed: seeds the base noise (:meth:`noise`).
        call: shared pipeline arguments (``num_inference_steps``, ``guidance_scale``, ``height``, ...).
    """

    prompt: str
    seed: int = 0
    call: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_world(cls, seed: int = 0, pipe: Any = None, **call: Any) -> BaseGeneration:
        """A base whose prompt is a random training caption of the world (drawn with ``seed``).

        ``call`` defaults to the generation settings of ``pipe`` (an organism's, from the
        ``latentkit_defaults.json`` it ships with: :func:`latentkit.models.tiny_sd.defaults_of`), or of
        the U-Net organism when no pipeline is given, overridden by the keyword arguments given (e.g.
        ``num_inference_steps=10``).
        """
        from latentkit.models.tiny_sd import DEFAULTS, defaults_of

        factors = World(64).sample_factors(1, seed, split="train")
        defaults = DEFAULTS if pipe is None else defaults_of(pipe)
        return cls(World.caption(factors)[0], seed, {**defaults, **call})

    @property
    def steps(self) -> int:
        return int(self.call.get("num_inference_steps", 50))

    def noise(self, pipe, n: int = 1) -> torch.Tensor:
        """(n, C, h, w) CPU float32 initial latents drawn from ``seed``, the same row ``n`` times."""
        return _noise_like(pipe, self.call, torch.Generator().manual_seed(self.seed), 1).expand(n, -1, -1, -1)


def _noise_like(pipe, call: Mapping[str, Any], generator: torch.Generator | None, n: int) -> torch.Tensor:
    """(n, C, h, w) standard Gaussian latents of the size ``pipe`` samples at ``call``'s height/width."""
    _, denoiser = find_denoiser(pipe)
    factor = pipe.vae_scale_factor
    height = call.get("height") or denoiser.config.sample_size * factor
    width = call.get("width") or denoiser.config.sample_size * factor
    shape = (n, denoiser.config.in_channels, height // factor, width // factor)
    return torch.randn(shape, generator=generator)


def render_captions(captions: Sequence[str], size: int = 64) -> np.ndarray:
    """(N, size, size, 3) uint8 world renders of captions of the grammar (no jitter)."""
    names = [parse_caption(c) for c in captions]
    factors = Factors.from_names(**{f: [n[f] for n in names] for f in FACTORS})
    return World(size).render(factors).images


def _train_captions(n: int, generator: torch.Generator | None) -> list[str]:
    """``n`` random training captions; the world's seed is drawn from ``generator``."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return World.caption(World(64).sample_factors(n, seed, split="train"))


def _key(point: torch.Tensor) -> bytes:
    return hashlib.sha1(point.detach().float().cpu().contiguous().numpy().tobytes()).digest()


# ---------------------------------------------------------------------------------------------------------
# The common part of every candidate


class DiffusionSpace(Space):
    """A candidate latent space of a diffusion pipeline (subclasses: one per row of Fig. 4).

    Subclasses implement :meth:`sample`, :meth:`points_of` and :meth:`_decode`. This class adds:

    * a memory of decoded points: one decode is a whole generation, and the four properties decode the
      same sampled points several times (with ``measure_all(..., n=64)`` every property starts from the
      same draws), so images are remembered by the bytes of their point (at most ``memory`` of them);
    * the space's centre and per-coordinate spread, from :data:`_REFERENCE_N` samples;
    * :meth:`perturb`: Gaussian noise with that spread, Fig. 4's "noise in the same distribution".

    Attributes:
        candidate: the Fig. 4 row this space is (a key of :data:`PAPER_FIG4`).
        pipe, base: the pipeline and what the space holds fixed.
    """

    candidate = "?"

    def __init__(self, pipe, base: BaseGeneration, name: str, memory: int = 4096):
        self.pipe, self.base, self.name, self.memory = pipe, base, name, memory
        self._decoded: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    # -- to implement ------------------------------------------------------------------------------------

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        """(N, ...) the points the space gives to these captions (the content probe's 'embedding')."""
        raise NotImplementedError

    def _decode(self, points: torch.Tensor) -> torch.Tensor:
        """(N, ...) points -> (N, H, W, 3) float images in [0, 1], one pipeline or VAE call."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def decode_float(self, points: torch.Tensor) -> torch.Tensor:
        keys = [_key(p) for p in points]
        todo = [i for i, k in enumerate(keys) if k not in self._decoded]
        fresh = {}
        for start in range(0, len(todo), _DECODE_BATCH):
            idx = todo[start : start + _DECODE_BATCH]
            for i, image in zip(idx, self._decode(points[idx]), strict=True):
                fresh[keys[i]] = image
        for k, image in fresh.items():
            self._decoded[k] = image
            if len(self._decoded) > self.memory:
                self._decoded.popitem(last=False)
        return torch.stack([fresh[k] if k in fresh else self._decoded[k] for k in keys])

    def forget(self) -> None:
        """Drop the remembered images (after changing the pipeline's weights, say)."""
        self._decoded.clear()

    def _reference(self) -> torch.Tensor:
        if not hasattr(self, "_reference_points"):
            self._reference_points = self.sample(_REFERENCE_N, torch.Generator().manual_seed(12345))
        return self._reference_points

    def center(self) -> torch.Tensor:
        """(...) mean of :data:`_REFERENCE_N` samples."""
        return self._reference().mean(0)

    def spread(self) -> torch.Tensor:
        """(...) standard deviation of each coordinate over :data:`_REFERENCE_N` samples."""
        return self._reference().std(0)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, ...) Gaussian noise with the space's per-coordinate spread (centred at 0)."""
        spread = self.spread()
        return torch.randn((n, *spread.shape), generator=generator) * spread

    def perturb(
        self, points: torch.Tensor, scale: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``points + scale * noise``: at ``scale = 1`` each coordinate moves by about its own spread."""
        return points + scale * self.noise(len(points), generator).to(points.dtype)

    def base_point(self) -> torch.Tensor:
        """(1, ...) the point of the base generation (its caption, in this space)."""
        return self.points_of([self.base.prompt])

    def _rows(self, n: int, **per_image: torch.Tensor | str) -> list[dict[str, Any]]:
        """``n`` per-image argument dicts for :func:`latentkit.run.generate`."""
        return [
            {k: (v if isinstance(v, str) else v[i : i + 1]) for k, v in per_image.items()} for i in range(n)
        ]

    def _generate(self, rows, fns=None, tracker=None) -> torch.Tensor:
        """Run the pipeline on ``rows`` (optionally patched); (N, H, W, 3) float CPU tensor."""
        images, _ = generate(self.pipe, rows, fns, tracker, **self.base.call)
        return torch.from_numpy(np.ascontiguousarray(images)).float()

    def _embed(self, captions: Sequence[str]) -> torch.Tensor:
        """(N, L, D) the pipeline's own text embeddings (its tokenizer and text encoder)."""
        _check_text_pipeline(self.pipe)
        with torch.no_grad():
            embeds, _ = self.pipe.encode_prompt(
                prompt=list(captions),
                device=self.pipe.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=False,
            )
        return embeds.float().cpu()


def _check_text_pipeline(pipe) -> None:
    if not hasattr(pipe, "encode_prompt") or getattr(pipe, "text_encoder_2", None) is not None:
        raise TypeError(
            f"the text candidates need a Stable Diffusion 1.x/2.x pipeline (one CLIP text encoder, "
            f"prompt_embeds=...); {type(pipe).__name__} encodes text otherwise. The noise, VAE and layer "
            "candidates work on it."
        )


# ---------------------------------------------------------------------------------------------------------
# The candidates


class NoiseSpace(DiffusionSpace):
    """The initial noise x_T ~ N(0, I), decoded with the base prompt. Interpolation: slerp.

    Its content probe needs the noise of a given image: :func:`invert` (DDIM inversion) of the world
    render of the caption, with ``inversion_steps`` steps (inversion needs small steps to be accurate:
    on the organism, 50 steps lead back to the image's latent, 4 or 10 do not).
    """

    candidate = "initial noise"
    interpolation = "slerp"

    def __init__(self, pipe, base: BaseGeneration, inversion_steps: int = 50, **kwargs):
        super().__init__(pipe, base, "initial noise", **kwargs)
        self.inversion_steps = inversion_steps

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return _noise_like(self.pipe, self.base.call, generator, n)  # (N, C, h, w)

    def center(self) -> torch.Tensor:
        return torch.zeros(self.sample(1, torch.Generator().manual_seed(0)).shape[1:])

    def spread(self) -> torch.Tensor:
        return torch.ones_like(self.center())

    def interpolate(self, a, b, t, mode=None):
        if (mode or self.interpolation) == "slerp":
            return slerp(a, b, t)
        return super().interpolate(a, b, t, mode)

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        height = self.base.call.get("height", 64)
        latents = vae_encode(self.pipe, render_captions(captions, height))
        pairs = zip(latents, captions, strict=True)
        return torch.cat([invert(self.pipe, z[None], c, self.inversion_steps) for z, c in pairs])

    def _decode(self, points):
        return self._generate(self._rows(len(points), prompt=self.base.prompt, latents=points))


class TokenSpace(DiffusionSpace):
    """The text encoder's output, one vector per token (SD's ``prompt_embeds``), (L, D) per point.

    Sampled by encoding random training captions with the pipeline's tokenizer and text encoder; decoded
    from the base noise (the unconditional half of classifier-free guidance is the pipeline's own
    empty prompt).
    """

    candidate = "text tokens"

    def __init__(self, pipe, base: BaseGeneration, **kwargs):
        super().__init__(pipe, base, "text tokens", **kwargs)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._embed(_train_captions(n, generator))  # (N, L, D)

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        return self._embed(captions)

    def _decode(self, points):
        noise = self.base.noise(self.pipe, len(points))
        return self._generate(self._rows(len(points), prompt_embeds=points, latents=noise))


class EosSpace(DiffusionSpace):
    """The text encoder's state at the end-of-sentence token: CLIP's pooled embedding, (D,) per point.

    Decoded by putting the point at the EOS position of the base caption's embeddings, every other
    token kept (for SD 1.x/2.x, whose padding is more EOS tokens, only the first one changes).
    """

    candidate = "EOS / pooled"

    def __init__(self, pipe, base: BaseGeneration, **kwargs):
        super().__init__(pipe, base, "EOS / pooled", **kwargs)
        self.position = int(eos_positions(pipe, [base.prompt])[0])
        self._base_embeds = self._embed([base.prompt])  # (1, L, D)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.points_of(_train_captions(n, generator))

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        embeds = self._embed(captions)  # (N, L, D)
        return embeds[torch.arange(len(captions)), eos_positions(self.pipe, captions)]  # (N, D)

    def _decode(self, points):
        embeds = self._base_embeds.repeat(len(points), 1, 1)
        embeds[:, self.position] = points
        noise = self.base.noise(self.pipe, len(points))
        return self._generate(self._rows(len(points), prompt_embeds=embeds, latents=noise))


def eos_positions(pipe, captions: Sequence[str]) -> torch.Tensor:
    """(N,) index of the first end-of-sentence token of each caption, tokenized as the pipeline does."""
    tok = pipe.tokenizer
    length = tok.model_max_length
    ids = tok(list(captions), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    ids = ids.input_ids
    is_eos = ids == tok.eos_token_id
    if not is_eos.any(1).all():
        raise ValueError(f"a caption is longer than the tokenizer's {length} tokens: no EOS left")
    return is_eos.int().argmax(1)


class VaeLatentSpace(DiffusionSpace):
    """The final latent before the VAE decoder (what the denoiser produces), (C, h, w) per point.

    Sampled as the VAE latents (posterior means, times the VAE's scaling factor, as the denoiser sees
    them) of world images of the training split; decoded by ``vae.decode`` alone. Its content probe
    encodes the render of a caption.
    """

    candidate = "VAE latent"

    def __init__(self, pipe, base: BaseGeneration, **kwargs):
        super().__init__(pipe, base, "latent before the VAE decoder", **kwargs)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        images = World(self.base.call.get("height", 64)).sample(n, seed, split="train").images
        return vae_encode(self.pipe, images)

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        return vae_encode(self.pipe, render_captions(captions, self.base.call.get("height", 64)))

    def _decode(self, points):
        vae = self.pipe.vae
        z = points.to(vae.device, vae.dtype) / vae.config.scaling_factor
        x = vae.decode(z).sample.float().cpu()  # (N, 3, H, W) in [-1, 1]
        return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


@torch.no_grad()
def vae_encode(pipe, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, C, h, w) scaled VAE latents (posterior mean x scaling factor), CPU."""
    vae = pipe.vae
    out = []
    for start in range(0, len(images), 256):
        x = torch.as_tensor(images[start : start + 256]).permute(0, 3, 1, 2).float() / 127.5 - 1
        mean = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mean
        out.append(mean.float().cpu() * vae.config.scaling_factor)
    return torch.cat(out)


class LayerSpace(DiffusionSpace):
    """A denoiser layer's output at chosen steps: "a separate latent space per timestep" (Sec. 3).

    A point is the layer's image-stream activation at each chosen step, for both halves of
    classifier-free guidance (unconditional, conditional), ``(S, halves, C, H, W)`` for a U-Net layer.
    Points are sampled from a pool of generations of random training captions from random noise
    (:func:`record_layers`; a draw takes distinct pool members). A point is decoded by re-running the
    base generation with the layer's output replaced by the point at those steps, through the hooks of
    :func:`latentkit.layers.patched`, which are gone after each call.

    Args:
        pipe: the pipeline.
        base: what is held fixed.
        layer: module path, e.g. ``"unet.mid_block"`` (h-space) or ``"unet.up_blocks.1.attentions.0"``.
        steps: step indices (0 = the noisiest) at which the layer is read and replaced.
        pool: (P, S, halves, ...) recorded activations; default: :func:`record_layers` with
            ``pool_size`` generations.
        candidate: the Fig. 4 row ("h-space" or "denoiser layer").
    """

    def __init__(
        self,
        pipe,
        base: BaseGeneration,
        layer: str,
        steps: int | Sequence[int],
        pool: torch.Tensor | None = None,
        pool_size: int = 128,
        candidate: str = "denoiser layer",
        **kwargs,
    ):
        self.layer, self.steps = layer, _steps(steps, base.steps)
        resolve(pipe, layer)  # an unknown name fails here, listing the closest ones
        label = "h-space" if candidate == "h-space" else layer
        super().__init__(pipe, base, f"{label} {_when(pipe, self.steps, base.steps)}", **kwargs)
        self.candidate = candidate
        self._pool, self.pool_size = pool, pool_size

    @property
    def pool(self) -> torch.Tensor:
        if self._pool is None:
            gen = torch.Generator().manual_seed(self.base.seed + 777)
            self._pool = record_layers(self.pipe, self.base, {self.layer: self.steps}, self.pool_size, gen)[
                self.layer
            ]
        return self._pool

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if n > len(self.pool):
            raise ValueError(
                f"{self.name}: asked for {n} points, the pool holds {len(self.pool)} recorded generations; "
                f"build the space with pool_size >= {n}"
            )
        return self.pool[torch.randperm(len(self.pool), generator=generator)[:n]]

    def _reference(self) -> torch.Tensor:
        return self.pool

    def points_of(self, captions: Sequence[str]) -> torch.Tensor:
        noise = self.base.noise(self.pipe, len(captions))
        rows = self._rows(len(captions), latents=noise)
        for row, caption in zip(rows, captions, strict=True):
            row["prompt"] = caption
        return record(self.pipe, rows, {self.layer: self.steps}, **self.base.call)[self.layer]

    def _decode(self, points):
        tracker = StepTracker()
        where = {k: s for s, k in enumerate(self.steps)}

        def put(act: torch.Tensor, name: str) -> torch.Tensor | None:  # act: (halves * N, ...)
            if tracker.index not in where:
                return None
            point = points[:, where[tracker.index]]  # (N, halves, ...)
            return point.transpose(0, 1).reshape(act.shape).to(act.device, act.dtype)

        noise = self.base.noise(self.pipe, len(points))
        rows = self._rows(len(points), prompt=self.base.prompt, latents=noise)
        return self._generate(rows, {self.layer: put}, tracker)


def h_space(pipe, base: BaseGeneration, steps: int | Sequence[int], **kwargs) -> LayerSpace:
    """The output of the U-Net's mid block (the bottleneck, "h-space", Kwon et al. 2023) at ``steps``."""
    prefix, denoiser = find_denoiser(pipe)
    if getattr(denoiser, "mid_block", None) is None:
        raise ValueError(
            f"h-space is the output of a U-Net's mid block; this {type(denoiser).__name__} has none. "
            "Use LayerSpace with a layer of latentkit.layers.list_layers(pipe)."
        )
    return LayerSpace(pipe, base, f"{prefix}.mid_block", steps, candidate="h-space", **kwargs)


def _steps(steps: int | Sequence[int], n_steps: int) -> tuple[int, ...]:
    steps = (steps,) if isinstance(steps, int) else tuple(int(s) for s in steps)
    bad = [s for s in steps if not 0 <= s < n_steps]
    if not steps or bad or len(set(steps)) != len(steps):
        raise ValueError(f"steps must be distinct indices in 0..{n_steps - 1} (the schedule), got {steps}")
    return tuple(sorted(steps))


def _when(pipe, steps: tuple[int, ...], n_steps: int) -> str:
    """``"at step 1 (t=999) of 4"``, ``"at every step of 4"``, ``"at steps 1, 3 of 4"``."""
    if len(steps) == n_steps:
        return f"at every step of {n_steps}"
    if len(steps) == 1:
        return f"at step {steps[0] + 1} (t={schedule_timesteps(pipe, n_steps)[steps[0]]}) of {n_steps}"
    return f"at steps {', '.join(str(k + 1) for k in steps)} of {n_steps}"


def record_layers(
    pipe,
    base: BaseGeneration,
    layers: Mapping[str, Sequence[int]],
    n: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Activations of several layers at their steps in ``n`` generations of random (caption, noise) pairs.

    One recording can feed several :class:`LayerSpace` (pass ``pool=``), so their pools cost one set of
    generations.

    Returns:
        ``{layer: (n, S, halves, ...)}``.
    """
    layers = {name: _steps(steps, base.steps) for name, steps in layers.items()}
    captions = _train_captions(n, generator)
    noise = _noise_like(pipe, base.call, generator, n)
    parts = []
    for start in range(0, n, _DECODE_BATCH):
        rows = [
            {"prompt": c, "latents": noise[i : i + 1]}
            for i, c in enumerate(captions[start : start + _DECODE_BATCH], start)
        ]
        parts.append(record(pipe, rows, layers, **base.call))
    return {name: torch.cat([p[name] for p in parts]) for name in layers}


def diffusion_candidates(
    pipe,
    base: BaseGeneration,
    h_space_steps: Sequence[int] = (0,),
    layer: str | None = None,
    layer_steps: Sequence[int] | None = None,
    pool_size: int = 128,
    seed: int = 0,
) -> list[DiffusionSpace]:
    """Every row of Fig. 4 for one pipeline: noise, text tokens, EOS, VAE latent, h-space, a named layer.

    The layer candidates share one recording of ``pool_size`` generations (:func:`record_layers`).

    Args:
        pipe: a Stable Diffusion 1.x/2.x pipeline (the organism is one).
        base: what every candidate holds fixed.
        h_space_steps: one h-space per step index (0 = the noisiest step).
        layer: a named denoiser layer (module path), measured at ``layer_steps`` together; ``None``: none.
        layer_steps: its steps; default every step.
        pool_size: generations recorded for the layer candidates' samples.
        seed: seeds the recorded generations.
    """
    spaces: list[DiffusionSpace] = [
        NoiseSpace(pipe, base),
        TokenSpace(pipe, base),
        EosSpace(pipe, base),
        VaeLatentSpace(pipe, base),
    ]
    prefix, _ = find_denoiser(pipe)
    mid = f"{prefix}.mid_block"
    wanted: dict[str, set[int]] = {mid: set(h_space_steps)} if h_space_steps else {}
    if layer is not None:
        layer_steps = tuple(range(base.steps)) if layer_steps is None else _steps(layer_steps, base.steps)
        wanted.setdefault(layer, set()).update(layer_steps)
    if not wanted:
        return spaces
    recorded = {name: _steps(tuple(steps), base.steps) for name, steps in wanted.items()}
    pools = record_layers(pipe, base, recorded, pool_size, torch.Generator().manual_seed(seed))

    def pool(name: str, steps: Sequence[int]) -> torch.Tensor:  # (P, S, ...) restricted to ``steps``
        return pools[name][:, [recorded[name].index(k) for k in _steps(steps, base.steps)]]

    spaces += [h_space(pipe, base, k, pool=pool(mid, (k,))) for k in sorted(set(h_space_steps))]
    if layer is not None:
        spaces.append(LayerSpace(pipe, base, layer, layer_steps, pool=pool(layer, layer_steps)))
    return spaces


def real_base(model, seed: int = 0, **overrides: Any) -> BaseGeneration:
    """A :class:`BaseGeneration` with the defaults of a loaded model (``models.real.LoadedModel``)."""
    factors = World(64).sample_factors(1, seed, split="train")
    return BaseGeneration(World.caption(factors)[0], seed, model.call_kwargs(**overrides))


__all__ = [
    "BaseGeneration",
    "DiffusionSpace",
    "EosSpace",
    "LayerSpace",
    "NoiseSpace",
    "TokenSpace",
    "VaeLatentSpace",
    "diffusion_candidates",
    "eos_positions",
    "h_space",
    "real_base",
    "record_layers",
    "render_captions",
    "vae_encode",
]
