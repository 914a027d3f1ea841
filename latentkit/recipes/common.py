"""What every training recipe shares: resumable checkpoints, EMA weights, the learning-rate schedule.

Each recipe keeps its own training loop visible in its own file (``python -m latentkit.recipes NAME``);
only the bookkeeping lives here. Checkpoints go to :func:`latentkit.paths.cache_dir` (outside the
repository), so an interrupted recipe resumes where it stopped; only the final fp16 weights are exported
to ``data/``. A run inside a time budget stops the loops with a :func:`deadline`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from latentkit.paths import cache_dir


def checkpoint_path(name: str) -> Path:
    """``<cache>/checkpoints/<name>.pt``: the resumable state of recipe ``name``."""
    return cache_dir() / "checkpoints" / f"{name}.pt"


def save_checkpoint(name: str, step: int, **state) -> Path:
    """Atomically save ``step`` and the ``state_dict()`` of every module/optimizer passed by keyword."""
    path = checkpoint_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"step": step}
    for key, obj in state.items():
        payload[key] = obj.state_dict() if hasattr(obj, "state_dict") else obj
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never leaves a half-written checkpoint behind
    return path


def fingerprint(module: torch.nn.Module) -> str:
    """A short hash of ``module``'s weights: which trained model a checkpoint was made against."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_checkpoint(name: str, expect: dict | None = None, **state) -> int:
    """Restore the objects passed by keyword from checkpoint ``name``; return its step (0: none).

    ``expect``: entries the checkpoint must hold with these values (e.g. the :func:`fingerprint` of what a
    run trained against); another value stops with an error rather than resume a run on other inputs."""
    path = checkpoint_path(name)
    if not path.exists():
        return 0
    payload = torch.load(path, map_location="cpu", weights_only=False)
    for key, value in (expect or {}).items():
        if payload.get(key) != value:
            raise ValueError(
                f"checkpoint {path} was trained with another {key} ({payload.get(key)!r}, this run's is "
                f"{value!r}): resuming it would mix the two; start afresh with --fresh (the checkpoint is "
                "then deleted)"
            )
    for key, obj in state.items():
        if key not in payload:
            raise KeyError(
                f"checkpoint {path} has no entry {key!r}: another recipe or design wrote it; resume with the "
                "settings that wrote it, or start afresh with --fresh (the checkpoint is then deleted)"
            )
        if hasattr(obj, "load_state_dict"):
            try:
                obj.load_state_dict(payload[key])
            except (RuntimeError, ValueError) as error:  # a module's shapes or an optimizer's groups differ
                lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                header = len(lines) > 1 and lines[0].startswith("Error(s) in loading")  # torch's first line
                first = lines[1] if header else lines[0]
                first = first if len(first) <= 200 else first[:197] + "..."
                raise ValueError(
                    f"checkpoint {path} does not fit this run's {key!r} ({first}): another design or size "
                    "wrote it; resume with the settings that wrote it, or start afresh with --fresh (the "
                    "checkpoint is then deleted)"
                ) from error
    return int(payload["step"])


def start_or_resume(name: str, model, ema: EMA, opt, shipped=None, shipped_steps: int = 0) -> tuple[int, int]:
    """Where a training run starts: ``(step, stage_start)``.

    With a checkpoint, it resumes exactly (``stage_start`` is read back from it). Without one, and with
    ``shipped`` (a callable returning the exported module, e.g. the shipped U-Net), the model and its EMA
    start from the shipped weights at step ``shipped_steps``: a new *stage* that continues a run whose
    optimizer state was not kept (the learning rate warms up again from that step, see
    :func:`stage_lr`). Otherwise it starts from scratch at step 0.
    """
    path = checkpoint_path(name)
    if path.exists():
        step = load_checkpoint(name, model=model, ema=ema, opt=opt)
        payload = torch.load(path, map_location="cpu", weights_only=False)
        return step, int(payload.get("stage_start", 0))
    if shipped is None:
        return 0, 0
    weights = shipped().state_dict()
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    ema.load_state_dict({k: v.float() for k, v in weights.items()})
    print(f"{name}: no checkpoint; continuing from the shipped weights at step {shipped_steps}", flush=True)
    return shipped_steps, shipped_steps


