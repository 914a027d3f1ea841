"""The transformer organism: SD3's pipeline classes, trained on the world, saved and loaded like SD3.

Mirrors ``tests/test_tiny_sd.py``. Tests that need the shipped weights (``data/tiny-sd3/``,
``data/probes/``) skip with a reason when they are missing; the others build the organism's architecture
with random weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import target_params

from latentkit.models import tiny_dit, tiny_sd
from latentkit.paths import data_dir

CAPTION = "a large red star at the top left on a striped white background"

needs_organism = pytest.mark.skipif(
    not (data_dir() / tiny_dit.SD3_DIR / "model_index.json").exists(),
    reason="data/tiny-sd3/ not exported yet (python -m latentkit.recipes dit)",
)
needs_probes = pytest.mark.skipif(
    not (data_dir() / "probes" / "config.json").exists(),
    reason="data/probes/ not exported yet (python -m latentkit.recipes probes)",
)


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return tiny_sd.build_clip().eval()


@pytest.fixture(scope="module")
def random_pipe(clip):
    """The organism's architecture with random weights (no training needed), in eval mode."""
    torch.manual_seed(1)
    pipe = tiny_dit.assemble(
        tiny_dit.text_encoder_from_clip(clip), tiny_sd.build_vae().eval(), tiny_dit.build_transformer().eval()
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# -- text: the tiny CLIP, read the way SD3 reads it ------------------------------------------------------


def test_text_encoder_is_the_clips_text_tower_and_projection(clip, random_pipe):
    text = random_pipe.text_encoder
    assert type(text).__name__ == "CLIPTextModelWithProjection"
    assert random_pipe.text_encoder_2 is text and random_pipe.text_encoder_3 is None
    ids = tiny_sd.tokenize(random_pipe.tokenizer, [CAPTION, "a small blue circle"])
    with torch.no_grad():
        ours = text(ids, output_hidden_states=True)
        theirs = clip.text_model(ids, output_hidden_states=True)
        features = clip.get_text_features(ids)
    features = getattr(features, "pooler_output", features)  # a tensor in transformers 4, an output in 5
    torch.testing.assert_close(ours.text_embeds, features)
    torch.testing.assert_close(ours.hidden_states[-2], theirs.hidden_states[-2])


@pytest.mark.parametrize("t5_tokens", [0, 3])
def test_precomputed_prompt_states_equal_the_pipelines(random_pipe, t5_tokens):
    captions = [CAPTION, "", "a small blue circle at the center on a plain grey background"]
    with torch.no_grad():
        embeds, _, pooled, _ = random_pipe.encode_prompt(
            captions, captions, None, do_classifier_free_guidance=False, max_sequence_length=t5_tokens
        )
    hidden, pooled_one = tiny_dit.encode_text(random_pipe.text_encoder, random_pipe.tokenizer, captions)
    ours, ours_pooled = tiny_dit.prompt_states(hidden, pooled_one, t5_tokens)
    assert ours.shape == (3, tiny_sd.MAX_TOKENS + t5_tokens, 2 * tiny_sd.TEXT_HIDDEN)
    torch.testing.assert_close(ours, embeds)
    torch.testing.assert_close(ours_pooled, pooled)


def test_generation_defaults_leave_the_t5_slot_empty(random_pipe):
    assert tiny_sd.defaults_of(random_pipe) == tiny_dit.DEFAULTS
    assert tiny_dit.DEFAULTS["max_sequence_length"] == tiny_dit.T5_TOKENS == 0
    unet_pipe = tiny_sd.assemble(random_pipe.text_encoder, random_pipe.vae, tiny_sd.build_unet())
    assert tiny_sd.defaults_of(unet_pipe) == tiny_sd.DEFAULTS


def test_the_unet_organism_does_not_import_the_transformer_one():
    """The defaults come from the organisms' folders, so tiny_sd needs nothing of tiny_dit (no cycle)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(tiny_sd))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported + modules if "tiny_dit" in name]


# -- architecture ---------------------------------------------------------------------------------------


def test_transformer_is_an_mmdit_of_a_few_million_parameters(random_pipe):
    transformer = random_pipe.transformer
    assert type(transformer).__name__ == "SD3Transformer2DModel"
    assert len(transformer.transformer_blocks) == tiny_dit.LAYERS
    assert 1_000_000 <= tiny_sd.n_params(transformer) <= 3_000_000
    assert transformer.config.joint_attention_dim == 2 * tiny_sd.TEXT_HIDDEN
    assert type(random_pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"


def test_shapes_through_the_parts(random_pipe):
    vae, transformer = random_pipe.vae, random_pipe.transformer
    assert vae.config.shift_factor == 0.0  # SD3's pipeline decodes latents / scale + shift
    z = torch.zeros(2, 4, 16, 16)
    tokens = []
    hook = transformer.pos_embed.register_forward_hook(lambda m, i, o: tokens.append(o.shape[1]))
    try:
        with torch.no_grad():
            out = transformer(
                hidden_states=z,
                encoder_hidden_states=torch.zeros(2, tiny_sd.MAX_TOKENS, 2 * tiny_sd.TEXT_HIDDEN),
                pooled_projections=torch.zeros(2, 2 * tiny_dit.CLIP_PROJECTION),
                timestep=torch.tensor([10.0, 500.0]),
            ).sample
    finally:
        hook.remove()
    assert out.shape == z.shape
    assert tokens == [64]  # patch 2 on the 16x16 latent


def test_recipe_velocity_is_what_the_scheduler_integrates():
    """With the exact velocity ``noise - x0`` the recipe trains on, the pipeline's Euler steps land on x0:
    the training target and the sampler agree on direction and units."""
    scheduler = tiny_dit.build_scheduler()
    scheduler.set_timesteps(7)
    torch.testing.assert_close(scheduler.timesteps, 1000 * scheduler.sigmas[:-1])  # the recipe's units
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    x = noise.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(noise - x0, t, x).prev_sample
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)


# -- layers and injection -------------------------------------------------------------------------------


def test_layers_are_the_joint_blocks_and_injection_leaves_no_hook(random_pipe, hooks_left):
    from latentkit.injection import sweep
    from latentkit.layers import list_layers

    layers = list_layers(random_pipe)
    assert [layer.name for layer in layers] == [
        f"transformer.transformer_blocks.{i}" for i in range(tiny_dit.LAYERS)
    ]
    assert {layer.group for layer in layers} == {"joint"}
    assert all(layer.shape == (64, tiny_dit.HIDDEN) for layer in layers)
    names = [layers[0].name, layers[-1].name]
    result = sweep(
        random_pipe,
        {"prompt": CAPTION, "seed": 0},
        {"prompt": "a small blue circle at the center on a plain grey background", "seed": 1},
        names,
        num_inference_steps=2,
        guidance_scale=tiny_dit.DEFAULTS["guidance_scale"],
        max_sequence_length=tiny_dit.T5_TOKENS,
    )
    assert result.names == names and result.injected.shape == (2, 64, 64, 3)
    for image in result.injected:
        assert np.abs(image - result.original).max() > 1e-3  # injecting a block changed O
    assert hooks_left(random_pipe) == []


# -- save / load ----------------------------------------------------------------------------------------


def test_save_load_round_trip_same_images(random_pipe, tmp_path):
    before = tiny_sd.generate(random_pipe, [CAPTION], seed=3, num_inference_steps=3)
    tiny_dit.save_organism(random_pipe, tmp_path, dtype=torch.float32)
    loaded = tiny_dit.load_organism(device="cpu", path=tmp_path)
    after = tiny_sd.generate(loaded, [CAPTION], seed=3, num_inference_steps=3)
    again = tiny_sd.generate(loaded, [CAPTION], seed=3, num_inference_steps=3)
    assert type(loaded).__name__ == "StableDiffusion3Pipeline"
    assert loaded.text_encoder_3 is None and loaded.vae.config.shift_factor == 0.0
    np.testing.assert_array_equal(after, again)  # same seed, same images
    # Same weights: the reloaded text encoder's pooled output differs from the in-memory one by ~1e-7
    # (float rounding in another kernel), which can move a pixel by one level, no more.
    assert np.abs(before.astype(int) - after).max() <= 1


#: (keyword, dtype) of from_pretrained: none, the historical torch_dtype, and diffusers' newer name.
DTYPES = [
    (None, None),
    ("torch_dtype", torch.float32),
    ("torch_dtype", torch.float16),
    ("dtype", torch.bfloat16),
]


def _plain_load_generates(folder, keyword, dtype) -> None:
    """``StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)``, as SD 3.5
    is loaded without its T5 (diffusers requires the slot to be loaded or passed): one dtype, and it
    generates with the folder's defaults."""
    import warnings

    from diffusers import StableDiffusion3Pipeline

    kwargs = {} if keyword is None else {keyword: dtype}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
        pipe = StableDiffusion3Pipeline.from_pretrained(
            folder, text_encoder_3=None, tokenizer_3=None, local_files_only=True, **kwargs
        )
    pipe.set_progress_bar_config(disable=True)
    parts = {m.dtype for m in pipe.components.values() if isinstance(m, torch.nn.Module)}
    assert parts == {dtype or torch.float32}
    settings = {**tiny_sd.defaults_of(pipe), "num_inference_steps": 2}
    assert settings["max_sequence_length"] == 0  # read from the folder's latentkit_defaults.json
    images = pipe(CAPTION, output_type="np", **settings).images
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


