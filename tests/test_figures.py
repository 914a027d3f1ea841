"""The figure functions on small synthetic inputs: what they print, where, and that nothing overlaps."""

from __future__ import annotations

import itertools
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from latentkit import figures, tiny
from latentkit.layers import Layer, dry_inputs, list_layers
from latentkit.world import ASPECTS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def boxes(fig, artists):
    renderer = drawn(fig)
    return [a.get_window_extent(renderer) for a in artists]


def overlapping(bboxes) -> list[tuple[int, int]]:
    """Pairs of bounding boxes that overlap by more than a pixel."""
    out = []
    for (i, a), (j, b) in itertools.combinations(enumerate(bboxes), 2):
        if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
            out.append((i, j))
    return out


def panels(fig):
    return [ax for ax in fig.axes if ax.get_gid() == "heatmap"]


def colorbar_labels(fig) -> list[str]:
    return [ax.get_xlabel().replace("\n", " ") for ax in fig.axes if ax.get_gid() == "colorbar"]


def cell_texts(ax):
    return [t for t in ax.texts if t.get_gid() == "cell"]


def small_map():
    values = np.array([[0.62, 0.1, 0.9], [0.0, 1.0, np.nan], [0.5, 0.25, 0.3], [0.95, np.nan, 0.05]])
    low, high = np.clip(values - 0.2, 0, 1), np.clip(values + 0.2, 0, 1)
    low[0, 0], high[0, 0] = 0.40, 0.85
    return values, low, high


# --------------------------------------------------------------------------------------------------
# heatmap


def test_heatmap_prints_values_and_intervals_in_their_cells_and_n_a_where_nothing_was_measured():
    values, low, high = small_map()
    fig = figures.heatmap(
        values,
        low,
        high,
        rows=["down0 res0", "down0 attn0", "mid res0", "up0 res0"],
        columns=["structure", "content", "in_distribution"],
        kinds=["aspect", "aspect", "in_distribution"],
        groups=["down", "down", "mid", "up"],
    )
    assert isinstance(fig, matplotlib.figure.Figure)
    aspect_ax, valid_ax = panels(fig)  # one panel per kind of column
    assert len([ax for ax in fig.axes if ax.get_gid() == "colorbar"]) == 2
    assert [t.get_text() for t in aspect_ax.get_xticklabels()] == ["structure", "content"]
    assert [t.get_text() for t in valid_ax.get_xticklabels()] == ["in\ndistribution"]
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t for t in cell_texts(aspect_ax)}
    assert len(texts) == 8 and len(cell_texts(valid_ax)) == 4
    assert texts[(0, 0)].get_text() == "0.62 [0.40, 0.85]"  # small enough for one line
    assert texts[(1, 3)].get_text() == "n/a"
    assert [t.get_text() for t in cell_texts(valid_ax)][1] == "n/a"
    hatched = [p for ax in panels(fig) for p in ax.patches if p.get_gid() == "n/a"]
    assert len(hatched) == 2 and all(p.get_hatch() for p in hatched)
    assert all(t.get_fontsize() >= 8 for ax in panels(fig) for t in [*ax.texts, *ax.get_yticklabels()])
    # every text stays inside its cell
    renderer = drawn(fig)
    for ax in panels(fig):
        for t in cell_texts(ax):
            x, y = t.get_position()
            (x0, y0), (x1, y1) = ax.transData.transform([(x - 0.5, y + 0.5), (x + 0.5, y - 0.5)])
            box = t.get_window_extent(renderer)
            assert x0 - 1 <= box.x0 and box.x1 <= x1 + 1 and y0 - 1 <= box.y0 and box.y1 <= y1 + 1, t
    # a white line where the group changes: down | mid | up
    lines = [line.get_ydata()[0] for line in aspect_ax.lines if line.get_gid() == "group-separator"]
    assert lines == [1.5, 2.5]
    assert aspect_ax.get_ylabel() == "layer, in forward order (down | mid | up)"


def test_each_colour_bar_says_what_its_columns_measure():
    rng = np.random.default_rng(0)
    columns = ["structure", "content", "surface", "all", "whole", "in_distribution"]
    kinds = ["aspect"] * 4 + ["whole", "in_distribution"]
    fig = figures.heatmap(rng.uniform(size=(3, 6)), rows=["a", "b", "c"], columns=columns, kinds=kinds)
    assert len(panels(fig)) == 3  # aspects | whole | in_distribution
    shares, valid = colorbar_labels(fig)  # `whole` shares its colours (and bar) with the aspects
    assert "structure, content, surface, all: share of runs in which O_L took E's value" in shares
    assert "whole: share of runs in which O_L took E's value in every factor" in shares
    assert valid.startswith("in distribution: share of injected images that are still valid world images")
    assert "took E's value" not in valid
    # a kind with its own colours gets its own bar
    fig = figures.heatmap(
        rng.uniform(size=(3, 2)), rows=["a", "b", "c"], columns=["structure", "whole"], kinds="aspect"
    )
    assert len(colorbar_labels(fig)) == 1


def test_similarity_scores_get_a_symmetric_scale_around_zero():
    values = np.array([[-0.34, 0.2], [0.61, 0.0]])
    fig = figures.heatmap(values, rows=["a", "b"], columns=["structure", "color"], kinds="similarity")
    (bar,) = [ax for ax in fig.axes if ax.get_gid() == "colorbar"]
    assert bar.get_xlim() == pytest.approx((-0.7, 0.7))
    assert "score(O_L, E) - score(O, E)" in colorbar_labels(fig)[0]
    assert [t.get_text() for t in cell_texts(panels(fig)[0])] == ["-0.34", "0.20", "0.61", "0.00"]


