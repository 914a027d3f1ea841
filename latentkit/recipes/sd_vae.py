"""Train the diffusion organism's VAE: ``python -m latentkit.recipes sd_vae``.

An ``AutoencoderKL`` as in latent diffusion (Rombach et al., 2022): 64x64x3 images <-> 16x16x4 latents,
trained on reconstruction (L1 + MSE) with a tiny KL term (SD's 1e-6) that keeps the posterior a
distribution without forcing the latents towards N(0, 1). The object covers only 3-8% of an image, so a
plain per-pixel loss first learns the background and blurs the object away (after 500 steps the probes
read its shape from 23% of round trips); the reconstruction error is therefore weighted
``1 + OBJECT_WEIGHT`` on the (slightly dilated) object mask, which the world renders for free. SD's VAE
gets the same push from its perceptual and adversarial losses.

Then, as for SD's improved "ft-MSE" VAE, the decoder alone is fine-tuned with the encoder frozen: the
latent space the U-Net learns stays exactly the same, only the drawing of small objects gets sharper
(after the first stage the probes still misread the shape in a quarter of round trips). The
fine-tuning can run while the U-Net trains. Afterwards ``scaling_factor`` is set to
1 / std of the latents, as SD's 0.18215 was, so the U-Net sees unit-variance latents.

Two more decoder stages (shipped on 2026-12-02): the same fine-tuning again, twice, 3,000 steps each
from the stage before with a fresh optimiser and the same images in the same order (second and third
passes over them), the encoder still frozen, so every latent, and every organism trained on them, stays
exactly as it was (the shipped encoder's weights are bit for bit those of before). About 1,400 s per stage
on one core (1,076 s on a quieter machine). Probes on round trips of real renders (512 of the held-out
(shape, colour) pairs at seed 0, as ``benchmarks/bench_organism_quality.py`` reads them; 1,024 of the
training split at seed 7), after stage 1 / 2 / 3: held-out shape 0.908 / 0.939 / 0.953 (the target 0.95
met at stage 3, interval [0.931, 0.968]), training split shape 0.930 / 0.961 / 0.978; PSNR 37.6 dB after
stage 2, 39.1 after stage 3. What the other organisms reach through it (the same benchmark, stage 1 / 2 /
3; none of them retrained): the 3-neuron autoencoder's reconstructions valid 0.273 / 0.336 / 0.387, the
fitted autoencoder's 0.910 / 0.951 / 0.953 and its shape 0.836 / 0.881 / 0.900, the VAE's reconstructions
0.496 / 0.508 / 0.518 and its prior samples 0.195 / 0.234 / 0.273, the GAN's samples 0.116 / 0.140 /
0.159 (precision 0.618 / 0.656 / 0.674, recall 0.147 / 0.125 / 0.126), the codec's own ceiling 0.975 /
0.988 / 0.992; the U-Net organism's held-out shape 0.797 / 0.801 / 0.791 (its green stars are not stars in
latent space: a decoder cannot fix that), its in-distribution ratio 0.740 / 0.782 / 0.795; the
transformer's 0.750 / 0.775 / 0.779 and 0.739 / 0.762 / 0.768. The shipped weights were made from the
shipped (fp16) first-stage VAE; :func:`main` starts each later stage from the fp32 stage it has just
trained, which differs only by that rounding.

(Not to be confused with :mod:`latentkit.recipes.vae`, the beta-VAE organism of Sec. 2.) The exported
VAE (fp32, cache) is read by the U-Net recipe and ends up in ``data/tiny-sd/vae/``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentkit.recipes import common

NAME = "tiny_sd_vae"
STEPS = 1100
BATCH = 16
LR = 1e-3
KL_WEIGHT = 1e-6
OBJECT_WEIGHT = 20.0
DECODER_NAME = "tiny_sd_vae_decoder"
DECODER_STEPS = 3000
DECODER_STAGES = 3  # decoder fine-tuning stages of DECODER_STEPS each, each from the one before
DECODER_LR = 5e-4
SEED = 1


def parts_dir():
    """``<cache>/tiny-sd-parts``: trained parts (fp32) before they are assembled into the pipeline."""
    from latentkit.paths import cache_dir

    return cache_dir() / "tiny-sd-parts"


@torch.no_grad()
def measure_scaling_factor(vae, n: int = 2048, seed: int = 20_000_003, device="cpu") -> float:
    """1 / std of the latent means of ``n`` training images (SD's ``scaling_factor``)."""
    from latentkit.models.tiny_sd import images_to_tensor
    from latentkit.world import World

    images = World(64).sample(n, seed=seed, split="train").images
    z = torch.cat(
        [
            vae.encode(images_to_tensor(images[i : i + 256]).to(device)).latent_dist.mean.cpu()
            for i in range(0, n, 256)
        ]
    )
    return float(1.0 / z.std())


def psnr(vae, n: int = 256, seed: int = 30_000_001, split: str = "all") -> float:
    """Mean PSNR (dB) of the round trip image -> latent mean -> image on ``n`` fresh images."""
    from latentkit.models.tiny_sd import vae_round_trip
    from latentkit.world import World

    images = World(64).sample(n, seed=seed, split=split).images
    recon = vae_round_trip(vae, images)
    mse = ((recon.astype(np.float64) - images) ** 2).reshape(n, -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def train(steps: int = STEPS, device: str = "auto", fresh: bool = False, batch_size: int = BATCH):
    """Train (or resume) the VAE for ``steps`` steps in total; returns it (eval mode)."""
    from latentkit import resolve_device, seed_everything
    from latentkit.models.tiny_sd import build_vae, images_to_tensor
    from latentkit.world import World

    common.set_threads()
    device = resolve_device(device)
    seed_everything(SEED)
    if fresh:
        common.clear_checkpoint(NAME)
    vae = build_vae().to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=LR, weight_decay=0.0)
    start = common.load_checkpoint(NAME, model=vae, opt=opt)
    world = World(64)
    vae.train()
    t0, bar = time.time(), tqdm(range(start, steps), initial=start, total=steps, desc="sd_vae")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = LR * common.warmup_cosine(step, steps, warmup=100)
        batch = world.sample(batch_size, seed=SEED * 1_000_003 + step, split="train", masks=True)
        x = images_to_tensor(batch.images).to(device)  # (B, 3, 64, 64) in [-1, 1]
        posterior = vae.encode(x).latent_dist  # (B, 4, 16, 16) mean and log-variance
        recon = vae.decode(posterior.sample()).sample  # (B, 3, 64, 64)
        rec = _weighted_error(recon, x, batch.masks)
        loss = rec + KL_WEIGHT * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        bar.set_postfix(rec=f"{rec.item():.4f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            common.save_checkpoint(NAME, step + 1, model=vae, opt=opt)
    vae.eval()
    if steps > start:
        print(f"sd_vae: {steps - start} steps in {time.time() - t0:.0f} s; PSNR {psnr(vae):.1f} dB")
    return vae


def _weighted_error(recon: torch.Tensor, x: torch.Tensor, masks) -> torch.Tensor:
    """L1 + MSE, each pixel weighted ``1 + OBJECT_WEIGHT`` on the dilated object mask."""
    mask = torch.from_numpy(masks)[:, None].to(x.device)  # (B, 1, 64, 64) coverage in [0, 1]
    weight = 1 + OBJECT_WEIGHT * F.max_pool2d(mask, 5, stride=1, padding=2)  # edges count too
    err = recon - x
    return (weight * (err.abs() + err.pow(2))).mean() / weight.mean()


def finetune_decoder(
    steps: int = DECODER_STEPS,
    device: str = "auto",
    fresh: bool = False,
    batch_size: int = BATCH,
    stage: int = 1,
):
    """Fine-tune the decoder of the exported VAE with its encoder frozen; returns the VAE (eval).

    ``stage`` names the checkpoint (stage 2 resumes its own, not the first stage's); each stage starts
    from the VAE exported last, with a fresh optimiser, and sees the same images in the same order."""
    from latentkit import resolve_device, seed_everything
    from latentkit.models.tiny_sd import images_to_tensor
    from latentkit.world import World

    common.set_threads()
    device = resolve_device(device)
    seed_everything(SEED + 1)
    name = decoder_checkpoint(stage)
    if fresh:
        common.clear_checkpoint(name)
    vae = load_trained(device)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]  # decoder and post_quant_conv
    opt = torch.optim.AdamW(params, lr=DECODER_LR, weight_decay=0.0)
    start = common.load_checkpoint(name, model=vae, opt=opt)
    world = World(64)
    vae.decoder.train()
    t0 = time.time()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"sd_vae decoder {stage}")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = DECODER_LR * common.warmup_cosine(step, steps, warmup=50)
        seed = (SEED + 1) * 1_000_003 + step
        batch = world.sample(batch_size, seed=seed, split="train", masks=True)
        x = images_to_tensor(batch.images).to(device)  # (B, 3, 64, 64)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.sample()  # (B, 4, 16, 16), the frozen latent space
        rec = _weighted_error(vae.decode(z).sample, x, batch.masks)
        opt.zero_grad(set_to_none=True)
        rec.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        bar.set_postfix(rec=f"{rec.item():.4f}")
        if (step + 1) % 250 == 0 or step + 1 == steps:
            common.save_checkpoint(name, step + 1, model=vae, opt=opt)
    vae.eval()
    if steps > start:
        seconds = time.time() - t0
        print(f"sd_vae decoder {stage}: {steps - start} steps in {seconds:.0f} s; PSNR {psnr(vae):.1f} dB")
    return vae


