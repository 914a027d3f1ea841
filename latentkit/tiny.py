"""Tiny, randomly initialised builds of every diffusion architecture the paper compares, built offline.

Section 3.1 of the paper injects layers of seven model families: Stable Diffusion 1.x, 2.x and XL and the
Kandinsky 2.2 decoder (U-Nets), and Stable Diffusion 3, Flux and PixArt (transformers). Their real weights
weigh gigabytes and live on a model hub; the *code* that runs them is diffusers'. Here each family is
built from a small config the way diffusers' own fast tests do it (``get_dummy_components``), so the
hooks and the injection sweep are tested on the very classes that run the real models, in seconds and
without a network.

The images these pipelines make are noise: the weights are random. What the tiny builds are for is the
*plumbing* (layer names, stream layouts, batching, classifier-free guidance), which is identical.

Every builder takes a seed, returns a pipeline on CPU in float32 and the word-level tokenizer of the
shapes world (:func:`latentkit.tokenizer.world_tokenizer`) in every tokenizer slot, CLIP or T5 alike.
:func:`save_tiny` writes a build in the real model's folder layout, which ``from_pretrained`` reads.

Used by ``tests/test_tiny_architectures.py`` and ``benchmarks/bench_injection.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    KandinskyV22Pipeline,
    PixArtAlphaPipeline,
    PixArtTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    VQModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
)

from latentkit.tokenizer import EOS, PAD, world_tokenizer

#: Token length of every tiny tokenizer (CLIP's is 77; the world's captions need fewer than 20).
MAX_LENGTH = 20
#: Pixel side of the images the tiny pipelines are meant to make (latents are half as wide).
IMAGE_SIZE = 32


def _ready(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """Inference mode (freshly built models train, and T5's dropout would make rows differ), quiet."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tokenizer():
    return world_tokenizer(max_length=MAX_LENGTH)


def _clip(seed: int, hidden: int = 32, with_projection: bool = False, projection: int = 32):
    """A 2-layer CLIP text encoder whose special-token ids match :func:`_tokenizer`."""
    tok = _tokenizer()
    config = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=projection,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids(EOS),
        pad_token_id=tok.convert_tokens_to_ids(PAD),
    )
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _t5(seed: int, d_model: int = 32):
    """A 2-layer T5 encoder over the same vocabulary (T5's pad id is 0, as in the tokenizer)."""
    tok = _tokenizer()
    config = T5Config(
        vocab_size=len(tok),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tok.convert_tokens_to_ids(PAD),
        eos_token_id=tok.convert_tokens_to_ids(EOS),
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config)


def _vae(seed: int, latent_channels: int = 4, **kwargs) -> AutoencoderKL:
    """A two-level KL autoencoder: images of ``IMAGE_SIZE`` px <-> latents of ``IMAGE_SIZE // 2``."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        **kwargs,
    )


def _ddim(**kwargs) -> DDIMScheduler:
    """DDIM with Stable Diffusion's scaled-linear betas (deterministic at eta=0, the pipelines' default)."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        **kwargs,
    )


def _sd_unet(seed: int, **kwargs) -> UNet2DConditionModel:
    """Stable Diffusion's U-Net layout at two levels: cross-attention on the high-resolution level."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        **kwargs,
    )


def tiny_sd1(seed: int = 0) -> StableDiffusionPipeline:
    """Stable Diffusion 1.x: CLIP text encoder, epsilon-predicting U-Net (conv attention projections)."""
    return _ready(
        StableDiffusionPipeline(
            vae=_vae(seed),
            text_encoder=_clip(seed),
            tokenizer=_tokenizer(),
            unet=_sd_unet(seed, attention_head_dim=4),
            scheduler=_ddim(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    )


def tiny_sd2(seed: int = 0) -> StableDiffusionPipeline:
    """Stable Diffusion 2.x: linear attention projections and a v-predicting U-Net."""
    return _ready(
        StableDiffusionPipeline(
            vae=_vae(seed),
            text_encoder=_clip(seed),
            tokenizer=_tokenizer(),
            unet=_sd_unet(seed, attention_head_dim=(2, 4), use_linear_projection=True),
            scheduler=_ddim(prediction_type="v_prediction"),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    )


def tiny_sdxl(seed: int = 0) -> StableDiffusionXLPipeline:
    """SDXL: two text encoders (hidden states concatenated: 32 + 32 = 64) and "text_time" conditioning.

    The added embedding reads the pooled text (32) and six size/crop ids of 8 Fourier features each,
    so ``projection_class_embeddings_input_dim = 32 + 6 * 8 = 80``.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        cross_attention_dim=64,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80,
    )
    return _ready(
        StableDiffusionXLPipeline(
            vae=_vae(seed),
            text_encoder=_clip(seed),
            text_encoder_2=_clip(seed + 1, with_projection=True),
            tokenizer=_tokenizer(),
            tokenizer_2=_tokenizer(),
            unet=unet,
            scheduler=_ddim(),
        )
    )


