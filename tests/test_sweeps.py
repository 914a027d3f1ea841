"""Injection sweeps as batches: pairs files, the sweep job on the organism and on a real architecture's tiny
build, image strips, and the same results on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentkit import tiny
from latentkit.aspects import differing_pairs, run_sweeps
from latentkit.batch import ResultStore, run_batch
from latentkit.models import tiny_sd
from latentkit.paths import data_dir
from latentkit.sweeps import SweepJob, load_strip, read_pairs, sweep_items, write_pairs

needs_organism = pytest.mark.skipif(
    not (data_dir() / tiny_sd.SD_DIR / "model_index.json").exists(), reason="no shipped organism in data/"
)
LAYERS = ["unet.mid_block", "unet.up_blocks.1"]
FAST = {"num_inference_steps": 3}


def test_pairs_files_round_trip_and_bad_files_teach(tmp_path):
    pairs = differing_pairs(3, seed=1)
    assert read_pairs(write_pairs(pairs, tmp_path / "pairs.csv")) == pairs
    (tmp_path / "pairs.tsv").write_text("original\tedit\na dog, running\ta cat\n")
    assert read_pairs(tmp_path / "pairs.tsv") == [("a dog, running", "a cat")]
    (tmp_path / "bad.csv").write_text("o,e\na,b\n")
    with pytest.raises(ValueError, match="columns"):
        read_pairs(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text('original,edit\na dog,""\n')
    with pytest.raises(ValueError, match="empty prompt"):
        read_pairs(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "missing.csv")


def test_items_are_pair_major_with_stable_ids():
    found = sweep_items([("a", "b"), ("c", "d")], seeds=[0, 7])
    assert [i.id for i in found] == [
        "pair0000-seed0000",
        "pair0000-seed0007",
        "pair0001-seed0000",
        "pair0001-seed0007",
    ]
    assert found[3].args == {"pair": 1, "seed": 7, "original": "c", "edit": "d"}
    with pytest.raises(ValueError, match="seeds"):
        sweep_items([("a", "b")], seeds=[])


@needs_organism
def test_organism_sweep_items_are_the_experiment_and_read_by_the_probes(tmp_path):
    pairs = differing_pairs(2, seed=3)
    store = ResultStore(tmp_path / "run")
    job = SweepJob(model="organism", device="cpu", layers=LAYERS, settings=FAST)
    summary = run_batch(sweep_items(pairs, [5]), job, store, progress=False)
    assert summary.ok and len(summary.done) == 2
    table = store.collect()
    assert set(table.reader) == {"probes"} and set(table.layer) == set(LAYERS)
    assert set(table.measure) >= {"shape", "color", "position", "whole", "in_distribution"}
    assert set(table.value.dropna()) <= {0.0, 1.0}

    # the stored strip is the sweep itself: the same images as running the experiment directly
    pipe = tiny_sd.load_organism("cpu")
    run = run_sweeps(pipe, pairs[1:], seeds=[5], layers=LAYERS, **{**tiny_sd.DEFAULTS, **FAST})[0]
    strip = load_strip(store.files / "images" / "pair0001-seed0005.png")
    assert strip.shape == (len(LAYERS) + 2, 64, 64, 3)
    expected = (
        np.concatenate([run.result.original[None], run.result.edit[None], run.result.injected]) * 255
    ).round()
    assert np.abs(strip.astype(float) - expected).max() <= 1
    index = table[table.item == "pair0001-seed0005"].groupby("layer").strip_index.first()
    assert index[LAYERS[1]] == 3


@pytest.mark.parametrize("arch", ["sd1", "sd3"])
def test_real_architecture_folder_is_read_by_the_similarity_suite(arch, tmp_path):
    folder = tiny.save_tiny(arch, tmp_path / arch)
    store = ResultStore(tmp_path / "run")
    job = SweepJob(model=str(folder), device="cpu", settings={"num_inference_steps": 2})  # every layer
    summary = run_batch(
        sweep_items([("a photo of a dog", "a painting of a cat")], [0]), job, store, progress=False
    )
    assert summary.ok, summary.failed
    table = store.collect()
    assert set(table.reader) == {"similarity"}
    assert set(table.measure) == {"ssim", "hue_saturation", "lbp"}
    assert table.value.between(-2, 2).all()


@pytest.mark.slow
@needs_organism
def test_dask_sweep_equals_the_local_one(tmp_path):
    distributed = pytest.importorskip("distributed")
    pairs = differing_pairs(3, seed=4)
    job = SweepJob(model="organism", device="cpu", layers=LAYERS, settings=FAST, images=False)
    local = ResultStore(tmp_path / "local")
    run_batch(sweep_items(pairs, [0]), job, local, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = ResultStore(tmp_path / "dask")
            summary = run_batch(sweep_items(pairs, [0]), job, remote, client=client, progress=False)
    assert summary.ok and len(summary.done) == 3
    key = ["item", "layer", "measure"]
    a = local.collect().sort_values(key).reset_index(drop=True)
    b = remote.collect().sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