def test_intervals_go_on_a_second_line_when_one_line_would_not_fit():
    rng = np.random.default_rng(1)
    values = rng.uniform(size=(2, 12))
    args = {"rows": ["a", "b"], "columns": [f"c{j}" for j in range(12)], "kinds": "aspect"}
    wide = figures.heatmap(values, values - 0.1, values + 0.1, max_width=30, **args)
    narrow = figures.heatmap(values, values - 0.1, values + 0.1, max_width=6, **args)
    assert wide._latentkit_text_mode == "one line" and narrow._latentkit_text_mode == "two lines"
    first = cell_texts(panels(narrow)[0])[0].get_text()
    assert first.count("\n") == 1 and first.split("\n")[1].startswith("[")
    assert narrow.get_size_inches()[0] < wide.get_size_inches()[0]
    forced = figures.heatmap(values, values - 0.1, values + 0.1, text="value", **args)
    assert "[" not in cell_texts(panels(forced)[0])[0].get_text()


def test_models_side_by_side_share_one_relative_depth_axis_and_no_titles_overlap():
    rng = np.random.default_rng(2)
    unet, dit = rng.uniform(size=(7, 2)), rng.uniform(size=(3, 2))
    fig = figures.heatmap(
        {"U-Net": unet, "transformer": dit},
        {"U-Net": unet - 0.1, "transformer": dit - 0.1},
        {"U-Net": unet + 0.1, "transformer": dit + 0.1},
        rows={"U-Net": [f"u{i}" for i in range(7)], "transformer": [f"block{i}" for i in range(3)]},
        columns=["structure", "in_distribution"],
        kinds=["aspect", "in_distribution"],
        title="two organisms",
    )
    axes = panels(fig)
    assert len(axes) == 4  # two panels per model
    assert len({ax.get_ylim() for ax in axes}) == 1
    top, bottom = axes[0].get_ylim()[1], axes[0].get_ylim()[0]
    assert top == pytest.approx(-1 / 12) and bottom == pytest.approx(
        1 + 1 / 12
    )  # the finer model's half step
    assert [t.get_position()[1] for t in axes[2].get_yticklabels()] == pytest.approx([0, 0.5, 1])
    (depth_axis,) = [c for c in axes[-1].child_axes]
    assert depth_axis.get_ylabel().startswith("relative depth")
    titles = [t for t in fig.texts if t.get_gid() == "title"]
    assert sorted(t.get_text() for t in titles) == ["U-Net", "transformer", "two organisms"]
    labels = [label for ax in axes for label in ax.get_xticklabels()]
    assert overlapping(boxes(fig, [*titles, *labels])) == []
    renderer = drawn(fig)
    for ax in axes:  # texts stay inside the map and apart from each other
        inside = ax.get_window_extent(renderer)
        found = boxes(fig, cell_texts(ax))
        assert all(
            inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 <= b.y1 <= inside.y1 for b in found
        )
        assert overlapping(found) == []


def test_cells_of_mostly_invalid_layers_are_outlined_and_the_figure_says_why():
    values, low, high = small_map()
    fig = figures.heatmap(
        values,
        low,
        high,
        rows=list("abcd"),
        columns=["structure", "content", "in_distribution"],
        kinds=["aspect", "aspect", "in_distribution"],
        mostly_invalid=[False, True, False, False],
    )
    marks = [p for ax in panels(fig) for p in ax.patches if p.get_gid() == "mostly-invalid"]
    assert len(marks) == 2  # the layer's two share cells; its in_distribution cell shows it already
    assert any("not valid world images" in t.get_text() for t in fig.texts)
    clean = figures.heatmap(values, rows=list("abcd"), columns=["s", "c", "v"], kinds="aspect")
    assert not any(p.get_gid() == "mostly-invalid" for ax in panels(clean) for p in ax.patches)


def test_heatmap_refuses_what_it_cannot_draw_right():
    values = np.zeros((2, 2))
    args = {"rows": ["a", "b"], "columns": ["structure", "content"], "kinds": "aspect"}
    with pytest.raises(ValueError, match="shape"):
        figures.heatmap(np.zeros((3, 2)), **args)
    with pytest.raises(ValueError, match="unknown kind"):
        figures.heatmap(values, **{**args, "kinds": "aspects"})
    with pytest.raises(ValueError, match="at least 8 pt"):
        figures.heatmap(values, fontsize=6, **args)
    with pytest.raises(ValueError, match="both low and high"):
        figures.heatmap(values, values, **args)
    with pytest.raises(ValueError, match="same keys"):
        figures.heatmap({"a": values, "b": values}, **args)
    with pytest.raises(ValueError, match="increasing"):
        figures.heatmap(values, depths=[0.5, 0.1], **args)


def roles_and_aspects():
    """A role table and an aspect table with known numbers, built from synthetic observations."""
    from latentkit import aspects, roles
    from latentkit.world import FACTORS

    layers = [Layer(f"unet.up_blocks.0.resnets.{i}", "up", i, "ResnetBlock2D") for i in range(3)]
    rows = []
    for p in range(8):
        for i, layer in enumerate(layers):
            for aspect, factors in ASPECTS.items():
                took = (aspect == "structure" and i == 0) or (aspect == "content" and i == 1 and p % 2 == 0)
                rows += [(p, 0, layer.name, f, float(took)) for f in factors]
            rows.append((p, 0, layer.name, "whole", 0.0))
            rows.append((p, 0, layer.name, "in_distribution", float(i < 2 or p < 2)))
    obs = pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])
    assert set(obs.measure) <= {*FACTORS, "whole", "in_distribution"}
    return layers, roles.role_table(obs, layers, n_boot=200), aspects.aspect_table(obs, layers, n_boot=200)


