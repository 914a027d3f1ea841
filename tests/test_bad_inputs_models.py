"""Issue 16, the model side: a damaged weights file, a pipeline folder that lacks a component, a near-miss
model name and a notebook parameter of the wrong type or range are each a clear error that names the file,
the folder, the name or the parameter, and says what to do.

Every case works on a copy of a shipped folder in ``tmp_path`` (``LATENTKIT_DATA`` points at the copy);
``data/`` itself is never touched. The notebook cases run the parameters cell and the checks at the top of
the second cell, not the notebook.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from latentkit import paths, tiny
from latentkit.models import ORGANISMS, load_model, real
from latentkit.paths import DamagedWeights

DATA = paths.data_dir()
NOTEBOOKS = paths.REPO_ROOT / "notebooks"


def _one_line(text: str) -> str:
    assert "\n" not in text.strip(), f"not one line: {text!r}"
    return text


def _copy_data(tmp_path: Path, monkeypatch, *folders: str) -> Path:
    """A copy of the shipped ``folders`` in ``tmp_path/data``, which latentkit then loads from."""
    copy = tmp_path / "data"
    for folder in folders:
        shutil.copytree(DATA / folder, copy / folder)
    monkeypatch.setenv("LATENTKIT_DATA", str(copy))
    return copy


def _truncate(path: Path, size: int | None = None) -> Path:
    """Cut ``path`` short (default: to half), as an interrupted copy or download does."""
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2 if size is None else size)
    return path


# ---------------------------------------------------------------------------------------------------------
# 1. A damaged weights file: named, with the way to get it back


def _probes():
    from latentkit.probes import load_probes

    return load_probes()


def _autoencoder():
    from latentkit.models.autoencoder import load_autoencoder

    return load_autoencoder()


def _vae():
    from latentkit.models.vae import load_vae

    return load_vae()


def _gan():
    from latentkit.models.gan import load_gan

    return load_gan()


def _clip():
    from latentkit.models.tiny_sd import load_clip

    return load_clip("cpu")


def _organism():
    from latentkit.models.tiny_sd import load_organism

    return load_organism("cpu")


#: case -> (shipped folders to copy, the file to damage, the loader, what the message says to do)
DAMAGED = {
    "probes (load_weights)": (
        ["probes"],
        "probes/probes.safetensors",
        _probes,
        r"git checkout data/.*python -m latentkit.recipes probes.*make weights",
    ),
    "autoencoder (load_weights)": (
        ["autoencoder", "tiny-sd"],
        "autoencoder/autoencoder.safetensors",
        _autoencoder,
        r"git checkout data/.*recipes autoencoder",
    ),
    "VAE (load_weights)": (
        ["vae", "tiny-sd"],
        "vae/vae.safetensors",
        _vae,
        r"git checkout data/.*recipes vae",
    ),
    "GAN (load_weights)": (["gan", "tiny-sd"], "gan/generator.safetensors", _gan, r"git checkout data/"),
    "the picture codec the GAN draws through": (
        ["gan", "tiny-sd"],
        "tiny-sd/vae/diffusion_pytorch_model.safetensors",
        _gan,
        r"git checkout data/.*recipes sd_vae",
    ),
    "tiny CLIP (transformers)": (
        ["tiny-clip"],
        "tiny-clip/model.safetensors",
        _clip,
        r"git checkout data/.*make weights",
    ),
    "organism's U-Net (load_model, diffusers)": (
        ["tiny-sd"],
        "tiny-sd/unet/diffusion_pytorch_model.safetensors",
        lambda: load_model("organism", "cpu"),
        r"git checkout data/.*make weights",
    ),
    "organism's text encoder (load_organism, transformers)": (
        ["tiny-sd"],
        "tiny-sd/text_encoder/model.safetensors",
        _organism,
        r"git checkout data/.*make weights",
    ),
    "organism-sd3's transformer (load_model)": (
        ["tiny-sd3"],
        "tiny-sd3/transformer/diffusion_pytorch_model.safetensors",
        lambda: load_model("organism-sd3", "cpu"),
        r"git checkout data/.*make weights",
    ),
}


@pytest.mark.parametrize("folders, damaged, loader, restore", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_truncated_weights_file_is_named_with_the_way_back(
    tmp_path, monkeypatch, folders, damaged, loader, restore
):
    copy = _copy_data(tmp_path, monkeypatch, *folders)
    path = _truncate(copy / damaged)
    with pytest.raises(DamagedWeights, match=restore) as error:
        loader()
    message = _one_line(str(error.value))
    assert message.startswith(f"{path} is damaged (truncated"), message
    assert error.value.__cause__ is not None  # the loader's own error is kept


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: _truncate(p, 5), r"truncated: 5 bytes, too few for a safetensors header"),
        (lambda p: _truncate(p, 100), r"truncated or overwritten: 100 bytes, its header alone claims"),
        (lambda p: _truncate(p), r"truncated: [\d,]+ of [\d,]+ bytes"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 10), r"10 bytes longer than its header says"),
        (
            lambda p: p.write_bytes((20).to_bytes(8, "little") + b"not json at all, no" + b"x"),
            "not valid JSON",
        ),
        (lambda p: p.write_bytes(b"<html>404 Not Found</html>"), r"header alone claims"),
    ],
    ids=["5 bytes", "header cut", "half", "longer", "header not JSON", "an HTML page"],
)
def test_every_kind_of_damage_says_what_is_wrong(tmp_path, monkeypatch, damage, why):
    copy = _copy_data(tmp_path, monkeypatch, "probes")
    path = copy / "probes" / "probes.safetensors"
    damage(path)
    with pytest.raises(DamagedWeights, match=why) as error:
        _probes()
    assert str(path) in _one_line(str(error.value))


def test_intact_weights_load_and_a_damaged_config_is_named(tmp_path, monkeypatch):
    copy = _copy_data(tmp_path, monkeypatch, "probes")
    assert paths.damaged_files(copy) == {}
    _probes()  # the check does not get in the way of a good file
    (copy / "probes" / "config.json").write_text('{"width": 3')
    with pytest.raises(DamagedWeights, match=r"config.json is damaged \(not valid JSON.*git checkout data/"):
        _probes()


def test_a_damaged_copy_of_an_organism_says_where_to_copy_it_from(tmp_path):
    folder = tmp_path / "my-organism"
    shutil.copytree(DATA / "tiny-sd", folder)
    path = _truncate(folder / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(DamagedWeights) as error:
        real.load_pipeline(folder, device="cpu")
    message = _one_line(str(error.value))
    assert message.startswith(f"{path} is damaged (truncated")
    assert f"copy it again from the shipped weights in {DATA}" in message and "git checkout data/" in message


def test_a_damaged_real_model_folder_says_to_download_it_again(tmp_path):
    folder = tiny.save_tiny("sd1", tmp_path / "stable-diffusion-v1-4")
    path = _truncate(folder / "vae" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(DamagedWeights) as error:
        real.load_pipeline(folder, device="cpu")
    message = _one_line(str(error.value))
    assert message.startswith(f"{path} is damaged (truncated")
    assert f"`hf download CompVis/stable-diffusion-v1-4 --local-dir {folder} --force-download`" in message


def test_a_damaged_file_in_the_hub_cache_says_to_download_it_again(tmp_path, monkeypatch):
    """A cached snapshot laid out as huggingface_hub does (refs/main -> snapshots/<commit>/)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    model_id, commit = "CompVis/stable-diffusion-v1-4", "0" * 40
    repo = tmp_path / "hf-home" / "hub" / "models--CompVis--stable-diffusion-v1-4"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    tiny.save_tiny("sd1", repo / "snapshots" / commit)
    path = _truncate(repo / "snapshots" / commit / "unet" / "diffusion_pytorch_model.safetensors")
    for local_files_only in (None, True):  # never taken for "not in the cache"
        with pytest.raises(DamagedWeights) as error:
            real.load_pipeline(model_id, device="cpu", local_files_only=local_files_only)
        first, *how = str(error.value).splitlines()
        assert first.startswith(f"{path} is damaged (truncated")
        assert f"download {model_id} again, with --force-download" in first
        assert f"  hf download {model_id} --force-download" in how  # the usual how-to-download text


