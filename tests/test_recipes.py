"""The strict-sense recipes' pieces: the object-weighted loss, the masks, the widths sweep's choice,
bf16 autocast, and resuming a width exactly (with its training time)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import latentkit
from latentkit.paths import data_dir
from latentkit.recipes import autoencoder as ae_recipe
from latentkit.recipes import common
from latentkit.world import World

SHIPPED_DATA = data_dir()  # before any test points LATENTKIT_DATA elsewhere


def test_object_weighted_mse_is_plain_mse_without_weight_and_counts_the_object_more_with_it():
    codes = torch.zeros(2, 4, 16, 16)
    recon = torch.zeros(2, 4, 16, 16)
    recon[:, :, 0, 0] = 1.0  # an error in a background cell
    masks = torch.zeros(2, 16, 16)
    masks[:, 8, 8] = 1.0  # the object covers one cell far away
    plain = common.object_weighted_mse(recon, codes, masks, 0.0)
    torch.testing.assert_close(plain, torch.nn.functional.mse_loss(recon, codes))
    assert common.object_weighted_mse(recon, codes, masks, 10.0) < plain  # background counts less now
    on_object = torch.zeros_like(recon)
    on_object[:, :, 8, 9] = 1.0  # next to the object: the dilated mask counts it as object
    assert common.object_weighted_mse(on_object, codes, masks, 10.0) > 10 * common.object_weighted_mse(
        recon, codes, masks, 10.0
    )


def test_picture_masks_are_the_objects_of_the_picture_codes_images(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path))
    masks = common.picture_masks(n=300, seed=7)
    assert masks.shape == (300, 16, 16) and (tmp_path / "picture_masks_300_7.pt").exists()
    full = World(64).sample(256, seed=np.random.default_rng([7, 0]), masks=True).masks  # batch 0's images
    pooled = full.reshape(256, 16, 4, 16, 4).mean((2, 4))
    np.testing.assert_allclose(masks[:256].numpy(), pooled, atol=1e-3)  # fp16 in the cache
    assert common.picture_masks(n=300, seed=7, side=32).shape == (300, 32, 32)
    with pytest.raises(ValueError, match="side must be 16, 32 or 64"):
        common.picture_masks(n=300, side=20)


def _rows(valid: dict[int, float]) -> list[dict]:
    return [{"neurons": w, "measure": "held-out reconstructions valid", "value": v} for w, v in valid.items()]


def test_the_fitted_width_is_the_smallest_that_reaches_the_target_else_the_best():
    assert ae_recipe.fitted_width(_rows({16: 0.95, 8: 0.91, 4: 0.6, 3: 0.3})) == 8
    assert ae_recipe.fitted_width(_rows({16: 0.85, 8: 0.7, 3: 0.3})) == 16
    assert ae_recipe.fitted_width(_rows({16: 0.7, 8: 0.7})) == 8  # a tie goes to the smaller width
    with pytest.raises(ValueError, match="measure the widths first"):
        ae_recipe.fitted_width([])


def test_autocast_is_bf16_where_the_cpu_has_it_and_a_no_op_otherwise():
    with latentkit.autocast("cpu"):
        out = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_a_width_resumes_exactly_and_keeps_its_training_time(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path))
    codes = torch.randn(64, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.rand(64, 16, 16, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(ae_recipe, "picture_codes", lambda: codes)
    monkeypatch.setattr(ae_recipe, "picture_masks", lambda: masks)
    straight, _ = ae_recipe.train(latent_dim=2, steps=4, batch_size=8, device="cpu", fresh=True)
    _, first = ae_recipe.train(latent_dim=2, steps=2, batch_size=8, device="cpu", fresh=True)
    stored_first = ae_recipe._trained_seconds("autoencoder_2")
    resumed, seconds = ae_recipe.train(latent_dim=2, steps=4, batch_size=8, device="cpu")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    # the resumed run counts the first run's training time (stored in its checkpoint) and its own on top
    stored = ae_recipe._trained_seconds("autoencoder_2")
    assert 0 < stored_first <= first and stored_first < stored <= seconds


@pytest.fixture
def short_stages(tmp_path, monkeypatch):
    """The autoencoder recipe on 64 random codes, with two short stages of the fitted width."""
    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path / "cache"))
    codes = torch.randn(64, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.rand(64, 16, 16, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(ae_recipe, "picture_codes", lambda **kw: codes)
    monkeypatch.setattr(ae_recipe, "picture_masks", lambda **kw: masks)
    monkeypatch.setattr(ae_recipe, "FITTED_STAGES", ((3, 1e-3), (2, 5e-4)))


def test_a_stage_of_the_fitted_width_trains_on_from_the_model_given_and_resumes_exactly(short_stages):
    base, _ = ae_recipe.train(latent_dim=2, steps=2, batch_size=8, device="cpu", fresh=True)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    straight, _ = ae_recipe.continue_fitted(copy.deepcopy(base), 1, device="cpu", fresh=True, batch_size=8)
    assert common.load_checkpoint("autoencoder_2_stage1") == 3  # its own checkpoint
    assert common.load_checkpoint("autoencoder_2") == 2  # the width's is left as it was
    assert not torch.equal(straight.encoder.state_dict()["net.0.weight"], before["encoder.net.0.weight"])
    with common.deadline(0):  # stopped after its first step, then resumed from its own checkpoint
        ae_recipe.continue_fitted(copy.deepcopy(base), 1, device="cpu", fresh=True, batch_size=8)
    assert common.load_checkpoint("autoencoder_2_stage1") == 1
    resumed, _ = ae_recipe.continue_fitted(copy.deepcopy(base), 1, device="cpu", batch_size=8)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    for stage in (0, 3, 1.0, True):
        with pytest.raises(ValueError, match=r"stage must be one of 1\.\.2"):
            ae_recipe.continue_fitted(base, stage, device="cpu")


def test_the_recipe_exports_the_fitted_width_after_its_stages_and_the_sweep_before_them(
    short_stages, tmp_path, monkeypatch
):
    import json

    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "tiny-sd").mkdir(parents=True)
    (tmp_path / "data" / "tiny-sd" / "vae").symlink_to(SHIPPED_DATA / "tiny-sd" / "vae")
    measured = []

    def measure(model, steps, seconds, n=512):  # the probes' reading, replaced: this test is the bookkeeping
        measured.append(steps)
        return [
            {
                "neurons": model.latent_dim,
                "measure": "held-out reconstructions valid",
                "value": 0.95,
                "steps": steps,
            }
        ]

    monkeypatch.setattr(ae_recipe, "measure_width", measure)
    monkeypatch.setattr(ae_recipe, "reconstruction_mse", lambda model: 0.0)
    plan = ae_recipe.planned_checkpoints(4)  # nothing exported yet: the stages are planned for the widest
    stages = {"autoencoder_16_stage1": 3, "autoencoder_16_stage2": 2}
    assert plan == {**{f"autoencoder_{w}": 4 for w in ae_recipe.WIDTHS}, **stages}
    ae_recipe.main(steps=4, widths=(2,), device="cpu", fresh=True, batch_size=8)
    config = json.loads((tmp_path / "data" / "autoencoder-fitted" / "config.json").read_text())
    assert config["latent_dim"] == 2 and config["trained_steps"] == 4 + 3 + 2
    assert measured == [4]  # the widths table holds the sweep, every width after the same training
    assert common.load_checkpoint("autoencoder_2_stage2") == 2
    assert list(ae_recipe.planned_checkpoints(4))[-2:] == ["autoencoder_2_stage1", "autoencoder_2_stage2"]


def test_a_checkpoint_made_against_another_model_does_not_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path))
    model = torch.nn.Linear(3, 2)
    mark = common.fingerprint(model)
    assert len(mark) == 16 and mark == common.fingerprint(copy.deepcopy(model))
    common.save_checkpoint("run", 5, model=model, made_for=mark)
    assert common.load_checkpoint("run", {"made_for": mark}, model=model) == 5
    with torch.no_grad():
        model.bias += 1.0  # another model: another fingerprint
    assert common.fingerprint(model) != mark
    with pytest.raises(ValueError, match=r"trained with another made_for .* --fresh"):
        common.load_checkpoint("run", {"made_for": common.fingerprint(model)}, model=model)


def test_the_gan_does_not_resume_a_checkpoint_of_another_autoencoder(tmp_path, monkeypatch):
    from latentkit.recipes import gan as gan_recipe

    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path))
    codes = torch.randn(64, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(gan_recipe, "picture_codes", lambda **kw: codes)
    gan_recipe.train(steps=2, batch_size=8, device="cpu", fresh=True)  # against the shipped fitted one
    gan_recipe.train(steps=3, batch_size=8, device="cpu")  # the same autoencoder: resumes
    assert common.load_checkpoint(gan_recipe.NAME) == 3
    shipped = gan_recipe.load_autoencoder

    def retrained(**kwargs):
        model = shipped(**kwargs)
        with torch.no_grad():
            next(model.decoder.parameters()).mul_(1.01)
        return model

    monkeypatch.setattr(gan_recipe, "load_autoencoder", retrained)
    with pytest.raises(ValueError, match="trained with another autoencoder"):
        gan_recipe.train(steps=4, batch_size=8, device="cpu")
    gan_recipe.train(steps=1, batch_size=8, device="cpu", fresh=True)  # --fresh starts again
    assert common.load_checkpoint(gan_recipe.NAME) == 1


@pytest.fixture
def short_vae(tmp_path, monkeypatch):
    """The VAE recipe on 64 random codes, a tiny second stage of 4 steps, data and cache in tmp_path."""
    from latentkit.recipes import vae as vae_recipe

    monkeypatch.setenv("LATENTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "tiny-sd").mkdir(parents=True)
    (tmp_path / "data" / "tiny-sd" / "vae").symlink_to(SHIPPED_DATA / "tiny-sd" / "vae")
    codes = torch.randn(64, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.rand(64, 16, 16, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(vae_recipe, "picture_codes", lambda **kw: codes)
    monkeypatch.setattr(vae_recipe, "picture_masks", lambda **kw: masks)
    monkeypatch.setattr(vae_recipe, "SECOND_STEPS", 4)
    monkeypatch.setattr(vae_recipe, "SECOND_HIDDEN", 16)
    return vae_recipe


def test_the_vae_second_stage_trains_on_the_first_stages_latents_and_resumes_exactly(short_vae):
    first, _ = short_vae.train(steps=2, batch_size=8, device="cpu", fresh=True)
    straight, _ = short_vae.train_second_stage(first, device="cpu", fresh=True, batch_size=8)
    assert common.load_checkpoint(short_vae.SECOND_NAME) == 4
    assert common.load_checkpoint(short_vae.NAME) == 2  # the first stage's checkpoint is its own
    with common.deadline(0):  # stopped after its first step, then resumed from its checkpoint
        short_vae.train_second_stage(first, device="cpu", fresh=True, batch_size=8)
    assert common.load_checkpoint(short_vae.SECOND_NAME) == 1
    resumed, _ = short_vae.train_second_stage(first, device="cpu", batch_size=8)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert straight.log_gamma.item() != 0.0  # the decoder's variance is learned


def test_the_vae_recipe_exports_both_stages_and_the_shipped_loader_reads_them_back(short_vae, tmp_path):
    import json

    from latentkit.models.vae import load_vae
    from latentkit.spaces import vae_space

    assert short_vae.planned_checkpoints(3) == {"vae": 3, "vae_second_stage": 4}
    short_vae.main(steps=3, device="cpu", fresh=True, batch_size=8)
    config = json.loads((tmp_path / "data" / "vae" / "config.json").read_text())
    assert config["trained_steps"] == 3 + 4 and config["second_stage"] == {"hidden": 16}
    vae = load_vae()
    assert vae.second_stage is not None and vae.latent_dim == short_vae.LATENT_DIM
    u = torch.randn(3, vae.latent_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        through = vae.decode(vae.second_stage.decoder(u))
        space = vae_space(vae)
        torch.testing.assert_close(space.decode_float(u), through.permute(0, 2, 3, 1).cpu())
        assert not torch.allclose(through, vae.decode(u))  # u is not the first stage's z
        first = vae_space(vae, first_stage=True)  # the first stage's own prior, for comparison
        torch.testing.assert_close(first.decode_float(u), vae.decode(u).permute(0, 2, 3, 1).cpu())
    assert space.name == f"VAE latent ({vae.latent_dim} dims, two-stage)"
    assert first.name == f"VAE latent ({vae.latent_dim} dims)"


def test_the_vae_elbo_weights_the_cells_it_is_given():
    from latentkit.models.vae import VAE

    torch.manual_seed(0)
    vae = VAE(latent_dim=3, width=8, codec=torch.nn.Identity())
    codes = torch.randn(4, 4, 16, 16)
    plain = vae.loss(codes, torch.Generator().manual_seed(1))
    ones = vae.loss(codes, torch.Generator().manual_seed(1), weights=torch.ones(4, 1, 16, 16))
    torch.testing.assert_close(plain["recon"], ones["recon"])
    w = common.object_weights(torch.ones(4, 16, 16), 10.0)
    assert w.shape == (4, 1, 16, 16) and torch.all(w == 11)
    heavy = vae.loss(codes, torch.Generator().manual_seed(1), weights=w)
    torch.testing.assert_close(heavy["recon"], 11 * plain["recon"])
    torch.testing.assert_close(heavy["kl"], plain["kl"])


def test_the_vae_second_stage_waits_for_its_first_and_refuses_another(short_vae, tmp_path):
    import json

    with common.deadline(0):  # the first stage stops after one step: exported alone, no second stage yet
        short_vae.main(steps=3, device="cpu", fresh=True, batch_size=8)
    config = json.loads((tmp_path / "data" / "vae" / "config.json").read_text())
    assert config["second_stage"] is None and config["trained_steps"] == 1
    assert common.load_checkpoint(short_vae.SECOND_NAME) == 0
    first, _ = short_vae.train(steps=3, batch_size=8, device="cpu")  # finished by the next run
    short_vae.train_second_stage(first, device="cpu")
    other, _ = short_vae.train(steps=3, batch_size=8, device="cpu", fresh=True, seed=1)
    with pytest.raises(ValueError, match="another first_stage.*--fresh"):
        short_vae.train_second_stage(other, device="cpu")