def decoder_checkpoint(stage: int) -> str:
    """The checkpoint name of decoder stage ``stage`` (1, 2, ...)."""
    if not isinstance(stage, int) or isinstance(stage, bool) or stage < 1:
        raise ValueError(f"stage must be a whole number >= 1, got {stage!r}")
    return DECODER_NAME if stage == 1 else f"{DECODER_NAME}_{stage}"


def export(vae=None, measure: bool = True):
    """Set ``scaling_factor`` from the data and save the VAE (fp32) for the U-Net recipe.

    ``measure=False`` keeps the VAE's scaling factor (after the decoder fine-tuning: same encoder)."""
    from latentkit.models.tiny_sd import build_vae

    if vae is None:
        vae = build_vae()
        if not common.load_checkpoint(NAME, model=vae):
            raise FileNotFoundError("no VAE checkpoint: run `python -m latentkit.recipes sd_vae`")
    vae = vae.float().eval()
    scale = measure_scaling_factor(vae, device=vae.device) if measure else vae.config.scaling_factor
    vae.register_to_config(scaling_factor=scale)
    path = parts_dir() / "vae"
    vae.save_pretrained(path, safe_serialization=True)
    print(f"sd_vae: scaling_factor {scale:.4f}; saved to {path}")
    return path


def load_trained(device: str = "cpu"):
    """The trained VAE saved by :func:`export` (fp32, eval mode)."""
    from diffusers import AutoencoderKL

    from latentkit.models.tiny_sd import SD_DIR
    from latentkit.paths import data_dir

    path = parts_dir() / "vae"
    if not (path / "config.json").exists():  # not trained here: the shipped organism's (fp16) VAE
        path = data_dir() / SD_DIR / "vae"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m latentkit.recipes sd_vae` first")
    return AutoencoderKL.from_pretrained(path, local_files_only=True).float().to(device).eval()


def is_exported() -> bool:
    from latentkit.models.tiny_sd import SD_DIR
    from latentkit.paths import data_dir

    return (parts_dir() / "vae" / "config.json").exists() or (
        data_dir() / SD_DIR / "vae" / "config.json"
    ).exists()


def main(steps: int = STEPS, device: str = "auto", fresh: bool = False):
    """Train the whole VAE (``steps``) and export it, then each decoder stage, exported after it."""
    export(train(steps=steps, device=device, fresh=fresh))
    for stage in range(1, DECODER_STAGES + 1):
        export(finetune_decoder(DECODER_STEPS, device, fresh, stage=stage), measure=False)
