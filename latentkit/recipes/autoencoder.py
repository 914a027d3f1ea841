"""Train the three-neuron autoencoder (``python -m latentkit.recipes autoencoder``).

Plain reconstruction training in the picture code of :mod:`latentkit.models.codec`: mean squared error
between a world image's code and its reconstruction through the three neurons. The codes come from
:func:`latentkit.recipes.common.picture_codes` (65,536 world images, encoded once and cached), and step
``s`` draws its batch with a generator seeded by ``(seed, s)``, so a resumed run sees exactly the batches an
uninterrupted one would have seen. After training, a Gaussian is fitted to the bottleneck codes of 4096
training images: the autoencoder's sampling distribution (see :mod:`latentkit.models.autoencoder`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.autoencoder import Autoencoder
from latentkit.models.codec import own_state
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    batch_of,
    clear_checkpoint,
    load_checkpoint,
    picture_codes,
    save_checkpoint,
    set_threads,
    warmup_cosine,
)
from latentkit.world import World

NAME = "autoencoder"
STEPS = 8000


def images_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [0, 1] on ``device``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)


def train(
    steps: int = STEPS,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> Autoencoder:
    """Train (or resume training) the autoencoder; returns it on the CPU in eval mode."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    codes = picture_codes()
    model = Autoencoder(latent_dim=3).to(device)
    opt = torch.optim.AdamW(
        [*model.encoder.parameters(), *model.decoder.parameters()], lr=lr, weight_decay=1e-4
    )
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, model=model, opt=opt)
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=200)
        x = batch_of(codes, batch_size, seed, step).to(device)  # (B, 4, 16, 16) picture codes
        loss = F.mse_loss(model.decoder(model.encoder(x)), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(mse=f"{loss.item():.4f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            save_checkpoint(NAME, step + 1, model=model, opt=opt)
    return model.cpu().eval()


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


def export(model: Autoencoder, steps: int, seconds: float, measure: bool = True) -> None:
    """Write ``data/autoencoder/autoencoder.safetensors`` (fp16, codec left out) and ``config.json``.

    ``measure=False`` skips the held-out reconstruction error (1,024 images; tests of the file format)."""
    config = {
        **model.config(),
        "image_size": 64,
        "trained_steps": steps,
        "train_seconds": round(seconds),
        "heldout_mse": round(reconstruction_mse(model), 5) if measure else None,
        "recipe": __name__,
    }
    save_weights(NAME, "autoencoder.safetensors", own_state(model), config)


def is_exported() -> bool:
    """Whether ``data/autoencoder/`` holds exported weights (then ``recipes all`` skips it)."""
    folder = data_dir() / NAME
    return (folder / "autoencoder.safetensors").exists() and (folder / "config.json").exists()


def main(steps: int | None = None, device: str = "auto", fresh: bool = False) -> None:
    steps = steps or STEPS
    start = time.perf_counter()
    model = train(steps=steps, device=device, fresh=fresh)
    fit_code_distribution(model)
    export(model, steps, time.perf_counter() - start)
    print(f"autoencoder exported to {data_dir() / NAME}")


if __name__ == "__main__":
    main()
