"""Measuring an injection sweep: constructed sweeps with a known answer, the summary statistics, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentkit import aspects, layers, tiny
from latentkit.injection import SweepResult
from latentkit.probes import load_probes
from latentkit.world import ASPECTS, FACTORS, HELD_OUT, Factors, World, parse_caption


@pytest.fixture(scope="module")
def probes():
    return load_probes("cpu")


WORLD = World(64)
#: The constructed "layers": each injects exactly one aspect of E (or all of E, or nothing).
SWAPS = {"layer.structure": ASPECTS["structure"], "layer.content": ASPECTS["content"]}
SWAPS |= {"layer.surface": ASPECTS["surface"], "layer.everything": tuple(FACTORS), "layer.nothing": ()}


def render(names: dict[str, str]) -> np.ndarray:
    """(64, 64, 3) float in [0, 1]: the world image of these factor names, object at its cell centre."""
    return WORLD.render(Factors.from_names(**names)).images[0] / 255.0


def constructed_run(pair: int, o_caption: str, e_caption: str, e_image_names=None) -> aspects.Run:
    """A run whose injected images are O with E's factors of one aspect swapped in, per :data:`SWAPS`."""
    o, e = parse_caption(o_caption), parse_caption(e_caption)
    injected = np.stack(
        [render({f: e[f] if f in swapped else o[f] for f in FACTORS}) for swapped in SWAPS.values()]
    )
    result = SweepResult(render(o), render(e_image_names or e), injected, list(SWAPS))
    return aspects.Run(pair, 0, {"prompt": o_caption, "seed": 0}, {"prompt": e_caption, "seed": 1000}, result)


def cell(table: pd.DataFrame, layer: str, aspect: str) -> pd.Series:
    return table[(table.layer == layer) & (table.aspect == aspect)].iloc[0]


# ---------------------------------------------------------------------------------------------------------
# O/E pairs


def test_pairs_differ_in_every_factor_avoid_held_out_and_repeat_with_the_seed():
    pairs = aspects.differing_pairs(40, seed=3)
    assert pairs == aspects.differing_pairs(40, seed=3)
    assert pairs != aspects.differing_pairs(40, seed=4)
    for o_caption, e_caption in pairs:
        o, e = parse_caption(o_caption), parse_caption(e_caption)
        assert all(o[f] != e[f] for f in FACTORS)
        assert (o["shape"], o["color"]) not in HELD_OUT and (e["shape"], e["color"]) not in HELD_OUT


@pytest.mark.parametrize("bad", [{"n": 0}, {"n": 2.5}, {"n": 3, "split": "heldout"}])
def test_bad_pair_requests_are_refused(bad):
    with pytest.raises(ValueError, match="n must be|split must be"):
        aspects.differing_pairs(**bad)


# ---------------------------------------------------------------------------------------------------------
# Probes: the constructed sweep


@pytest.fixture(scope="module")
def constructed(probes):
    runs = [constructed_run(i, o, e) for i, (o, e) in enumerate(aspects.differing_pairs(4, seed=0))]
    reading = aspects.read_with_probes(probes, runs)
    return reading, aspects.aspect_table(reading.observations, n_boot=200)


def test_each_constructed_layer_moves_exactly_its_aspect(constructed):
    reading, table = constructed
    assert list(table.columns) == ["layer", "group", "depth", "aspect", "mean", "ci_low", "ci_high", "n"]
    assert list(table.layer.drop_duplicates()) == list(SWAPS)
    for layer, swapped in SWAPS.items():
        for aspect, factors in ASPECTS.items():
            expected = float(set(factors) <= set(swapped))
            assert cell(table, layer, aspect)["mean"] == pytest.approx(expected, abs=0.1), (layer, aspect)
        assert cell(table, layer, "all")["mean"] == pytest.approx(len(swapped) / len(FACTORS), abs=0.1)
        assert cell(table, layer, "in_distribution")["mean"] == 1.0  # every render is a valid world image
    assert cell(table, "layer.everything", "whole")["mean"] >= 0.9
    assert cell(table, "layer.surface", "whole")["mean"] == 0.0
    assert (table.n == 4).all()  # one value per pair
    assert (table.ci_low <= table["mean"]).all() and (table["mean"] <= table.ci_high).all()


def test_split_relevance_of_the_constructed_layers(constructed):
    _, table = constructed
    answer = aspects.split_relevance(table)
    assert answer.specialised == {a: [f"layer.{a}"] for a in ASPECTS}
    assert answer.split and answer.single_layer_decides  # layer.everything is E itself
    assert answer.most_whole[0] == answer.most_factors[0] == "layer.everything"
    without = table[table.layer != "layer.everything"]
    answer = aspects.split_relevance(without)
    assert answer.split and not answer.single_layer_decides
    assert "a single layer decides the whole image: False" in str(answer)
    with pytest.raises(ValueError, match="low < high"):
        aspects.split_relevance(table, high=0.2, low=0.3)


