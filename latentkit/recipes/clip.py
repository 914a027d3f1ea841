"""Train the tiny CLIP of the diffusion organism: ``python -m latentkit.recipes clip``.

Contrastive image-caption training (Radford et al., 2021) on the shapes world's ``split="train"``: a batch
of B images and their B captions, and a symmetric cross-entropy that picks each image's caption among the
B. The text tower then conditions the U-Net (frozen, as CLIP's does in Stable Diffusion); the whole model
is exported to ``data/tiny-clip/`` as the project's offline "CLIP similarity".
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from latentkit.recipes import common

NAME = "tiny_clip"
STEPS = 500  # the shipped CLIP stopped at 250 of 500 (shared CPU); retrieval already ~90%
BATCH = 256
LR = 1e-3
SEED = 0


def _batch(world, tokenizer, size: int, seed: int, split: str = "train"):
    from latentkit.models.tiny_sd import clip_pixels, tokenize

    batch = world.sample(size, seed=seed, split=split)
    return clip_pixels(batch.images), tokenize(tokenizer, batch.captions)


@torch.no_grad()
def evaluate(model, n: int = 512, seed: int = 10_000_019, device: str = "cpu") -> dict[str, float]:
    """Image -> caption retrieval top-1 among ``n`` (train split, unseen seeds) and on held-out pairs."""
    from latentkit.tokenizer import world_tokenizer
    from latentkit.world import World

    world, tokenizer = World(64), world_tokenizer()
    model.eval()
    out = {}
    for split in ("train", "heldout"):
        pixels, ids = _batch(world, tokenizer, n, seed, split)
        logits = model(input_ids=ids.to(device), pixel_values=pixels.to(device)).logits_per_image
        out[f"top1_{split}"] = (logits.argmax(1).cpu() == torch.arange(n)).float().mean().item()
    return out


def train(steps: int = STEPS, device: str = "auto", fresh: bool = False, batch_size: int = BATCH):
    """Train (or resume) the tiny CLIP for ``steps`` steps in total; returns the model (eval mode)."""
    from latentkit import resolve_device, seed_everything
    from latentkit.models.tiny_sd import build_clip
    from latentkit.tokenizer import world_tokenizer
    from latentkit.world import World

    common.set_threads()
    device = resolve_device(device)
    seed_everything(SEED)
    if fresh:
        common.clear_checkpoint(NAME)
    model = build_clip().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    start = common.load_checkpoint(NAME, model=model, opt=opt)
    world, tokenizer = World(64), world_tokenizer()
    model.train()
    t0, bar = time.time(), tqdm(range(start, steps), initial=start, total=steps, desc="clip")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = LR * common.warmup_cosine(step, steps, warmup=100)
        pixels, ids = _batch(world, tokenizer, batch_size, seed=SEED * 1_000_003 + step)
        out = model(input_ids=ids.to(device), pixel_values=pixels.to(device), return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # CLIP clamps its learned temperature at 100
            model.logit_scale.clamp_(0, 4.6052)
        bar.set_postfix(loss=f"{out.loss.item():.3f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            common.save_checkpoint(NAME, step + 1, model=model, opt=opt)
    if steps > start:
        print(f"clip: {steps - start} steps in {time.time() - t0:.0f} s; {evaluate(model, device=device)}")
    return model.eval()


def export(model=None):
    """Save the CLIP (fp16, safetensors), its tokenizer and image processor to ``data/tiny-clip/``."""
    from transformers import CLIPImageProcessor

    from latentkit.models.tiny_sd import (
        CLIP_DIR,
        CLIP_MEAN,
        CLIP_STD,
        IMAGE_SIZE,
        build_clip,
        portable_tokenizer_class,
    )
    from latentkit.paths import data_dir
    from latentkit.tokenizer import world_tokenizer

    if model is None:
        model = build_clip()
        if not common.load_checkpoint(NAME, model=model):
            raise FileNotFoundError("no tiny CLIP checkpoint: run `python -m latentkit.recipes clip`")
    path = data_dir() / CLIP_DIR
    model.to(torch.float16).save_pretrained(path, safe_serialization=True)
    model.float()
    world_tokenizer().save_pretrained(path)
    portable_tokenizer_class(path)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    ).save_pretrained(path)
    return path


def is_exported() -> bool:
    from latentkit.models.tiny_sd import CLIP_DIR
    from latentkit.paths import data_dir

    return (data_dir() / CLIP_DIR / "model.safetensors").exists()


def main(steps: int = STEPS, device: str = "auto", fresh: bool = False):
    export(train(steps=steps, device=device, fresh=fresh))
