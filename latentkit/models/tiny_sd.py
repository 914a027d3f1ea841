"""A Stable Diffusion in miniature: the same diffusers/transformers classes, small enough for a CPU.

Real Stable Diffusion 1.x is four parts, and so is this organism (paper Sec. 3, Figure 3):

===============  ===========================  ======================================================
part             class                        here
===============  ===========================  ======================================================
tokenizer        ``PreTrainedTokenizerFast``  one token per word of the caption grammar, 20 tokens
text encoder     ``CLIPTextModel``            the text tower of a tiny CLIP trained on the world
VAE              ``AutoencoderKL``            64x64x3 image <-> 16x16x4 latent (SD: 512x512 <-> 64x64)
U-Net            ``UNet2DConditionModel``     SD's layout: cross-attention down/mid/up blocks, skips
===============  ===========================  ======================================================

assembled into a ``StableDiffusionPipeline`` with a DDIM scheduler, saved with ``save_pretrained`` to
``data/tiny-sd/`` (fp16) and loaded with :func:`load_organism`. So every tool that works on the real
pipeline (hooks by module path, injection, latents=..., prompt_embeds=...) works on this one.

The U-Net predicts *v* (``prediction_type="v_prediction"``, as SD 2 does) rather than the noise: small
diffusion models trained briefly learn much faster that way. The tiny CLIP's image tower is shipped too
(``data/tiny-clip/``): it is the project's offline stand-in for "CLIP similarity".

Training recipes: :mod:`latentkit.recipes.clip`, :mod:`latentkit.recipes.sd_vae`,
:mod:`latentkit.recipes.unet` (``python -m latentkit.recipes clip|sd_vae|unet``). How good it is:
``benchmarks/bench_organism_quality.py`` (the shipped U-Net, trained in stages on a shared CPU, draws
background, texture and position right, colour mostly, size often, but not yet the shape; see
:data:`FLOORS`).
Used by notebook ``03_diffusion_latent_spaces``.

Example::

    pipe = load_organism()  # StableDiffusionPipeline, fp32 on CPU
    image = pipe("a large red star at the top left on a striped white background").images[0]
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from latentkit.tokenizer import EOS, world_tokenizer

#: Where the organism and its CLIP live under ``data/`` (see :func:`latentkit.paths.data_dir`).
SD_DIR, CLIP_DIR = "tiny-sd", "tiny-clip"

#: The organism's default generation settings: what :func:`save_organism` writes to the folder's
#: :data:`DEFAULTS_FILE`, which every loader then reads (:func:`read_defaults`, :func:`defaults_of`).
DEFAULTS = {
    "num_inference_steps": 25,
    "guidance_scale": 4.0,
    "height": 64,
    "width": 64,
}

#: The file beside ``model_index.json`` that holds an organism's generation settings (and marks the folder
#: as an organism's, for :func:`latentkit.models.real.load_pipeline`).
DEFAULTS_FILE = "latentkit_defaults.json"
#: The settings every organism's defaults file must give.
DEFAULT_KEYS = ("num_inference_steps", "guidance_scale", "height", "width")

IMAGE_SIZE = 64  # pixels; the VAE downsamples by 4, so the latent is 16x16
LATENT_CHANNELS = 4
TEXT_HIDDEN = 128  # the text encoder's width = the U-Net's cross_attention_dim
MAX_TOKENS = 20  # the tokenizer pads every caption to this length

# CLIP normalises pixels with these statistics (OpenAI's); kept so the image tower is a normal CLIP.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------------------
# Configs


def clip_config():
    """A tiny ``CLIPConfig``: text tower 128 wide x 3 layers, ViT tower patch 16 on 64x64 (16 patches)."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    tokenizer = world_tokenizer(MAX_TOKENS)
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        hidden_act="quick_gelu",
        # Pooling takes the hidden state at the first eos_token_id; it must be the tokenizer's EOS (3).
        # (eos_token_id == 2 would switch transformers to a legacy argmax pooling.)
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
    )
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=16,  # (64 / 16)^2 = 16 patches + [CLS]: small enough to train on a CPU
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=4,
        hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=64)


