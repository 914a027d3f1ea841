"""Published findings as data: every finding cites a source, a measured role table is put beside them,
and the places where the sources contradict each other are listed."""

from __future__ import annotations

import re

import pytest

from latentkit import findings as F

# -- the sources -----------------------------------------------------------------------------------------


def test_every_source_has_a_full_citation():
    assert set(F.SOURCES) == {
        "schaerf2025",
        "feature-inject",
        "instantstyle",
        "b-lora",
        "sdxl-unbox",
        "stable-flow",
    }
    for key, source in F.SOURCES.items():
        assert source.key == key and source.authors and all(" " in name for name in source.authors)
        assert 2023 <= source.year <= 2026 and source.title and source.where
        assert re.fullmatch(r"\d{4}\.\d{5}", source.arxiv), key
        citation = source.citation()
        assert source.authors[0] in citation and f"({source.year})" in citation
        assert f"arXiv:{source.arxiv}" in citation and source.title in citation
    assert len(F.citations()) == len(F.SOURCES)


def test_every_finding_cites_a_source_and_uses_the_papers_roles():
    used = {f.source for f in F.FINDINGS}
    assert used == set(F.SOURCES)  # no source without a finding
    for f in F.FINDINGS:
        assert f.role in F.ROLES and f.arch in F.ARCHS and f.said and f.studied
        if f.claim == "layers":
            assert f.layers and all(name.startswith(("unet.", "transformer.")) for name in f.layers)


def test_a_finding_of_an_unknown_source_or_role_is_refused():
    with pytest.raises(ValueError, match="not in SOURCES"):
        F.Finding("sdxl", "layers", ("unet.mid_block.attentions.0",), "content", "nobody", "x", "y")
    with pytest.raises(ValueError, match="unknown"):
        F.Finding("sdxl", "layers", ("unet.mid_block.attentions.0",), "style", "b-lora", "x", "y")


def test_what_the_sources_say_about_sdxl():
    def roles(source: str) -> dict[str, str]:
        return {name: f.role for f in F.findings_for("sdxl", source) for name in f.layers}

    assert roles("instantstyle") == {
        "unet.up_blocks.0.attentions.1": "surface",
        "unet.down_blocks.2.attentions.1": "structure",
    }
    assert roles("b-lora") == {
        "unet.up_blocks.0.attentions.0": "content",
        "unet.up_blocks.0.attentions.1": "surface",
    }
    assert set(roles("sdxl-unbox")) == {
        "unet.down_blocks.2.attentions.1",
        "unet.mid_block.attentions.0",
        "unet.up_blocks.0.attentions.0",
        "unet.up_blocks.0.attentions.1",
    }
    code = roles("feature-inject")
    assert (
        code["unet.mid_block.attentions.0"] == "content"
        and code["unet.up_blocks.0.attentions.0"] == "surface"
    )


def test_stable_flows_vital_layers_of_flux():
    (vital,) = F.findings_for("flux", "stable-flow")
    assert vital.role == "important" and len(vital.layers) == 9
    assert vital.layers[:4] == tuple(f"transformer.transformer_blocks.{i}" for i in (0, 1, 17, 18))
    assert vital.layers[-1] == "transformer.single_transformer_blocks.37"  # block 56 of 0..56


def test_the_papers_text_places_layers_per_model():
    claims = {(f.arch, f.claim) for f in F.findings_for("sd1", "schaerf2025")}
    assert claims == {("sd1", "order"), ("sd1", "region")}
    (kandinsky,) = F.findings_for("kandinsky22", "schaerf2025")
    assert kandinsky.quantifier == "all" and kandinsky.layers == ("unet.up_blocks.*",)


def test_a_registry_id_stands_for_its_architecture():
    assert F.findings_for("stabilityai/sdxl-turbo") == F.findings_for("sdxl")
    with pytest.raises(ValueError, match="unknown architecture 'sdxxl'.*closest"):
        F.findings_for("sdxxl")
    with pytest.raises(ValueError, match="unknown source"):
        F.findings_for("sdxl", "instant-style")


# -- compare: a measured table beside the findings --------------------------------------------------------


def _row(table, source: str, layer: str):
    rows = table[(table.source == source) & (table.layer == layer)]
    assert len(rows) == 1, (source, layer)
    return rows.iloc[0]