def test_the_probes_read_clean_renders_as_prompted(constructed):
    reading, _ = constructed
    assert reading.agreement.index.tolist() == [*FACTORS, "in_distribution"]
    assert (reading.agreement[["O", "E", "both"]] >= 0.75).all().all()  # 4 pairs: at most one misread
    assert (reading.agreement.loc[list(FACTORS), "differ"] >= 0.75).all()  # the pairs differ everywhere
    assert set(reading.observations.measure) == {*FACTORS, "whole", "in_distribution"}


def test_a_factor_that_e_does_not_show_is_not_counted(probes):
    o_caption, e_caption = aspects.differing_pairs(1, seed=1)[0]
    o, e = parse_caption(o_caption), parse_caption(e_caption)
    drawn = {**e, "shape": o["shape"]}  # E's image shows O's shape: its prompt is not what it shows
    reading = aspects.read_with_probes(probes, [constructed_run(0, o_caption, e_caption, drawn)])
    assert reading.agreement.loc["shape", "E"] == 0.0
    assert reading.agreement.loc["shape", "both"] == 0.0
    shape = reading.observations[reading.observations.measure == "shape"]
    assert shape.value.isna().all()
    table = aspects.aspect_table(reading.observations, n_boot=10)
    content = table[table.aspect == "content"]
    assert (content.n == 0).all() and content["mean"].isna().all()
    assert cell(table, "layer.surface", "surface")["mean"] == pytest.approx(1.0)
    assert (table[table.aspect == "whole"].n == 0).all()  # "whole" needs all six factors counted
    answer = aspects.split_relevance(table)
    assert answer.best["content"][0] == "-" and answer.unmeasured == ["content"]
    assert answer.specialised["structure"] == ["layer.structure"]  # content cannot be checked: left out
    assert answer.split and answer.single_layer_decides is None
    assert "content    -                    -   not measured" in str(answer)


def test_count_read_counts_factors_read_differently_whatever_the_prompts(probes):
    o_caption, e_caption = aspects.differing_pairs(1, seed=1)[0]
    o, e = parse_caption(o_caption), parse_caption(e_caption)
    third = next(s for s in FACTORS["shape"] if s not in (o["shape"], e["shape"]))
    run = constructed_run(0, o_caption, e_caption, {**e, "shape": third})  # E shows a third shape
    strict = aspects.read_with_probes(probes, [run])
    loose = aspects.read_with_probes(probes, [run], count="read")
    assert strict.agreement.loc["shape", "both"] == 0.0 and loose.agreement.loc["shape", "differ"] == 1.0
    shape = loose.observations[loose.observations.measure == "shape"].set_index("layer").value
    assert shape.notna().all()
    assert shape["layer.nothing"] == 0.0 and shape["layer.content"] == 0.0  # E's prompted shape != E's image
    with pytest.raises(ValueError, match="count must be"):
        aspects.read_with_probes(probes, [run], count="all")


def test_probes_need_captions(probes):
    run = constructed_run(0, *aspects.differing_pairs(1)[0])
    run.original = {"prompt_embeds": torch.zeros(1, 4, 8), "seed": 0}
    with pytest.raises(ValueError, match="no caption.*read_with_similarity"):
        aspects.read_with_probes(probes, [run])
    with pytest.raises(ValueError, match="no runs"):
        aspects.read_with_probes(probes, [])


# ---------------------------------------------------------------------------------------------------------
# Similarity suite (no probes)


def test_similarity_credits_only_what_the_injection_added():
    runs = [constructed_run(i, o, e) for i, (o, e) in enumerate(aspects.differing_pairs(2, seed=5))]
    observations = aspects.read_with_similarity(runs)
    table = aspects.aspect_table(observations, n_boot=50)
    assert list(table.aspect.drop_duplicates()) == list(aspects.SIMILARITY_ASPECTS)
    nothing = table[table.layer == "layer.nothing"]
    assert np.allclose(nothing[["mean", "ci_low", "ci_high"]], 0.0)  # O_L == O: nothing added
    assert (table[table.layer == "layer.everything"]["mean"] > 0.05).all()  # O_L == E: all measures gain
    # the surface swap changes every colour: colour similarity gains more than SSIM
    surface = table[table.layer == "layer.surface"].set_index("aspect")["mean"]
    assert surface["color"] > surface["structure"]