def vae_config() -> dict:
    """``AutoencoderKL`` kwargs: 64x64x3 -> 16x16x4 (three blocks = two downsamplings)."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),  # resolutions 64, 32, 16
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
        scaling_factor=1.0,  # set from the measured std of the latents by the VAE recipe
        force_upcast=False,
    )


def unet_config() -> dict:
    """``UNet2DConditionModel`` kwargs in SD's layout, on the 16x16 latent.

    Down path 16 -> 8 -> 4 (CrossAttnDown, CrossAttnDown, Down), mid block with cross-attention at 4x4,
    up path 4 -> 8 -> 16 (Up, CrossAttnUp, CrossAttnUp), with skip connections from every down layer.
    """
    return dict(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64, 96),  # resolutions 16, 8, 4
        layers_per_block=1,
        norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN,
        # diffusers' historical name for the number of heads per block (as in SD 1.x): 32 channels
        # per head everywhere; more heads at 16x16 cost a CPU more than they help this world.
        attention_head_dim=(1, 2, 3),
        transformer_layers_per_block=1,
    )


def scheduler_config() -> dict:
    """SD's noise schedule (scaled linear, 1000 steps), with v-prediction."""
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="trailing",
    )


# ---------------------------------------------------------------------------------------------------------
# Component builders (random weights; the recipes train them)


def build_clip():
    """A randomly initialised tiny ``CLIPModel``."""
    from transformers import CLIPModel

    return CLIPModel(clip_config())


def build_vae():
    """A randomly initialised ``AutoencoderKL``: encode (B, 3, 64, 64) -> latent (B, 4, 16, 16)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_config())


def build_unet():
    """A randomly initialised ``UNet2DConditionModel``: (B, 4, 16, 16), t, (B, 20, 128) -> (B, 4, 16, 16)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**unet_config())