def test_compare_says_agrees_disagrees_or_not_measured():
    measured = {
        "unet.down_blocks.2.attentions.1": "structure",
        "unet.mid_block.attentions.0": "mixed",
        "unet.up_blocks.0.attentions.0": "content",
        "unet.up_blocks.0.attentions.1": "undetermined",
    }
    table = F.compare(measured, "sdxl")
    assert set(table.status) <= set(F.STATUSES)
    assert _row(table, "instantstyle", "unet.down_blocks.2.attentions.1").status == "agrees"
    assert _row(table, "b-lora", "unet.up_blocks.0.attentions.0").status == "agrees"
    assert _row(table, "sdxl-unbox", "unet.up_blocks.0.attentions.0").status == "disagrees"  # surface
    # mixed is not the content the public code says, but it is important, as sdxl-unbox says
    assert _row(table, "feature-inject", "unet.mid_block.attentions.0").status == "disagrees"
    assert _row(table, "sdxl-unbox", "unet.mid_block.attentions.0").status == "agrees"
    assert _row(table, "b-lora", "unet.up_blocks.0.attentions.1").status == "not measured"  # undetermined
    assert _row(table, "feature-inject", "unet.up_blocks.0.resnets.0").status == "not measured"  # left out
    region = _row(table, "schaerf2025", "unet.mid_block.* + unet.up_blocks.0.*")
    assert region.status == "agrees" and region.measured == "2 of 3 important layers in the region"
    assert list(table.columns) == [
        "source",
        "claim",
        "layer",
        "role",
        "said",
        "measured",
        "status",
        "studied",
    ]


def test_weak_layers_are_not_important():
    table = F.compare({f"transformer.transformer_blocks.{i}": "weak" for i in (0, 1)}, "flux")
    statuses = dict(zip(table.layer, table.status, strict=True))
    assert statuses["transformer.transformer_blocks.0"] == "disagrees"
    assert statuses["transformer.single_transformer_blocks.6"] == "not measured"


def test_regions_all_and_most():
    inside = {"unet.up_blocks.0.resnets.0": "surface", "unet.up_blocks.1.attentions.0": "content"}
    table = F.compare({**inside, "unet.down_blocks.1.resnets.0": "weak"}, "kandinsky22")
    assert _row(table, "schaerf2025", "unet.up_blocks.*").status == "agrees"  # weak layers do not count
    table = F.compare({**inside, "unet.down_blocks.2.resnets.1": "content"}, "kandinsky22")
    assert _row(table, "schaerf2025", "unet.up_blocks.*").status == "disagrees"  # not all in the decoder
    late = {"unet.down_blocks.2.resnets.0": "structure", "unet.down_blocks.3.resnets.1": "content"}
    late_encoder = "unet.down_blocks.2.* + unet.down_blocks.3.*"
    table = F.compare({**late, "unet.up_blocks.1.resnets.0": "surface"}, "sd1")
    assert _row(table, "schaerf2025", late_encoder).status == "agrees"  # most: 2 of 3
    table = F.compare(
        {**late, "unet.up_blocks.1.resnets.0": "surface", "unet.mid_block.resnets.0": "mixed"}, "sd1"
    )
    assert _row(table, "schaerf2025", late_encoder).status == "disagrees"  # 2 of 4 is not most
    assert _row(F.compare({}, "sd1"), "schaerf2025", "content after surface").status == "not measured"


def test_order_uses_depth():
    order = ["unet.down_blocks.0.resnets.0", "unet.down_blocks.1.resnets.0", "unet.up_blocks.1.resnets.0"]
    surface_first = {order[0]: "surface", order[2]: "content"}
    assert _row(F.compare(surface_first, "sd1"), "schaerf2025", "content after surface").status == "agrees"
    content_first = {order[2]: "surface", order[0]: "content"}
    assert _row(
        F.compare(content_first, "sd1", order=order), "schaerf2025", "content after surface"
    ).status == ("disagrees")


def test_compare_refuses_roles_it_does_not_know():
    with pytest.raises(ValueError, match="measured roles must be one of"):
        F.compare({"unet.mid_block.attentions.0": "style"}, "sdxl")


# -- conflicts between the sources ------------------------------------------------------------------------


def test_sources_that_disagree_are_listed():
    sdxl = F.conflicts("sdxl")
    pairs = {(c.layer, c.first.source, c.second.source) for c in sdxl}
    # B-LoRA's content block is in the public code's style set, and sdxl-unbox calls it local details
    assert pairs == {
        ("unet.up_blocks.0.attentions.0", "feature-inject", "b-lora"),
        ("unet.up_blocks.0.attentions.0", "b-lora", "sdxl-unbox"),
    }
    assert "b-lora says content" in str(next(c for c in sdxl if c.second.source == "b-lora"))
    # InstantStyle and B-LoRA agree where both speak: up_blocks.0.attentions.1 is style
    assert not [c for c in sdxl if c.layer == "unet.up_blocks.0.attentions.1"]


def test_the_papers_text_and_its_code_disagree_on_kandinsky():
    kandinsky = F.conflicts("kandinsky22")
    assert {c.layer for c in kandinsky} == {"unet.down_blocks.2.resnets.1", "unet.down_blocks.2.resnets.2"}
    assert all(c.first.claim == "region" and c.second.source == "feature-inject" for c in kandinsky)


def test_conflicts_over_every_architecture():
    everything = F.conflicts()
    assert {c.arch for c in everything} == {"sdxl", "kandinsky22"}
    assert len(everything) == len(F.conflicts("sdxl")) + len(F.conflicts("kandinsky22"))