# ---------------------------------------------------------------------------------------------------------
# 2. A pipeline folder without one of its components: the missing folder named


def _without(tmp_path: Path, organism: str, *components: str, empty: bool = False) -> Path:
    folder = tmp_path / organism
    shutil.copytree(DATA / organism, folder)
    for component in components:
        shutil.rmtree(folder / component)
        if empty:
            (folder / component).mkdir()
    return folder


MISSING = {
    "load_pipeline, no unet/": (
        lambda tmp: real.load_pipeline(_without(tmp, "tiny-sd", "unet"), device="cpu"),
        r"tiny-sd lacks the component folder unet/ \(UNet2DConditionModel\) that its model_index.json lists",
    ),
    "load_model, no unet/": (
        lambda tmp: load_model(str(_without(tmp, "tiny-sd", "unet")), "cpu"),
        r"lacks the component folder unet/ \(UNet2DConditionModel\)",
    ),
    "load_organism(path=), no unet/": (
        lambda tmp: _load_organism_from(_without(tmp, "tiny-sd", "unet")),
        r"lacks the component folder unet/ \(UNet2DConditionModel\)",
    ),
    "an empty unet/": (
        lambda tmp: real.load_pipeline(_without(tmp, "tiny-sd", "unet", empty=True), device="cpu"),
        r"lacks the component folder unet/",
    ),
    "organism-sd3 without transformer/ and vae/": (
        lambda tmp: real.load_pipeline(_without(tmp, "tiny-sd3", "transformer", "vae"), device="cpu"),
        r"lacks the component folders transformer/ \(SD3Transformer2DModel\), vae/ \(AutoencoderKL\)",
    ),
    "a real model's folder without tokenizer/": (
        lambda tmp: real.load_pipeline(_real_without(tmp, "tokenizer"), device="cpu"),
        r"lacks the component folder tokenizer/ .*`hf download CompVis/stable-diffusion-v1-4 --local-dir",
    ),
}