def stage_lr(step: int, steps: int, warmup: int, stage_start: int) -> float:
    """:func:`warmup_cosine` over the whole run, times a fresh linear warm-up from ``stage_start`` (a stage
    continued from exported weights starts with a new optimizer, whose first steps must be small)."""
    restart = 1.0 if stage_start == 0 else min(1.0, (step - stage_start + 1) / warmup)
    return warmup_cosine(step, steps, warmup) * restart


def clear_checkpoint(name: str) -> None:
    """Forget recipe ``name``'s progress (``--fresh``)."""
    checkpoint_path(name).unlink(missing_ok=True)


class EMA:
    """Exponential moving average of a model's weights, the weights that get exported.

    Small diffusion models trained briefly sample far better from EMA weights than from the raw ones.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Warm-up: average over fewer steps at first, so early EMA weights are not mostly the init.
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def set_threads() -> None:
    """Use every core torch is allowed (``LATENTKIT_THREADS`` caps it, e.g. to share a laptop)."""
    n = os.environ.get("LATENTKIT_THREADS")
    if n:
        torch.set_num_threads(int(n))


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt, ema: EMA, step: int) -> float:
    """Backward, clip the gradient norm at 1, step, update the EMA weights; returns the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    ema.update(model, step)
    return loss.item()


def after_step(
    name: str, step: int, steps: int, losses: list[float], bar, since: tuple[float, int], **state
) -> bool:
    """The loss on the progress bar every 50 steps; every 200 steps (and at the last) a checkpoint of
    ``state`` and a log line with the mean loss and the speed (``since``: (start time, start step)).

    Returns True when the run is out of time (:func:`deadline`): then the checkpoint is saved at this step
    and the caller stops."""
    stop = step + 1 < steps and out_of_time()
    if (step + 1) % 50 == 0:
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    if (step + 1) % 200 == 0 or step + 1 == steps or stop:
        save_checkpoint(name, step + 1, **state)
        t0, start = since
        recent = losses[-200:]
        print(
            f"\n{name} step {step + 1}: loss(last 200) {sum(recent) / len(recent):.4f}, "
            f"{(time.time() - t0) / (step + 1 - start):.3f} s/step",
            flush=True,
        )
    if stop:
        stopped_early(name, step + 1, steps)
    return stop


def latest_ema(name: str, model: torch.nn.Module, recipe: str) -> torch.nn.Module:
    """``model`` with the EMA weights of ``name``'s latest checkpoint (what the recipes export)."""
    ema = EMA(model)
    step = load_checkpoint(name, ema=ema)
    if not step:
        raise FileNotFoundError(f"no {name} checkpoint: run `python -m latentkit.recipes {recipe}`")
    print(f"{recipe}: exporting the EMA weights of step {step}")
    return ema.model


