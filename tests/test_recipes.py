"""The strict-sense recipes' pieces: the object-weighted loss, the masks, the widths sweep's choice,
bf16 autocast, and resuming a width exactly (with its training time)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentkit.recipes import autoencoder as ae_recipe
from latentkit.recipes import common
from latentkit.world import World


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
    with common.autocast("cpu"):
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
