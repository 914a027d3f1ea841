"""Train the GAN (``python -m latentkit.recipes gan``).

Non-saturating GAN loss (Goodfellow et al., 2014) in the DCGAN style (Radford et al., 2016: batch norm
in the generator, Adam with ``beta1 = 0.5``), and an exponential moving average of the generator's
weights, which is what gets exported (short GAN runs sample much better from averaged weights). Real
images are rendered on the fly, seeded by ``(seed, step)``, so a resumed run sees exactly the images an
uninterrupted one would have seen. The learning rate is constant, so a run stopped early and exported
(``--steps`` at the step reached) is the same as a shorter run. The budget is small on purpose (minutes
on one CPU core): notebook 02 measures how good the result is instead of assuming it.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.gan import Discriminator, Generator
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.autoencoder import images_tensor
from latentkit.recipes.common import EMA, clear_checkpoint, load_checkpoint, save_checkpoint, set_threads
from latentkit.world import World

NAME = "gan"
STEPS = 4000
WIDTH = 24  # channels of the generator's last and the discriminator's first layer
MAPPING_LR = 0.01  # learning-rate multiplier of the mapping network, as in StyleGAN
SPECTRAL = True  # spectral normalisation in the discriminator


def train(
    steps: int = STEPS,
    batch_size: int = 32,
    lr: float = 2e-4,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> Generator:
    """Train (or resume training) the GAN; returns the EMA generator on the CPU in eval mode."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    world = World(64)
    gen, disc = Generator(width=WIDTH).to(device), Discriminator(width=WIDTH, spectral=SPECTRAL).to(device)
    ema = EMA(gen, decay=0.995)
    # StyleGAN trains its mapping network 100x slower than the rest; without that, this small mapping
    # learned to squash every z to nearly the same w and the generator collapsed to one image.
    groups = [
        {"params": gen.mapping.parameters(), "lr": lr * MAPPING_LR},
        {"params": gen.synthesis.parameters(), "lr": lr},
    ]
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, gen=gen, disc=disc, ema=ema, opt_g=opt_g, opt_d=opt_d)
    gen.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    for step in bar:
        noise = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        real = images_tensor(
            world.sample(batch_size, seed=np.random.default_rng([seed, step])).images, device
        )
        z = torch.randn(batch_size, gen.z_dim, generator=noise, device=device)  # (B, z_dim)
        fake = gen(z)  # (B, 3, 64, 64)
        # Discriminator: real -> high logits, fake -> low (softplus(-x) = -log sigmoid(x)).
        loss_d = F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # Generator: make the discriminator call its images real (the non-saturating loss).
        loss_g = F.softplus(-disc(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema.update(gen, step)
        if step % 20 == 0:
            bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            save_checkpoint(NAME, step + 1, gen=gen, disc=disc, ema=ema, opt_g=opt_g, opt_d=opt_d)
    return ema.model.cpu().eval()


@torch.no_grad()
def measure_w_mean(gen: Generator, n: int = 8192, seed: int = 1) -> None:
    """Set ``gen.w_mean`` to the mean of ``mapping(z)`` over ``z ~ N(0, I)``."""
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    gen.w_mean.copy_(gen.mapping(z).mean(0))


def export(gen: Generator, steps: int, seconds: float) -> None:
    """Write ``data/gan/generator.safetensors`` (fp16, EMA weights) and its ``config.json``."""
    config = {
        **gen.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "recipe": __name__,
    }
    save_weights(NAME, "generator.safetensors", gen, config)


def is_exported() -> bool:
    """Whether ``data/gan/`` holds exported weights (then ``recipes all`` skips it)."""
    folder = data_dir() / NAME
    return (folder / "generator.safetensors").exists() and (folder / "config.json").exists()


def main(steps: int | None = None, device: str = "auto", fresh: bool = False) -> None:
    steps = steps or STEPS
    start = time.perf_counter()
    gen = train(steps=steps, device=device, fresh=fresh)
    measure_w_mean(gen)
    export(gen, steps, time.perf_counter() - start)
    print(f"GAN generator exported to {data_dir() / NAME}")


if __name__ == "__main__":
    main()
