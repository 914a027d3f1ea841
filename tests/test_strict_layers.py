"""The strict-sense organisms' own layers, named, listed and patched like a denoiser's, and their injection
sweep (:func:`latentkit.synthesis.strict_layer_injection`) on the three shipped models.

Every check is of something true by construction: each decoder is a chain whose only input is the code,
so injecting any layer's whole activation gives E bit for bit; no quality number is asserted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from latentkit.aspects import read_with_probes
from latentkit.injection import _inject_from_row
from latentkit.layers import list_model_layers, patched, resolve
from latentkit.models.autoencoder import load_autoencoder
from latentkit.models.codec import CODE_SHAPE
from latentkit.models.gan import load_gan
from latentkit.models.vae import load_vae
from latentkit.paths import data_dir
from latentkit.probes import load_probes
from latentkit.synthesis import CODE, strict_layer_injection, synthesis_index
from latentkit.world import FACTORS

pytestmark = pytest.mark.skipif(
    not all((data_dir() / d / "config.json").exists() for d in ("autoencoder", "vae", "gan", "probes")),
    reason="a shipped model is missing (python -m latentkit.recipes autoencoder | vae | gan | probes)",
)

DECODER = [
    "decoder.fc.1",
    "decoder.fc.3",
    "decoder.net.0",
    "decoder.net.2",
    "decoder.net.3",
    "decoder.net.5",
    "decoder.net.6",
]
#: The layers of each model in forward order: a Linear or Conv2d that a LeakyReLU follows is the same
#: injection as the LeakyReLU's output, so only the latter is listed; the codec never is.
EXPECTED = {
    "autoencoder": DECODER,
    "vae": DECODER,
    "gan": [
        "mapping.net.1",
        "mapping.net.3",
        "mapping.net.5",
        "mapping.net.6",  # w
        "synthesis.net.1",
        "synthesis.net.3",
        "synthesis.net.5",
        "synthesis.net.6",  # the fitted autoencoder's bottleneck code
        *DECODER,  # that autoencoder's decoder, frozen inside the generator
    ],
}
LOADERS = {"autoencoder": load_autoencoder, "vae": load_vae, "gan": load_gan}


@pytest.fixture(scope="module")
def models():
    return {name: load() for name, load in LOADERS.items()}


@pytest.fixture(scope="module")
def probes():
    return load_probes()


def hooks_on(model: nn.Module) -> list[str]:
    """The modules of ``model`` (its codec included) that carry any forward hook or pre-hook.

    The equivalent of conftest's ``hooks_left`` for a plain module: these models carry no hook of their
    own, so any hook at all is one latentkit left behind."""
    return [
        path or "<model>"
        for path, module in model.named_modules()
        if module._forward_hooks or module._forward_pre_hooks
    ]


def recorder(store: dict):
    """A patch that keeps a layer's activation and changes nothing."""

    def keep(act: torch.Tensor, name: str) -> None:
        store[name] = act.clone()

    return keep


