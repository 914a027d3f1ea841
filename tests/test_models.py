"""The autoencoder, VAE and GAN organisms: their shared picture codec, shapes, fp16 export/load round trip
(the codec left out of the weights), clear errors, their spaces."""

import json

import numpy as np
import pytest
import torch

from latentkit.models.autoencoder import Autoencoder, load_autoencoder
from latentkit.models.codec import CODE_SHAPE, load_codec, load_own_state, own_state
from latentkit.models.gan import CodeDiscriminator, Generator, load_gan
from latentkit.models.vae import VAE, load_vae
from latentkit.paths import data_dir
from latentkit.probes import load_probes
from latentkit.spaces import autoencoder_space, gan_w_space, gan_z_space, vae_space
from latentkit.world import World

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def codec():
    return load_codec()


@pytest.fixture(scope="module")
def tiny(codec):
    """Tiny builds sharing the shipped codec: the tests check wiring, not quality."""
    return {"width": 8, "codec": codec}


@pytest.fixture(scope="module")
def tiny_gan(codec):
    """A tiny latent GAN sharing the shipped codec (its autoencoder decoder random, 5-d code)."""
    return {"z_dim": 16, "w_dim": 12, "code_dim": 5, "hidden": 16, "decoder_width": 8, "codec": codec}


@pytest.fixture
def images():
    return torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_the_codec_gives_world_images_back(codec):
    """The codec is the diffusion organism's VAE: a world image survives encode -> decode, factors and all."""
    batch = World(64).sample(64, seed=3)
    x = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        codes = codec.encode(x)
        back = codec.decode(codes)
    assert codes.shape == (64, *CODE_SHAPE)
    assert 0.7 < codes.std() < 1.4  # scaled to about unit variance
    assert float(((back - x) ** 2).mean()) < 0.01
    readout = load_probes().read((back.permute(0, 2, 3, 1) * 255).round().byte().numpy())
    agree = readout.agreement(batch.factors)
    assert agree["color"].mean() > 0.9 and agree["background"].mean() > 0.9


def test_the_codec_decodes_in_bf16_where_the_cpu_has_it_and_stays_within_a_few_levels_of_fp32(codec):
    """Its decode runs under :func:`latentkit.autocast` (x2.2 faster on the project's CPU): the pixels
    stay within a few of 255 levels of the fp32 decoder's, and in fp32 where the CPU lacks bf16."""
    codes = codec.encode(torch.from_numpy(World(64).sample(16, seed=4).images).permute(0, 3, 1, 2) / 255)
    with torch.no_grad():
        fast = codec.decode(codes)
        exact = ((codec.vae.decode(codes / codec.scale).sample + 1) / 2).clamp(0, 1)
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    gap = float((fast - exact).abs().max())
    assert gap < 8 / 255
    assert (gap > 0) == native  # bf16 changes the last bits; without native bf16 it is the fp32 decoder
    assert fast.dtype == torch.float32


def test_the_codec_stays_frozen(tiny):
    ae = Autoencoder(**tiny).train()
    assert not ae.codec.training and ae.encoder.training
    assert not any(p.requires_grad for p in ae.codec.parameters())
    assert all(p.requires_grad for p in ae.encoder.parameters())


def test_own_state_leaves_the_codec_out_and_loading_is_strict(tiny):
    ae = Autoencoder(**tiny)
    state = own_state(ae)
    assert state and not any(k.startswith("codec.") for k in state)
    assert {"code_mean", "code_chol"} <= set(state)
    other = Autoencoder(**tiny)
    load_own_state(other, state)
    torch.testing.assert_close(other.decoder.fc[0].weight, ae.decoder.fc[0].weight)
    with pytest.raises(RuntimeError, match="retrain"):
        load_own_state(other, {k: v for k, v in state.items() if k != "code_mean"})
    with pytest.raises(RuntimeError, match="unexpected"):
        load_own_state(other, {**state, "extra.weight": torch.zeros(1)})


def test_a_missing_codec_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m latentkit.recipes sd_vae"):
        load_codec()


