"""The miniature Stable Diffusion: real diffusers/transformers classes, saved and loaded like SD.

Tests that need the shipped weights (``data/tiny-sd/``, ``data/probes/``) skip with a reason when they
are missing; the others build tiny random models from the organism's configs (diffusers' practice).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import target_params

from latentkit.models import tiny_sd
from latentkit.paths import data_dir
from latentkit.tokenizer import unknown_words, world_tokenizer

CAPTION = "a large red star at the top left on a striped white background"

needs_organism = pytest.mark.skipif(
    not (data_dir() / tiny_sd.SD_DIR / "model_index.json").exists(),
    reason="data/tiny-sd/ not exported yet (python -m latentkit.recipes unet)",
)
needs_probes = pytest.mark.skipif(
    not (data_dir() / "probes" / "config.json").exists(),
    reason="data/probes/ not exported yet (python -m latentkit.recipes probes)",
)


@pytest.fixture(scope="module")
def random_pipe():
    """The organism's architecture with random weights (no training needed)."""
    torch.manual_seed(0)
    clip = tiny_sd.build_clip()
    return tiny_sd.assemble(clip.text_model, tiny_sd.build_vae(), tiny_sd.build_unet())


# -- tokenizer and text encoder -----------------------------------------------------------------------


def test_unknown_words_become_unk_not_an_error():
    # Documented behaviour (latentkit.tokenizer): a free prompt runs, its unknown words are <unk>.
    tok = world_tokenizer()
    ids = tok("a large red dragon").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert ids[4] == tok.unk_token_id == 2
    assert unknown_words(tok, "a large red dragon") == ["dragon"]
    assert unknown_words(tok, CAPTION) == []


def test_text_config_eos_matches_tokenizer():
    tok = world_tokenizer()
    config = tiny_sd.clip_config().text_config
    assert config.eos_token_id == tok.eos_token_id == 3  # not 2: that is transformers' legacy path
    assert config.vocab_size == len(tok)
    assert config.max_position_embeddings == tok.model_max_length == tiny_sd.MAX_TOKENS


def test_pooled_output_is_the_eos_position(random_pipe):
    tok, text = random_pipe.tokenizer, random_pipe.text_encoder
    ids = tiny_sd.tokenize(tok, [CAPTION, "a small blue circle"])  # (2, 20), padded with 0
    out = text(ids)
    eos = (ids == tok.eos_token_id).int().argmax(1)  # first EOS of each row
    expected = out.last_hidden_state[torch.arange(2), eos]
    torch.testing.assert_close(out.pooler_output, expected)
    # The argmax-of-ids pooling (legacy eos_token_id == 2) would pick another token here.
    assert not torch.equal(ids.argmax(1), eos)


# -- architecture ---------------------------------------------------------------------------------------


def test_unet_has_stable_diffusions_layout():
    config = tiny_sd.unet_config()
    assert config["down_block_types"][0] == "CrossAttnDownBlock2D"
    assert config["down_block_types"][-1] == "DownBlock2D"
    assert config["mid_block_type"] == "UNetMidBlock2DCrossAttn"
    assert config["up_block_types"][0] == "UpBlock2D"
    assert config["up_block_types"][1:] == ("CrossAttnUpBlock2D",) * 2
    assert config["cross_attention_dim"] == tiny_sd.TEXT_HIDDEN


def test_shapes_through_the_parts(random_pipe):
    vae, unet = random_pipe.vae, random_pipe.unet
    x = torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        assert z.shape == (2, 4, 16, 16)
        assert vae.decode(z).sample.shape == (2, 3, 64, 64)
        sizes = []
        hooks = [
            b.register_forward_hook(lambda m, i, o: sizes.append(o[0].shape[-1])) for b in unet.down_blocks
        ]
        try:
            cond = torch.zeros(2, tiny_sd.MAX_TOKENS, tiny_sd.TEXT_HIDDEN)
            out = unet(z, torch.tensor([10, 500]), encoder_hidden_states=cond).sample
        finally:
            for h in hooks:
                h.remove()
    assert out.shape == z.shape
    assert sizes == [8, 4, 4]  # three resolution levels on the 16x16 latent: 16, 8, 4
    assert random_pipe.scheduler.config.prediction_type == "v_prediction"


