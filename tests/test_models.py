"""The autoencoder, VAE and GAN organisms: shapes, fp16 export/load round trip, clear errors, their spaces."""

import json

import numpy as np
import pytest
import torch

from latentkit.models.autoencoder import Autoencoder, load_autoencoder
from latentkit.models.gan import Discriminator, Generator, load_gan
from latentkit.models.vae import VAE, load_vae
from latentkit.spaces import autoencoder_space, gan_w_space, gan_z_space, vae_space

torch.set_num_threads(1)
TINY = {"width": 8}  # tiny builds: the tests check wiring, not quality


@pytest.fixture
def images():
    return torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_autoencoder_shapes(images):
    ae = Autoencoder(latent_dim=3, **TINY).eval()
    codes = ae.encode(images)
    assert codes.shape == (4, 3)
    out = ae.decode(codes)
    assert out.shape == (4, 3, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_vae_shapes_and_loss(images):
    vae = VAE(latent_dim=6, beta=2.0, **TINY)
    mu, logvar = vae.encode(images)
    assert mu.shape == logvar.shape == (4, 6)
    losses = vae.loss(images, torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "recon", "kl"}
    torch.testing.assert_close(losses["loss"], losses["recon"] + 2.0 * losses["kl"])
    assert vae.decode(torch.randn(2, 6)).shape == (2, 3, 64, 64)


def test_gan_shapes(images):
    gen = Generator(z_dim=16, w_dim=12, **TINY).eval()
    z = torch.randn(4, 16)
    w = gen.mapping(z)
    assert w.shape == (4, 12)
    torch.testing.assert_close(gen(z), gen.synthesis(w))
    assert gen(z).shape == (4, 3, 64, 64)
    assert Discriminator(**TINY)(images).shape == (4,)


def test_spaces_of_the_organisms():
    gen = torch.Generator().manual_seed(0)
    ae, vae, gan = Autoencoder(**TINY), VAE(latent_dim=5, **TINY), Generator(z_dim=16, w_dim=12, **TINY)
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


def test_autoencoder_samples_from_its_fitted_gaussian():
    ae = Autoencoder(**TINY)
    ae.code_mean.copy_(torch.tensor([5.0, -5.0, 0.0]))
    ae.code_chol.copy_(torch.diag(torch.tensor([0.1, 0.1, 2.0])))
    points = autoencoder_space(ae).sample(4000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(points.mean(0), ae.code_mean, atol=0.1, rtol=0)
    torch.testing.assert_close(points.std(0), torch.tensor([0.1, 0.1, 2.0]), atol=0.05, rtol=0)


@pytest.mark.parametrize("name", ["autoencoder", "vae", "gan"])
def test_export_and_load_round_trip(name, tmp_path, monkeypatch):
    import importlib

    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    recipe = importlib.import_module(f"latentkit.recipes.{name}")
    torch.manual_seed(0)
    if name == "autoencoder":
        model, loader = Autoencoder().eval(), load_autoencoder
        recipe.export(model, steps=1, seconds=0.0)
        x = torch.rand(2, 3)
        run = "decode"
    elif name == "vae":
        model, loader = VAE(latent_dim=recipe.LATENT_DIM).eval(), load_vae
        recipe.export(model, steps=1, seconds=0.0, losses={"loss": 1.0})
        x = torch.rand(2, recipe.LATENT_DIM)
        run = "decode"
    else:
        model, loader = Generator().eval(), load_gan
        recipe.export(model, steps=1, seconds=0.0)
        x = torch.randn(2, model.z_dim)
        run = "forward"
    folder = tmp_path / name
    weights = next(folder.glob("*.safetensors"))
    assert weights.stat().st_size < 5 * 2**20, "shipped weights must stay under 5 MB"
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