def test_autoencoder_shapes(images, tiny):
    ae = Autoencoder(latent_dim=3, **tiny).eval()
    codes = ae.encode(images)
    assert codes.shape == (4, 3)
    out = ae.decode(codes)
    assert out.shape == (4, 3, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_vae_shapes_and_loss(images, tiny):
    vae = VAE(latent_dim=6, beta=2.0, **tiny)
    mu, logvar = vae.encode(images)
    assert mu.shape == logvar.shape == (4, 6)
    losses = vae.loss(vae.codec.encode(images), torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "recon", "kl"}
    torch.testing.assert_close(losses["loss"], losses["recon"] + 2.0 * losses["kl"])
    assert vae.decode(torch.randn(2, 6)).shape == (2, 3, 64, 64)


def test_gan_shapes(tiny_gan):
    gen = Generator(**tiny_gan).eval()
    z = torch.randn(4, 16)
    w = gen.mapping(z)
    assert w.shape == (4, 12)
    torch.testing.assert_close(gen(z), gen.render(w))
    assert gen(z).shape == (4, 3, 64, 64)
    code = gen.synthesis(w)  # the autoencoder's bottleneck code
    assert code.shape == (4, 5) and gen.decoder(code).shape == (4, *CODE_SHAPE)
    assert CodeDiscriminator(5, hidden=16)(gen.synthesis.standardised(w)).shape == (4, 1)


def test_a_gan_with_categories_reads_the_first_blocks_of_z_as_choices(tiny_gan):
    from latentkit.models.gan import categories_of

    gen = Generator(**{**tiny_gan, "z_dim": 9}, categories=(3, 2), mapping_hidden=20).eval()
    assert gen.mapping.net[0].out_features == 20 and gen.mapping.net[-1].out_features == 12
    z = torch.randn(6, 9, generator=torch.Generator().manual_seed(1))
    chosen = categories_of(z, (3, 2))
    assert [c.shape for c in chosen] == [(6,), (6,)] and all(c.dtype == torch.int64 for c in chosen)
    torch.testing.assert_close(chosen[0], z[:, :3].argmax(1))
    # Moving a coordinate of a block that is not its largest changes nothing; the choices decide.
    same = z.clone()
    same[:, :3] += 10 * torch.nn.functional.one_hot(chosen[0], 3)  # the largest gets larger
    torch.testing.assert_close(gen.mapping(same), gen.mapping(z))
    other = z.clone()
    other[:, :3] = torch.roll(z[:, :3], 1, dims=1)  # another coordinate becomes the largest
    assert not torch.allclose(gen.mapping(other), gen.mapping(z))
    with pytest.raises(ValueError, match=r"categories \(6, 6\) need 12 of z's 9 dims"):
        Generator(**{**tiny_gan, "z_dim": 9}, categories=(6, 6))


def test_the_gan_recipe_refuses_an_unknown_design():
    from latentkit.recipes import gan as recipe

    assert recipe.DESIGN in recipe.DESIGNS
    with pytest.raises(ValueError, match=r"design must be one of \[2, 3\], got 7"):
        recipe.train(steps=1, design=7)


def test_gan_synthesis_writes_standardised_codes_and_the_borrowed_decoder_stays_frozen(tiny_gan):
    gen = Generator(**tiny_gan).train()
    gen.synthesis.code_mean.copy_(torch.arange(5.0))
    gen.synthesis.code_std.copy_(torch.full((5,), 2.0))
    w = torch.randn(3, 12)
    torch.testing.assert_close(gen.synthesis(w), gen.synthesis.standardised(w) * 2 + torch.arange(5.0))
    assert gen.mapping.training and not gen.decoder.training  # batch norm keeps the autoencoder's statistics
    assert not any(p.requires_grad for p in gen.decoder.parameters())
    assert all(p.requires_grad for p in gen.synthesis.parameters())


def test_weights_of_the_older_gan_design_are_refused_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "gan").mkdir()
    from safetensors.torch import save_file

    save_file({"mapping.net.0.weight": torch.zeros(1)}, str(tmp_path / "gan" / "generator.safetensors"))
    old = {"z_dim": 32, "w_dim": 32, "width": 64, "mapping_layers": 4}  # the first design's config
    (tmp_path / "gan" / "config.json").write_text(json.dumps(old))
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    with pytest.raises(RuntimeError, match="older GAN design.*recipes gan"):
        load_gan()


