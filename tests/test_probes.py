"""The probes read the world's factors back: accuracy on clean and degraded renders, clear input errors.

Targets (foundation issue): >= 99% per categorical factor on clean renders of held-out seeds, centroid
error <= 2 px, and >= 95% per factor under blur sigma 1, Gaussian noise 0.05 and a slight colour shift.
"""

import numpy as np
import pytest
import torch

from latentkit.probes import IN_DISTRIBUTION_THRESHOLD, as_image_tensor, degrade, factor_accuracy, load_probes
from latentkit.world import FACTORS, World

HELD_OUT_SEED = 10_000  # training draws from seeds (0, step); these images were never seen


@pytest.fixture(scope="module")
def probes():
    return load_probes("cpu")


@pytest.fixture(scope="module")
def batch():
    return World(64).sample(1500, seed=HELD_OUT_SEED)


def _degraded(batch, blur=0.0, noise=0.0, shift=0.0, seed=0):
    x = as_image_tensor(batch.images)
    y = degrade(x, blur=blur, noise=noise, shift=shift, generator=torch.Generator().manual_seed(seed))
    return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.slow
def test_clean_renders(probes, batch):
    acc = factor_accuracy(probes.read(batch.images), batch.factors, batch.centroids)
    for factor in FACTORS:
        assert acc[factor] >= 0.99, (factor, acc)
    assert acc["centroid_error_px"] <= 1.0, acc
    errors = np.linalg.norm(probes.read(batch.images).centroids - batch.centroids, axis=1)
    assert np.quantile(errors, 0.99) <= 2.0


@pytest.mark.parametrize(
    "degradation",
    [
        {"blur": 1.0},
        {"noise": 0.05},
        {"shift": 0.05},
        {"blur": 1.0, "noise": 0.05, "shift": 0.05},
    ],
    ids=["blur1", "noise0.05", "shift0.05", "all"],
)
@pytest.mark.slow
def test_degraded_renders(probes, batch, degradation):
    readout = probes.read(_degraded(batch, **degradation))
    acc = factor_accuracy(readout, batch.factors, batch.centroids)
    for factor in FACTORS:
        assert acc[factor] >= 0.95, (factor, acc)
    assert acc["centroid_error_px"] <= 2.0, acc


def test_other_image_sizes_are_resized_and_centroids_scaled(probes):
    big = World(128).sample(200, seed=HELD_OUT_SEED + 1)
    readout = probes.read(big.images)
    acc = factor_accuracy(readout, big.factors, big.centroids)
    assert min(acc[f] for f in FACTORS) >= 0.97, acc
    assert acc["centroid_error_px"] <= 2.5  # in 128-px pixels
    assert readout.image_size == 128


def test_float_and_uint8_inputs_agree(probes, batch):
    small = batch.images[:100]
    a = probes.read(small)
    b = probes.read(small.astype(np.float32) / 255)
    c = probes.read(torch.from_numpy(small))
    for f in FACTORS:
        assert np.array_equal(a.labels[f], b.labels[f]) and np.array_equal(a.labels[f], c.labels[f])


@pytest.mark.slow
def test_in_distribution_score_separates_valid_from_broken_images(probes, batch):
    m = 300
    valid = {
        "clean": batch.images[:m],
        "degraded": _degraded(batch, 1.0, 0.05, 0.05)[:m],
    }
    two = batch.images[:m].copy()
    two[:, :, 32:] = batch.images[m : 2 * m, :, 32:]  # two half images: a second, cut object
    broken = {
        "two halves": two,
        "no object": World(64).backgrounds(batch.factors[:m]),
        "noise": np.random.default_rng(0).integers(0, 256, (m, 64, 64, 3), dtype=np.uint8),
    }
    share = {
        k: float((probes.in_distribution(v) >= IN_DISTRIBUTION_THRESHOLD).mean()) for k, v in valid.items()
    }
    assert share["clean"] >= 0.98 and share["degraded"] >= 0.9, share
    for name, images in broken.items():
        scores = probes.in_distribution(images)
        assert np.all((scores >= 0) & (scores <= 1))
        assert (scores >= IN_DISTRIBUTION_THRESHOLD).mean() <= 0.1, (name, np.median(scores))
    assert np.median(probes.in_distribution(valid["clean"])) > np.median(
        probes.in_distribution(valid["degraded"])
    )


def test_degrade_does_what_it_says():
    x = torch.full((4, 3, 32, 32), 0.5)
    x[:, :, :, 16:] = 1.0
    blurred = degrade(x, blur=1.0)
    assert torch.allclose(blurred.mean(), x.mean(), atol=1e-3)  # blur keeps the mean
    assert blurred[:, :, :, 15].mean() > 0.5 and blurred[:, :, :, 16].mean() < 1.0
    noisy = degrade(torch.full((8, 3, 32, 32), 0.5), noise=0.05, generator=torch.Generator().manual_seed(0))
    assert abs(float((noisy - 0.5).std()) - 0.05) < 0.005
    shifted = degrade(torch.full((8, 3, 4, 4), 0.5), shift=0.05, generator=torch.Generator().manual_seed(0))
    offsets = (shifted - 0.5).amax((2, 3))
    assert offsets.abs().max() <= 0.05 + 1e-6 and offsets.abs().max() > 0.01
    assert torch.equal(degrade(x), x)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((2, 3, 64, 64), np.float32), ValueError, "channels-first"),
        (np.zeros((64, 64, 3), np.uint8), ValueError, r"images\[None\]"),
        (np.zeros((2, 64, 64, 3), np.int32), TypeError, "uint8"),
        (np.full((2, 64, 64, 3), -1.0, np.float32), ValueError, r"\(images \+ 1\) / 2"),
        (np.zeros((2, 64, 48, 3), np.uint8), ValueError, "square"),
        (np.zeros((0, 64, 64, 3), np.uint8), ValueError, "empty"),
        ("an image", TypeError, "NumPy array"),
    ],
)
def test_bad_input_gets_clear_errors(probes, images, error, match):
    with pytest.raises(error, match=match):
        probes.read(images)
