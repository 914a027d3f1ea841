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
networks run under bf16 autocast where the hardware has it (:func:`latentkit.recipes.common.autocast`:
x1.8 per step on this project's CPU). After training, a Gaussian is fitted to the bottleneck codes of 4096
training images: the autoencoder's sampling distribution (see :mod:`latentkit.models.autoencoder`).

Time on this project's 2-core CPU (one thread per width, bf16, the two cores shared with other trainings):
0.14-0.20 s per batch-64 step; 6,000 steps took 866 s (16 neurons), 1,146 s (8), 1,097 s (4) and 1,171 s (3).
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.autoencoder import FITTED, Autoencoder
from latentkit.models.codec import own_state
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    autocast,
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
WIDTHS_TABLE = "widths.csv"  # in data/autoencoder/: one row per width and measure


def images_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [0, 1] on ``device``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)


def checkpoint_name(latent_dim: int) -> str:
    return f"{NAME}_{latent_dim}"


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
    device = resolve_device(device)
    torch.manual_seed(seed)
    codes, masks = picture_codes(), picture_masks()
    model = Autoencoder(latent_dim=latent_dim).to(device)
    opt = torch.optim.AdamW(
        [*model.encoder.parameters(), *model.decoder.parameters()], lr=lr, weight_decay=1e-4
    )
    name = checkpoint_name(latent_dim)
    if fresh:
        clear_checkpoint(name)
    start = load_checkpoint(name, model=model, opt=opt)
    seconds = _trained_seconds(name)
    began = time.perf_counter()
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=name, smoothing=0.05)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=200)
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
    """Train every width of ``widths`` (resuming each), measure it, write the table, export two.

    Inside a :func:`~latentkit.recipes.common.deadline`, each width gets an equal part of the time left."""
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
        rows += measure_width(model, reached, seconds)
        models[width] = (model, seconds, reached)
        print(
            f"{width} neurons: " + ", ".join(f"{r['measure']} {r['value']:.3f}" for r in rows[-8:]),
            flush=True,
        )
    write_widths_table(rows)
    fitted = fitted_width(rows)
    if FIG2 in models:
        model, seconds, reached = models[FIG2]
        export(model, reached, seconds)
    model, seconds, reached = models[fitted]
    export(model, reached, seconds, folder=FITTED)
    print(
        f"autoencoders exported to {data_dir() / NAME} ({FIG2} neurons) and {data_dir() / FITTED} ({fitted})"
    )


if __name__ == "__main__":
    main()
