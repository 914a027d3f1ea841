"""The image-similarity suite: each score sees its own aspect, baselines subtract, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from latentkit import similarity


def stripes(n: int = 32, period: int = 4, colour=(1.0, 0.2, 0.2)) -> np.ndarray:
    """(n, n, 3) float: vertical stripes of ``colour`` on black."""
    on = (np.arange(n) // (period // 2)) % 2 == 0
    image = np.zeros((n, n, 3))
    image[:, on] = colour
    return image


def noise(seed: int, n: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n, 3))


def test_identical_images_score_one_on_every_measure():
    image = noise(0)
    for name, score in similarity.similarities(image, image).items():
        assert score.shape == (1,)
        assert score[0] == pytest.approx(1.0), name


def test_each_measure_reads_its_own_aspect():
    red, blue = stripes(colour=(1.0, 0.2, 0.2)), stripes(colour=(0.2, 0.2, 1.0))
    fine = stripes(period=2, colour=(1.0, 0.2, 0.2))
    # same structure and texture, other colour
    assert similarity.texture_similarity(red, blue)[0] == pytest.approx(1.0)
    assert similarity.color_similarity(red, blue)[0] < 0.5
    # same colours, other stripe width: texture and structure drop, colour stays
    assert similarity.color_similarity(red, fine)[0] > 0.99
    assert similarity.texture_similarity(red, fine)[0] < 0.9
    assert similarity.ssim(red, fine)[0] < 0.5


def test_uint8_and_float_agree_and_batches_broadcast():
    images = np.stack([noise(1), noise(2), stripes()])
    as_uint8 = np.round(images * 255).astype(np.uint8)
    for score in similarity.SCORES.values():
        batch = score(images, images[0])  # one image against a batch
        assert batch.shape == (3,)
        assert batch[0] == pytest.approx(1.0)
        np.testing.assert_allclose(score(as_uint8, as_uint8[0]), batch, atol=0.02)


def test_baseline_subtracted_credits_what_the_injection_added():
    edit, original = stripes(colour=(0.2, 0.2, 1.0)), stripes(colour=(1.0, 0.2, 0.2))
    injected = np.stack([edit, original])  # a layer that carried all of E, one that carried none
    gain = similarity.baseline_subtracted(similarity.color_similarity, injected, edit, original)
    base = similarity.color_similarity(original, edit)[0]
    np.testing.assert_allclose(gain, [1.0 - base, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="single images"):
        similarity.baseline_subtracted(similarity.ssim, injected, injected, injected)


def test_bad_images_are_refused_clearly():
    image = noise(0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        similarity.ssim(image * 255, image)
    with pytest.raises(TypeError, match="uint8 or float"):
        similarity.ssim(image.astype(np.int32), image)
    with pytest.raises(ValueError, match="RGB"):
        similarity.ssim(image[..., 0], image)
    with pytest.raises(ValueError, match="differ in size"):
        similarity.ssim(image, noise(0, n=16))
    with pytest.raises(ValueError, match="batches of 2 and 3"):
        similarity.ssim(np.stack([image] * 2), np.stack([image] * 3))
    with pytest.raises(ValueError, match="at least 7"):
        similarity.ssim(noise(0, n=4), noise(0, n=4))