def test_table_cells_read_role_tables_and_aspect_tables_alike():
    layers, role_table, aspect_table = roles_and_aspects()
    names = [x.name for x in layers]
    values, low, high = figures.table_cells(role_table, names, ["structure", "content", "in_distribution"])
    assert values[:, 0].tolist()[:2] == [1.0, 0.0] and np.isnan(values[2, 0])  # too few valid runs
    assert values[:, 2].tolist() == [1.0, 1.0, 0.25]  # in_distribution is the role table's valid_share
    assert low[1, 1] <= values[1, 1] == 0.5 <= high[1, 1]
    tidy = figures.table_cells(aspect_table, names, ["structure", "in_distribution"])
    assert tidy[0][:, 1].tolist() == [1.0, 1.0, 0.25]
    assert figures.invalid_rows(role_table, names).tolist() == [False, False, True]
    assert figures.invalid_rows(aspect_table, names).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="closest names"):
        figures.table_cells(role_table, ["unet.up_blocks.0.resnets.9"], ["structure"])
    with pytest.raises(ValueError, match="not in the table"):
        figures.table_cells(role_table, names, ["colour"])


# --------------------------------------------------------------------------------------------------
# grids of images


def images(n: int, side: int = 8) -> np.ndarray:
    return np.linspace(0, 1, n)[:, None, None, None] * np.ones((n, side, side, 3))


def test_injection_grid_lays_layers_out_in_the_models_shape_without_overlaps():
    labels = ["down0 res0", "down1 res0", "mid res0", "up0 res0", "up1 attn0", "down0 res0+up1 attn0"]
    sides = [16, 8, 4, 4, 8, 16]
    took = {"down0 res0": ["pos"], "mid res0": ["pos", "size", "shape", "col", "bg", "tex"]}
    fig = figures.injection_grid(images(1)[0], images(2)[1], images(6), labels, sides, took)
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 8  # O, E and six layers
    o, e, *layer_axes = axes
    assert o.get_title() == "O (original)" and e.get_title() == "E (edit)"
    assert o.get_position().x0 == e.get_position().x0 < layer_axes[0].get_position().x0
    rows = [round(ax.get_position().y0, 6) for ax in layer_axes]
    assert rows[0] == rows[5] > rows[1] == rows[4] > rows[2] == rows[3]  # 16 x 16 at the top
    xs = [ax.get_position().x0 for ax in layer_axes]
    assert xs == sorted(xs)  # forward order
    names = sorted(t.get_text() for t in fig.texts if t.get_gid() == "row-name")
    assert names == ["16 x 16", "4 x 4", "8 x 8"]
    under = [t for ax in layer_axes for t in ax.texts if t.get_gid() == "under"]
    assert [t.get_text().replace("\n", " ") for t in under][:1] == ["pos"]
    assert all(t.get_fontsize() >= 8 for t in under)
    texts = [ax.title for ax in axes] + under
    assert overlapping(boxes(fig, texts)) == []