# -- save / load ----------------------------------------------------------------------------------------


def test_save_load_round_trip_same_images(random_pipe, tmp_path):
    before = tiny_sd.generate(random_pipe, [CAPTION], seed=3, num_inference_steps=3)
    tiny_sd.save_organism(random_pipe, tmp_path, dtype=torch.float32)
    random_pipe.to(dtype=torch.float32)
    loaded = tiny_sd.load_organism(device="cpu", path=tmp_path)
    after = tiny_sd.generate(loaded, [CAPTION], seed=3, num_inference_steps=3)
    assert type(loaded).__name__ == "StableDiffusionPipeline"
    np.testing.assert_array_equal(before, after)


@needs_organism
def test_shipped_organism_loads_offline_in_one_call():
    pipe = tiny_sd.load_organism()  # from_pretrained(..., local_files_only=True): no hub involved
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"
    assert pipe.safety_checker is None
    size = sum(p.stat().st_size for p in (data_dir() / tiny_sd.SD_DIR).rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    a = tiny_sd.generate(pipe, [CAPTION, CAPTION], seed=5, num_inference_steps=5)
    b = tiny_sd.generate(pipe, [CAPTION, CAPTION], seed=5, num_inference_steps=5)
    assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same seed, same images


# -- loading the way diffusers users load a model (plain from_pretrained, with and without a dtype) -------

#: (keyword, dtype) of from_pretrained: none, the historical torch_dtype, and diffusers' newer name.
DTYPES = [
    (None, None),
    ("torch_dtype", torch.float32),
    ("torch_dtype", torch.float16),
    ("dtype", torch.bfloat16),
]


def _dtypes(pipe) -> set:
    return {m.dtype for m in pipe.components.values() if isinstance(m, torch.nn.Module)}


def _plain_load_generates(folder, keyword, dtype) -> None:
    """``StableDiffusionPipeline.from_pretrained(folder)``: one dtype in every part, and it generates."""
    from diffusers import StableDiffusionPipeline

    kwargs = {} if keyword is None else {keyword: dtype}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    assert _dtypes(pipe) == {dtype or torch.float32}  # fp32 without a dtype, like diffusers' own models
    settings = {**tiny_sd.defaults_of(pipe), "num_inference_steps": 2}  # read from the folder's json
    images = pipe(CAPTION, output_type="np", **settings).images
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


@pytest.fixture(scope="module")
def saved_fp16(random_pipe, tmp_path_factory):
    """The random organism saved as the shipped one is (fp16 weights)."""
    import copy

    # save_organism casts the pipeline it is given: a copy, so the other tests keep fp32 weights
    return tiny_sd.save_organism(copy.deepcopy(random_pipe), tmp_path_factory.mktemp("organism"))


def test_save_keeps_fp16_weights_and_records_fp32_compute(saved_fp16):
    import json

    from safetensors.torch import load_file

    for part in ("text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        assert {t.dtype for t in load_file(saved_fp16 / part).values()} == {torch.float16}
    # transformers 5 loads a text encoder in the dtype its config records when none is asked for
    assert json.loads((saved_fp16 / "text_encoder" / "config.json").read_text())["dtype"] == "float32"
    assert tiny_sd.read_defaults(saved_fp16) == tiny_sd.DEFAULTS


@pytest.mark.parametrize("keyword, dtype", DTYPES, ids=str)
def test_a_saved_organism_loads_with_plain_from_pretrained(saved_fp16, keyword, dtype):
    _plain_load_generates(saved_fp16, keyword, dtype)


@needs_organism
@pytest.mark.parametrize("keyword, dtype", DTYPES, ids=str)
def test_shipped_organism_loads_with_plain_from_pretrained(keyword, dtype):
    _plain_load_generates(data_dir() / tiny_sd.SD_DIR, keyword, dtype)


def test_defaults_come_from_the_folder_or_the_assembled_pipe(random_pipe, saved_fp16, tmp_path):
    import json

    assert tiny_sd.defaults_of(random_pipe) == tiny_sd.DEFAULTS
    (saved_fp16 / tiny_sd.DEFAULTS_FILE).write_text(json.dumps({**tiny_sd.DEFAULTS, "guidance_scale": 2.0}))
    try:
        assert tiny_sd.load_organism("cpu", path=saved_fp16).latentkit_defaults["guidance_scale"] == 2.0
    finally:
        (saved_fp16 / tiny_sd.DEFAULTS_FILE).write_text(json.dumps(tiny_sd.DEFAULTS))
    stranger = tiny_sd.assemble(random_pipe.text_encoder, random_pipe.vae, random_pipe.unet)
    del stranger.latentkit_defaults
    with pytest.raises(ValueError, match="no latentkit organism"):
        tiny_sd.defaults_of(stranger)
    (tmp_path / tiny_sd.DEFAULTS_FILE).write_text(json.dumps({"num_inference_steps": 25}))
    with pytest.raises(ValueError, match="guidance_scale"):
        tiny_sd.read_defaults(tmp_path)
    with pytest.raises(FileNotFoundError, match="save_organism"):
        tiny_sd.read_defaults(tmp_path / "nowhere")


# -- quality against targets ----------------------------------------------------------------------------


def _small_report(split: str) -> dict:
    from latentkit.probes import load_probes

    pipe, probes = tiny_sd.load_organism(), load_probes()
    return tiny_sd.quality(pipe, probes, n=48, seed=123, split=split, batch_size=48)


@pytest.fixture(scope="module")
def small_report():
    """The quality report of the shipped organism on 48 training-split captions (seeded)."""
    return _small_report("train")


@pytest.fixture(scope="module")
def heldout_report():
    """The same on 48 captions of the held-out (shape, colour) pairs, which the issue's targets are for."""
    return _small_report("heldout")


@pytest.mark.slow
@needs_organism
@needs_probes
def test_quality_on_a_small_sample_meets_floors(small_report):
    for source, floors in tiny_sd.FLOORS.items():
        for factor, floor in floors.items():
            got = small_report[source][factor]
            assert got >= floor, f"{source} {factor}: {got:.3f} < floor {floor}"


#: Targets of the issue the shipped weights do not reach yet, with what they reach. Strict expected
#: failures: once retraining meets a target, its test passes unexpectedly and fails, so this list shrinks.
SHORTFALLS = {
    ("generated", "shape"): "0.80 [0.76, 0.83] on 512 held-out captions after 36,000 CPU steps "
    "(bench_organism_quality.py); it rose from 0.20 at 2,400 steps: more training",
    ("vae_round_trip", "shape"): "0.92 (0.91 on 288): stars' thin spikes blur in the 16x16x4 latent",
    ("vae_round_trip", "size"): "0.979 here, one image short (0.986 on 288 held-out captions)",
}


@pytest.mark.slow
@needs_organism
@needs_probes
@pytest.mark.parametrize("source, factor", target_params(tiny_sd.TARGETS, SHORTFALLS))
def test_quality_targets(heldout_report, source, factor):
    target = tiny_sd.TARGETS[source][factor]
    assert heldout_report[source][factor] >= target, f"{source} {factor} below its target {target}"


@pytest.mark.skipif(
    not (data_dir() / tiny_sd.CLIP_DIR / "model.safetensors").exists(),
    reason="data/tiny-clip/ not exported yet (python -m latentkit.recipes clip)",
)
def test_shipped_clip_matches_images_to_their_captions():
    from transformers import CLIPProcessor

    from latentkit.world import World

    batch = World(64).sample(16, seed=11, split="train")
    processor = CLIPProcessor.from_pretrained(data_dir() / tiny_sd.CLIP_DIR, local_files_only=True)
    inputs = processor(
        text=batch.captions, images=list(batch.images), return_tensors="pt", padding="max_length"
    )
    with torch.no_grad():
        logits = tiny_sd.load_clip()(**inputs).logits_per_image  # (16 images, 16 captions)
    assert (logits.argmax(1) == torch.arange(16)).float().mean() >= 0.75