def decode(model: nn.Module, code: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(code) if not hasattr(model, "encode") else model.decode(code)


# -- naming and listing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOADERS))
def test_layers_are_listed_in_forward_order_without_the_codec(models, name):
    model = models[name]
    layers = list_model_layers(model)
    assert [layer.name for layer in layers] == EXPECTED[name]
    assert [layer.depth for layer in layers] == list(range(len(layers)))
    assert not any(layer.name.startswith("codec") for layer in layers)
    assert layers[-1].shape == CODE_SHAPE  # the model's last layer writes the codec's picture code
    assert all(resolve(model, layer.name) is model.get_submodule(layer.name) for layer in layers)
    assert hooks_on(model) == []


@pytest.mark.parametrize("name", list(LOADERS))
def test_the_last_listed_layer_is_what_the_codec_decodes(models, name):
    model, seen = models[name], {}
    last = list_model_layers(model)[-1].name
    code = torch.randn(2, model.z_dim if name == "gan" else model.latent_dim)
    with torch.no_grad(), patched(model, {last: recorder(seen)}):
        images = decode(model, code)
    np.testing.assert_array_equal(model.codec.decode(seen[last]).numpy(), images.numpy())
    assert hooks_on(model) == []


def test_the_codec_is_refused_and_unknown_names_get_the_closest(models):
    model = models["autoencoder"]
    with pytest.raises(ValueError, match=r"frozen picture codec.*'decoder\.net\.6'"):
        resolve(model, "codec.vae.decoder.conv_in")
    with pytest.raises(ValueError, match=r"closest valid names: \['decoder\.net\.3'"):
        resolve(model, "decoder.net.3x")
    with pytest.raises(TypeError, match="not a strict-sense organism"):
        list_model_layers(nn.Linear(2, 2))


def test_a_linear_layer_before_its_activation_is_the_same_injection(models):
    """Why list_model_layers leaves out the Linear/Conv2d layers that a LeakyReLU follows."""
    model = models["autoencoder"]
    code = torch.randn(3, model.latent_dim, generator=torch.Generator().manual_seed(0))

    def injected(layer: str) -> np.ndarray:
        with torch.no_grad(), patched(model, {layer: _inject_from_row(0, [2], 3, 1.0, lambda: True)}):
            return model.decode(code)[2].numpy()

    np.testing.assert_array_equal(injected("decoder.fc.0"), injected("decoder.fc.1"))
    np.testing.assert_array_equal(injected("decoder.net.4"), injected("decoder.net.5"))


def test_listing_keeps_the_models_mode_and_batch_norm_statistics(models):
    model = models["vae"]
    stats = model.decoder.net[0][2].running_mean.clone()
    model.train()
    try:
        list_model_layers(model)
        assert model.training and not model.codec.training
        with pytest.raises(ValueError, match="training mode"):
            strict_layer_injection(model, None, 1)
    finally:
        model.eval()
    assert torch.equal(stats, model.decoder.net[0][2].running_mean)


# -- no hook left -----------------------------------------------------------------------------------------


def test_no_hook_is_left_after_a_run_or_an_exception(models, probes):
    model = models["gan"]
    strict_layer_injection(model, probes, 1)
    assert hooks_on(model) == []

    def boom(act, name):
        raise RuntimeError("inside the decoder")

    with pytest.raises(RuntimeError, match="inside the decoder"):
        with patched(model, {"synthesis.net.3": boom, "mapping.net.1": lambda act, name: act}):
            decode(model, torch.randn(1, model.z_dim))
    assert hooks_on(model) == []
    with pytest.raises(ValueError, match=r"returned shape"):
        with patched(model, {"synthesis.net.3": lambda act, name: act[:, :1]}):
            decode(model, torch.randn(1, model.z_dim))
    assert hooks_on(model) == []
    with pytest.raises(ValueError, match=r"unknown layer 'synthesis\.net\.33'"):
        strict_layer_injection(model, probes, 1, layers=[CODE, "synthesis.net.33"])
    assert hooks_on(model) == []


# -- the sweep --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOADERS))
def test_injecting_the_code_or_any_layer_reproduces_e_exactly(models, probes, name):
    model = models[name]
    runs = strict_layer_injection(model, probes, 2, seed=0)
    assert len(runs) == 2
    for run in runs:
        result = run.result
        assert result.names == [CODE, *EXPECTED[name]]
        assert result.injected.shape == (len(result.names), 64, 64, 3)
        assert not np.array_equal(result.original, result.edit)
        # The code and the last layer, as the protocol's test asks; and every layer between (a chain).
        np.testing.assert_array_equal(result.injected[0], result.edit)
        np.testing.assert_array_equal(result.injected[-1], result.edit)
        for image in result.injected:
            np.testing.assert_array_equal(image, result.edit)
    assert hooks_on(model) == []


@pytest.mark.parametrize("name", list(LOADERS))
def test_alpha_zero_changes_nothing(models, probes, name):
    (run,) = strict_layer_injection(models[name], probes, 1, seed=1, alpha=0.0)
    for image in run.result.injected:
        np.testing.assert_array_equal(image, run.result.original)


@pytest.mark.parametrize("name", ["autoencoder", "vae"])
def test_o_into_o_changes_nothing(models, name):
    caption = "a large red star at the top left on a striped white background"
    (run,) = strict_layer_injection(models[name], None, [(caption, caption)])
    np.testing.assert_array_equal(run.result.original, run.result.edit)
    for image in run.result.injected:
        np.testing.assert_array_equal(image, run.result.original)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_the_batched_sweep_matches_one_layer_at_a_time(models, probes, alpha, monkeypatch):
    """The fast path against the slow, obvious one: E decoded alone with its activation recorded, then O
    decoded alone with that activation put in, for a layer halfway (and the code, blended by hand). In
    fp32: bf16 kernels round differently with the batch's layout (by up to 2 of 255 levels)."""
    import latentkit

    monkeypatch.setattr(latentkit, "BF16", False)
    model, layer = models["gan"], "synthesis.net.2"
    (run,) = strict_layer_injection(model, probes, 1, seed=3, layers=[CODE, layer], alpha=alpha)
    c_o, c_e = run.original["code"], run.edit["code"]
    cache = {}
    with torch.no_grad(), patched(model, {layer: recorder(cache)}):
        model(c_e)
    with torch.no_grad(), patched(model, {layer: lambda act, n: (1 - alpha) * act + alpha * cache[n]}):
        reference = model(c_o)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(run.result.injected[1], reference, atol=2e-5)
    with torch.no_grad():
        mixed = model((1 - alpha) * c_o + alpha * c_e)[0].permute(1, 2, 0).numpy()
    # 2e-5: a batch of several codes and a batch of one take different float32 matrix-product paths
    np.testing.assert_allclose(run.result.injected[0], mixed, atol=2e-5)
    if alpha < 1:  # a blend is not E: the check above is not the trivial one
        assert np.abs(run.result.injected[1] - run.result.edit).max() > 1e-3


def test_bad_arguments_are_refused(models, probes):
    ae, gan = models["autoencoder"], models["gan"]
    caption = "a large red star at the top left on a striped white background"
    with pytest.raises(ValueError, match="no encoder"):
        strict_layer_injection(gan, probes, [(caption, caption)])
    with pytest.raises(ValueError, match="probes"):
        strict_layer_injection(gan, None, 2)
    with pytest.raises(ValueError, match="alpha"):
        strict_layer_injection(ae, None, 1, alpha=1.5)
    with pytest.raises(ValueError, match="twice"):
        strict_layer_injection(ae, None, 1, layers=[CODE, CODE])
    with pytest.raises(ValueError, match="at least 1"):
        strict_layer_injection(ae, None, 0)
    with pytest.raises(ValueError, match="caption grammar"):
        strict_layer_injection(ae, None, [(caption, "a red star")])
    with pytest.raises(TypeError, match="run_sweeps"):
        strict_layer_injection(nn.Linear(2, 2), None, 1)


# -- read as the diffusion sweeps are ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOADERS))
def test_synthesis_index_reads_the_runs_as_it_reads_the_diffusion_sweeps(models, probes, name):
    runs = strict_layer_injection(models[name], probes, 3, seed=0)
    reading = read_with_probes(probes, runs, count="read")
    names = [CODE, *EXPECTED[name]]
    assert len(reading.observations) == 3 * len(names) * (len(FACTORS) + 2)
    result = synthesis_index(reading.observations, n_boot=100)
    shares = result.shares
    assert list(shares.index) == names  # the code first, beside the layers, in forward order
    # Every injected image is E, so every space decides what the code decides, and all of it.
    code_row = shares.loc[CODE, list(FACTORS)].to_numpy(float)
    for layer in names[1:]:
        np.testing.assert_array_equal(shares.loc[layer, list(FACTORS)].to_numpy(float), code_row)
    assert shares.loc[CODE, "share"] == shares.loc[names[-1], "share"] == 1.0
    assert result.index == 1.0 and result.space == CODE
    assert (shares["n_factors"] == shares.loc[CODE, "n_factors"]).all()


def test_autoencoder_runs_carry_their_captions_for_prompted_counting(models, probes):
    runs = strict_layer_injection(models["autoencoder"], probes, 2, seed=0)
    reading = read_with_probes(probes, runs, count="prompted")
    assert set(reading.agreement.index) == {*FACTORS, "in_distribution"}
    per_layer = reading.observations.pivot_table(index="layer", columns="measure", values="value")
    np.testing.assert_array_equal(per_layer.nunique(axis=0, dropna=False).to_numpy(), 1)  # all layers agree
