"""latentkit.reuse: a result is loaded only when every input and the code are the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from latentkit import aspects, properties, reuse, tiny
from latentkit.probes import load_probes
from latentkit.spaces import FactorSpace, GaussianSpace, autoencoder_space


@pytest.fixture(autouse=True)
def _own_store(tmp_path, monkeypatch):
    monkeypatch.setenv(reuse.REUSE_DIR_ENV, str(tmp_path / "reuse"))
    monkeypatch.delenv(reuse.REUSE_ENV, raising=False)


class Counter:
    def __init__(self, value=42):
        self.calls, self.value = 0, value

    def __call__(self):
        self.calls += 1
        return {"value": self.value, "array": np.arange(3)}


def test_same_inputs_load_the_stored_result_and_other_inputs_compute():
    compute = Counter()
    first = reuse.reused("thing", compute, n=3, seed=0)
    again = reuse.reused("thing", compute, n=3, seed=0)
    assert compute.calls == 1 and again["value"] == 42 and np.array_equal(again["array"], first["array"])
    reuse.reused("thing", compute, n=3, seed=1)
    reuse.reused("thing", compute, n=3.0, seed=0)  # 3.0 is not 3: another input
    reuse.reused("other thing", compute, n=3, seed=0)
    assert compute.calls == 4
    assert len(list(reuse.store_dir().glob("*.pkl"))) == 4


def test_a_change_in_the_code_computes_again(monkeypatch):
    compute = Counter()
    reuse.reused("thing", compute, n=1)
    monkeypatch.setattr(reuse, "code_version", lambda: "another version")
    reuse.reused("thing", compute, n=1)
    assert compute.calls == 2


def test_reuse_off_computes_every_time_and_stores_nothing(monkeypatch):
    monkeypatch.setenv(reuse.REUSE_ENV, "0")
    compute = Counter()
    reuse.reused("thing", compute, n=1)
    reuse.reused("thing", compute, n=1)
    assert compute.calls == 2 and not reuse.store_dir().exists()


def test_an_input_without_a_fingerprint_is_never_stored():
    space = GaussianSpace("by hand", decoder=lambda z: torch.zeros(len(z), 3, 8, 8), mean=torch.zeros(2))
    with pytest.raises(reuse.Unfingerprintable):
        reuse.fingerprint(space)
    compute = Counter()
    reuse.reused("thing", compute, space=space)
    reuse.reused("thing", compute, space=space)
    assert compute.calls == 2 and not reuse.store_dir().exists()
    with pytest.raises(reuse.Unfingerprintable):
        reuse.fingerprint(torch.empty(3, device="meta"))


def test_a_damaged_file_is_computed_again_and_replaced():
    compute = Counter()
    reuse.reused("thing", compute, n=1)
    (path,) = reuse.store_dir().glob("*.pkl")
    path.write_bytes(b"not a pickle")
    assert reuse.reused("thing", compute, n=1)["value"] == 42 and compute.calls == 2
    assert reuse.reused("thing", compute, n=1)["value"] == 42 and compute.calls == 2


def test_models_are_fingerprinted_by_their_weights():
    torch.manual_seed(0)
    a = nn.Linear(3, 2)
    b = nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert reuse.fingerprint(a) == reuse.fingerprint(b)
    with torch.no_grad():
        b.weight[0, 0] += 1e-3
    assert reuse.fingerprint(a) != reuse.fingerprint(b)
    assert reuse.fingerprint(torch.zeros(2)) != reuse.fingerprint(torch.zeros(2, dtype=torch.float64))


def test_spaces_are_fingerprinted_by_the_models_behind_them():
    from latentkit.models.autoencoder import load_autoencoder

    three, sixteen = load_autoencoder("cpu"), load_autoencoder("cpu", fitted=True)
    assert reuse.fingerprint(autoencoder_space(three)) == reuse.fingerprint(
        autoencoder_space(load_autoencoder())
    )
    assert reuse.fingerprint(autoencoder_space(three)) != reuse.fingerprint(autoencoder_space(sixteen))
    assert reuse.fingerprint(FactorSpace()) == reuse.fingerprint(FactorSpace())


def test_measure_all_reuses_its_results(monkeypatch):
    probes, space = load_probes("cpu"), FactorSpace()
    first = properties.measure_all(space, probes, seed=0, n=16, reuse=True)

    def fail(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(properties, "density", fail)
    again = properties.measure_all(space, probes, seed=0, n=16, reuse=True)
    assert [str(r) for r in again] == [str(r) for r in first]
    with pytest.raises(AssertionError, match="computed again"):
        properties.measure_all(space, probes, seed=1, n=16, reuse=True)


def test_run_sweeps_reuses_the_same_pipeline_and_settings(monkeypatch):
    pipe = tiny.tiny_sd1()
    pairs = [("a red circle", "a blue square")]
    settings = {"num_inference_steps": 2, "guidance_scale": 1.0, "height": 32, "width": 32}
    layers = ["unet.mid_block.resnets.0", "unet.up_blocks.0.resnets.0"]
    first = aspects.run_sweeps(pipe, pairs, layers=layers, reuse=True, **settings)
    calls = []
    real_sweep = aspects.sweep
    monkeypatch.setattr(aspects, "sweep", lambda *a, **k: calls.append(1) or real_sweep(*a, **k))
    again = aspects.run_sweeps(pipe, pairs, layers=layers, reuse=True, **settings)
    assert not calls and np.array_equal(again[0].result.injected, first[0].result.injected)
    aspects.run_sweeps(pipe, pairs, layers=layers, reuse=True, **{**settings, "num_inference_steps": 3})
    aspects.run_sweeps(pipe, pairs, layers=layers, reuse=True, noise="separate", **settings)
    other = tiny.tiny_sd1(seed=1)  # other weights
    aspects.run_sweeps(other, pairs, layers=layers, reuse=True, **settings)
    assert len(calls) == 3
