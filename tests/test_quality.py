"""latentkit.quality: precision and recall on known answers, well-formed target rows on the shipped weights.

No quality number is asserted here (the benchmark measures them, at full size); only that every row is
well formed and its ``met`` agrees with its value and target.
"""

import math

import numpy as np
import pytest

from latentkit import quality
from latentkit.world import FACTORS

# ---------------------------------------------------------------------------------------------------------
# Improved precision and recall


@pytest.fixture
def cloud():
    return np.random.default_rng(0).normal(size=(120, 8))


def test_identical_sets_are_precise_and_complete(cloud):
    assert quality.precision_recall(cloud, cloud.copy()) == (1.0, 1.0)


def test_far_apart_sets_have_neither(cloud):
    assert quality.precision_recall(cloud, cloud + 1000.0) == (0.0, 0.0)


def test_a_subset_is_precise_but_incomplete():
    rng = np.random.default_rng(1)
    near, far = rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 50.0
    real = np.concatenate([near, far])
    precision, recall = quality.precision_recall(real, near[:60])
    assert precision == 1.0
    assert recall < 1.0
    assert recall <= 0.5  # the far cluster is out of reach, and so are some of the near points


def test_radii_are_the_kth_neighbour_excluding_the_point_itself():
    points = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert quality.knn_radii(points, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert quality.knn_radii(points, k=3).tolist() == [7.0, 6.0, 4.0, 7.0]


def test_in_manifold_uses_the_reference_balls():
    reference = np.array([[0.0], [1.0], [3.0], [7.0]])  # k=1 radii 1, 1, 2, 4
    query = np.array([[-1.0], [-1.5], [5.0], [11.0], [11.5]])
    assert quality.in_manifold(reference, query, k=1).tolist() == [True, False, True, True, False]


@pytest.mark.parametrize(
    "real, fake, k, match",
    [
        (np.zeros((3, 2)), np.zeros((5, 2)), 3, "k must be an integer in 1..2"),
        (np.zeros((5, 2)), np.zeros((5, 3)), 3, "differ in size"),
        (np.zeros(5), np.zeros((5, 2)), 3, r"\(N, D\)"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), 3, "NaN"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 0, "k must be"),
    ],
)
def test_precision_recall_rejects_bad_inputs(real, fake, k, match):
    with pytest.raises(ValueError, match=match):
        quality.precision_recall(real, fake, k=k)


# ---------------------------------------------------------------------------------------------------------
# Intervals and rows


def test_wilson_interval():
    low, high = quality.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert quality.wilson_interval(0, 10)[0] == 0.0 and quality.wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="n >= 1"):
        quality.wilson_interval(0, 0)


def test_a_nan_is_never_reported():
    with pytest.raises(ValueError, match="NaN"):
        quality._row("model", "measure", float("nan"), 0.5)


def test_format_table_has_every_row():
    rows = [quality._row("m", "a share", 0.4, 0.5, (0.3, 0.5)), quality._row("m", "a ceiling", 0.9)]
    table = quality.format_table(rows)
    assert "0.400 [0.300, 0.500]" in table and ">= 0.500" in table and "NO" in table
    assert len(table.splitlines()) == 2 + len(rows)


def check_rows(rows, n_expected: int) -> None:
    """Every row well formed, and ``met`` exactly ``value >= target``."""
    assert len(rows) == n_expected
    for row in rows:
        assert isinstance(row, quality.Row)
        organism, measure, value, target, met = row[:5]
        assert organism and measure
        assert math.isfinite(value)
        if target is None:
            assert met is None
        else:
            assert met is (value >= target)
        if row.interval is not None:
            low, high = row.interval
            assert low <= value <= high


@pytest.fixture(scope="module")
def probes():
    from latentkit.probes import load_probes

    return load_probes()


def test_factor_coverage_of_real_renders(probes):
    batch = quality.real_images(64, seed=3)
    ratio, (low, high), rarest = quality.factor_coverage(probes.read(batch.images))
    assert 0 <= low <= ratio <= high
    assert rarest.split("=")[0] in FACTORS


def test_autoencoder_rows(probes):
    rows = quality.autoencoder_quality(probes=probes, n=16)
    check_rows(rows, 1 + len(FACTORS) + 2)
    assert {r.measure.split(" read back")[0] for r in rows[1:7]} == set(FACTORS)


def test_vae_rows_with_and_without_a_second_stage(probes):
    from latentkit.models.vae import SecondStage, load_vae

    vae = load_vae()
    second = vae.second_stage or SecondStage(vae.latent_dim, hidden=8).eval()
    vae.second_stage = second
    rows = quality.vae_quality(vae, probes=probes, n=16)
    check_rows(rows, 4)
    assert rows[-1].measure == "first stage alone: N(0, I) on z valid" and rows[-1].target is None
    vae.second_stage = None  # the prior N(0, I) on z itself: no comparison row
    check_rows(quality.vae_quality(vae, probes=probes, n=16), 3)


def test_gan_rows(probes):
    rows = quality.gan_quality(probes=probes, n=16)
    check_rows(rows, 6)
    assert [r.measure for r in rows[1:3]] == [
        "ceiling: its autoencoder's reconstructions valid",
        "ceiling: codec round trip valid",
    ]
    assert [r.measure.split()[1] for r in rows[-2:]] == ["precision", "recall"]


@pytest.mark.parametrize("organism", ["organism", "organism-sd3"])
def test_diffusion_rows(probes, organism):
    check_rows(quality.diffusion_quality(organism, probes=probes, n=4), 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Did you mean 'organism-sd3'"):
        quality.diffusion_quality("organism_sd3")
    with pytest.raises(ValueError, match="n must be an integer >= 4"):
        quality.gan_quality(n=3)
    with pytest.raises(ValueError, match="seed must be"):
        quality.vae_quality(seed=-1)
