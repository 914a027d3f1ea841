"""Train the probes (``python -m latentkit.recipes probes``): a ProbeNet on renders under random degradations.

Data are rendered on the fly: step ``s`` draws from the generator seeded with ``(seed, s)``, so a resumed
run sees exactly the images an uninterrupted one would have seen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.paths import data_dir, save_weights
from latentkit.probes import CLASSIFIED, ProbeNet, degrade, mask_centroid
from latentkit.recipes.common import (
    clear_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_threads,
    warmup_cosine,
)
from latentkit.world import World

NAME = "probes"
WIDTH = 32


def random_degradation(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image degradation strengths: a third clean, the rest a random mix of blur, noise, shift."""

    def maybe(p: float, high: float) -> torch.Tensor:
        on = torch.rand(n, generator=generator) < p
        return torch.rand(n, generator=generator) * high * on

    clean = torch.rand(n, generator=generator) < 1 / 3
    strengths = {"blur": maybe(0.7, 1.6), "noise": maybe(0.6, 0.08), "shift": maybe(0.6, 0.08)}
    return {k: torch.where(clean, 0.0, v) for k, v in strengths.items()}


def train(
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 2e-3,
    device: str = "auto",
    fresh: bool = False,
    seed: int = 0,
) -> ProbeNet:
    """Train (or resume training) the probes; returns the trained network on the CPU."""
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    world = World(64)
    net = ProbeNet(width=WIDTH).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    if fresh:
        clear_checkpoint(NAME)
    start = load_checkpoint(NAME, net=net, opt=opt)
    net.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="probes", smoothing=0.05)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup=200)
        batch = world.sample(batch_size, seed=np.random.default_rng([seed, step]), masks=True)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        x = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
        x = degrade(x, **random_degradation(batch_size, gen), generator=gen).to(device)
        out = net(x)
        loss = sum(
            F.cross_entropy(out[f], torch.from_numpy(getattr(batch.factors, f)).to(device))
            for f in CLASSIFIED
        )
        target = F.avg_pool2d(torch.from_numpy(batch.masks)[:, None], 4)[:, 0].to(device)
        loss = loss + 3 * F.binary_cross_entropy_with_logits(out["mask"], target)
        centroid = torch.from_numpy(batch.centroids).to(device)
        loss = loss + 0.1 * (mask_centroid(out["mask"]) - centroid).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % 500 == 0 or step + 1 == steps:
            save_checkpoint(NAME, step + 1, net=net, opt=opt)
    return net.cpu().eval()


def export(net: ProbeNet, steps: int) -> None:
    """Write ``data/probes/probes.safetensors`` (fp16) and its ``config.json``."""
    config = {"width": WIDTH, "image_size": 64, "trained_steps": steps, "recipe": __name__}
    save_weights("probes", "probes.safetensors", net, config)


def is_exported() -> bool:
    """Whether ``data/probes/`` already holds exported weights (``recipes all`` then skips them)."""
    return (data_dir() / "probes" / "probes.safetensors").exists()


def main(steps: int = 2000, device: str = "auto", fresh: bool = False) -> None:
    net = train(steps=steps, device=device, fresh=fresh)
    export(net, steps)
    print(f"probes exported to {data_dir() / 'probes'}")


if __name__ == "__main__":
    main()