def build_scheduler(kind: str = "ddim"):
    """The noise scheduler: ``"ddpm"`` for training, ``"ddim"`` (the default for sampling)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    config = scheduler_config()
    if kind == "ddpm":
        config = {k: v for k, v in config.items() if k not in ("set_alpha_to_one", "steps_offset")}
        return DDPMScheduler(**config)
    if kind == "ddim":
        return DDIMScheduler(**config)
    raise ValueError(f"scheduler kind must be 'ddpm' or 'ddim', got {kind!r}")


def n_params(module: torch.nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the recipes


def images_to_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) uint8 NumPy -> (N, 3, H, W) float in [-1, 1], the VAE's input range."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor):
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 NumPy."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def clip_pixels(images) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) CLIP-normalised ``pixel_values``."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    """Captions -> (N, 20) input ids, padded exactly as ``StableDiffusionPipeline`` pads prompts."""
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


@torch.no_grad()
def encode_text(text_encoder, tokenizer, captions: list[str], batch_size: int = 512) -> torch.Tensor:
    """(N, 20, 128) last hidden states, computed as the pipeline does (no attention mask: the causal
    mask already keeps padding out of every real token)."""
    out = []
    for i in range(0, len(captions), batch_size):
        ids = tokenize(tokenizer, captions[i : i + batch_size]).to(text_encoder.device)
        out.append(text_encoder(ids)[0].float().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------
# Assemble, save, load


def assemble(text_encoder, vae, unet, tokenizer=None, scheduler=None):
    """Put trained parts together as a diffusers ``StableDiffusionPipeline`` (no safety checker).

    The pipeline carries :data:`DEFAULTS` (``pipe.latentkit_defaults``, read by :func:`defaults_of`) until
    it is saved; a loaded one carries what its folder's :data:`DEFAULTS_FILE` says.
    """
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer if tokenizer is not None else world_tokenizer(MAX_TOKENS),
        unet=unet,
        scheduler=scheduler if scheduler is not None else build_scheduler("ddim"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.latentkit_defaults = dict(DEFAULTS)
    return pipe


def save_organism(
    pipe,
    path: str | Path | None = None,
    dtype=torch.float16,
    defaults: dict | None = None,
    tokenizers: tuple[str, ...] = ("tokenizer",),
) -> Path:
    """Save the pipeline like a real SD checkpoint (safetensors, ``dtype``) plus our defaults.

    ``defaults`` (default :data:`DEFAULTS`) and ``tokenizers`` (the pipeline's tokenizer slots) let the
    transformer organism (:mod:`latentkit.models.tiny_dit`) save itself the same way. The weights are
    stored in ``dtype``; every part loads in fp32 when ``from_pretrained`` is given no dtype
    (:func:`portable_dtype`), as the real checkpoints do.
    """
    from latentkit.paths import data_dir

    path = Path(path) if path is not None else data_dir() / SD_DIR
    path.mkdir(parents=True, exist_ok=True)
    pipe = pipe.to(dtype=dtype)
    pipe.save_pretrained(path, safe_serialization=True)
    for slot in tokenizers:
        portable_tokenizer_class(path / slot, path / "model_index.json", slot)
    for config in sorted(path.glob("*/config.json")):
        portable_dtype(config)
    settings = dict(defaults or DEFAULTS)
    check_defaults(settings, where="save_organism(defaults=...)")
    (path / DEFAULTS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return path


def portable_dtype(config_path: Path) -> None:
    """Record fp32 as the compute dtype in a transformers config (a text encoder's), whatever the weights'.

    transformers 5 loads a model in the dtype its ``config.json`` records when ``from_pretrained`` is given
    none (its default is ``dtype="auto"``), while diffusers loads its own models (U-Net, VAE) in fp32:
    with ``"dtype": "float16"`` recorded, ``StableDiffusionPipeline.from_pretrained(folder)`` gave an fp16
    text encoder beside an fp32 U-Net and failed at the first call ("mat1 and mat2 must have the same
    dtype"). With ``"float32"`` recorded, a plain load is fp32 everywhere and ``torch_dtype=...`` still
    sets every part. The weights on disk keep the dtype they were saved in. Configs of diffusers models
    (no ``model_type``) are left as they are.
    """
    config = json.loads(config_path.read_text())
    if "model_type" not in config:
        return
    config["dtype"] = "float32"
    if "torch_dtype" in config:  # the name transformers 4 writes
        config["torch_dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def check_defaults(settings: dict, where: str) -> dict:
    """``settings`` if every key of :data:`DEFAULT_KEYS` is a number >= 0 (steps >= 1); else ValueError."""
    missing = [k for k in DEFAULT_KEYS if k not in settings]
    if missing:
        raise ValueError(f"{where} lacks {missing}: an organism's defaults need {list(DEFAULT_KEYS)}")
    bad = {
        k: settings[k] for k in DEFAULT_KEYS if not isinstance(settings[k], int | float) or settings[k] < 0
    }
    if bad or settings["num_inference_steps"] < 1:
        raise ValueError(f"{where}: the settings must be numbers >= 0 and steps >= 1, got {bad or settings}")
    return settings


def read_defaults(folder: str | Path) -> dict:
    """The generation settings an organism's folder ships with (its :data:`DEFAULTS_FILE`).

    Raises:
        FileNotFoundError: the folder holds no defaults file (it is no organism saved by
            :func:`save_organism`).
        ValueError: the file is not a JSON object with :data:`DEFAULT_KEYS`.
    """
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {folder} is no organism saved by latentkit (save_organism writes it)"
        )
    try:
        settings = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(
            f"{path} should hold a JSON object of pipeline arguments, got {type(settings).__name__}"
        )
    return check_defaults(settings, where=str(path))


def portable_tokenizer_class(
    tokenizer_dir: Path, model_index: Path | None = None, slot: str = "tokenizer"
) -> None:
    """Record the tokenizer as ``PreTrainedTokenizerFast``, the name every transformers version knows.

    transformers 5 saves it as ``TokenizersBackend`` (its new name for the same class), which 4.x,
    still allowed by ``pyproject.toml``, cannot load.
    """
    config_path = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    if model_index is not None:
        index = json.loads(model_index.read_text())
        index[slot] = ["transformers", "PreTrainedTokenizerFast"]
        model_index.write_text(json.dumps(index, indent=2) + "\n")


def load_organism(device: str = "auto", dtype: torch.dtype | None = None, path=None):
    """Load the miniature Stable Diffusion from ``data/tiny-sd/``, offline.

    Args:
        device: ``"auto"`` or a torch device string (see :func:`latentkit.resolve_device`).
        dtype: weights' dtype; default fp32 on CPU/MPS, fp16 on CUDA.
        path: another saved pipeline folder (default: the shipped one).

    Returns:
        A ``StableDiffusionPipeline``; ``pipe(prompt).images`` gives 64x64 PIL images. Defaults:
        :data:`DEFAULTS` (25 DDIM steps, guidance 4.0).
    """
    from diffusers import StableDiffusionPipeline

    retrain = "Retrain it with `python -m latentkit.recipes unet` (after clip and vae)."
    return load_saved(StableDiffusionPipeline, SD_DIR, retrain, device, dtype, path)


def load_saved(pipeline_class, folder: str, retrain: str, device: str, dtype, path, **kwargs):
    """A saved organism pipeline (``data/<folder>/`` or ``path``), offline, on ``device``, progress bar off.

    The dtype defaults to fp16 on CUDA, fp32 elsewhere; ``retrain`` tells how to make a missing one;
    ``kwargs`` go to ``from_pretrained``. Serves both organisms' ``load_organism``. The pipeline carries
    the folder's defaults (:func:`read_defaults`) as ``pipe.latentkit_defaults``.
    """
    from latentkit import resolve_device
    from latentkit.models.real import _check_components
    from latentkit.paths import reading_weights, restore_hint, shipped

    device = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    path = Path(path) if path is not None else shipped(folder)
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(f"{path} holds no saved pipeline (no model_index.json). {retrain}")
    _check_components(path, kwargs, restore_hint(path))
    settings = read_defaults(path)
    with reading_weights(path, restore_hint(path)):
        pipe = pipeline_class.from_pretrained(path, dtype=dtype, local_files_only=True, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    pipe.latentkit_defaults = settings
    return pipe.to(device)


def load_clip(device: str = "auto", dtype: torch.dtype | None = None, path=None):
    """Load the tiny ``CLIPModel`` from ``data/tiny-clip/`` (fp32 on CPU), in eval mode."""
    from transformers import CLIPModel

    from latentkit import resolve_device
    from latentkit.paths import reading_weights, restore_hint, shipped

    device = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    path = Path(path) if path is not None else shipped(CLIP_DIR)
    with reading_weights(path, restore_hint(path)):
        model = CLIPModel.from_pretrained(path, dtype=dtype, local_files_only=True)
    return model.to(device).eval()


def defaults_of(pipe) -> dict:
    """The generation settings of the organism ``pipe`` is, as its folder's :data:`DEFAULTS_FILE` says.

    A pipeline made by an organism's ``assemble`` or ``load_organism`` carries them
    (``pipe.latentkit_defaults``); one loaded with plain ``from_pretrained(folder)`` has them read from
    that folder. Works for both organisms without this module knowing the other.

    Raises:
        ValueError: ``pipe`` is none of latentkit's organisms (pass the settings to the pipeline yourself).
    """
    settings = getattr(pipe, "latentkit_defaults", None)
    if settings is not None:
        return settings
    folder = getattr(pipe, "name_or_path", None)
    if folder and (Path(folder) / DEFAULTS_FILE).is_file():
        return read_defaults(folder)
    raise ValueError(
        f"this {type(pipe).__name__} is no latentkit organism: it was neither made by an organism's "
        f"assemble/load_organism nor loaded from a folder with {DEFAULTS_FILE} (got {folder!r}); pass "
        "num_inference_steps, guidance_scale, height and width yourself"
    )


def generate(pipe, prompts, seed: int = 0, **kwargs):
    """Generate with the organism's defaults (:func:`defaults_of`); returns (N, 64, 64, 3) uint8 NumPy.

    Works for both diffusion organisms (U-Net and transformer). One ``torch.Generator`` seeded with
    ``seed`` draws every image's initial noise, so the same prompts and seed give the same images.
    """
    import numpy as np

    from latentkit.layers import find_denoiser

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    settings = {**defaults_of(pipe), **kwargs}
    generator = torch.Generator("cpu").manual_seed(seed)
    shape = (len(prompts), LATENT_CHANNELS, settings["height"] // 4, settings["width"] // 4)
    _, denoiser = find_denoiser(pipe)
    latents = torch.randn(shape, generator=generator).to(pipe.device, denoiser.dtype)
    out = pipe(prompts, latents=latents, output_type="np", **settings).images  # (N, H, W, 3) in [0, 1]
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Quality: does the organism draw what its caption says? (the probes read the factors back)


def vae_round_trip(vae, images, batch_size: int = 256):
    """(N, 64, 64, 3) uint8 -> encode (latent mean) -> decode -> (N, 64, 64, 3) uint8."""
    import numpy as np

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = images_to_tensor(images[i : i + batch_size]).to(vae.device, vae.dtype)
            out.append(tensor_to_images(vae.decode(vae.encode(x).latent_dist.mean).sample))
    return np.concatenate(out)


def quality(pipe, probes, n: int = 256, seed: int = 0, split: str = "heldout", batch_size: int = 64):
    """Per-factor agreement of generated images with their captions, read by the probes.

    Captions are drawn from the world's ``split`` (``"heldout"``: only the :data:`~latentkit.world.HELD_OUT`
    (shape, colour) pairs, never seen in training). The same factors are also rendered for real and
    passed through the VAE, as references.

    Returns:
        dict ``source -> {factor: accuracy, ..., "in_distribution": mean score}`` for the sources
        ``"generated"``, ``"real"`` and ``"vae_round_trip"``.
    """
    import numpy as np

    from latentkit.world import FACTORS, World

    batch = World(64).sample(n, seed=seed, split=split)
    generated = np.concatenate(
        [generate(pipe, batch.captions[i : i + batch_size], seed=seed + i) for i in range(0, n, batch_size)]
    )
    sources = {
        "generated": generated,
        "real": batch.images,
        "vae_round_trip": vae_round_trip(pipe.vae, batch.images),
    }
    report = {}
    for name, images in sources.items():
        readout = probes.read(images)
        agree = readout.agreement(batch.factors)
        row = {f: float(agree[f].mean()) for f in FACTORS}
        row["all_factors"] = float(np.mean(np.all([agree[f] for f in FACTORS], axis=0)))
        row["in_distribution"] = float(probes.in_distribution(images, readout).mean())
        report[name] = row
    return report


def format_quality(report: dict) -> str:
    """A plain-text table of :func:`quality`'s report (rows: measures, columns: sources)."""
    sources = list(report)
    measures = list(next(iter(report.values())))
    lines = [f"{'':18s}" + "".join(f"{s:>16s}" for s in sources)]
    for m in measures:
        lines.append(f"{m:18s}" + "".join(f"{report[s][m]:16.3f}" for s in sources))
    return "\n".join(lines)


#: The project's goals for the organism (per-factor agreement read by the probes; see
#: benchmarks/bench_organism_quality.py, which prints them beside what the shipped weights reach).
TARGETS = {
    "generated": {"shape": 0.9, "color": 0.9, "background": 0.9, "position": 0.85},
    "vae_round_trip": dict.fromkeys(("shape", "color", "background", "texture", "position", "size"), 0.98),
}

#: Regression floors: what the shipped weights reach on a 48-image sample of training-split captions,
#: minus a margin for sampling noise (checked by tests/test_tiny_sd.py). Measured, not aspired to:
#: where a floor is below its target, the organism does not meet the target yet.
FLOORS = {
    "vae_round_trip": {
        "shape": 0.8,  # star is the hard one: its thin spikes blur in the 16x16x4 latent
        "color": 0.95,
        "background": 0.95,
        "texture": 0.95,
        "position": 0.95,
        "size": 0.9,
    },
    # U-Net after 16,000 steps (48-image sample: shape 0.83, every other factor 1.00).
    "generated": {
        "shape": 0.7,
        "color": 0.95,
        "background": 0.95,
        "texture": 0.95,
        "position": 0.95,
        "size": 0.9,
    },
}