# ---------------------------------------------------------------------------------------------------------
# The summary's statistics


def observations(values: dict[tuple[int, int], float], measure: str = "lbp") -> pd.DataFrame:
    rows = [(pair, seed, "unet.mid_block.resnets.0", measure, v) for (pair, seed), v in values.items()]
    return pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])


def test_seeds_are_averaged_within_a_pair_and_pairs_are_resampled():
    table = aspects.aspect_table(observations({(0, 0): 0.0, (0, 1): 1.0, (1, 0): 1.0, (2, 0): 1.0}))
    row = table.iloc[0]
    assert row["mean"] == pytest.approx((0.5 + 1 + 1) / 3) and row["n"] == 3
    assert row["group"] == "mid" and row["depth"] == 0
    # all three resampled pairs are pair 0 with probability 1/27 > 2.5%: the interval reaches 0.5
    assert row["ci_low"] == pytest.approx(0.5) and row["ci_high"] == 1.0
    constant = aspects.aspect_table(observations({(p, 0): 0.25 for p in range(5)})).iloc[0]
    assert constant["ci_low"] == constant["ci_high"] == 0.25


def test_split_relevance_needs_probe_shares():
    table = aspects.aspect_table(observations({(0, 0): 0.5}, "ssim"))
    with pytest.raises(ValueError, match="not similarity scores"):
        aspects.split_relevance(table)


def test_layer_metadata_and_grid():
    meta = [layers.Layer("unet.mid_block.resnets.0", "mid", 7, "ResnetBlock2D")]
    table = aspects.aspect_table(observations({(0, 0): 0.5}, "shape"), layers=meta)
    assert list(table.aspect) == ["content", "all"] and (table.depth == 7).all()
    grid = aspects.as_grid(table)
    assert grid.shape == (1, 2) and grid.loc["unet.mid_block.resnets.0", "content"] == 0.5


@pytest.mark.parametrize(
    "frame, kwargs, match",
    [
        (observations({(0, 0): 1.0}).drop(columns="seed"), {}, "lack the columns"),
        (observations({(0, 0): 1.0}).iloc[:0], {}, "empty"),
        (observations({(0, 0): 1.0}, "colour"), {}, "unknown measure 'colour'"),
        (observations({(0, 0): 1.0}), {"level": 95}, "level"),
        (observations({(0, 0): 1.0}), {"layers": []}, "not in `layers`"),
    ],
)
def test_bad_observations_are_refused(frame, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aspects.aspect_table(frame, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Running sweeps on a real (tiny) pipeline


def test_run_sweeps_on_a_tiny_stable_diffusion():
    pipe = tiny.build("sd1")
    names = layers.layer_names(pipe)[:2]
    pairs = aspects.differing_pairs(1, seed=0)
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=2)
    runs = aspects.run_sweeps(pipe, pairs, seeds=[3, 4], layers=names, **kwargs)
    assert [(r.pair, r.seed, r.edit["seed"]) for r in runs] == [(0, 3, 3), (0, 4, 4)]  # shared noise
    assert runs[0].result.injected.shape == (2, 32, 32, 3) and runs[0].original["prompt"] == pairs[0][0]
    table = aspects.aspect_table(
        aspects.read_with_similarity(runs), layers=layers.list_layers(pipe, shapes=False)
    )
    assert list(table.layer.drop_duplicates()) == names and set(table.group) == {"down"}
    with pytest.raises(ValueError, match="run_sweeps sets them"):
        aspects.run_sweeps(pipe, [({"prompt": "a", "seed": 1}, {"prompt": "b", "seed": 2})], **kwargs)
    with pytest.raises(ValueError, match="no O/E pairs"):
        aspects.run_sweeps(pipe, [], **kwargs)


def test_groups_come_from_the_entries_not_from_display_names():
    """A combination's group is found from its tuple of layers: one group when all share it, else ""."""
    o, e = aspects.differing_pairs(1, seed=5)[0]
    entries = [
        ("down_blocks.0.resnets.0",),
        ("up_blocks.1.attentions.0", "up_blocks.2.resnets.1"),
        ("down_blocks.1.resnets.0", "up_blocks.1.resnets.0"),
    ]
    image = render(parse_caption(o))
    result = SweepResult(
        image, render(parse_caption(e)), np.stack([image] * 3), ["first", "second", "third"], entries=entries
    )
    observations = aspects.read_with_similarity([aspects.Run(0, 0, {"prompt": o}, {"prompt": e}, result)])
    table = aspects.aspect_table(observations, n_boot=5)
    groups = table.drop_duplicates("layer").set_index("layer")["group"]
    assert groups.to_dict() == {"first": "down", "second": "up", "third": ""}