@pytest.fixture(scope="module")
def saved_fp16(random_pipe, tmp_path_factory):
    """The random organism saved as the shipped one is (fp16 weights)."""
    import copy

    # save_organism casts the pipeline it is given: a copy, so the other tests keep fp32 weights
    return tiny_dit.save_organism(copy.deepcopy(random_pipe), tmp_path_factory.mktemp("organism-sd3"))


@pytest.mark.parametrize("keyword, dtype", DTYPES, ids=str)
def test_a_saved_organism_loads_with_plain_from_pretrained(saved_fp16, keyword, dtype):
    _plain_load_generates(saved_fp16, keyword, dtype)


@needs_organism
@pytest.mark.parametrize("keyword, dtype", DTYPES, ids=str)
def test_shipped_organism_loads_with_plain_from_pretrained(keyword, dtype):
    _plain_load_generates(data_dir() / tiny_dit.SD3_DIR, keyword, dtype)


def test_missing_organism_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="latentkit.recipes dit"):
        tiny_dit.load_organism(device="cpu", path=tmp_path)


@needs_organism
def test_shipped_organism_loads_offline_in_one_call():
    pipe = tiny_dit.load_organism()  # from_pretrained(..., local_files_only=True): no hub involved
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    assert pipe.transformer.dtype == torch.float32 and pipe.device.type == "cpu"
    size = sum(p.stat().st_size for p in (data_dir() / tiny_dit.SD3_DIR).rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    a = tiny_sd.generate(pipe, [CAPTION, CAPTION], seed=5, num_inference_steps=5)
    b = tiny_sd.generate(pipe, [CAPTION, CAPTION], seed=5, num_inference_steps=5)
    assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same seed, same images


@needs_organism
def test_shipped_organism_shares_the_unet_organisms_vae_and_clip():
    if not (data_dir() / tiny_sd.SD_DIR / "model_index.json").exists():
        pytest.skip("data/tiny-sd/ not exported yet (python -m latentkit.recipes unet)")
    dit, unet = tiny_dit.load_organism(), tiny_sd.load_organism()
    for ours, theirs in zip(dit.vae.state_dict().values(), unet.vae.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs)
    ids = tiny_sd.tokenize(unet.tokenizer, [CAPTION])
    with torch.no_grad():
        ours = dit.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        theirs = unet.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(ours, theirs)


# -- quality against the U-Net organism's floors --------------------------------------------------------


def _small_report(split: str) -> dict:
    from latentkit.probes import load_probes

    pipe, probes = tiny_dit.load_organism(), load_probes()
    return tiny_sd.quality(pipe, probes, n=48, seed=123, split=split, batch_size=48)


@pytest.mark.slow
@needs_organism
@needs_probes
def test_quality_on_a_small_sample_meets_floors():
    report = _small_report("train")
    for source, floors in tiny_dit.FLOORS.items():
        for factor, floor in floors.items():
            got = report[source][factor]
            assert got >= floor, f"{source} {factor}: {got:.3f} < floor {floor}"


@pytest.fixture(scope="module")
def heldout_report():
    return _small_report("heldout")


#: The issue's targets that the shipped transformer does not reach yet (strict expected failures).
SHORTFALLS = {
    ("generated", "shape"): "0.75 [0.71, 0.79] on 512 held-out captions after 30,000 CPU steps "
    "(bench_organism_quality.py), flat over the last 8,200: a change of design",
    ("vae_round_trip", "shape"): "the U-Net organism's VAE: 0.92 (0.91 on 288)",
    ("vae_round_trip", "size"): "the U-Net organism's VAE: 0.979 here, one image short (0.986 on 288)",
}


@pytest.mark.slow
@needs_organism
@needs_probes
@pytest.mark.parametrize("source, factor", target_params(tiny_dit.TARGETS, SHORTFALLS))
def test_quality_targets(heldout_report, source, factor):
    target = tiny_dit.TARGETS[source][factor]
    assert heldout_report[source][factor] >= target, f"{source} {factor} below its target {target}"