def picture_codes(n: int = 65_536, seed: int = 7, device: str = "cpu") -> torch.Tensor:
    """(n, 4, 16, 16) picture codes of fresh world images: the training set of the strict-sense organisms.

    The autoencoder, the VAE and the GAN learn in the frozen codec's format
    (:mod:`latentkit.models.codec`), so their images are encoded once (a few minutes on one CPU core)
    and cached as ``<cache>/picture_codes_<n>_<seed>.pt`` (fp16); every later run, and every resumed one,
    reads the same codes. Batch ``i`` of 256 images is rendered from the generator seeded with
    ``(seed, i)``.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from latentkit.models.codec import load_codec
    from latentkit.world import World

    def encode() -> torch.Tensor:
        codec, world, chunks = load_codec(device), World(64), []
        with torch.no_grad():
            for i in tqdm(range(-(-n // 256)), desc="encoding world images", unit="batch"):
                images = world.sample(256, seed=np.random.default_rng([seed, i])).images
                x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
                chunks.append(codec.encode(x).half().cpu())
        return torch.cat(chunks)[:n]

    return _cached(cache_dir() / f"picture_codes_{n}_{seed}.pt", encode)


def _cached(path: Path, build) -> torch.Tensor:
    """The fp16 tensor cached at ``path``, as fp32; built by ``build()`` and saved atomically if absent."""
    if path.exists():
        return torch.load(path, map_location="cpu").float()
    tensor = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(tensor, tmp)
    os.replace(tmp, path)  # never leaves a half-written cache behind
    return tensor.float()


def batch_of(codes: torch.Tensor, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The training batch of ``step``: rows of ``codes`` drawn with a generator seeded by ``(seed, step)``,
    so a resumed run sees exactly the batches an uninterrupted one would have seen."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return codes[torch.randint(0, len(codes), (batch_size,), generator=g)]


def picture_masks(n: int = 65_536, seed: int = 7, side: int = 16) -> torch.Tensor:
    """(n, side, side) object coverage of the images of :func:`picture_codes`, pooled from 64x64 (side 16:
    the code's grid).

    The same seeds render the same images bit for bit, so row ``i`` is the object of code ``i``. The
    strict-sense recipes weight their code losses with it (:func:`object_weighted_mse`): in plain code
    MSE the background outweighs the object several times over, and the shape is what gets lost.
    At ``side`` 32 the masks still tell every shape apart: a recipe's auxiliary mask head learns to draw
    them (:mod:`latentkit.recipes.autoencoder`). Cached as ``<cache>/picture_masks_<n>_<seed>[_<side>].pt``
    (fp16); rendering takes under a minute.
    """
    if side not in (16, 32, 64):
        raise ValueError(f"side must be 16, 32 or 64 (pooled from the 64x64 render), got {side!r}")
    import numpy as np
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from latentkit.world import World

    def render() -> torch.Tensor:
        world, chunks = World(64), []
        for i in tqdm(range(-(-n // 256)), desc="rendering object masks", unit="batch"):
            masks = world.sample(
                256, seed=np.random.default_rng([seed, i]), masks=True
            ).masks  # (256, 64, 64)
            chunks.append(
                F.avg_pool2d(torch.from_numpy(masks)[:, None], 64 // side)[:, 0].half()
            )  # (256, s, s)
        return torch.cat(chunks)[:n]

    name = f"picture_masks_{n}_{seed}.pt" if side == 16 else f"picture_masks_{n}_{seed}_{side}.pt"
    return _cached(cache_dir() / name, render)


def object_weights(masks: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, 16, 16) object coverage in [0, 1] (:func:`picture_masks`) -> (B, 1, 16, 16) loss weights of the
    code's cells, ``1 + weight * coverage``, the coverage dilated by one cell so the object's edge, where
    the shape is decided, counts as object (``weight`` 0: every cell 1)."""
    import torch.nn.functional as F

    return 1 + weight * F.max_pool2d(masks[:, None].float(), 3, 1, 1)


def object_weighted_mse(
    recon: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor, weight: float
) -> torch.Tensor:
    """Mean squared error between picture codes, each cell weighted by :func:`object_weights`.

    Args:
        recon, codes: (B, 4, 16, 16) picture codes.
        masks: (B, 16, 16) object coverage in [0, 1] (:func:`picture_masks`).
        weight: extra weight of the object's cells (0: plain MSE).
    """
    w = object_weights(masks, weight)
    return ((recon - codes) ** 2 * w).sum() / (w.sum() * codes.shape[1])


# ---------------------------------------------------------------------------------------------------------
# A deadline: how a run inside a time budget stops its recipes (``python -m latentkit.recipes all --budget``)

_until: float | None = None  # time.monotonic() at which the current deadline passes; None: no deadline


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Inside this block, :func:`out_of_time` turns True ``seconds`` from now (None: no deadline).

    The organisms' training loops ask once per step; out of time, a loop saves its checkpoint at the step
    reached (the state of a regular checkpoint, so the run resumes exactly) and stops, and its recipe
    exports what it has. A deadline inside another never outlasts the outer one. Outside every deadline
    nothing changes.
    """
    global _until
    outer = _until
    if seconds is not None:
        _until = time.monotonic() + seconds if outer is None else min(outer, time.monotonic() + seconds)
    try:
        yield
    finally:
        _until = outer


def out_of_time() -> bool:
    """Whether the current :func:`deadline` has passed (always False outside one)."""
    return _until is not None and time.monotonic() >= _until


def time_left() -> float | None:
    """Seconds until the current :func:`deadline` passes (negative once it has); None outside one."""
    return None if _until is None else _until - time.monotonic()


def stopped_early(name: str, step: int, steps: int) -> None:
    """The line a training loop stopped by its :func:`deadline` prints."""
    print(f"{name}: out of time, stopped at step {step:,} of {steps:,} (checkpoint saved)", flush=True)
