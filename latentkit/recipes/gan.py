"""Train the GAN (``python -m latentkit.recipes gan``).

Non-saturating GAN loss (Goodfellow et al., 2014) with a lazy R1 penalty on real codes (Mescheder et
al., 2018; applied every ``R1_EVERY`` steps, scaled up to match, as StyleGAN2 does), Adam with
``beta1 = 0`` and ``beta2 = 0.99``, the mapping network trained 10x slower than the rest (StyleGAN trains
its mapping 100x slower; without a slower mapping, z tends to be squashed to one w and the generator
collapses to one image), and an exponential moving average of the generator's weights, which is what
gets exported. Generator and discriminator work in the picture code of the frozen codec
(:mod:`latentkit.models.codec`); real codes come from :func:`latentkit.recipes.common.picture_codes`.
Step ``s`` draws its real batch and its ``z`` from generators seeded by ``(seed, s)``, and the learning
rate is constant, so a resumed run is the same as an uninterrupted one, and a run stopped early and
exported (``--steps`` at the step reached) is the same as a shorter run.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.codec import own_state
from latentkit.models.gan import Generator, discriminator
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    EMA,
    batch_of,
    clear_checkpoint,
    load_checkpoint,
    picture_codes,
    save_checkpoint,
    set_threads,
)

NAME = "gan"
STEPS = 12_000
MAPPING_LR = 0.1  # learning-rate multiplier of the mapping network
R1_GAMMA, R1_EVERY = 1.0, 4  # R1 weight and how often it is applied (lazy regularisation)


def train(
    steps: int = STEPS,
    batch_size: int = 64,
    lr: float = 2e-4,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> Generator:
    """Train (or resume training) the GAN; returns the EMA generator on the CPU in eval mode."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    codes = picture_codes()
    gen, disc = Generator().to(device), discriminator().to(device)
    ema = EMA(gen, decay=0.999)
    groups = [
        {"params": gen.mapping.parameters(), "lr": lr * MAPPING_LR},
        {"params": gen.synthesis.parameters(), "lr": lr},
    ]
    opt_g = torch.optim.Adam(groups, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.0, 0.99))
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, gen=gen, disc=disc, ema=ema, opt_g=opt_g, opt_d=opt_d)
    gen.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    for step in bar:
        noise = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        real = batch_of(codes, batch_size, seed, step).to(device).requires_grad_(True)  # (B, 4, 16, 16)
        z = torch.randn(batch_size, gen.z_dim, generator=noise, device=device)  # (B, z_dim)
        fake = gen.synthesis(gen.mapping(z))  # (B, 4, 16, 16) picture codes
        # Discriminator: real -> high logits, fake -> low (softplus(-x) = -log sigmoid(x)).
        real_logits = disc(real)
        loss_d = F.softplus(-real_logits).mean() + F.softplus(disc(fake.detach())).mean()
        if step % R1_EVERY == 0:  # R1: keep the discriminator flat around real codes
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss_d = loss_d + R1_EVERY * R1_GAMMA / 2 * grad.pow(2).sum((1, 2, 3)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # Generator: make the discriminator call its codes real (the non-saturating loss).
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
    """Write ``data/gan/generator.safetensors`` (fp16, EMA weights, codec left out) and ``config.json``."""
    config = {
        **gen.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "recipe": __name__,
    }
    save_weights(NAME, "generator.safetensors", own_state(gen), config)


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