def _load_organism_from(folder: Path):
    from latentkit.models.tiny_sd import load_organism

    return load_organism("cpu", path=folder)


def _real_without(tmp_path: Path, component: str) -> Path:
    folder = tiny.save_tiny("sd1", tmp_path / "sd14")
    shutil.rmtree(folder / component)
    return folder


@pytest.mark.parametrize("load, message", MISSING.values(), ids=MISSING.keys())
def test_a_folder_without_a_component_names_it(tmp_path, load, message):
    with pytest.raises(FileNotFoundError, match=message) as error:
        load(tmp_path)
    _one_line(str(error.value))


def test_a_component_passed_as_an_argument_needs_no_folder(tmp_path):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(DATA / "tiny-sd" / "unet", local_files_only=True)
    model = real.load_pipeline(_without(tmp_path, "tiny-sd", "unet"), device="cpu", unet=unet)
    assert model.pipe.unet is unet and model.organism


# ---------------------------------------------------------------------------------------------------------
# 3. A near-miss name: every accepted name listed, the closest first


@pytest.mark.parametrize(
    "name, first",
    [
        ("Organism", "organism"),
        ("organsim-sd3", "organism-sd3"),
        ("ORGANISM_SD3", "organism-sd3"),
        ("stable-diffusion-v1-4", "CompVis/stable-diffusion-v1-4"),
        ("sdxl-turbo", "stabilityai/sdxl-turbo"),
    ],
)
def test_a_near_miss_name_lists_every_name_closest_first(name, first):
    with pytest.raises(
        ValueError, match=rf"model={re.escape(repr(name))} is no model name or folder"
    ) as error:
        load_model(name, "cpu")
    message = _one_line(str(error.value))
    assert f"did you mean {first!r}?" in message
    listed = message.split("closest first: ")[1].split("; or a folder")[0].split(", ")
    assert listed[0] == first
    assert sorted(listed) == sorted([*ORGANISMS, *real.REGISTRY])  # every accepted name, organisms included


def test_a_file_or_a_non_name_is_no_model(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match=r"is a file; pass the folder that holds the pipeline's model_index"):
        load_model(str(tmp_path / "model_index.json"), "cpu")
    with pytest.raises(TypeError, match=r"model must be a name or a folder \(a str or a path\), got None"):
        load_model(None, "cpu")


# ---------------------------------------------------------------------------------------------------------
# 4. Notebook parameters: checked in the cell after the parameters cell, before anything runs