def tiny_kandinsky22(seed: int = 0) -> KandinskyV22Pipeline:
    """Kandinsky 2.2 decoder: a U-Net conditioned on a CLIP *image* embedding (32), decoded by a MoVQ.

    The U-Net uses Kandinsky's simple cross-attention blocks (plain ``Attention`` modules, no
    ``Transformer2DModel``) and predicts noise and variance (8 = 2 x 4 output channels).
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=8,
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        encoder_hid_dim=32,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )
    torch.manual_seed(seed)
    movq = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 32),  # SpatialNorm always uses 32 groups
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        vq_embed_dim=4,
    )
    scheduler = DDIMScheduler(
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return _ready(KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq))


def tiny_sd3(seed: int = 0) -> StableDiffusion3Pipeline:
    """Stable Diffusion 3: an MMDiT (joint text/image blocks) trained by flow matching.

    Two CLIP encoders (hidden 32 each, concatenated to 64 and padded to T5's width) and a T5 (64) feed
    ``joint_attention_dim=64``; the pooled CLIP outputs (2 x 32) feed ``pooled_projection_dim=64``.
    """
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=IMAGE_SIZE // 2,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,
    )
    return _ready(
        StableDiffusion3Pipeline(
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(seed, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.06),
            text_encoder=_clip(seed, with_projection=True),
            tokenizer=_tokenizer(),
            text_encoder_2=_clip(seed + 1, with_projection=True),
            tokenizer_2=_tokenizer(),
            text_encoder_3=_t5(seed, d_model=64),
            tokenizer_3=_tokenizer(),
        )
    )


def tiny_flux(seed: int = 0) -> FluxPipeline:
    """Flux: double-stream (text and image kept apart) then single-stream (concatenated) blocks.

    Latents (1 channel, 16 x 16) are packed 2 x 2 into 64 image tokens of 4 channels. The CLIP pooled
    output (32) feeds ``pooled_projection_dim``, the T5 (32) feeds ``joint_attention_dim``; the rotary
    axes (4 + 4 + 8) add up to the head width (16).
    """
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    return _ready(
        FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(),
            vae=_vae(
                seed, latent_channels=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.06
            ),
            text_encoder=_clip(seed),
            tokenizer=_tokenizer(),
            text_encoder_2=_t5(seed, d_model=32),
            tokenizer_2=_tokenizer(),
            transformer=transformer,
        )
    )


def tiny_pixart(seed: int = 0) -> PixArtAlphaPipeline:
    """PixArt-alpha: a DiT with cross-attention to T5 and adaLN-single timestep conditioning.

    Call it with ``use_resolution_binning=False``: the binning tables exist only for the real sizes.
    """
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(
        sample_size=IMAGE_SIZE // 2,
        num_layers=3,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    return _ready(
        PixArtAlphaPipeline(
            tokenizer=_tokenizer(),
            text_encoder=_t5(seed, d_model=32),
            vae=_vae(seed),
            transformer=transformer,
            scheduler=_ddim(),
        )
    )


#: Architecture name -> builder; the names are the ones used across latentkit and its notebooks.
BUILDERS: dict[str, Callable[[int], DiffusionPipeline]] = {
    "sd1": tiny_sd1,
    "sd2": tiny_sd2,
    "sdxl": tiny_sdxl,
    "kandinsky22": tiny_kandinsky22,
    "sd3": tiny_sd3,
    "flux": tiny_flux,
    "pixart": tiny_pixart,
}


def build(arch: str, seed: int = 0) -> DiffusionPipeline:
    """The tiny pipeline of ``arch`` (one of :data:`BUILDERS`), on CPU in float32.

    Raises:
        ValueError: for an unknown architecture, naming the known ones.
    """
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; tiny builds exist for {sorted(BUILDERS)}")
    return BUILDERS[arch](seed)


def call_kwargs(arch: str, num_inference_steps: int = 3, guidance_scale: float = 3.0) -> dict[str, Any]:
    """Shared pipeline arguments that make the tiny ``arch`` pipeline run at :data:`IMAGE_SIZE` px.

    ``guidance_scale > 1`` turns classifier-free guidance on for every architecture but Flux (whose
    guidance is an input of distilled models; its tiny build has no guidance embedding).
    """
    kwargs: dict[str, Any] = {
        "height": IMAGE_SIZE,
        "width": IMAGE_SIZE,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
    }
    if arch in ("sd3", "flux", "pixart"):
        kwargs["max_sequence_length"] = MAX_LENGTH  # T5 would otherwise pad to 256 / 512 / 120 tokens
    if arch == "pixart":
        kwargs.update(use_resolution_binning=False, clean_caption=False)
    return kwargs


def example_pair(arch: str, seeds: tuple[int, int] = (0, 1)) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-image arguments of an original O and an edit E for the tiny ``arch`` pipeline.

    Text-conditioned pipelines get two captions of the shapes world; the Kandinsky 2.2 decoder, which
    is conditioned on an image embedding (made by a prior we do not build), gets two random ones
    and a shared negative embedding.

    Returns:
        ``(original, edit)`` dicts for :func:`latentkit.injection.sweep`.
    """
    if arch == "kandinsky22":
        g = torch.Generator().manual_seed(1000 + seeds[0])
        negative = torch.randn(1, 32, generator=g)
        original, edit = (torch.randn(1, 32, generator=g) for _ in range(2))
        return (
            {"image_embeds": original, "negative_image_embeds": negative, "seed": seeds[0]},
            {"image_embeds": edit, "negative_image_embeds": negative, "seed": seeds[1]},
        )
    return (
        {"prompt": "a small red star at the center on a plain white background", "seed": seeds[0]},
        {"prompt": "a large blue circle at the top left on a dotted black background", "seed": seeds[1]},
    )


def save_tiny(arch: str, folder: str | Path, seed: int = 0) -> Path:
    """Save the tiny ``arch`` pipeline with ``save_pretrained``, in the real model's folder layout.

    The folder holds ``model_index.json`` and one sub-folder per component (``unet/``, ``vae/``,
    ``text_encoder/``, ``tokenizer/`` ...), so ``DiffusionPipeline.from_pretrained(folder)`` loads it
    offline exactly as it would load the real model from a local download.

    Args:
        arch: one of :data:`BUILDERS`.
        folder: where to write (created if missing).
        seed: seed of the random weights.

    Returns:
        The folder, as a ``Path``.
    """
    folder = Path(folder)
    build(arch, seed).save_pretrained(folder)
    return folder
