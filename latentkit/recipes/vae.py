"""Train the beta-VAE (``python -m latentkit.recipes vae``).

The loss is the negative ELBO of :meth:`latentkit.models.vae.VAE.loss`, on picture codes of the frozen
codec (:mod:`latentkit.models.codec`); the KL weight is warmed up from 0 to ``beta`` over the first tenth
of training, so the decoder learns to use the latent before the prior pulls it in. The codes come from
:func:`latentkit.recipes.common.picture_codes`, and step ``s`` draws its batch (and its noise) from
generators seeded by ``(seed, s)``, so a resumed run sees exactly what an uninterrupted one would have.

What was tried to meet the targets (reconstructions valid >= 0.90, prior samples valid >= 0.70; the
shipped weights: 0.50 and 0.20, 512 held-out images): the autoencoder's object-weighted loss
(:func:`latentkit.recipes.common.object_weighted_mse`, weight 10) with 8 latent dimensions, 4,500 steps,
bf16. With beta 1: reconstructions 0.69, prior samples 0.05; with beta 4: 0.61 and 0.06. Sharper
reconstructions, emptier prior: between the images of a world of discrete factors the prior's mass decodes
to blends of two shapes or colours, which the probes reject. Neither design was shipped; a prior that can
follow the codes (a two-stage VAE, Dai and Wipf 2019, or a learned prior) is the next thing to try.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.codec import own_state
from latentkit.models.vae import VAE
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    batch_of,
    clear_checkpoint,
    load_checkpoint,
    out_of_time,
    picture_codes,
    save_checkpoint,
    set_threads,
    stopped_early,
    warmup_cosine,
)

NAME = "vae"
STEPS = 8000
BATCH = 64
LATENT_DIM, BETA = 10, 4.0  # beta = 4, as in Higgins et al. (2017): prior samples over detail


def train(
    steps: int = STEPS,
    batch_size: int = BATCH,
    lr: float = 1e-3,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> tuple[VAE, dict[str, float]]:
    """Train (or resume training) the VAE; returns it on the CPU in eval mode and the last losses."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    codes = picture_codes()
    model = VAE(latent_dim=LATENT_DIM, beta=BETA).to(device)
    opt = torch.optim.AdamW(
        [*model.encoder.parameters(), *model.decoder.parameters()], lr=lr, weight_decay=1e-4
    )
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, model=model, opt=opt)
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    losses = {}
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=200)
        model.beta = BETA * min(1.0, step / (0.1 * steps))  # KL warm-up
        x = batch_of(codes, batch_size, seed, step).to(device)  # (B, 4, 16, 16) picture codes
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        losses = model.loss(x, gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(recon=f"{losses['recon'].item():.1f}", kl=f"{losses['kl'].item():.1f}")
        stop = step + 1 < steps and out_of_time()
        if (step + 1) % 250 == 0 or step + 1 == steps or stop:
            save_checkpoint(NAME, step + 1, model=model, opt=opt)
        if stop:
            stopped_early(NAME, step + 1, steps)
            break
    model.beta = BETA
    return model.cpu().eval(), {k: float(v) for k, v in losses.items()}


def export(model: VAE, steps: int, seconds: float, losses: dict[str, float]) -> None:
    """Write ``data/vae/vae.safetensors`` (fp16, without the codec) and its ``config.json``."""
    config = {
        **model.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "last_batch_losses": {k: round(v, 2) for k, v in losses.items()},
        "recipe": __name__,
    }
    save_weights(NAME, "vae.safetensors", own_state(model), config)


def is_exported() -> bool:
    """Whether ``data/vae/`` holds exported weights (then ``recipes all`` skips it)."""
    folder = data_dir() / NAME
    return (folder / "vae.safetensors").exists() and (folder / "config.json").exists()


def main(
    steps: int | None = None, device: str = "auto", fresh: bool = False, batch_size: int = BATCH
) -> None:
    steps = steps or STEPS
    start = time.perf_counter()
    model, losses = train(steps=steps, batch_size=batch_size, device=device, fresh=fresh)
    reached = min(steps, load_checkpoint(NAME))  # fewer when a deadline stopped it
    export(model, reached, time.perf_counter() - start, losses)
    print(f"VAE exported to {data_dir() / NAME}")


if __name__ == "__main__":
    main()
