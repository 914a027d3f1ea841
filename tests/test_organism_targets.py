"""The strict-sense organisms against the targets of issue 12, as ``benchmarks/bench_organism_quality.py``
measures them (:mod:`latentkit.quality`, 512 held-out images, 1,024 GAN samples).

A strict expected-failure ratchet: every target the shipped weights do not reach yet is listed in
:data:`SHORTFALLS` with what they reach; once retraining meets it, its test passes unexpectedly and fails,
so the list can only shrink. Beside them, the one diffusion target that needs no generated images: the
shared codec's round trip. Slow (about five minutes): ``make test`` runs it, ``make test-fast`` does not.
"""

from __future__ import annotations

import json

import pytest

from latentkit import quality
from latentkit.paths import data_dir

_FITTED = data_dir() / "autoencoder-fitted" / "config.json"
#: The fitted autoencoder's name in the quality rows (its width is the recipe's choice).
FITTED = f"autoencoder ({json.loads(_FITTED.read_text())['latent_dim']} neurons)" if _FITTED.exists() else "-"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(
            (data_dir() / d / "config.json").exists()
            for d in ("autoencoder", "autoencoder-fitted", "vae", "gan", "probes")
        ),
        reason="a shipped strict-sense organism is missing (python -m latentkit.recipes autoencoder|vae|gan)",
    ),
]

#: (organism, measure) -> what the shipped weights reach. Strict expected failures.
SHORTFALLS = {
    (
        "autoencoder (3 neurons)",
        "held-out reconstructions valid",
    ): "Fig. 2's picture: three neurons are too few",
    ("autoencoder (3 neurons)", "shape read back from reconstructions"): "three neurons are too few",
    ("autoencoder (3 neurons)", "size read back from reconstructions"): "three neurons are too few",
    (
        "autoencoder (3 neurons)",
        "color read back from reconstructions",
    ): "0.92 against 0.95 x the codec's 1.00",
    (
        "autoencoder (3 neurons)",
        "texture read back from reconstructions",
    ): "0.58: the weighted loss trades it",
    ("VAE", "density: samples of the prior valid"): "0.34 through its second stage against 0.70",
    ("GAN", "density: samples valid"): "far below 0.80",
    ("GAN", "improved precision (k=3, probe features)"): "0.60 against 0.80",
    ("GAN", "improved recall (k=3, probe features)"): "0.19 against 0.60",
    ("GAN", "rarest factor value / uniform share (1024 samples)"): "0.07 (striped) against 0.50",
}


@pytest.fixture(scope="module")
def rows():
    from latentkit.probes import load_probes

    probes = load_probes()
    found = []
    for part in ("autoencoder", "autoencoder-fitted", "vae", "gan"):  # the benchmark's strict parts
        found += quality.PARTS[part](probes=probes)
    return {(_short(r.organism), r.measure): r for r in found if r.target is not None}


def _short(organism: str) -> str:
    """``"VAE (10 dims, beta 4)"`` -> ``"VAE"``, ``"GAN (z 32 dims)"`` -> ``"GAN"``; autoencoders keep
    their width."""
    return organism if organism.startswith("autoencoder") else organism.split(" (")[0]


def _params():
    names = [
        *(("autoencoder (3 neurons)", m) for m in quality.AUTOENCODER_MEASURES),
        *((FITTED, m) for m in quality.AUTOENCODER_MEASURES),
        ("VAE", "held-out reconstructions valid"),
        ("VAE", "density: samples of the prior valid"),
        ("GAN", "density: samples valid"),
        ("GAN", "rarest factor value / uniform share (1024 samples)"),
        ("GAN", "improved precision (k=3, probe features)"),
        ("GAN", "improved recall (k=3, probe features)"),
    ]
    return [
        pytest.param(
            *key, marks=[pytest.mark.xfail(strict=True, reason=SHORTFALLS[key])] if key in SHORTFALLS else []
        )
        for key in names
    ]


@pytest.mark.parametrize("organism, measure", _params())
def test_strict_organism_targets(rows, organism, measure):
    assert (organism, measure) in rows, f"no row {measure!r} for {organism}: measured {sorted(rows)}"
    row = rows[organism, measure]
    assert row.met, f"{organism}: {measure} {row.value:.3f} below its target {row.target:.3f}"


def test_the_codec_round_trip_keeps_the_shape_of_held_out_pairs():
    """The diffusion organisms' VAE (the codec every organism draws through): the shape of the benchmark's
    512 held-out renders (seed 0) read back after its round trip, >= DIFFUSION_VAE_SHAPE (met since the
    decoder's third fine-tuning stage: 0.953). The other diffusion targets need 512 generated images per
    organism (minutes): the benchmark measures them."""
    import numpy as np

    from latentkit.models.codec import load_codec
    from latentkit.models.tiny_sd import vae_round_trip
    from latentkit.probes import load_probes
    from latentkit.world import World

    batch = World(64).sample(512, seed=0, split="heldout")
    recon = vae_round_trip(load_codec().vae, batch.images)
    shape = float(np.mean(load_probes().read(recon).agreement(batch.factors)["shape"]))
    assert shape >= quality.DIFFUSION_VAE_SHAPE, f"round trip shape {shape:.3f}"
