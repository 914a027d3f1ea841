"""Every architecture of the paper, built tiny: it builds fast, lists its layers, and the sweep runs on it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from latentkit import injection, layers, run, tiny

ARCHS = list(tiny.BUILDERS)
#: U-Net builds: per-sample layer shapes (C, H, W); the transformers have (tokens, dim).
UNETS = {"sd1", "sd2", "sdxl", "kandinsky22"}


def test_the_seven_architectures_of_the_paper_are_there():
    assert ARCHS == ["sd1", "sd2", "sdxl", "kandinsky22", "sd3", "flux", "pixart"]
    with pytest.raises(ValueError, match="tiny builds exist for"):
        tiny.build("dalle")


@pytest.mark.parametrize("arch", ARCHS)
def test_builds_fast_on_cpu_in_float32_in_eval_mode(arch):
    start = time.perf_counter()
    pipe = tiny.build(arch, seed=3)
    assert time.perf_counter() - start < 3.0
    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    params = [p for m in modules for p in m.parameters()]
    assert {p.dtype for p in params} == {torch.float32}
    assert {p.device.type for p in params} == {"cpu"}
    assert not any(m.training for m in modules)
    again = tiny.build(arch, seed=3)
    _, d1 = layers.find_denoiser(pipe)
    _, d2 = layers.find_denoiser(again)
    assert all(torch.equal(a, b) for a, b in zip(d1.parameters(), d2.parameters(), strict=True))


@pytest.mark.parametrize("arch", ARCHS)
def test_layers_have_module_path_names_groups_and_shapes(arch):
    pipe = tiny.build(arch)
    found = layers.list_layers(pipe, sample_size=16)
    assert found
    prefix = "unet" if arch in UNETS else "transformer"
    for layer in found:
        assert layer.name.startswith(prefix + ".")
        module = getattr(pipe, prefix).get_submodule(layer.name.removeprefix(prefix + "."))
        assert type(module).__name__ == layer.kind
        assert len(layer.shape) == (3 if arch in UNETS else 2)
    groups = {layer.group for layer in found}
    expected = {"flux": {"double", "single"}, "sd3": {"joint"}, "pixart": {"block"}}
    assert groups == expected.get(arch, {"down", "mid", "up"})


@pytest.mark.parametrize("arch", ARCHS)
def test_sweep_runs_and_each_copy_differs_from_o_only_when_injected(arch):
    pipe = tiny.build(arch)
    names = layers.layer_names(pipe)
    original, edit = tiny.example_pair(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=2)
    result = injection.sweep(pipe, original, edit, return_latents=True, **kwargs)
    assert result.injected.shape == (len(names), tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)
    assert result.names == names
    lat = result.latents  # rows [E, O, O_1, ...]
    scale = lat.abs().max()
    assert (lat[0] - lat[1]).abs().max() > 1e-2 * scale  # E and O are different images
    assert ((lat[2:] - lat[1:2]).flatten(1).abs().amax(1) > 1e-4 * scale).all()
    none = injection.sweep(pipe, original, edit, names[:2], steps=(0, 0), return_latents=True, **kwargs)
    assert (none.latents[2:] - none.latents[1:2]).abs().max() <= 1e-6 * scale


@pytest.mark.parametrize("arch", ARCHS)
def test_save_tiny_writes_a_loadable_real_layout(arch, tmp_path):
    folder = tiny.save_tiny(arch, tmp_path / arch)
    prefix = "unet" if arch in UNETS else "transformer"
    assert (folder / "model_index.json").is_file()
    assert (folder / prefix / "config.json").is_file()
    loaded = DiffusionPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is type(tiny.build(arch))
    original, _ = tiny.example_pair(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=2)
    a, _ = run.generate(tiny.build(arch), [original], **kwargs)
    b, _ = run.generate(loaded, [original], **kwargs)
    np.testing.assert_allclose(a, b, atol=1e-5)
