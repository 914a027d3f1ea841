"""Layer names, depth order, shapes and the patching context of latentkit.layers, on tiny real pipelines."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from torch import nn

from latentkit import layers, tiny


@pytest.fixture(scope="module")
def sd1():
    return tiny.build("sd1")


@pytest.fixture(scope="module")
def flux():
    return tiny.build("flux")


def test_unet_layers_are_module_paths_in_depth_order(sd1):
    found = layers.list_layers(sd1)
    names = [layer.name for layer in found]
    assert names[:3] == [
        "unet.down_blocks.0.resnets.0",
        "unet.down_blocks.0.attentions.0",
        "unet.down_blocks.1.resnets.0",
    ]
    assert [layer.depth for layer in found] == list(range(len(found)))
    assert [layer.group for layer in found] == sorted(
        (layer.group for layer in found), key=["down", "mid", "up"].index
    )
    for layer in found:
        module = sd1.unet.get_submodule(layer.name.removeprefix("unet."))
        assert type(module).__name__ == layer.kind
    by_name = {layer.name: layer for layer in found}
    assert by_name["unet.mid_block.attentions.0"].shape == (32, 8, 8)  # block_out 32, latents 16 / 2
    assert by_name["unet.up_blocks.1.attentions.1"].shape == (16, 16, 16)


def test_listed_order_is_the_execution_order(sd1):
    names = layers.layer_names(sd1)
    fired: list[str] = []
    record = dict.fromkeys(names, lambda act, name: fired.append(name))
    with layers.patched(sd1, record):
        sd1("a red star", num_inference_steps=1, height=32, width=32, guidance_scale=1.0)
    assert fired == names


def test_groups_and_samplers(sd1):
    mid = layers.list_layers(sd1, groups=["mid"], shapes=False)
    assert [layer.name for layer in mid] == [
        "unet.mid_block.resnets.0",
        "unet.mid_block.attentions.0",
        "unet.mid_block.resnets.1",
    ]
    with_samplers = layers.layer_names(sd1) + ["unet.down_blocks.0.downsamplers.0"]
    listed = [layer.name for layer in layers.list_layers(sd1, samplers=True, shapes=False)]
    assert set(with_samplers) <= set(listed)
    assert listed.index("unet.down_blocks.0.downsamplers.0") == 2  # after resnet 0, attention 0
    with pytest.raises(ValueError, match="unknown group.*'double'"):
        layers.list_layers(sd1, groups=["double"])


def test_flux_groups_double_then_single(flux):
    found = layers.list_layers(flux, sample_size=16)
    assert [(layer.name, layer.group) for layer in found] == [
        ("transformer.transformer_blocks.0", "double"),
        ("transformer.transformer_blocks.1", "double"),
        ("transformer.single_transformer_blocks.0", "single"),
        ("transformer.single_transformer_blocks.1", "single"),
    ]
    assert all(layer.shape == (64, 32) for layer in found)  # 8 x 8 image tokens, width 32


def test_unknown_layer_lists_closest_names(sd1, hooks_left):
    with pytest.raises(ValueError, match=r"closest valid names: \['unet.mid_block.resnets.1'"):
        layers.resolve(sd1, "unet.mid_block.resnet.1")
    with pytest.raises(ValueError, match="unknown layer"):
        with layers.patched(sd1, {"unet.nowhere": lambda act, name: None}):
            pass
    assert hooks_left(sd1) == []


def test_unrecognised_denoiser_names_supported_ones():
    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    with pytest.raises(TypeError, match="UNet2DModel.*Supported: UNet2DConditionModel"):
        layers.list_layers(pipe)
    with pytest.raises(TypeError, match="Supported"):
        layers.find_denoiser(object())


def test_patch_changes_output_and_no_hook_is_left_after_a_raise(sd1, hooks_left):
    kwargs = dict(num_inference_steps=1, height=32, width=32, guidance_scale=1.0, output_type="np")
    plain = sd1("a red star", generator=torch.Generator().manual_seed(0), **kwargs).images
    with layers.patched(sd1, {"unet.mid_block.resnets.1": lambda act, name: act * 0}):
        zeroed = sd1("a red star", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert abs(plain - zeroed).max() > 1e-3
    assert hooks_left(sd1) == []

    def boom(act, name):
        raise RuntimeError("inside the forward pass")

    with pytest.raises(RuntimeError, match="inside the forward pass"):
        with layers.patched(sd1, {"unet.mid_block.resnets.1": boom}):
            sd1("a red star", **kwargs)
    assert hooks_left(sd1) == []
    again = sd1("a red star", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert abs(plain - again).max() == 0


def test_a_patch_of_the_wrong_shape_is_refused(sd1, hooks_left):
    with pytest.raises(ValueError, match=r"returned shape \(1, 32, 8\)"):
        with layers.patched(sd1, {"unet.mid_block.resnets.1": lambda act, name: act[:, :, 0]}):
            sd1("a red star", num_inference_steps=1, height=32, width=32, guidance_scale=1.0)
    assert hooks_left(sd1) == []


@pytest.mark.parametrize(
    ("arch", "block"),
    [
        ("sd3", "transformer.transformer_blocks.0"),
        ("sd3", "transformer.transformer_blocks.2"),  # last block: context_pre_only, text is None
        ("flux", "transformer.transformer_blocks.1"),
        ("flux", "transformer.single_transformer_blocks.0"),
    ],
)
def test_transformer_patches_touch_the_image_stream_only(arch, block):
    """Row 1 gets row 0's image stream; its text stream is what it was without the patch."""
    pipe = tiny.build(arch)
    denoiser = pipe.transformer
    inputs = layers.dry_inputs(denoiser, 16)
    for key in ("hidden_states", "encoder_hidden_states", "pooled_projections"):
        inputs[key] = torch.cat([inputs[key], torch.randn_like(inputs[key])])  # two different rows
    inputs["timestep"] = inputs["timestep"].expand(2)
    module = denoiser.get_submodule(block.removeprefix("transformer."))
    seen: list[tuple] = []

    def run() -> None:
        handle = module.register_forward_hook(lambda m, a, out: seen.append(out))
        try:
            with torch.no_grad():
                denoiser(**inputs)
        finally:
            handle.remove()

    run()
    with layers.patched(pipe, {block: lambda act, name: act[[0, 0]]}):
        run()  # our observer is registered after the patch, so it sees the patched output
    (text, image), (text_patched, image_patched) = seen  # diffusers 0.42.1: (text, image)
    assert image.shape[1] == 64  # the image stream: 8 x 8 tokens
    assert torch.equal(image_patched[1], image[0])  # image stream replaced by row 0's
    assert torch.equal(image_patched[0], image[0])
    assert not torch.equal(image[1], image[0])  # ... which was different
    if text is None:
        assert text_patched is None
    else:
        assert torch.equal(text_patched, text)  # text stream untouched, both rows


