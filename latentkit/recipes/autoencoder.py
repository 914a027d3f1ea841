"""Train the autoencoders: Fig. 2's three neurons and the widths sweep (``python -m latentkit.recipes
autoencoder``).

*How many neurons does this world need?* Fig. 2's three-neuron bottleneck is the picture; the sweep asks
the question it raises. Every width of :data:`WIDTHS` is trained the same way, its held-out quality is
measured by the probes (:func:`latentkit.quality.autoencoder_quality`) and written to
``data/autoencoder/widths.csv`` (notebook 01 draws it); two widths are exported: three neurons to
``data/autoencoder/`` and the *fitted* one, the smallest width whose held-out reconstructions pass the
in-distribution test at least :data:`latentkit.quality.RECONSTRUCTIONS_VALID` of the time (the best one
when none does), to ``data/autoencoder-fitted/``.

The loss sees the object. Plain mean squared error between picture codes is dominated by the background,
which fills most of each code; measured at 16 neurons it barely learned the shape (read back 0.23, chance
0.17). Each code cell is weighted by ``1 + OBJECT_WEIGHT x`` the object's coverage of that cell, dilated
by one cell (:func:`latentkit.recipes.common.object_weighted_mse`; the masks come from the world's own
renderer, :func:`latentkit.recipes.common.picture_masks`). Measured at 8 neurons after 3,000 steps:
shape read back 0.44, reconstructions valid 0.60. An auxiliary head that also drew the object's 32x32
mask from the decoder's features bought nothing (0.44, 0.59) and was left out.

Training runs in the picture code of :mod:`latentkit.models.codec`; the codes come from
:func:`latentkit.recipes.common.picture_codes` (65,536 world images, encoded once and cached), and step
``s`` draws its batch with a generator seeded by ``(seed, s)``, so a resumed run sees exactly the batches
an uninterrupted one would have seen. Each width has its own checkpoint (``autoencoder_<width>``). The
networks run under bf16 autocast where the hardware has it (:func:`latentkit.autocast`:
x1.8 per step on this project's CPU). After training, a Gaussian is fitted to the bottleneck codes of 4096
training images: the autoencoder's sampling distribution (see :mod:`latentkit.models.autoencoder`).

Time on this project's 2-core CPU (one thread per width, bf16, the two cores shared with other trainings):
0.14-0.20 s per batch-64 step; 6,000 steps took 866 s (16 neurons), 1,146 s (8), 1,097 s (4) and 1,171 s (3);
on 2026-12-02's machine 8 and 4 took 716 s and 581 s (0.10-0.12 s per step).

**The fitted width trains on** (:data:`FITTED_STAGES`). After the sweep's 6,000 steps the 16 neurons
reconstruct well (0.95 valid) but read the shape back 0.900 [0.871, 0.923] against a target of 0.930 (0.95
x the codec's own 0.979). Where the shape is lost: an MLP reading the shape from the 16 numbers of 5,000
training images gets 0.86 on 1,000 others, so the code itself holds the shape only partly. Measured
(``bench_organism_quality.py --only autoencoder-fitted``, 512 held-out images; valid, shape):

=====================================================================  =====  =====  ======
what was trained on from the sweep's model                              valid  shape  seconds
=====================================================================  =====  =====  ======
the sweep's model (6,000 steps)                                         0.953  0.900
decoder only, encoder frozen (codes kept), 3,000 steps at 5e-4         0.955  0.912  351
encoder and decoder, 4,000 steps at 5e-4 (stage 1)                      0.967  0.924  489
... then 6,000 more at 5e-4, a new warm-up and cosine (stage 2)         0.977  0.939  710
the same exported in fp16: the shipped weights (every target met)       0.979  0.941
=====================================================================  =====  =====  ======

So the code had to change, not only the decoder; the GAN, which plays in this code, is then trained
afresh (its checkpoint records which autoencoder it was made against and refuses another). The shipped
weights: stage 1 started from the exported (fp16) sweep model; a run of the recipe starts it from the
fp32 one, so its weights differ in the last bits.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import autocast, resolve_device
from latentkit.models.autoencoder import FITTED, Autoencoder
from latentkit.models.codec import own_state
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    batch_of,
    clear_checkpoint,
    deadline,
    load_checkpoint,
    object_weighted_mse,
    out_of_time,
    picture_codes,
    picture_masks,
    save_checkpoint,
    set_threads,
    stopped_early,
    time_left,
    warmup_cosine,
)
from latentkit.world import World

NAME = "autoencoder"
STEPS = 6000
BATCH = 64
WIDTHS = (16, 8, 4, 3)  # bottleneck neurons of the sweep, widest first (the GAN draws in the fitted one)
FIG2 = 3  # the paper's Fig. 2
OBJECT_WEIGHT = 10.0  # extra weight of the object's code cells in the loss
WARMUP = 200  # warm-up steps of each width's learning rate
#: The fitted width trains on after the sweep, in stages: (steps, learning rate) of each. A stage starts
#: from the model the one before left, with a fresh optimiser, its own warm-up and cosine, and batches drawn
#: with STAGE_SEED (the sweep's seed is 0). What the stages bought: the module's docstring.
FITTED_STAGES = ((4_000, 5e-4), (6_000, 5e-4))
STAGE_SEED, STAGE_WARMUP = 1, 100
WIDTHS_TABLE = "widths.csv"  # in data/autoencoder/: one row per width and measure


def images_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [0, 1] on ``device``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)


def checkpoint_name(latent_dim: int) -> str:
    return f"{NAME}_{latent_dim}"


def stage_checkpoint_name(latent_dim: int, stage: int) -> str:
    """The checkpoint of stage ``stage`` of :data:`FITTED_STAGES`, for the fitted width ``latent_dim``."""
    return f"{checkpoint_name(latent_dim)}_stage{stage}"


def train(
    latent_dim: int = FIG2,
    steps: int = STEPS,
    batch_size: int = BATCH,
    lr: float = 1e-3,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> tuple[Autoencoder, float]:
    """Train (or resume training) the autoencoder of one width.

    Returns:
        The model on the CPU in eval mode, and the seconds of training behind it (summed over resumed
        runs; kept in the checkpoint).
    """
    set_threads()
    torch.manual_seed(seed)
    model = Autoencoder(latent_dim=latent_dim)
    return _fit(model, checkpoint_name(latent_dim), steps, batch_size, lr, device, fresh, seed, WARMUP)


def continue_fitted(
    model: Autoencoder,
    stage: int,
    device: str = "auto",
    fresh: bool = False,
    batch_size: int = BATCH,
) -> tuple[Autoencoder, float]:
    """Train the fitted width on for stage ``stage`` of :data:`FITTED_STAGES` (1, 2, ...).

    ``model`` is the fitted autoencoder as the sweep or the previous stage left it; the stage trains
    encoder and decoder together with a fresh optimiser, its own warm-up and cosine, and the batches of
    seed :data:`STAGE_SEED`, and keeps its own checkpoint (a rerun resumes it, or returns it when done).

    Returns:
        As :func:`train`; the seconds are this stage's.
    """
    if not isinstance(stage, int) or isinstance(stage, bool) or not 1 <= stage <= len(FITTED_STAGES):
        raise ValueError(f"stage must be one of 1..{len(FITTED_STAGES)} (FITTED_STAGES), got {stage!r}")
    steps, lr = FITTED_STAGES[stage - 1]
    set_threads()
    name = stage_checkpoint_name(model.latent_dim, stage)
    return _fit(model, name, steps, batch_size, lr, device, fresh, STAGE_SEED, STAGE_WARMUP)


def _fit(
    model: Autoencoder,
    name: str,
    steps: int,
    batch_size: int,
    lr: float,
    device: str,
    fresh: bool,
    seed: int,
    warmup: int,
) -> tuple[Autoencoder, float]:
    """The training loop of :func:`train` and :func:`continue_fitted`, resuming checkpoint ``name``."""
    device = resolve_device(device)
    codes, masks = picture_codes(), picture_masks()
    model = model.to(device)
    opt = torch.optim.AdamW(
        [*model.encoder.parameters(), *model.decoder.parameters()], lr=lr, weight_decay=1e-4
    )
    if fresh:
        clear_checkpoint(name)
    start = load_checkpoint(name, model=model, opt=opt)
    seconds = _trained_seconds(name)
    began = time.perf_counter()
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=name, smoothing=0.05)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=warmup)
        x = batch_of(codes, batch_size, seed, step).to(device)  # (B, 4, 16, 16) picture codes
        m = batch_of(masks, batch_size, seed, step).to(device)  # (B, 16, 16): the same rows' objects
        with autocast(device):
            recon = model.decoder(model.encoder(x))
        loss = object_weighted_mse(recon.float(), x, m, OBJECT_WEIGHT)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        stop = step + 1 < steps and out_of_time()
        if (step + 1) % 250 == 0 or step + 1 == steps or stop:
            elapsed = seconds + time.perf_counter() - began
            save_checkpoint(name, step + 1, model=model, opt=opt, seconds=elapsed)
        if stop:
            stopped_early(name, step + 1, steps)
            break
    return model.cpu().eval(), seconds + time.perf_counter() - began


def _trained_seconds(name: str) -> float:
    """Seconds of training stored in checkpoint ``name`` (0 without one)."""
    from latentkit.recipes.common import checkpoint_path

    path = checkpoint_path(name)
    if not path.exists():
        return 0.0
    return float(torch.load(path, map_location="cpu", weights_only=False).get("seconds", 0.0))


@torch.no_grad()
def fit_code_distribution(model: Autoencoder, n: int = 4096) -> None:
    """Set ``code_mean`` and ``code_chol`` (Cholesky factor of the covariance) from ``n`` training images."""
    codes = model.encoder(picture_codes()[:n])
    model.code_mean.copy_(codes.mean(0))
    cov = torch.cov(codes.T) + 1e-6 * torch.eye(model.latent_dim)
    model.code_chol.copy_(torch.linalg.cholesky(cov))


@torch.no_grad()
def reconstruction_mse(model: Autoencoder, n: int = 1024, seed: int = 2) -> float:
    """Mean squared pixel error (images in [0, 1]) on ``n`` images never seen in training."""
    images = World(64).sample(n, seed=np.random.default_rng([seed, 10**6])).images
    x = images_tensor(images, "cpu")
    return float(F.mse_loss(torch.cat([model(c) for c in x.split(256)]), x))


def export(model: Autoencoder, steps: int, seconds: float, folder: str = NAME, measure: bool = True) -> None:
    """Write ``data/<folder>/autoencoder.safetensors`` (fp16, codec left out) and ``config.json``.

    ``measure=False`` skips the held-out reconstruction error (1,024 images; tests of the file format)."""
    config = {
        **model.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "object_weight": OBJECT_WEIGHT,
        "heldout_mse": round(reconstruction_mse(model), 5) if measure else None,
        "recipe": __name__,
    }
    save_weights(folder, "autoencoder.safetensors", own_state(model), config)


def measure_width(model: Autoencoder, steps: int, seconds: float, n: int = 512) -> list[dict]:
    """The quality rows of one width (:func:`latentkit.quality.autoencoder_quality`) as table rows."""
    from latentkit.quality import autoencoder_quality

    rows = []
    for row in autoencoder_quality(model, n=n):
        low, high = row.interval if row.interval else (np.nan, np.nan)
        rows.append(
            {
                "neurons": model.latent_dim,
                "measure": row.measure,
                "value": round(row.value, 4),
                "ci_low": round(low, 4),
                "ci_high": round(high, 4),
                "target": "" if row.target is None else round(row.target, 4),
                "met": "" if row.met is None else row.met,
                "steps": steps,
                "train_seconds": round(seconds),
            }
        )
    return rows


def fitted_width(rows: list[dict]) -> int:
    """The smallest width whose held-out reconstructions are valid at least RECONSTRUCTIONS_VALID of the
    time; the width with the most valid reconstructions when none is."""
    from latentkit.quality import RECONSTRUCTIONS_VALID

    valid = {r["neurons"]: r["value"] for r in rows if r["measure"] == "held-out reconstructions valid"}
    if not valid:
        raise ValueError("no 'held-out reconstructions valid' rows: measure the widths first")
    good = [w for w, v in valid.items() if v >= RECONSTRUCTIONS_VALID]
    return min(good) if good else max(valid, key=lambda w: (valid[w], -w))


def write_widths_table(rows: list[dict]) -> None:
    path = data_dir() / NAME / WIDTHS_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def planned_checkpoints(steps: int | None = None) -> dict[str, int]:
    """Checkpoint -> the steps it trains to, for ``python -m latentkit.recipes``'s bookkeeping: one per width
    of the sweep (``steps``, default :data:`STEPS`), then the stages of the fitted width: the width exported
    as fitted now, or before the first export the widest (a guess: the sweep picks the width as it runs)."""
    import json

    config = data_dir() / FITTED / "config.json"
    fitted = json.loads(config.read_text())["latent_dim"] if config.exists() else max(WIDTHS)
    plan = {checkpoint_name(width): steps or STEPS for width in WIDTHS}
    plan |= {stage_checkpoint_name(fitted, k): n for k, (n, _) in enumerate(FITTED_STAGES, start=1)}
    return plan


def is_exported() -> bool:
    """Whether ``data/autoencoder/`` and ``data/autoencoder-fitted/`` hold exported weights."""
    return all(
        (data_dir() / folder / "autoencoder.safetensors").exists()
        and (data_dir() / folder / "config.json").exists()
        for folder in (NAME, FITTED)
    )


def main(
    steps: int | None = None,
    device: str = "auto",
    fresh: bool = False,
    widths: tuple[int, ...] = WIDTHS,
    batch_size: int = BATCH,
) -> None:
    """Train every width of ``widths`` (resuming each), measure it, write the table, export two: Fig. 2's
    three neurons as the sweep trained them, the fitted width after its :data:`FITTED_STAGES`.

    Inside a :func:`~latentkit.recipes.common.deadline`, each width gets an equal part of the time left;
    the stages then get what is left (none when the widths used it all)."""
    steps = steps or STEPS
    rows, models = [], {}
    picture_codes(device=resolve_device(device))  # the inputs are built (once, then cached) first, so
    picture_masks()  # that under a deadline the widths share only training time
    for i, width in enumerate(widths):
        left = time_left()
        with deadline(None if left is None else left / (len(widths) - i)):
            model, seconds = train(
                latent_dim=width, steps=steps, batch_size=batch_size, device=device, fresh=fresh
            )
        reached = min(steps, load_checkpoint(checkpoint_name(width)))  # fewer when a deadline stopped it
        fit_code_distribution(model)
        measured = measure_width(model, reached, seconds)
        rows += measured
        models[width] = (model, seconds, reached)
        summary = ", ".join(f"{r['measure']} {r['value']:.3f}" for r in measured)
        print(f"{width} neurons: {summary}", flush=True)
    write_widths_table(rows)  # the sweep: every width after the same training
    fitted = fitted_width(rows)
    if FIG2 in models:
        model, seconds, reached = models[FIG2]
        export(model, reached, seconds)
    model, seconds, reached = models[fitted]
    for stage in range(1, len(FITTED_STAGES) + 1):  # then the fitted width trains on
        left = time_left()
        if left is not None and left <= 0:
            break
        model, more = continue_fitted(model, stage, device=device, fresh=fresh, batch_size=batch_size)
        seconds, reached = seconds + more, reached + load_checkpoint(stage_checkpoint_name(fitted, stage))
    fit_code_distribution(model)
    export(model, reached, seconds, folder=FITTED)
    print(
        f"autoencoders exported to {data_dir() / NAME} ({FIG2} neurons) and {data_dir() / FITTED} ({fitted})"
    )


if __name__ == "__main__":
    main()
