"""Train the beta-VAE (``python -m latentkit.recipes vae``).

The loss is the negative ELBO of :meth:`latentkit.models.vae.VAE.loss`; the KL weight is warmed up from
0 to ``beta`` over the first tenth of training, so the decoder learns to use the latent before the prior
pulls it in. ``BETA`` is below 1 on purpose: with a summed squared error, the small object of a world
image costs few pixels, and a first run with ``beta = 2`` kept only the background (KL about 3.5 nats).
Images are rendered on the fly, seeded by ``(seed, step)`` so a resumed run sees exactly the
images an uninterrupted one would have seen.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.vae import VAE
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.autoencoder import images_tensor
from latentkit.recipes.common import (
    clear_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_threads,
    warmup_cosine,
)
from latentkit.world import World

NAME = "vae"
STEPS = 1500
LATENT_DIM, BETA = 10, 0.25  # beta < 1 favours reconstruction: small objects cost few pixels


def train(
    steps: int = STEPS,
    batch_size: int = 64,
    lr: float = 2e-3,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> tuple[VAE, dict[str, float]]:
    """Train (or resume training) the VAE; returns it on the CPU in eval mode and the last losses."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    world = World(64)
    model = VAE(latent_dim=LATENT_DIM, beta=BETA).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, model=model, opt=opt)
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    losses = {}
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=100)
        model.beta = BETA * min(1.0, step / (0.1 * steps))  # KL warm-up
        batch = world.sample(batch_size, seed=np.random.default_rng([seed, step]))
        x = images_tensor(batch.images, device)  # (B, 3, 64, 64)
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        losses = model.loss(x, gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(recon=f"{losses['recon'].item():.1f}", kl=f"{losses['kl'].item():.1f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            save_checkpoint(NAME, step + 1, model=model, opt=opt)
    model.beta = BETA
    return model.cpu().eval(), {k: float(v) for k, v in losses.items()}


def export(model: VAE, steps: int, seconds: float, losses: dict[str, float]) -> None:
    """Write ``data/vae/vae.safetensors`` (fp16) and its ``config.json``."""
    config = {
        **model.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "last_batch_losses": {k: round(v, 2) for k, v in losses.items()},
        "recipe": __name__,
    }
    save_weights(NAME, "vae.safetensors", model, config)


def is_exported() -> bool:
    """Whether ``data/vae/`` holds exported weights (then ``recipes all`` skips it)."""
    folder = data_dir() / NAME
    return (folder / "vae.safetensors").exists() and (folder / "config.json").exists()


def main(steps: int | None = None, device: str = "auto", fresh: bool = False) -> None:
    steps = steps or STEPS
    start = time.perf_counter()
    model, losses = train(steps=steps, device=device, fresh=fresh)
    export(model, steps, time.perf_counter() - start, losses)
    print(f"VAE exported to {data_dir() / NAME}")


if __name__ == "__main__":
    main()
