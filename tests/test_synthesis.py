"""The synthesis index on cases whose answer is known: synthetic observations, then the world's renderer
read by the real probes (one space that decides everything; six spaces that decide one factor each)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentkit.paths import data_dir
from latentkit.synthesis import STRICT, input_injection, space_injection, synthesis_index
from latentkit.world import FACTORS, Factors

N_FACTORS = len(FACTORS)

needs_probes = pytest.mark.skipif(
    not (data_dir() / "probes" / "config.json").exists(),
    reason="data/probes/ not exported yet (python -m latentkit.recipes probes)",
)


def observations(decides, n_pairs: int = 12, seeds=(0,), extra: bool = True) -> pd.DataFrame:
    """Observations in read_with_probes' format: ``decides[layer][factor]`` is the value of every run
    (1.0, 0.0 or NaN); factors not named are 0. ``extra`` adds the 'whole' and 'in_distribution' rows
    that read_with_probes writes too (the index must ignore them)."""
    rows = []
    for pair in range(n_pairs):
        for seed in seeds:
            for layer, values in decides.items():
                for f in FACTORS:
                    rows.append((pair, seed, layer, f, values.get(f, 0.0)))
                if extra:
                    rows += [(pair, seed, layer, "whole", 0.0), (pair, seed, layer, "in_distribution", 1.0)]
    return pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])


# -- synthetic observations -----------------------------------------------------------------------------


def test_one_layer_that_decides_every_factor_gives_index_one():
    obs = observations({"a": {}, "b": dict.fromkeys(FACTORS, 1.0), "c": {"shape": 1.0}})
    result = synthesis_index(obs, n_boot=200)
    assert result.index == 1.0 and result.space == "b" and result.strict and result.verdict == "strict"
    assert result.shares.loc["a", "share"] == 0.0
    assert result.shares.loc["c", "share"] == pytest.approx(1 / N_FACTORS)
    assert result.ci == (1.0, 1.0)
    assert list(result.shares.index) == ["a", "b", "c"]  # the observations' order


def test_each_factor_decided_by_another_layer_gives_one_over_n_factors():
    obs = observations({f"layer{i}": {f: 1.0} for i, f in enumerate(FACTORS)})
    result = synthesis_index(obs, n_boot=200)
    np.testing.assert_allclose(result.shares["share"], 1 / N_FACTORS)
    assert result.index == pytest.approx(1 / N_FACTORS)
    assert not result.strict
    decided = result.shares[list(FACTORS)].to_numpy()
    np.testing.assert_array_equal(decided, np.eye(N_FACTORS))  # the diagonal: one factor per layer


def test_shares_average_seeds_within_a_pair_then_pairs():
    # Pair 0: seed 0 moved the shape, seed 1 did not (0.5); pairs 1..3: always (1.0) -> (0.5 + 3) / 4.
    obs = observations({"x": {"shape": 1.0}}, n_pairs=4, seeds=(0, 1))
    obs.loc[(obs.pair == 0) & (obs.seed == 1) & (obs.measure == "shape"), "value"] = 0.0
    result = synthesis_index(obs, n_boot=500)
    assert result.shares.loc["x", "shape"] == pytest.approx(3.5 / 4)
    assert result.shares.loc["x", "share"] == pytest.approx(3.5 / 4 / N_FACTORS)
    low, high = result.ci
    assert low < result.index <= high  # pairs differ, so the interval has width


def test_unmeasured_factors_are_left_out_and_reported():
    # The model never draws the shape recognisably: no pair counts it, for any layer.
    obs = observations({"x": {"shape": np.nan, **{f: 1.0 for f in FACTORS if f != "shape"}}})
    result = synthesis_index(obs, n_boot=100)
    assert result.unmeasured == ["shape"]
    assert result.index == 1.0  # every *measured* factor follows E
    assert result.shares.loc["x", "n_factors"] == N_FACTORS - 1
    assert "not measured" in str(result) and "shape" in str(result)


def test_a_layer_that_moves_factors_half_the_time_is_not_strict():
    obs = observations({"half": dict.fromkeys(FACTORS, 1.0)}, n_pairs=10)
    obs.loc[(obs.pair % 2 == 0) & obs.measure.isin(list(FACTORS)), "value"] = 0.0
    result = synthesis_index(obs, n_boot=200)
    assert result.index == pytest.approx(0.5)
    assert not result.strict and "broad" in str(result)


def test_an_index_whose_interval_straddles_the_threshold_is_undecided():
    obs = observations({"most": dict.fromkeys(FACTORS, 1.0)}, n_pairs=10)
    obs.loc[(obs.pair == 0) & obs.measure.isin(list(FACTORS)), "value"] = 0.0  # 9 of 10 pairs: 0.9
    result = synthesis_index(obs, n_boot=500)
    assert result.index == pytest.approx(0.9) and result.strict  # the point estimate reaches 0.9 ...
    assert result.ci[0] < 0.9 <= result.ci[1] and result.verdict == "undecided"  # ... its interval not
    assert "undecided: the interval straddles" in str(result)


def test_errors_say_what_to_pass():
    with pytest.raises(ValueError, match="read_with_probes"):
        synthesis_index(pd.DataFrame({"layer": ["a"], "value": [1.0]}))
    similarity = pd.DataFrame(
        [(0, 0, "a", "ssim", 0.3)], columns=["pair", "seed", "layer", "measure", "value"]
    )
    with pytest.raises(ValueError, match="not similarity"):
        synthesis_index(similarity)
    nothing = synthesis_index(observations({"a": dict.fromkeys(FACTORS, np.nan)}))  # e.g. no valid image
    assert np.isnan(nothing.index) and nothing.verdict == "undetermined" and not nothing.strict


# -- the world's renderer, read by the probes -----------------------------------------------------------


@pytest.fixture(scope="module")
def probes():
    from latentkit.probes import load_probes

    return load_probes()


@needs_probes
def test_a_bottleneck_whose_decoder_renders_the_factors_is_strict(probes):
    from latentkit.spaces import FactorSpace

    obs = space_injection(FactorSpace(), probes, n=96, seed=0)
    result = synthesis_index(obs, n_boot=200)
    assert result.space == FactorSpace.name
    assert result.index >= 0.95 and result.strict  # 1 up to the probes' misreadings
    assert result.unmeasured == []


@needs_probes
def test_six_inputs_that_each_render_one_factor_split_the_work(probes):
    from latentkit.world import World

    world = World(64)

    def label_sampler(k: int):
        return lambda n, gen: torch.randint(0, k, (n,), generator=gen)

    def render(inputs):
        n = len(next(iter(inputs.values())))
        labels = {f: inputs[f].numpy() for f in FACTORS}
        return world.render(Factors(**labels, jitter=np.zeros((n, 2), np.float32))).images

    samplers = {f: label_sampler(len(values)) for f, values in FACTORS.items()}
    result = synthesis_index(input_injection(render, samplers, probes, n=96, seed=1), n_boot=200)
    decided = result.shares[list(FACTORS)].to_numpy()  # (inputs, factors), both in FACTORS order
    assert np.diag(decided).min() >= 0.9  # each input decides its own factor ...
    assert (decided - np.diag(np.diag(decided))).max() <= 0.1  # ... and no other
    assert result.index == pytest.approx(1 / N_FACTORS, abs=0.03)
    assert not result.strict and STRICT > 2 / N_FACTORS


# -- a diffusion pipeline's inputs, injected like its layers (tiny builds: plumbing only) ----------------


@pytest.mark.parametrize("arch", ["sd1", "sd3"])
def test_input_injection_adds_noise_and_prompt_images_that_match_plain_generations(arch, hooks_left):
    from latentkit import tiny
    from latentkit.aspects import run_sweeps
    from latentkit.layers import layer_names
    from latentkit.run import generate
    from latentkit.synthesis import INPUTS, add_input_injection

    pipe = tiny.build(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=2)
    (o, e) = (side["prompt"] for side in tiny.example_pair(arch))
    runs = run_sweeps(pipe, [(o, e)], seeds=[3], layers=layer_names(pipe)[:1], **kwargs)
    added = add_input_injection(pipe, runs, **kwargs)
    assert runs[0].result.names == layer_names(pipe)[:1]  # the given runs are left as they were
    result = added[0].result
    assert result.names == [*layer_names(pipe)[:1], *INPUTS] and len(result.injected) == 3
    noise_ref, _ = generate(pipe, [{"prompt": o, "seed": added[0].edit["seed"]}], **kwargs)
    prompt_ref, _ = generate(pipe, [{"prompt": e, "seed": 3}], **kwargs)
    assert np.abs(result.injected[1] - noise_ref[0]).max() <= 1e-3  # O's prompt from E's noise
    assert np.abs(result.injected[2] - prompt_ref[0]).max() <= 1e-3  # E's prompt from O's noise
    assert hooks_left(pipe) == []