def _check_parameters(notebook: str, whole_cell: bool = False, **overrides) -> dict:
    """Run the parameters cell, then ``overrides`` (as papermill injects them), then the second cell up to
    ``latentkit.seed_everything(seed)``, where its checks are (``whole_cell``: all of it)."""
    cells = [c for c in nbformat.read(NOTEBOOKS / notebook, as_version=4).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    parameters, second = cells[0].source, cells[1].source
    checks, anchor, _ = second.partition("latentkit.seed_everything(seed)")
    assert anchor, f"{notebook}: the second cell no longer seeds"
    if whole_cell:
        checks = second
    namespace: dict = {}
    exec(parameters, namespace)
    namespace.update(overrides)
    exec(checks, namespace)
    return namespace


N00, N01, N02, N03 = (
    "00_the_shapes_world.ipynb",
    "01_autoencoder_bottleneck.ipynb",
    "02_gan_interpolation.ipynb",
    "03_diffusion_latent_spaces.ipynb",
)

BAD_PARAMETERS = {
    "00 n_eval='many'": (N00, {"n_eval": "many"}, "n_eval must be a whole number >= 2 (half of them make"),
    "00 n_eval=-5": (
        N00,
        {"n_eval": -5},
        "n_eval must be a whole number >= 2 (half of them make the two-object",
    ),
    "00 n_eval=1": (N00, {"n_eval": 1}, "got 1"),
    "00 image_size=50": (N00, {"image_size": 50}, "image_size must be a multiple of 16 and at least 32"),
    "00 image_size='64'": (N00, {"image_size": "64"}, "image_size must be a multiple of 16 and at least 32"),
    "00 device=0": (N00, {"device": 0}, "device must be 'auto' or a torch device string"),
    "01 n_samples=1": (N01, {"n_samples": 1}, "n_samples must be a whole number >= 2"),
    "01 n_encode=10.5": (N01, {"n_encode": 10.5}, "n_encode must be a whole number >= 64"),
    "01 interactive='yes'": (
        N01,
        {"interactive": "yes"},
        "interactive must be 'auto', True or False, got 'yes'",
    ),
    "02 n_directions=1": (N02, {"n_directions": 1}, "n_directions must be a whole number >= 2, got 1"),
    "02 n_samples=True": (N02, {"n_samples": True}, "n_samples must be a whole number >= 2, got True"),
    "02 boundary_factor='colour'": (
        N02,
        {"boundary_factor": "colour"},
        "boundary_factor must be one of ['shape', 'color', 'background', 'texture', 'position', 'size']",
    ),
    "02 boundary_value='purple'": (
        N02,
        {"boundary_value": "purple"},
        "boundary_value must be a background: one of ['white', 'black', 'grey', 'pink'], got 'purple'",
    ),
    "02 truncation=0": (N02, {"truncation": 0}, "truncation must be a number in (0, 1] (1: none), got 0"),
    "02 truncation='0.7'": (N02, {"truncation": "0.7"}, "truncation must be a number in (0, 1]"),
    "03 num_inference_steps=0": (
        N03,
        {"num_inference_steps": 0},
        "num_inference_steps must be a whole number >= 1",
    ),
    "03 h_space_steps past the schedule": (
        N03,
        {"h_space_steps": [0, 4]},
        "h_space_steps must be a list of distinct steps in 0..3 (0 is the noisiest; [] for none), got [0, 4]",
    ),
    "03 h_space_steps=2": (N03, {"h_space_steps": 2}, "h_space_steps must be a list of distinct steps"),
    "03 layer_steps='every'": (
        N03,
        {"layer_steps": "every"},
        "layer_steps must be 'all' or a list of distinct",
    ),
    "03 layer_steps=[]": (N03, {"layer_steps": []}, "layer_steps must be 'all' or a list"),
    "03 layer=3": (N03, {"layer": 3}, "layer must be a denoiser layer's module path or None, got 3"),
    "03 pool_size=16": (N03, {"pool_size": 16}, "pool_size must be >= 256 (the layer spaces draw"),
    "03 cpu_threads=0": (N03, {"cpu_threads": 0}, "cpu_threads must be 'auto' or a whole number >= 1, got 0"),
    "03 model=None": (N03, {"model": None}, "model must be 'organism', a hub id or a folder, got None"),
}


@pytest.mark.parametrize("notebook, overrides, message", BAD_PARAMETERS.values(), ids=BAD_PARAMETERS.keys())
def test_a_bad_notebook_parameter_is_a_one_line_error(notebook, overrides, message):
    with pytest.raises(ValueError) as error:
        _check_parameters(notebook, **overrides)
    text = _one_line(str(error.value))
    name, value = next(iter(overrides.items()))
    assert text.startswith(f"{name} must be") and message in text, text
    assert text.endswith(f"got {value!r}"), text


def test_the_example_of_the_issue_reads_exactly():
    for bad in ("many", -5):
        with pytest.raises(ValueError) as error:
            _check_parameters(N00, n_eval=bad)
        assert str(error.value) == (
            f"n_eval must be a whole number >= 2 (half of them make the two-object images), got {bad!r}"
        )


@pytest.mark.parametrize("notebook", [N00, N01, N02, N03])
def test_the_default_and_the_full_run_parameters_pass_the_checks(notebook):
    _check_parameters(notebook)
    full = nbformat.read(NOTEBOOKS / notebook, as_version=4).metadata["latentkit"]["full"]
    _check_parameters(notebook, **full)  # `latentkit notebooks --full`


def test_more_directions_than_w_has_is_refused_once_the_gan_is_loaded():
    with pytest.raises(ValueError, match=r"n_directions must be at most 32 \(the dimensions of w\), got 33"):
        _check_parameters(N02, whole_cell=True, n_directions=33, device="cpu")