def test_spaces_of_the_organisms(tiny, tiny_gan):
    gen = torch.Generator().manual_seed(0)
    ae, vae, gan = Autoencoder(**tiny), VAE(latent_dim=5, **tiny), Generator(**tiny_gan)
    for space, dim in [
        (autoencoder_space(ae), 3),
        (vae_space(vae), 5),
        (gan_z_space(gan), 16),
        (gan_w_space(gan), 12),
    ]:
        points = space.sample(3, gen)
        assert points.shape == (3, dim), space
        images = space.decode(space.interpolate(points, space.perturb(points, 0.1, gen), 0.5))
        assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8, space
    codes = autoencoder_space(ae).encode(np.zeros((2, 64, 64, 3), np.uint8))
    assert codes.shape == (2, 3)
    with pytest.raises(NotImplementedError, match="no encoder"):
        gan_z_space(gan).encode(np.zeros((1, 64, 64, 3), np.uint8))


def test_autoencoder_samples_from_its_fitted_gaussian(tiny):
    ae = Autoencoder(**tiny)
    ae.code_mean.copy_(torch.tensor([5.0, -5.0, 0.0]))
    ae.code_chol.copy_(torch.diag(torch.tensor([0.1, 0.1, 2.0])))
    points = autoencoder_space(ae).sample(4000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(points.mean(0), ae.code_mean, atol=0.1, rtol=0)
    torch.testing.assert_close(points.std(0), torch.tensor([0.1, 0.1, 2.0]), atol=0.05, rtol=0)


@pytest.mark.parametrize("name", ["autoencoder", "vae", "gan"])
def test_export_and_load_round_trip(name, tmp_path, monkeypatch):
    import importlib

    import latentkit

    monkeypatch.setattr(latentkit, "BF16", False)  # fp16 weights against fp32 ones, not bf16 rounding too

    (tmp_path / "tiny-sd").mkdir()
    (tmp_path / "tiny-sd" / "vae").symlink_to(data_dir() / "tiny-sd" / "vae")  # the codec the models share
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    recipe = importlib.import_module(f"latentkit.recipes.{name}")
    torch.manual_seed(0)
    if name == "autoencoder":
        model, loader = Autoencoder().eval(), load_autoencoder
        recipe.export(model, steps=1, seconds=0.0, measure=False)  # a format test: no quality metric
        x = torch.rand(2, 3)
        run = "decode"
    elif name == "vae":
        model, loader = VAE(latent_dim=recipe.LATENT_DIM).eval(), load_vae
        recipe.export(model, steps=1, seconds=0.0, losses={"loss": 1.0})
        x = torch.rand(2, recipe.LATENT_DIM)
        run = "decode"
    else:  # design 3's generator: its categories and mapping width must survive the round trip
        model, loader = Generator(z_dim=39, categories=(6, 6, 4, 4, 9, 2), mapping_hidden=64).eval(), load_gan
        recipe.export(model, steps=1, seconds=0.0)
        x = torch.randn(2, model.z_dim)
        run = "forward"
    folder = tmp_path / name
    weights = next(folder.glob("*.safetensors"))
    assert weights.stat().st_size < 5 * 2**20, "shipped weights must stay under 5 MB"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("codec.")], "the shared codec ships once, in tiny-sd"
    assert json.loads((folder / "config.json").read_text())["trained_steps"] == 1
    loaded = loader("cpu")
    with torch.no_grad():
        torch.testing.assert_close(getattr(loaded, run)(x), getattr(model, run)(x), atol=5e-3, rtol=0)


@pytest.mark.parametrize(
    "loader, recipe", [(load_autoencoder, "autoencoder"), (load_vae, "vae"), (load_gan, "gan")]
)
def test_missing_weights_say_how_to_get_them(loader, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"python -m latentkit.recipes {recipe}"):
        loader()


def test_recipes_train_the_codec_before_the_models_that_draw_through_it():
    from latentkit.recipes.__main__ import ORDER

    for name in ("autoencoder", "vae", "gan"):
        assert ORDER.index("sd_vae") < ORDER.index(name)


def test_truncation_pulls_w_towards_its_mean(tiny_gan):
    gan = Generator(**tiny_gan)
    gan.w_mean.copy_(torch.linspace(-1, 1, 12))
    full, half = gan_w_space(gan), gan_w_space(gan, truncation=0.5)
    assert "truncation 0.5" in half.name and "truncation" not in full.name
    w = full.sample(64, torch.Generator().manual_seed(0))
    w_half = half.sample(64, torch.Generator().manual_seed(0))  # the same z
    torch.testing.assert_close(w_half - gan.w_mean, 0.5 * (w - gan.w_mean))
    with pytest.raises(ValueError, match="truncation"):
        gan_w_space(gan, truncation=1.5)
