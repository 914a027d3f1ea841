"""Train the GAN (``python -m latentkit.recipes gan``): a latent GAN in the fitted autoencoder's bottleneck.

Non-saturating GAN loss (Goodfellow et al., 2014) with a lazy R1 penalty on real codes (Mescheder et
al., 2018; applied every ``R1_EVERY`` steps, scaled up to match, as StyleGAN2 does), Adam with
``beta1 = 0`` and ``beta2 = 0.99``, the mapping network trained 10x slower than the rest (StyleGAN trains
its mapping 100x slower; without a slower mapping, z tends to be squashed to one w and the generator
collapses to one image), and an exponential moving average of the generator's weights, which is what
gets exported.

The game is played in the bottleneck of the fitted autoencoder (``data/autoencoder-fitted/``, trained by
the ``autoencoder`` recipe, which must run first; a checkpoint made against another autoencoder is
refused), as latent GANs do (Achlioptas et al., 2018): the real data are that autoencoder's codes of the
65,536 training images (:func:`latentkit.recipes.common.picture_codes`), standardised per coordinate;
generator and discriminator are MLPs; the generator ends in the autoencoder's decoder, frozen, and the
shared codec. So the GAN's samples can be at most as good as the autoencoder's reconstructions (its
ceiling, which :func:`latentkit.quality.gan_quality` reports beside them: 0.92 through the codec's
first-stage decoder, 0.94 through its sharpened decoder, 0.98 since the autoencoder's two further stages).

What each design bought (``benchmarks/bench_organism_quality.py --only gan``: 1,024 samples; valid,
precision, recall, rarest factor value / uniform share; targets 0.80, 0.80, 0.60, 0.50):

==============================================================  =====  =====  =====  ======
design                                                          valid  prec.  rec.   rarest
==============================================================  =====  =====  =====  ======
1. convolutional GAN on picture codes, 12,000 steps (3,564 s)   0.09   0.40   0.003  0.05
2. this latent GAN, 16-neuron code, 30,000 steps (921 s)        0.12   0.62   0.15   0.24
   the same with the mapping at full learning rate (461 s)      0.07   0.50   0.09   0.03
3. a discrete part in z, 20,000 steps (605 s, not shipped)      0.19   0.81   0.11   0.43
   the same with the mapping 10x slower (608 s)                 0.06   0.47   0.06   0.00
   ... and the mapping 32 wide, as in design 2 (822 s)          0.06   0.48   0.10   0.13
design 2 shipped before, through the codec's 3rd decoder stage  0.16   0.67   0.13   0.25
design 2 in the staged autoencoder's code, seed 0 (613 s)       0.14   0.52   0.12   0.00
   ... seed 1 (633 s)                                           0.11   0.39   0.11   0.20
   ... seed 2 (633 s): shipped                                  0.18   0.60   0.19   0.07
design 3 in the same code, seed 0, 20,000 steps (728 s)         0.28   0.71   0.01   0.28
==============================================================  =====  =====  =====  ======

(The first rows were measured through the codec's first-stage decoder; "shipped before" is the same generator
after the shared codec's decoder was sharpened, see :mod:`latentkit.recipes.sd_vae`. The last four: the
fitted autoencoder trained on in two stages (:mod:`latentkit.recipes.autoencoder`; reconstructions 0.98
valid, shape 0.94), so its code changed and the GAN was trained afresh in it (design 2 at three seeds,
one core each, two at a time). The seeds differ more than any change of the code space bought: valid 0.11
to 0.18, precision 0.39 to 0.60, and a texture value (striped) drawn at 0.00 to 0.20 of its share. The
better code did not make design 2 better; its mapping network, not the decoder, is what drops values.
Design 3 in the new code: the most valid samples of any run (0.28 [0.26, 0.31], against 0.19 in the
earlier code) and every value drawn (rarest, yellow, 0.28 of its share), but recall 0.01: its samples sit
on a few points of each island. Not shipped, for that and for its partly discrete z.)

Design 3 (``train(design=3)``, :data:`DESIGNS`) answers the measurement below (the valid codes are
islands, and a continuous z must cross the water between them): z's first 31 coordinates are read as one
categorical choice per factor of the world, sized as the factor (6, 6, 4, 4, 9, 2; each block's largest
coordinate is its choice, so a Gaussian z draws them uniformly), beside 8 continuous coordinates; an
InfoGAN head (Chen et al., 2016) learns to read the choices back from the generated code and the
generator to keep them readable, so each choice must move the code to another island. It tells the GAN
how many values each factor has (not which is which). It is better on valid samples (0.19 [0.16, 0.21]
against 0.12), precision (0.81: the target met) and coverage (rarest value 0.43 of its share, 0.24), worse
on recall (0.11 against 0.15); it needs the mapping 256 wide at the full rate (the narrow, slow mapping of
design 2 gives 0.06). Scratch runs of the same idea with a plain MLP generator (4 x 256, no w), read every
2,500 steps to 20,000: valid 0.07, 0.09, 0.15, 0.23, 0.28, 0.27, 0.30, 0.33; a second run from another
initialisation flattened near a third (EMA 0.30 at 20,000, 0.32 at 30,000, 1,259 s); with six
choices of 10 values each instead of the factors' sizes, 0.20 at 20,000. Not shipped yet: its z is
partly discrete, which changes what notebooks 02, 03 and 06 measure and say about z, and it is still far
from 0.80; the next step is design 3 without the w bottleneck's cost, or longer.

Scratch runs of design 2 on an 8-neuron autoencoder (reconstructions 0.60 valid), without a mapping
network, read every 5,000 steps: valid 0.11, 0.16, 0.19 (R1 weight 1.0: 0.11, 0.16) and precision 0.57 to
0.73, recall 0.70 to 0.80: the samples' validity rises slowly with the steps; the mapping network costs
recall. A discriminator twice as wide trained twice as fast (TTUR) did worse (valid 0.08 at 5,000 steps).
The samples fall between the codes of real images, where the decoder draws blends.

Why this code space is hard to sample (measured on the fitted 16-neuron autoencoder, 512 codes of training
images, valid = the probes' in-distribution test): real codes 0.90; each coordinate moved by Gaussian
noise of 0.1 / 0.2 / 0.4 of its spread 0.77 / 0.54 / 0.29; midpoints of two real codes 0.04; a Gaussian
fitted to the codes 0.01; a mixture of 2,048 Gaussians fitted to the 65,536 codes (k-means, diagonal
covariances, an explicit density model with no adversarial game) 0.39. The valid regions are narrow
islands (about a fifth of a coordinate's spread), so even a good density estimate puts most samples in
the water between them: the GAN's 0.12 is well under what the space allows (0.39 for the mixture), and
0.80 needs a code space with wider islands. Fine-tuning the autoencoder 1,500 steps with noise in its
code (0.3 of each coordinate's spread, fixed) did not widen them (the encoder scaled its code up: noise
0.2 still gives 0.55, reconstructions 0.88); noise scaled to each batch's own spread (0.4) stopped it
reconstructing (loss 0.30, against 0.03). A third design would have to change that space (a VAE-like
code with a prior the decoder is trained on, or a GAN with a discrete part in its latent).

Step ``s`` draws its real batch and its ``z`` from generators seeded by ``(seed, s)``, and the learning
rate is constant, so a resumed run is the same as an uninterrupted one, and a run stopped early and
exported (``--steps`` at the step reached) is the same as a shorter run. A step (batch 256) takes about
15-30 ms on one CPU core.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from latentkit import resolve_device
from latentkit.models.autoencoder import load_autoencoder
from latentkit.models.codec import own_state
from latentkit.models.gan import CodeDiscriminator, Generator, categories_of
from latentkit.paths import data_dir, save_weights
from latentkit.recipes.common import (
    EMA,
    batch_of,
    clear_checkpoint,
    fingerprint,
    load_checkpoint,
    out_of_time,
    picture_codes,
    save_checkpoint,
    set_threads,
    stopped_early,
)

NAME = "gan"
STEPS = 30_000
BATCH = 256
MAPPING_LR = 0.1  # learning-rate multiplier of the mapping network (1.0 was worse: see the docstring)
R1_GAMMA, R1_EVERY = 0.1, 4  # R1 weight (0.1 beat 1.0 here: 0.19 vs 0.16 valid at 10k steps), lazy
#: The generator of each design that trains in this recipe (``train(design=...)``; the docstring says what
#: each bought). 2, the shipped one: a Gaussian z, a narrow mapping trained 10x slower. 3: z's first 31
#: coordinates are read as one categorical choice per factor of the world, sized as the factor (6, 6, 4, 4,
#: 9, 2), beside 8 continuous ones; a wider mapping at the full rate; an InfoGAN term (INFO_WEIGHT).
DESIGNS: dict[int, dict] = {
    2: {"categories": (), "z_dim": 32, "mapping_hidden": None, "mapping_lr": MAPPING_LR},
    3: {"categories": (6, 6, 4, 4, 9, 2), "z_dim": 31 + 8, "mapping_hidden": 256, "mapping_lr": 1.0},
}
DESIGN = 2  # the shipped weights' design
SEED = 2  # the shipped weights' seed: of three tried on the staged autoencoder, the most valid samples
INFO_WEIGHT = 1.0  # weight of the mutual-information term (InfoGAN's lambda), designs with categories


class InfoHead(nn.Module):
    """Standardised bottleneck codes (N, code_dim) -> logits of each discrete block of z (N, sum(blocks)):
    InfoGAN's Q network, trained with the discriminator; only used in training."""

    def __init__(self, code_dim: int, categories: tuple[int, ...], hidden: int = 256):
        super().__init__()
        self.categories = categories
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, sum(categories)),
        )

    def loss(self, codes: torch.Tensor, chosen: list[torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy of the blocks' choices given the codes: low when the code tells the choice."""
        logits = self.net(codes).split(list(self.categories), 1)
        return sum(F.cross_entropy(lg, c) for lg, c in zip(logits, chosen, strict=True)) / len(chosen)


@torch.no_grad()
def bottleneck_codes(autoencoder) -> torch.Tensor:
    """(65536, code_dim): the fitted autoencoder's codes of the training images (the GAN's real data)."""
    return torch.cat([autoencoder.encoder(c) for c in picture_codes().split(4096)])


def train(
    steps: int = STEPS,
    batch_size: int = BATCH,
    lr: float = 2e-4,
    device: str = "auto",
    fresh: bool = False,
    seed: int = SEED,
    design: int = DESIGN,
) -> Generator:
    """Train (or resume training) the GAN; returns the EMA generator on the CPU in eval mode.

    ``design`` picks the generator (:data:`DESIGNS`); a checkpoint resumes only the design that wrote it.
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {sorted(DESIGNS)}, got {design!r}")
    spec = DESIGNS[design]
    categories = spec["categories"]
    set_threads()
    device = resolve_device(device)
    torch.manual_seed(seed)
    autoencoder = load_autoencoder(fitted=True)
    codes = bottleneck_codes(autoencoder)
    gen = Generator(
        z_dim=spec["z_dim"],
        code_dim=autoencoder.latent_dim,
        decoder_width=autoencoder.width,
        categories=categories,
        mapping_hidden=spec["mapping_hidden"],
    )
    gen.decoder.load_state_dict(autoencoder.decoder.state_dict())
    gen.synthesis.code_mean.copy_(codes.mean(0))
    gen.synthesis.code_std.copy_(codes.std(0))
    real_codes = (codes - codes.mean(0)) / codes.std(0)  # standardised: what the discriminator judges
    gen, disc = gen.to(device), CodeDiscriminator(autoencoder.latent_dim).to(device)
    info = InfoHead(autoencoder.latent_dim, categories).to(device) if categories else None
    parts = {"gen": gen, "disc": disc, **({"info": info} if info else {})}
    ema = EMA(gen, decay=0.999)
    groups = [
        {"params": gen.mapping.parameters(), "lr": lr * spec["mapping_lr"]},
        {"params": gen.synthesis.parameters(), "lr": lr},
    ]
    opt_g = torch.optim.Adam(groups, betas=(0.0, 0.99))
    judged = [*disc.parameters(), *(info.parameters() if info else [])]
    opt_d = torch.optim.Adam(judged, lr=lr, betas=(0.0, 0.99))
    if fresh:
        clear_checkpoint(NAME)
    # The game is played on this autoencoder's codes: a checkpoint made against another one does not resume.
    made_for = {"autoencoder": fingerprint(autoencoder.encoder) + fingerprint(autoencoder.decoder)}
    start = load_checkpoint(NAME, made_for, **parts, ema=ema, opt_g=opt_g, opt_d=opt_d)
    gen.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=NAME, smoothing=0.05)
    for step in bar:
        noise = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        real = batch_of(real_codes, batch_size, seed, step).to(device).requires_grad_(True)  # (B, code_dim)
        z = torch.randn(batch_size, gen.z_dim, generator=noise, device=device)  # (B, z_dim)
        fake = gen.synthesis.standardised(gen.mapping(z))  # (B, code_dim)
        chosen = categories_of(z, categories)  # z's discrete part: what the info head must read back
        # Discriminator: real -> high logits, fake -> low (softplus(-x) = -log sigmoid(x)).
        real_logits = disc(real)
        loss_d = F.softplus(-real_logits).mean() + F.softplus(disc(fake.detach())).mean()
        if step % R1_EVERY == 0:  # R1: keep the discriminator flat around real codes
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss_d = loss_d + R1_EVERY * R1_GAMMA / 2 * grad.pow(2).sum(1).mean()
        if info:  # InfoGAN: the head learns to read z's choices from the code
            loss_d = loss_d + INFO_WEIGHT * info.loss(fake.detach(), chosen)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # Generator: make the discriminator call its codes real (the non-saturating loss).
        loss_g = F.softplus(-disc(fake)).mean()
        if info:  # ... and the generator to make them readable: each choice must change the code
            loss_g = loss_g + INFO_WEIGHT * info.loss(fake, chosen)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema.update(gen, step)
        if step % 20 == 0:
            bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")
        stop = step + 1 < steps and out_of_time()
        if (step + 1) % 1000 == 0 or step + 1 == steps or stop:
            save_checkpoint(NAME, step + 1, **parts, ema=ema, opt_g=opt_g, opt_d=opt_d, **made_for)
        if stop:
            stopped_early(NAME, step + 1, steps)
            break
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
        "autoencoder": "autoencoder-fitted",
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


def main(
    steps: int | None = None,
    device: str = "auto",
    fresh: bool = False,
    batch_size: int = BATCH,
    design: int = DESIGN,
) -> None:
    steps = steps or STEPS
    start = time.perf_counter()
    gen = train(steps=steps, batch_size=batch_size, device=device, fresh=fresh, design=design)
    measure_w_mean(gen)
    reached = min(steps, load_checkpoint(NAME))  # fewer when a deadline stopped it
    export(gen, reached, time.perf_counter() - start)
    print(f"GAN generator exported to {data_dir() / NAME}")


if __name__ == "__main__":
    main()
