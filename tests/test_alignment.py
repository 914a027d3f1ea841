"""Alignment metrics on cases whose answer is known, and against slow, obvious references."""

import numpy as np
import pytest
import torch

from latentkit.alignment import alignment_matrix, cka, mutual_knn, mutual_knn_chance


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def _rotation(d, rng):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def _slow_mutual_knn(a, b, k):
    def knn(f):
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = f @ f.T
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-row)[:k]) for row in sim]

    return np.mean([len(x & y) / k for x, y in zip(knn(a), knn(b), strict=True)])


def _slow_cka(a, b):
    n = len(a)
    h = np.eye(n) - 1 / n
    k, l_ = a @ a.T, b @ b.T
    hsic = lambda x, y: np.trace(x @ h @ y @ h)  # noqa: E731
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_identical_features_align_perfectly(rng):
    x = rng.normal(size=(200, 32))
    assert mutual_knn(x, x) == pytest.approx(1.0)
    assert cka(x, x) == pytest.approx(1.0)
    assert cka(x, x, unbiased=True) == pytest.approx(1.0)


def test_rotation_and_scale_do_not_change_alignment(rng):
    x = rng.normal(size=(200, 32))
    y = 3.0 * x @ _rotation(32, rng)
    assert mutual_knn(x, y) == pytest.approx(1.0)
    assert cka(x, y) == pytest.approx(1.0)
    assert cka(x, y, unbiased=True) == pytest.approx(1.0)


def test_independent_features_sit_at_chance(rng):
    x, y = rng.normal(size=(500, 64)), rng.normal(size=(500, 64))
    chance = mutual_knn_chance(500, k=10)
    assert abs(mutual_knn(x, y, k=10) - chance) < 0.02
    assert abs(cka(x, y, unbiased=True)) < 0.03
    assert cka(x, y) < 0.2  # the biased form drifts up with width / N; still far from 1


def test_partial_relation_lies_between(rng):
    x = rng.normal(size=(300, 16))
    y = x + 1.5 * rng.normal(size=(300, 16))
    assert 0.1 < cka(x, y, unbiased=True) < 0.9
    assert mutual_knn_chance(300) < mutual_knn(x, y) < 1


def test_match_slow_references(rng):
    x = rng.normal(size=(60, 12))
    y = np.tanh(x @ rng.normal(size=(12, 20))) + 0.3 * rng.normal(size=(60, 20))
    assert cka(x, y) == pytest.approx(_slow_cka(x, y), rel=1e-9)
    wide_x, wide_y = rng.normal(size=(20, 300)), rng.normal(size=(20, 50))  # D >> N: the Gram form
    wide_y[:, :10] += wide_x[:, :10]
    assert cka(wide_x, wide_y) == pytest.approx(_slow_cka(wide_x, wide_y), rel=1e-9)
    for k in (1, 5, 10):
        assert mutual_knn(x, y, k=k) == pytest.approx(_slow_mutual_knn(x, y, k))


def test_spatial_activations_are_flattened(rng):
    act = rng.normal(size=(50, 4, 3, 3))  # (N, C, H, W), like a U-Net layer
    assert cka(act, act.reshape(50, -1)) == pytest.approx(1.0)


def test_alignment_matrix(rng):
    x = rng.normal(size=(80, 8))
    feats = {"a": x, "b": x @ _rotation(8, rng), "c": rng.normal(size=(80, 8))}
    m = alignment_matrix(feats, feats, metric="cka")
    assert list(m.index) == list(m.columns) == ["a", "b", "c"]
    assert np.allclose(np.diag(m), 1) and m.loc["a", "b"] == pytest.approx(1)
    assert m.loc["a", "c"] < 0.5
    with pytest.raises(ValueError, match="unknown metric"):
        alignment_matrix(feats, feats, metric="cosine")


def test_bad_input_gets_clear_errors(rng):
    x = rng.normal(size=(20, 4))
    with pytest.raises(ValueError, match="same inputs"):
        cka(x, x[:10])
    with pytest.raises(ValueError, match="k must be"):
        mutual_knn(x, x, k=20)
    with pytest.raises(ValueError, match=r"shape \(N, \.\.\.\)"):
        cka(np.ones(5), np.ones(5))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mutual_knn(bad, x)
    with pytest.raises(ValueError, match="constant"):
        cka(np.ones((10, 3)), x[:10])


@pytest.mark.parametrize("arch", ["sd1", "sd3"])
def test_layer_activations_record_every_layer_per_input_and_leave_no_hook(arch, hooks_left):
    from latentkit import tiny
    from latentkit.alignment import layer_activations
    from latentkit.layers import layer_names

    pipe = tiny.build(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=3)
    o, e = tiny.example_pair(arch)
    rows = [{"prompt": o["prompt"], "seed": 0}, {"prompt": e["prompt"], "seed": 1}]
    acts = layer_activations(pipe, rows, steps=[2, 0], **kwargs)
    assert list(acts) == layer_names(pipe)
    assert all(act.shape[:2] == (2, 2) for act in acts.values())  # (inputs, steps, ...)
    assert hooks_left(pipe) == []
    # one input alone gives its own row of the batch (the conditional pass, at the same steps)
    alone = layer_activations(pipe, rows[1:], steps=[2, 0], **kwargs)
    for name, act in alone.items():
        assert torch.allclose(act[0], acts[name][1], atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="not run"):
        layer_activations(pipe, rows, steps=[5], **kwargs)