def test_a_transformer_grid_is_one_row_with_o_and_e_beside_it():
    fig = figures.injection_grid(
        images(1)[0], images(1)[0], images(3), ["block0", "block1", "block2"], [None] * 3, ["pos", "", "-"]
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 5 and len({round(ax.get_position().y0, 6) for ax in axes}) == 1
    assert overlapping(boxes(fig, [ax.title for ax in axes])) == []
    with pytest.raises(ValueError, match="rows_of has 2 entries"):
        figures.injection_grid(images(1)[0], images(1)[0], images(3), ["a", "b", "c"], [4, 8])


def test_pair_gallery_shows_each_pair_at_the_chosen_layers():
    from latentkit.aspects import Run
    from latentkit.injection import SweepResult

    names = ["unet.down_blocks.0.resnets.0", "unet.mid_block.resnets.0", "unet.up_blocks.0.resnets.0"]
    runs = [
        Run(p, 0, {}, {}, SweepResult(images(1)[0], images(2)[1], images(3) * (p + 1) / 3, names))
        for p in range(3)
    ]
    chosen = [names[2], names[0]]
    fig = figures.pair_gallery(
        runs, chosen, captions=[f"pair {p}" for p in range(3)], took=[{names[2]: ["pos"]}, None, {}]
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 3 * 4
    assert [ax.get_title() for ax in axes[:4]] == ["O (original)", "E (edit)", "up0 res0", "down0 res0"]
    assert all(ax.get_title() == "" for ax in axes[4:])  # column titles once, at the top
    assert np.allclose(axes[2].get_images()[0].get_array(), runs[0].result.injected[2])
    assert np.allclose(axes[4 + 3].get_images()[0].get_array(), runs[1].result.injected[0])
    assert [t.get_text() for t in axes[2].texts] == ["pos"]
    captions = [t for t in fig.texts if t.get_gid() == "caption"]
    assert [t.get_text() for t in captions] == ["pair 0", "pair 1", "pair 2"]
    assert overlapping(boxes(fig, [*[ax.title for ax in axes[:4]], *captions])) == []
    with pytest.raises(ValueError, match="closest names"):
        figures.pair_gallery(runs, ["unet.mid_block.resnets.9"])


def test_image_strip_labels_every_image():
    fig = figures.image_strip(
        images(6).reshape(2, 3, 8, 8, 3), under=["-1 sd", "0 sd", "+1 sd"], row_labels=["PC 1", "PC 2"]
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    under = [t for ax in axes for t in ax.texts]
    assert len(axes) == 6 and [t.get_text() for t in under] == ["-1 sd", "0 sd", "+1 sd"] * 2
    assert overlapping(boxes(fig, under)) == []


# --------------------------------------------------------------------------------------------------
# the role diagram


@pytest.fixture(scope="module")
def sd1():
    return tiny.build("sd1")


@pytest.mark.parametrize("arch", ["sd1", "sdxl", "kandinsky22"])
def test_skip_connections_are_the_ones_the_unet_concatenates(arch, sd1):
    """Each up resnet's input ends with the output of the source the list names: checked on a forward pass."""
    pipe = sd1 if arch == "sd1" else tiny.build(arch)
    layers = list_layers(pipe)
    pairs = figures.skip_connections(layers)
    assert [d for _, d in pairs] == [
        x.name for x in layers if ".up_blocks." in x.name and "resnets" in x.name
    ]
    assert pairs[-1][0] == "unet.conv_in" and "unet.down_blocks.0.downsamplers.0" in {s for s, _ in pairs}
    unet = pipe.unet
    outputs, inputs, handles = {}, {}, []

    def keep(store, key, value):
        store[key] = value[0] if isinstance(value, tuple) else value

    try:
        for src, dst in pairs:
            module = unet.get_submodule(src.removeprefix("unet."))
            handles.append(module.register_forward_hook(lambda m, a, out, s=src: keep(outputs, s, out)))
            module = unet.get_submodule(dst.removeprefix("unet."))
            handles.append(module.register_forward_pre_hook(lambda m, a, d=dst: keep(inputs, d, a[0])))
        with torch.no_grad():
            unet(**dry_inputs(unet, None), return_dict=False)
    finally:
        for handle in handles:
            handle.remove()
    for src, dst in pairs:
        skip = outputs[src]
        assert torch.equal(inputs[dst][:, -skip.shape[1] :], skip), (src, dst)


def test_role_diagram_colours_each_layer_by_its_role_in_the_unets_shape(sd1):
    layers = list_layers(sd1)
    cycle = itertools.cycle(figures.ROLES)
    roles = {x.name: next(cycle) for x in layers}
    fig = figures.role_diagram(layers, pd.Series(roles), title="tiny SD 1")
    (ax,) = [a for a in fig.axes if a.get_gid() == "role-diagram"]
    boxes_ = {p.get_label(): p for p in ax.patches if p.get_gid() == "layer-box"}
    assert list(boxes_) == [x.name for x in layers]
    for name, box in boxes_.items():
        expected = matplotlib.colors.to_rgba(figures.ROLE_STYLE[roles[name]]["facecolor"])
        assert box.get_facecolor() == pytest.approx(expected)
    height = {x.name: boxes_[x.name].get_y() for x in layers}
    assert height["unet.down_blocks.0.resnets.0"] > height["unet.down_blocks.1.resnets.0"]
    assert height["unet.down_blocks.1.resnets.0"] == height["unet.mid_block.resnets.0"]  # both 8 x 8
    assert height["unet.up_blocks.1.attentions.1"] == height["unet.down_blocks.0.resnets.0"]
    assert len([p for p in ax.patches if p.get_gid() == "skip"]) == len(figures.skip_connections(layers)) == 4
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(":")[0] for t in legend] == [*figures.ROLES, "skip connection"]
    present = figures.role_diagram(layers, {x.name: "structure" for x in layers}, legend="present")
    assert [t.get_text().split(":")[0] for t in present.legends[0].get_texts()] == [
        "structure",
        "skip connection",
    ]


def test_a_transformer_is_one_row_of_blocks_without_skips():
    layers = [
        Layer(f"transformer.transformer_blocks.{i}", "joint", i, "JointTransformerBlock", (64, 32))
        for i in range(4)
    ]
    fig = figures.role_diagram(layers, {x.name: "weak" for x in layers})
    (ax,) = fig.axes
    found = [p for p in ax.patches if p.get_gid() == "layer-box"]
    assert len(found) == 4 and len({p.get_y() for p in found}) == 1
    assert not [p for p in ax.patches if p.get_gid() == "skip"]
    assert "joint blocks" in [t.get_text() for t in ax.texts]


def test_role_diagram_needs_a_known_role_for_every_layer():
    layers = [
        Layer(f"unet.down_blocks.0.resnets.{i}", "down", i, "ResnetBlock2D", (4, 8, 8)) for i in range(2)
    ]
    with pytest.raises(ValueError, match="no role for 1 layer"):
        figures.role_diagram(layers, {layers[0].name: "structure"})
    with pytest.raises(ValueError, match="did you mean 'structure'"):
        figures.role_diagram(layers, dict.fromkeys([x.name for x in layers], "structur"))


def test_alignment_matrices_mark_the_best_match_and_the_equal_depth_line():
    from latentkit.figures import alignment_matrices

    across = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.8]])
    within = np.eye(3)
    fig = alignment_matrices(
        [
            (across, "A x B", ["a0", "a1"], ["b0", "b1", "b2"], True),
            (within, "within B", ["b0", "b1", "b2"], ["b0", "b1", "b2"], False),
        ]
    )
    panels = [ax for ax in fig.axes if ax.get_gid() == "alignment"]
    assert [ax.get_title() for ax in panels] == ["A x B", "within B"]
    dots = [line for line in panels[0].get_lines() if line.get_marker() == "o"][0]
    assert list(dots.get_xdata()) == [0, 2]  # each row's best match
    assert not [line for line in panels[1].get_lines() if line.get_marker() == "o"]
    with pytest.raises(ValueError, match=r"matrix \(2, 3\) but 2 row and 2 column ticks"):
        alignment_matrices([(across, "bad", ["a0", "a1"], ["b0", "b1"], True)])


