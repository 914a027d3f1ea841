"""load_pipeline: tiny builds saved in each family's folder layout load as their real pipeline; a missing
or unknown model raises an error that says what to do. All offline."""

from __future__ import annotations

import traceback

import diffusers
import pytest
import torch

from latentkit import tiny
from latentkit.models import real

#: Tiny architecture -> (pipeline class, registry id whose defaults apply).
EXPECTED = {
    "sd1": ("StableDiffusionPipeline", "CompVis/stable-diffusion-v1-4"),
    "sd2": ("StableDiffusionPipeline", "stabilityai/stable-diffusion-2-1"),
    "sdxl": ("StableDiffusionXLPipeline", "stabilityai/stable-diffusion-xl-base-1.0"),
    "kandinsky22": ("KandinskyV22Pipeline", "kandinsky-community/kandinsky-2-2-decoder"),
    "sd3": ("StableDiffusion3Pipeline", "stabilityai/stable-diffusion-3.5-medium"),
    "flux": ("FluxPipeline", "black-forest-labs/FLUX.1-schnell"),
}


@pytest.fixture
def offline_empty_cache(tmp_path, monkeypatch):
    """No network, and a Hugging Face home with nothing in it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "hf-home"


def test_registry_covers_the_papers_models_with_their_dtypes():
    assert {d.arch for d in real.REGISTRY.values()} == set(EXPECTED)
    for model_id, d in real.REGISTRY.items():
        assert hasattr(diffusers, d.pipeline), model_id
        assert d.gpu_dtype == (torch.bfloat16 if d.arch in ("sd3", "flux") else torch.float16)
    schnell = real.REGISTRY["black-forest-labs/FLUX.1-schnell"].call_kwargs(height=512)
    assert schnell == {
        "num_inference_steps": 4,
        "guidance_scale": 0.0,
        "height": 512,
        "width": 1024,
        "max_sequence_length": 256,
    }


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_local_folder_loads_as_its_family(arch, tmp_path, offline_empty_cache):
    folder = tiny.save_tiny(arch, tmp_path / arch)
    model = real.load_pipeline(folder, device="cpu")
    cls, reference = EXPECTED[arch]
    assert type(model.pipe).__name__ == cls
    assert model.reference == reference and model.arch == arch and model.source == str(folder)
    params = [
        p for m in model.pipe.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters()
    ]
    assert {p.dtype for p in params} == {torch.float32}  # fp32 on CPU whatever the model's GPU dtype
    if arch != "flux":  # the size follows the folder's config (tiny: 32 px); Flux keeps its 1024
        assert model.defaults.height == model.defaults.width == tiny.IMAGE_SIZE


@pytest.mark.parametrize("arch", ["sd1", "kandinsky22", "sd3", "flux"])
def test_a_loaded_folder_generates_in_one_step(arch, tmp_path):
    model = real.load_pipeline(tiny.save_tiny(arch, tmp_path / arch), device="cpu")
    original, _ = tiny.example_pair(arch)
    original.pop("seed")
    kwargs = model.call_kwargs(**tiny.call_kwargs(arch, num_inference_steps=1), output_type="np")
    images = model.pipe(**original, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert images.shape == (1, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)


def test_missing_hub_model_offline_says_how_to_get_it(offline_empty_cache):
    with pytest.raises(real.ModelNotAvailable) as info:
        real.load_pipeline("CompVis/stable-diffusion-v1-4", device="cpu")
    message = str(info.value)
    assert "hf download CompVis/stable-diffusion-v1-4" in message
    assert "huggingface-cli download CompVis/stable-diffusion-v1-4" in message
    assert str(offline_empty_cache / "hub") in message
    assert "--local-dir" in message and "HF_HUB_OFFLINE=1" in message
    assert isinstance(info.value, FileNotFoundError)
    frames = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert not [f for f in frames if "huggingface_hub" in f or "diffusers" in f or "site-packages" in f]
    shown = "".join(traceback.format_exception(info.value))
    assert "During handling" not in shown and "direct cause" not in shown
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_local_files_only_never_asks_the_hub(offline_empty_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(real.ModelNotAvailable, match="local_files_only=True"):
        real.load_pipeline("black-forest-labs/FLUX.1-dev", device="cpu", local_files_only=True)


def test_gated_models_mention_the_licence(offline_empty_cache):
    with pytest.raises(real.ModelNotAvailable, match="hf auth login"):
        real.load_pipeline("stabilityai/stable-diffusion-3.5-large", device="cpu")


def test_unknown_id_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'CompVis/stable-diffusion-v1-4'") as info:
        real.load_pipeline("CompVis/stable-diffusion-v1-5", device="cpu")
    assert "black-forest-labs/FLUX.1-schnell" in str(info.value)  # the full list follows
    with pytest.raises(ValueError, match="FLUX.1-schnell"):
        real.load_pipeline("flux.1-schnel", device="cpu")


def test_folder_without_model_index_or_of_another_class(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        real.load_pipeline(tmp_path, device="cpu")
    (tmp_path / "model_index.json").write_text('{"_class_name": "WuerstchenPipeline"}')
    with pytest.raises(ValueError, match="WuerstchenPipeline.*StableDiffusionPipeline"):
        real.load_pipeline(tmp_path, device="cpu")