def test_concatenated_text_image_stream_is_split_at_the_text_length():
    """Older Flux single blocks returned one tensor [text tokens; image tokens]."""

    class FluxSingleTransformerBlock(nn.Module):  # same class name as diffusers', older return
        def forward(self, hidden_states, encoder_hidden_states):
            return torch.cat([encoder_hidden_states, hidden_states], dim=1)

    block = FluxSingleTransformerBlock()
    text, image = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    out = block(image, encoder_hidden_states=text)
    kwargs = {"encoder_hidden_states": text}
    assert torch.equal(layers.image_stream("b", block, out, kwargs), image)
    new = layers.replace_image_stream("b", block, out, torch.zeros_like(image), kwargs)
    assert torch.equal(new[:, :3], text) and torch.equal(new[:, 3:], torch.zeros_like(image))
    with pytest.raises(TypeError, match="text length is unknown"):
        layers.image_stream("b", block, out, {})


def test_unknown_block_with_a_tuple_output_asks_for_a_table_row():
    class Mystery(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match="IMAGE_STREAM has no row for Mystery"):
        layers.image_stream("m", Mystery(), Mystery()(torch.ones(1)), {})


@pytest.mark.parametrize(
    "spec, label, group",
    [
        ("unet.up_blocks.1.attentions.0", "up1 attn0", "up"),
        ("unet.mid_block.resnets.1", "mid res1", "mid"),
        ("unet.down_blocks.0.downsamplers.0", "down0 downsample0", "down"),
        ("transformer.single_transformer_blocks.3", "single3", ""),
        ("transformer.transformer_blocks.12", "block12", ""),
        (("unet.down_blocks.1.resnets.0", "unet.mid_block.attentions.0"), "down1 res0+mid attn0", ""),
        (("unet.up_blocks.0.resnets.0", "unet.up_blocks.0.attentions.1"), "up0 res0+up0 attn1", "up"),
    ],
)
def test_labels_and_groups_of_layers_and_combinations(spec, label, group):
    assert layers.layer_label(spec) == label
    assert layers.group_of(spec) == group
    assert layers.combination_name(spec) == (spec if isinstance(spec, str) else "+".join(spec))


def test_a_container_or_a_string_of_letters_is_refused_with_the_layers_to_name(sd1):
    with pytest.raises(ValueError, match=r"container of layers.*'unet.down_blocks.0.attentions.0'"):
        layers.resolve(sd1, "unet.down_blocks.0.attentions")
    with pytest.raises(TypeError, match="a layer name is a string"):
        layers.resolve(sd1, ("unet.mid_block",))
