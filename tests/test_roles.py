"""Roles from valid images only, with intervals, ties and place comparisons (known answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentkit import roles
from latentkit.layers import Layer
from latentkit.world import ASPECTS, FACTORS


def layers_of(n: int, prefix: str = "unet.x") -> list[Layer]:
    return [Layer(f"{prefix}.{i}", "up", i, "ResnetBlock2D") for i in range(n)]


def observations(spec: dict[str, dict], pairs: int = 12) -> pd.DataFrame:
    """``spec``: layer -> {"takes": aspects always taken, "valid": share of valid pairs,
    "half": aspects taken in every other pair}."""
    rows = []
    for name, s in spec.items():
        for p in range(pairs):
            valid = p < round(s.get("valid", 1.0) * pairs)
            for aspect, factors in ASPECTS.items():
                took = aspect in s.get("takes", ()) or (aspect in s.get("half", ()) and p % 2 == 0)
                rows += [(p, 0, name, f, float(took)) for f in factors]
            rows.append((p, 0, name, "whole", np.nan))
            rows.append((p, 0, name, "in_distribution", float(valid)))
    return pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])


def test_roles_are_read_from_valid_images_with_intervals():
    layers = layers_of(5)
    obs = observations(
        {
            "unet.x.0": {"takes": ["structure"]},
            "unet.x.1": {"takes": ["content"], "valid": 0.25},  # 3 valid of 12: too few
            "unet.x.2": {"half": ["content"]},  # 0.5 with an interval around it
            "unet.x.3": {"takes": ["structure", "surface"]},
            "unet.x.4": {"takes": []},
        }
    )
    table = roles.role_table(obs, layers)
    assert table.loc["unet.x.0", "role"] == "structure"
    assert table.loc["unet.x.1", "role"] == "undetermined"
    assert np.isnan(table.loc["unet.x.1", "content"])  # never 0 or 1 from broken images
    assert table.loc["unet.x.1", ["valid", "runs"]].tolist() == [3, 12]
    assert table.loc["unet.x.2", "role"] == "undecided"
    assert table.loc["unet.x.2", "content_low"] < roles.HIGH < table.loc["unet.x.2", "content_high"]
    assert table.loc["unet.x.3", "role"] == "mixed"
    assert table.loc["unet.x.4", "role"] == "weak"
    assert table["depth"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    judged = roles.role_table(obs, layers, only={"unet.x.0", "unet.x.4"})  # e.g. without trivial layers
    assert judged.index.tolist() == ["unet.x.0", "unet.x.4"] and judged["depth"].tolist() == [0, 1.0]


def test_an_invalid_run_does_not_count_even_when_it_took_e():
    obs = observations({"unet.x.0": {"takes": ["content"], "valid": 0.5}})
    filtered = roles.valid_only(obs)
    factor_rows = filtered[filtered.measure.isin(list(FACTORS))]
    assert factor_rows[factor_rows.pair >= 6]["value"].isna().all()
    assert (factor_rows[factor_rows.pair < 6]["value"].dropna().isin([0.0, 1.0])).all()
    assert roles.role_table(obs, layers_of(1)).loc["unet.x.0", "valid_share"] == 0.5


def test_ties_are_reported_as_ties():
    obs = observations({"unet.x.0": {"takes": ["structure"]}, "unet.x.2": {"takes": ["structure"]}})
    own = roles.own_layer(roles.role_table(obs, layers_of(3)), "structure")
    assert own.tie and own.layers == ["unet.x.0", "unet.x.2"] and own.depth == 0.5


def test_places_differ_only_when_the_interval_says_so():
    a, b = layers_of(5, "unet.a"), layers_of(5, "unet.b")
    early = observations({"unet.a.0": {"takes": ["content"]}})
    late = observations({"unet.b.4": {"takes": ["content"]}})
    far = roles.compare_places(early, a[:1], late, b, "content", n_boot=20)
    assert far.gap == 1.0 and far.verdict == "different place" and "gap 1.00" in str(far)
    near = roles.compare_places(
        early, a[:1], observations({"unet.b.0": {"takes": ["content"]}}), b, "content"
    )
    assert near.verdict == "same place"
    none = roles.compare_places(early, a[:1], late, b, "surface", n_boot=5)
    assert none.verdict == "not placed"
    with pytest.raises(ValueError, match="aspect must be one of"):
        roles.compare_places(early, a[:1], late, b, "colour")


def test_same_role_pairs_align_more_when_they_do():
    names_a, names_b = ["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]
    ra = dict(zip(names_a, ["structure", "content", "surface", "weak"], strict=True))
    rb = dict(zip(names_b, ["content", "structure", "weak", "surface"], strict=True))
    values = np.full((4, 4), 0.2)
    values[0, 1] = values[1, 0] = values[2, 3] = 0.9
    result = roles.same_role_alignment(pd.DataFrame(values, names_a, names_b), ra, rb, n_perm=2000)
    assert (result.same, result.n_same) == (0.9, 3) and result.p < 0.05 and result.verdict == "yes"
    flat = roles.same_role_alignment(pd.DataFrame(np.full((4, 4), 0.5), names_a, names_b), ra, rb, n_perm=200)
    assert flat.verdict == "no"


def test_the_smallest_set_that_decides_the_whole_image():
    from latentkit.injection import combinations

    names = [f"unet.x.{i}" for i in range(4)]
    entries = [(n,) for n in names] + combinations(names, sizes=(2,), n=50)
    assert len(entries) == 4 + 6 and all(len(set(e)) == len(e) for e in entries)
    spec = {n: {"takes": ["structure"]} for n in names}
    spec["unet.x.1+unet.x.3"] = {"takes": list(ASPECTS)}  # only this pair moves everything
    spec["unet.x.0+unet.x.2"] = {"takes": list(ASPECTS), "valid": 0.2}  # so would this, but it is broken
    obs = observations(spec)
    whole = obs.measure == "whole"
    everything = obs.layer.isin(["unet.x.1+unet.x.3", "unet.x.0+unet.x.2"])
    obs.loc[whole, "value"] = np.where(everything[whole], 1.0, 0.0)
    sets = roles.deciding_sets(obs, entries)
    assert sets.loc["unet.x.1+unet.x.3", "whole"] == 1.0 and np.isnan(sets.loc["unet.x.0+unet.x.2", "whole"])
    assert roles.smallest_deciding_set(sets) == (2, "decided", ["unet.x.1+unet.x.3"])
    # Without the deciding pair, the broken one (too few valid runs to read) might still decide it:
    assert roles.smallest_deciding_set(sets.drop("unet.x.1+unet.x.3")) == (None, "undecided", [])
    readable = sets.drop(["unet.x.1+unet.x.3", "unet.x.0+unet.x.2"])
    assert roles.smallest_deciding_set(readable) == (None, "none of the sets tried", [])


def test_an_aspect_has_a_layer_of_its_own_yes_no_or_undecided():
    table = pd.DataFrame({"role": ["structure", "weak", "surface"]}, index=["a", "b", "c"])
    assert [roles.has_own_layer(table, a) for a in ASPECTS] == ["yes", "no", "yes"]
    assert roles.every_aspect_has_own_layer(table) == "no"
    table.loc["b", "role"] = "undetermined"  # b might still be content's with more valid images
    assert roles.has_own_layer(table, "content") == "undecided"
    assert roles.every_aspect_has_own_layer(table) == "undecided"
    table.loc["b", "role"] = "content"
    assert roles.every_aspect_has_own_layer(table) == "yes"


def test_a_layer_with_too_few_valid_runs_loses_all_its_values():
    obs = observations(
        {"unet.x.0": {"takes": ["content"], "valid": 0.25}, "unet.x.1": {"takes": ["content"]}}
    )
    kept = roles.valid_only(obs, min_valid=4)  # unet.x.0 has 3 valid runs of 12
    factors = kept[kept.measure.isin(list(FACTORS))]
    assert factors[factors.layer == "unet.x.0"]["value"].isna().all()
    assert factors[factors.layer == "unet.x.1"]["value"].notna().all()
    assert kept[kept.measure == "in_distribution"]["value"].notna().all()  # the valid share stays