# --------------------------------------------------------------------------------------------------
# grids with named columns and rows (notebooks 01, 02, 03)


def test_image_grid_names_every_column_above_each_block_and_every_row_at_its_left():
    walks = images(24).reshape(2, 3, 4, 8, 8, 3)  # 2 directions x 3 samples x 4 steps
    steps = ["-2.0 sd", "-0.7 sd", "+0.7 sd", "+2.0 sd"]
    fig = figures.image_grid(
        walks,
        columns=steps,
        rows=["sample 1", "sample 2", "sample 3"],
        blocks=["PC 1", "PC 2"],
        title="walks",
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 24
    assert np.allclose(axes[4 + 1].get_images()[0].get_array(), walks[0, 1, 1])  # block 0, row 1, column 1
    assert np.allclose(axes[12].get_images()[0].get_array(), walks[1, 0, 0])
    # the step names stand above the first row of every block, so a block reads on its own
    titled = [ax.get_title() for ax in axes if ax.get_title()]
    assert titled == steps * 2
    assert [t.get_text() for t in fig.texts if t.get_gid() == "block-title"] == ["PC 1", "PC 2"]
    assert [t.get_text() for t in fig.texts if t.get_gid() == "row-name"] == [
        "sample 1",
        "sample 2",
        "sample 3",
    ] * 2
    texts = [*fig.texts, *[ax.title for ax in axes if ax.get_title()]]
    assert all(t.get_fontsize() >= 8 for t in texts)
    assert overlapping(boxes(fig, [*texts, *axes])) == []
    # every image keeps its frame: a white image is still seen on the white page
    assert all(ax.spines["top"].get_visible() for ax in axes)


def test_image_grid_wraps_long_row_names_and_widens_columns_for_long_words():
    fig = figures.image_grid(
        images(4).reshape(2, 2, 8, 8, 3),
        columns=["start", "substituted"],
        rows=["unet.up_blocks.2.attentions.0 at every step of 4", "h-space\nat step 1"],
        size=0.4,
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    names = [t for t in fig.texts if t.get_gid() == "row-name"]
    assert "\n" in names[0].get_text() and names[1].get_text() == "h-space\nat step 1"
    assert overlapping(boxes(fig, [*names, *[ax.title for ax in axes[:2]], *axes])) == []
    one_row = figures.image_grid(images(3))  # (C, H, W, 3): one row, no names
    assert len([ax for ax in one_row.axes if ax.get_gid() == "image"]) == 3


def test_image_grid_refuses_names_that_do_not_match_the_images():
    grid = images(6).reshape(2, 3, 8, 8, 3)
    with pytest.raises(ValueError, match="columns must name each of the 3 columns"):
        figures.image_grid(grid, columns=["a", "b"])
    with pytest.raises(ValueError, match="rows must name each of the 2 rows"):
        figures.image_grid(grid, rows="neuron 1")
    with pytest.raises(ValueError, match=r"images must be \(R, C, H, W, 3\)"):
        figures.image_grid(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="at least 8 pt"):
        figures.image_grid(grid, fontsize=7)


# --------------------------------------------------------------------------------------------------
# points in 3-D (notebook 01)


def scatter_inputs(n=60):
    from latentkit.world import BACKGROUNDS, FACTORS

    rng = np.random.default_rng(0)
    labels = {"background": rng.integers(0, 4, n), "size": rng.integers(0, 2, n)}
    values = {f: FACTORS[f] for f in labels}
    colours = {"background": np.array(list(BACKGROUNDS.values())) / 255}
    return rng.normal(size=(n, 3)), labels, values, colours


def test_scatter_3d_gives_every_panel_a_legend_and_pale_points_a_dark_edge():
    points, labels, values, colours = scatter_inputs()
    fig = figures.scatter_3d(points, labels, values, colours=colours, titles={"size": "size (structure)"})
    axes = [ax for ax in fig.axes if ax.get_gid() == "scatter"]
    assert [ax.get_title() for ax in axes] == ["background", "size (structure)"]
    assert [[t.get_text() for t in legend.get_texts()] for legend in fig.legends] == [
        ["white", "black", "grey", "pink"],
        ["small", "large"],
    ]
    # white and pink are drawn (in the panel and in its legend) with a dark edge, black and grey without
    edged = [
        h.get_label() for h in fig.legends[0].legend_handles if h.get_markeredgecolor() == figures._DARK_EDGE
    ]
    assert edged == ["white", "pink"]
    white = matplotlib.colors.to_rgba(tuple(colours["background"][0]))
    dark = matplotlib.colors.to_rgba(figures._DARK_EDGE)
    (pale,) = [c for c in axes[0].collections if any(np.allclose(f, white) for f in c.get_facecolor())]
    assert len(pale.get_edgecolor()) and all(np.allclose(e, dark) for e in pale.get_edgecolor())
    assert sum(len(c.get_offsets()) for c in axes[0].collections) == len(points)  # every point drawn once
    assert all(t.get_fontsize() >= 8 for legend in fig.legends for t in legend.get_texts())
    assert overlapping(boxes(fig, fig.legends)) == []


def test_scatter_3d_refuses_labels_that_do_not_fit_the_points_or_the_values():
    points, labels, values, colours = scatter_inputs()
    with pytest.raises(ValueError, match=r"points must be a finite \(N, 3\) array"):
        figures.scatter_3d(points[:, :2], labels, values)
    with pytest.raises(ValueError, match="must be 60 integers"):
        figures.scatter_3d(points, {**labels, "size": labels["size"][:10]}, values)
    with pytest.raises(ValueError, match="but background has 4 values"):
        figures.scatter_3d(points, {**labels, "background": labels["background"] + 1}, values)
    with pytest.raises(ValueError, match="3 colours for 4 values"):
        figures.scatter_3d(points, labels, values, colours={"background": ["w", "k", "grey"]})
    with pytest.raises(ValueError, match="is not a matplotlib colour"):
        figures.scatter_3d(points, labels, values, colours={"background": [(238, 238, 232)] * 4})
    with pytest.raises(ValueError, match="not in labels"):
        figures.scatter_3d(points, labels, values, titles={"shape": "shape"})


# --------------------------------------------------------------------------------------------------
# curves (notebooks 02 and 05)


def test_scores_along_paths_draw_the_threshold_as_a_labelled_line_inside_the_y_range():
    from latentkit.probes import IN_DISTRIBUTION_THRESHOLD

    t = np.linspace(0, 1, 9)
    rng = np.random.default_rng(3)
    scores = {name: 0.30 + 0.08 * rng.uniform(size=9) for name in ("z, lerp", "z, slerp", "w, lerp")}
    fig = figures.scores_along_paths(t, scores, threshold=IN_DISTRIBUTION_THRESHOLD)
    (ax,) = [a for a in fig.axes if a.get_gid() == "curves"]
    (line,) = [x for x in ax.lines if x.get_gid() == "threshold"]
    assert line.get_ydata()[0] == IN_DISTRIBUTION_THRESHOLD
    low, high = ax.get_ylim()
    assert low <= 0 and high >= 1  # the whole score range, the threshold with it
    (label,) = [x for x in ax.texts if x.get_gid() == "threshold-label"]
    assert "0.6" in label.get_text()
    assert [x.get_text() for x in fig.legends[0].get_texts()] == list(scores)
    ticks = ax.get_xticklabels()
    assert [x.get_text() for x in ticks] == [
        "0",
        "0.125",
        "0.25",
        "0.375",
        "0.5",
        "0.625",
        "0.75",
        "0.875",
        "1",
    ]
    texts = [*ticks, *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label, label, fig.legends[0]]
    assert overlapping(boxes(fig, texts)) == []
    # a value beyond the usual range widens the axis rather than being cut off
    wide = figures.scores_along_paths(t, {"z": np.r_[1.4, np.zeros(8)]}, threshold=0.6)
    assert wide.axes[0].get_ylim()[1] >= 1.4
    with pytest.raises(ValueError, match="increasing"):
        figures.scores_along_paths(t[::-1], scores, threshold=0.6)
    with pytest.raises(ValueError, match=r"expected \(9,\)"):
        figures.scores_along_paths(t, {"z": np.zeros(8)}, threshold=0.6)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        figures.scores_along_paths(t, scores, threshold=None)


def test_depth_curves_put_each_model_at_its_relative_depths_with_its_interval():
    depths = {"U-Net": np.linspace(0, 1, 7), "transformer": np.linspace(0, 1, 3)}
    rng = np.random.default_rng(4)
    values = {m: rng.uniform(size=(len(d), 3)) for m, d in depths.items()}
    values["transformer"][:, 1] = np.nan  # content not measured in the transformer
    low = {m: v - 0.1 for m, v in values.items()}
    high = {m: v + 0.1 for m, v in values.items()}
    fig = figures.depth_curves(
        values,
        low,
        high,
        depths=depths,
        columns=["structure", "content", "surface"],
        counts={"U-Net": [16, 13, 16], "transformer": [16, 0, 16]},
    )
    axes = [ax for ax in fig.axes if ax.get_gid() == "depth-curves"]
    assert len(axes) == 3
    first = axes[0]
    unet, dit = first.lines[:2]
    assert list(unet.get_xdata()) == pytest.approx(depths["U-Net"].tolist())
    assert list(dit.get_ydata()) == pytest.approx(values["transformer"][:, 0].tolist())
    assert unet.get_marker() != dit.get_marker() and unet.get_color() != dit.get_color()
    assert len(first.collections) == 2  # one interval band per model
    assert axes[0].get_title().replace("\n", " ") == "structure (runs counted: U-Net 16, transformer 16)"
    assert "runs counted: U-Net 13, transformer 0" in axes[1].get_title().replace("\n", " ")
    assert "not measured: transformer" in axes[1].get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["U-Net", "transformer"]
    assert all(ax.get_ylim() == (-0.05, 1.05) for ax in axes)
    texts = [ax.title for ax in axes] + [t for ax in axes for t in ax.get_xticklabels()] + [fig.legends[0]]
    texts += [t for t in fig.texts if t.get_gid() == "xlabel"]
    assert overlapping(boxes(fig, texts)) == []


def test_depth_curves_need_one_depth_per_layer_and_the_same_models_everywhere():
    depths = {"a": [0, 0.5, 1]}
    with pytest.raises(ValueError, match="same keys as values"):
        figures.depth_curves({"a": np.zeros((3, 1))}, depths={"b": [0, 0.5, 1]}, columns=["structure"])
    with pytest.raises(ValueError, match=r"shape \(3, 2\), expected \(3, 1\)"):
        figures.depth_curves({"a": np.zeros((3, 2))}, depths=depths, columns=["structure"])
    with pytest.raises(ValueError, match="increasing"):
        figures.depth_curves({"a": np.zeros((3, 1))}, depths={"a": [0, 1, 0.5]}, columns=["structure"])
    with pytest.raises(ValueError, match="both low and high"):
        figures.depth_curves({"a": np.zeros((3, 1))}, {"a": np.zeros((3, 1))}, depths=depths, columns=["s"])
    with pytest.raises(ValueError, match="counts of 'a': 2 numbers for 1 columns"):
        figures.depth_curves({"a": np.zeros((3, 1))}, depths=depths, columns=["s"], counts={"a": [1, 2]})


def test_new_figures_leave_showing_to_the_notebook(monkeypatch):
    """No figure function calls plt.show: a notebook shows the figure (and saves it first)."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("a figure function called plt.show"))
    points, labels, values, _ = scatter_inputs()
    figs = [
        figures.image_grid(images(4).reshape(2, 2, 8, 8, 3)),
        figures.scatter_3d(points, labels, values),
        figures.scores_along_paths([0, 1], {"z": [0.3, 0.4]}, threshold=0.6),
        figures.depth_curves({"a": np.zeros((2, 1))}, depths={"a": [0, 1]}, columns=["s"]),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)


def _widths_table(widths=(2, 3, 8)):
    from latentkit.world import FACTORS

    rows = []
    for w in widths:
        v = w / 10
        rows.append(
            dict(neurons=w, measure="held-out reconstructions valid", value=v, ci_low=v - 0.1, ci_high=v)
        )
        rows.append(
            dict(neurons=w, measure="ceiling: codec round trip valid", value=0.97, ci_low=0.9, ci_high=1)
        )
        rows += [
            dict(neurons=w, measure=f"{f} read back from reconstructions", value=v, ci_low=v, ci_high=v)
            for f in FACTORS
        ]
    return pd.DataFrame(rows)


def test_quality_by_width_draws_one_point_per_width_and_the_target():
    fig = figures.quality_by_width(_widths_table(), target=0.9)
    left = next(ax for ax in fig.axes if ax.get_gid() == "width-validity")
    right = next(ax for ax in fig.axes if ax.get_gid() == "width-factors")
    valid = next(line for line in left.get_lines() if line.get_label() == "reconstructions valid")
    np.testing.assert_allclose(valid.get_ydata(), [0.2, 0.3, 0.8])
    assert [t.get_text() for t in left.get_xticklabels()] == ["2", "3", "8"]
    assert any(line.get_label() == "target 0.90" for line in left.get_lines())
    assert len([line for line in right.get_lines() if not line.get_label().startswith("_")]) == 6


@pytest.mark.parametrize(
    "table, target, match",
    [
        (pd.DataFrame({"neurons": [3]}), 0.9, "lacks the columns"),
        (_widths_table().iloc[:0], 0.9, "empty"),
        (_widths_table(), 1.5, "target must be a share"),
    ],
)
def test_quality_by_width_refuses_bad_input(table, target, match):
    with pytest.raises(ValueError, match=match):
        figures.quality_by_width(table, target=target)


# --------------------------------------------------------------------------------------------------
# Notebook 00's figures: image_rows, confusion_matrix, score_distributions


def test_image_rows_draws_each_row_to_its_own_length_without_overlaps():
    rows = {"size\n(structure)": images(2), "position\n(structure)": images(5), "shape\n(content)": images(3)}
    under = {k: [f"value {i}" for i in range(len(v))] for k, v in rows.items()}
    fig = figures.image_rows(rows, under=under)
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 2 + 5 + 3  # no empty frames where a row is shorter
    texts = [t for ax in axes for t in ax.texts if t.get_gid() == "under"]
    assert sorted(t.get_text() for t in texts) == sorted(u for v in under.values() for u in v)
    names = [t for t in fig.texts if t.get_gid() == "row-name"]
    assert [t.get_text() for t in names] == list(rows)
    assert not overlapping(boxes(fig, texts + names + axes))
    assert all(t.get_fontsize() >= figures.MIN_FONTSIZE for t in texts + names)


@pytest.mark.parametrize(
    "rows, under, match",
    [
        ({}, None, "non-empty dict"),
        ({"a": images(2)[0]}, None, r"row 'a': shape \(8, 8, 3\)"),
        ({"a": images(2), "b": images(2, side=4)}, None, "same"),
        ({"a": images(2)}, {"b": ["x", "y"]}, "same keys as rows"),
        ({"a": images(2)}, {"a": ["x"]}, r"under\['a'\]: 1 labels for 2 images"),
    ],
)
def test_image_rows_refuses_bad_input(rows, under, match):
    with pytest.raises(ValueError, match=match):
        figures.image_rows(rows, under=under)


def test_confusion_matrix_prints_counts_and_colours_row_shares():
    counts = np.array([[8, 2, 0], [0, 10, 0], [1, 0, 9]])
    labels = ["circle", "square", "triangle"]
    fig = figures.confusion_matrix(counts, labels, title="shape")
    ax = next(a for a in fig.axes if a.get_gid() == "confusion")
    assert [t.get_text() for t in ax.texts] == [str(c) for c in counts.flat]
    np.testing.assert_allclose(ax.images[0].get_array(), counts / counts.sum(1, keepdims=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert any(a.get_gid() == "colorbar" for a in fig.axes)
    ticks = list(ax.get_xticklabels()) + list(ax.get_yticklabels()) + [ax.xaxis.label, ax.yaxis.label]
    assert not overlapping(boxes(fig, ticks))
    assert all(t.get_fontsize() >= figures.MIN_FONTSIZE for t in ticks + ax.texts)


@pytest.mark.parametrize(
    "counts, labels, match",
    [
        (np.zeros((2, 3)), ["a", "b"], "square"),
        (np.array([[1, -1], [0, 2]]), ["a", "b"], "non-negative whole numbers"),
        (np.array([[1.5, 0], [0, 2]]), ["a", "b"], "non-negative whole numbers"),
        (np.eye(2, dtype=int), ["a"], "1 names for a 2 x 2 matrix"),
    ],
)
def test_confusion_matrix_refuses_bad_input(counts, labels, match):
    with pytest.raises(ValueError, match=match):
        figures.confusion_matrix(counts, labels)


def test_confusion_matrix_leaves_an_empty_row_blank():
    fig = figures.confusion_matrix(np.array([[0, 0], [1, 3]]), ["a", "b"])
    ax = next(a for a in fig.axes if a.get_gid() == "confusion")
    np.testing.assert_allclose(ax.images[0].get_array(), [[0, 0], [0.25, 0.75]])


def test_score_distributions_draws_one_box_per_kind_top_down_with_the_threshold():
    rng = np.random.default_rng(0)
    scores = {"clean render": rng.uniform(0.9, 1, 50), "no object": rng.uniform(0.2, 0.5, 50)}
    fig = figures.score_distributions(scores, threshold=0.6, threshold_label="threshold")
    ax = next(a for a in fig.axes if a.get_gid() == "scores")
    assert [t.get_text() for t in ax.get_yticklabels()] == list(scores)
    bottom, top = ax.get_ylim()
    assert bottom > top  # the first kind at the top
    line = next(x for x in ax.get_lines() if x.get_gid() == "threshold")
    np.testing.assert_allclose(line.get_xdata(), [0.6, 0.6])
    label = next(t for t in ax.texts if t.get_gid() == "threshold-label")
    assert label.get_text() == "threshold (0.6)"
    assert ax.get_xlim()[0] <= 0 and ax.get_xlim()[1] >= 1
    texts = list(ax.get_yticklabels()) + [label, ax.xaxis.label]
    assert not overlapping(boxes(fig, texts))
    assert all(t.get_fontsize() >= figures.MIN_FONTSIZE for t in texts)


@pytest.mark.parametrize(
    "scores, kwargs, match",
    [
        ({}, {}, "non-empty dict"),
        ({"a": [0.5, np.nan]}, {}, r"scores\['a'\] is empty or holds NaN"),
        ({"a": []}, {}, r"scores\['a'\] is empty"),
        ({"a": [0.5]}, {"threshold": True}, "threshold must be a finite number or None"),
        ({"a": [0.5]}, {"xlim": (1, 0)}, "xlim must be"),
        ({"a": [0.5]}, {"fontsize": 6}, "at least 8 pt"),
    ],
)
def test_score_distributions_refuses_bad_input(scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        figures.score_distributions(scores, **kwargs)


def test_notebook_00_figures_leave_showing_to_the_notebook(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("a figure function called plt.show"))
    figs = [
        figures.image_rows({"a": images(2), "b": images(3)}),
        figures.confusion_matrix(np.eye(2, dtype=int), ["a", "b"]),
        figures.score_distributions({"a": [0.2, 0.4]}, threshold=0.6),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)


def test_synthesis_indices_draws_each_models_index_and_names_an_empty_row():
    from types import SimpleNamespace

    def index(value, verdict, space="code"):
        shares = pd.DataFrame({"share": [0.2, value]}, index=["a", space])
        return SimpleNamespace(
            index=value,
            ci=(value - 0.05, min(1.0, value + 0.05)),
            verdict=verdict,
            space=space,
            shares=shares,
        )

    inputs = SimpleNamespace(shares=pd.DataFrame({"share": [0.1, 0.9]}, index=["noise", "prompt"]))
    results = {
        "autoencoder": index(1.0, "strict"),
        "U-Net": index(0.5, "broad", "up"),
        "DiT": index(np.nan, "undetermined"),
    }
    fig = figures.synthesis_indices(results, strict=0.9, chance=1 / 6, inputs={"U-Net": inputs})
    ax = next(a for a in fig.axes if a.get_gid() == "synthesis-indices")
    assert [t.get_text() for t in ax.get_yticklabels()] == list(results)
    texts = [t.get_text() for t in ax.texts]
    assert "1.00 (code)" in texts and "0.50 (up)" in texts
    assert any("undetermined: no valid injected images" in t for t in texts)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"input: noise", "input: prompt"}
    with pytest.raises(ValueError, match="not in results"):
        figures.synthesis_indices(results, strict=0.9, chance=1 / 6, inputs={"VAE": inputs})
    with pytest.raises(ValueError, match="non-empty"):
        figures.synthesis_indices({}, strict=0.9, chance=1 / 6)
