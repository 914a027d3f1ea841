"""The explorers' pure callbacks against known answers, and their widgets with and without a frontend."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from latentkit import aspects, explore, injection, roles, tiny
from latentkit.aspects import Run
from latentkit.injection import SweepResult
from latentkit.layers import Layer
from latentkit.spaces import FactorSpace, GaussianSpace
from latentkit.world import ASPECTS, FACTORS, World

NAMES = ["unet.down_blocks.0.resnets.0", "unet.mid_block.resnets.0", "unet.up_blocks.0.resnets.0"]
LAYERS = [Layer(n, n.split(".")[1].split("_")[0], i, "ResnetBlock2D") for i, n in enumerate(NAMES)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def flat(value: float) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.float32)


def synthetic_runs(pairs: int = 3) -> list[Run]:
    """Runs whose images are flat greys that say which pair and layer they are: O 0.1, E 0.9, layer k of
    pair p 0.2 + 0.1 k + 0.01 p."""
    return [
        Run(
            p,
            10 + p,
            {"prompt": "o", "seed": 10 + p},
            {"prompt": "e", "seed": 10 + p},
            SweepResult(
                flat(0.1), flat(0.9), np.stack([flat(0.2 + 0.1 * k + 0.01 * p) for k in range(3)]), NAMES
            ),
        )
        for p in range(pairs)
    ]


def synthetic_observations(pairs: int = 8) -> pd.DataFrame:
    """Layer 0 takes E's structure in every pair; layer 1 E's content in every other pair; layer 2 makes
    invalid images but in two pairs."""
    rows = []
    for p in range(pairs):
        for i, name in enumerate(NAMES):
            for aspect, factors in ASPECTS.items():
                took = (aspect == "structure" and i == 0) or (aspect == "content" and i == 1 and p % 2 == 0)
                rows += [(p, 0, name, f, float(took)) for f in factors]
            rows.append((p, 0, name, "whole", 0.0))
            rows.append((p, 0, name, "in_distribution", float(i < 2 or p < 2)))
    return pd.DataFrame(rows, columns=["pair", "seed", "layer", "measure", "value"])


@pytest.fixture(scope="module")
def role_table():
    return roles.role_table(synthetic_observations(), LAYERS, n_boot=200)


# --------------------------------------------------------------------------------------------------
# layer_view


def test_layer_view_shows_that_pairs_images_and_the_layers_measured_shares(role_table):
    runs = synthetic_runs()
    view = explore.layer_view(runs, role_table, "unet.mid_block.resnets.0", pair=2)
    assert np.array_equal(view.original, flat(0.1)) and np.array_equal(view.edit, flat(0.9))
    assert np.array_equal(view.injected, flat(0.2 + 0.1 * 1 + 0.01 * 2))
    assert (view.pair, view.seed, view.label) == (2, 12, "mid res0")
    assert view.shares["content"][0] == 0.5 and view.shares["structure"] == (0.0, 0.0, 0.0)
    low, high = role_table.loc[NAMES[1], ["content_low", "content_high"]]
    assert view.shares["content"] == (0.5, low, high)
    assert view.valid == (1.0, 1.0, 1.0) and view.role == role_table.loc[NAMES[1], "role"]
    assert f"content: 0.50 [{low:.2f}, {high:.2f}]" in view.text
    assert "valid injected images: 1.00 [1.00, 1.00]" in view.text
    assert "runs whose injected image is valid" in view.text  # a role table's shares count valid runs only
    # a layer with too few valid images says so instead of giving a share
    broken = explore.layer_view(runs, role_table, "up0 res0", pair=0)  # by its short label
    assert broken.layer == NAMES[2] and broken.role == "undetermined"
    assert "structure: n/a" in broken.text and "valid injected images: 0.25" in broken.text


def test_layer_view_reads_an_aspect_table_and_works_without_a_table():
    runs = synthetic_runs()
    table = aspects.aspect_table(synthetic_observations(), LAYERS, n_boot=200)
    view = explore.layer_view(runs, table, NAMES[0])
    assert view.shares["structure"] == (1.0, 1.0, 1.0) and view.role is None and not view.valid_only
    bare = explore.layer_view(runs, None, NAMES[0], pair=1)
    assert bare.shares == {} and bare.valid is None
    assert np.array_equal(bare.injected, flat(0.21))


def test_layer_view_names_what_exists_when_asked_for_what_does_not(role_table):
    runs = synthetic_runs()
    with pytest.raises(ValueError, match="closest"):
        explore.layer_view(runs, role_table, "unet.mid_block.resnets.1")
    with pytest.raises(ValueError, match=r"hold pairs \[0, 1, 2\]"):
        explore.layer_view(runs, role_table, NAMES[0], pair=7)


# --------------------------------------------------------------------------------------------------
# window_view, on a tiny real pipeline


@pytest.fixture(scope="module")
def sd1():
    return tiny.build("sd1")


def test_window_view_injects_only_during_its_window(sd1):
    original, edit = tiny.example_pair("sd1")
    settings = tiny.call_kwargs("sd1", num_inference_steps=3)
    layer = "unet.mid_block.attentions.0"
    empty = explore.window_view(sd1, (original, edit), layer, (1, 1), **settings)
    assert np.abs(empty.injected - empty.original).max() <= 1e-5  # no step injected: O itself
    everywhere = explore.window_view(sd1, (original, edit), layer, None, **settings)
    full = explore.window_view(sd1, (original, edit), layer, (0, 3), **settings)
    reference = injection.sweep(sd1, original, edit, [layer], **settings)
    assert np.array_equal(everywhere.injected, reference.injected[0])
    assert np.array_equal(full.injected, reference.injected[0])
    assert np.abs(everywhere.injected - everywhere.original).max() > 1e-3  # the layer carries something
    early = explore.window_view(sd1, Run(0, 0, original, edit, reference), layer, (0, 1), **settings)
    expected = injection.sweep(sd1, original, edit, [layer], steps=(0, 1), **settings).injected[0]
    assert np.array_equal(early.injected, expected)
    assert early.text == "mid attn0: E injected at steps 0 to 0 of 3"
    assert "no step of 3 (O itself)" in empty.text
    with pytest.raises(ValueError, match="outside the schedule"):
        explore.window_view(sd1, (original, edit), layer, (0, 5), **settings)
    with pytest.raises(TypeError, match="pair must be"):
        explore.window_view(sd1, original, layer, (0, 1), **settings)


# --------------------------------------------------------------------------------------------------
# latent_view


def test_latent_view_moves_the_point_and_decodes_it_exactly():
    world = World(64)
    space = FactorSpace(world)
    start = world.sample_factors(1, seed=3)
    base = space.points_of(start)[0]  # (33,)
    target = (int(start.shape[0]) + 2) % len(FACTORS["shape"])
    direction = torch.zeros(1, space.dim)
    direction[0, target] = 1.0  # the one-hot entry of another shape
    view = explore.latent_view(space, base, [2.0], direction, names=["to another shape"])
    moved = start.__class__(**{**start.__dict__, "shape": np.array([target])})
    assert np.array_equal(view.image, world.render(moved).images[0])
    assert torch.equal(view.point, base + 2.0 * direction[0])
    assert view.factors is None and view.text == "to another shape +2.00"


def test_latent_view_default_directions_are_the_spaces_axes():
    # a decoder that paints the first two coordinates into the red and green channels
    def decoder(z: torch.Tensor) -> torch.Tensor:  # (N, 2) -> (N, 3, 2, 2)
        return torch.stack([z[:, 0], z[:, 1], torch.zeros(len(z))], 1)[:, :, None, None].expand(-1, -1, 2, 2)

    space = GaussianSpace("toy", decoder, mean=torch.zeros(2))
    view = explore.latent_view(space, torch.tensor([0.2, 0.4]), [0.4, -0.2])
    assert torch.allclose(view.point, torch.tensor([0.6, 0.2]))
    assert view.image[0, 0].tolist() == [round(0.6 * 255), round(0.2 * 255), 0]
    with pytest.raises(ValueError, match=r"\(K, D\) = \(2, 2\)"):
        explore.latent_view(space, torch.zeros(2), [1.0, 1.0], torch.eye(3)[:2])
    with pytest.raises(ValueError, match="one point"):
        explore.latent_view(space, torch.zeros(2, 2), [1.0])
    with pytest.raises(TypeError, match="Space, an Autoencoder"):
        explore.latent_view(object(), torch.zeros(2), [1.0])


def test_latent_view_reads_the_image_with_the_probes():
    from latentkit.probes import IN_DISTRIBUTION_THRESHOLD, load_probes

    probes = load_probes()
    world = World(64)
    space = FactorSpace(world)
    start = world.sample_factors(1, seed=5)
    view = explore.latent_view(space, space.points_of(start)[0], [0.0], probes=probes)
    readout = probes.read(view.image[None])
    assert view.factors == readout.names(0)
    assert view.factors["shape"] == FACTORS["shape"][int(start.shape[0])]  # a clean render reads right
    assert view.in_distribution >= IN_DISTRIBUTION_THRESHOLD
    assert "a valid world image" in view.text and f"shape {view.factors['shape']}" in view.text


# --------------------------------------------------------------------------------------------------
# widgets: live with a frontend, a static figure without


def test_frontend_present_follows_the_notebooks_rule(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    assert explore.frontend_present("auto") is False
    assert explore.frontend_present(True) is True and explore.frontend_present(False) is False
    monkeypatch.setenv("JPY_SESSION_NAME", "lab")
    assert explore.frontend_present("auto") is True
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        explore.frontend_present("yes")


def test_make_widget_redraws_on_every_change_and_shows_errors():
    import ipywidgets as widgets

    class Shown:
        def __init__(self, n):
            self.n, self.text = n, f"n is {n}"

    def view(n):
        if n < 0:
            raise ValueError("n must not be negative")
        return Shown(n)

    def draw(shown):
        return explore.latent_view_figure(explore.LatentView(torch.zeros(1), (float(shown.n),), flat(0.5)))

    called = []
    fallback = object()
    slider = widgets.IntSlider(value=1, min=-3, max=3)
    assert (
        explore.make_widget(
            view, {"n": slider}, draw, lambda: called.append(1) or fallback, interactive=False
        )
        is fallback
    )
    assert called == [1]
    box = explore.make_widget(view, {"n": slider}, draw, lambda: called.append(2), interactive=True)
    assert called == [1]  # live: the fallback is never drawn
    *_, image, text = box.children
    assert "n is 1" in text.value and bytes(image.value).startswith(b"\x89PNG")
    slider.value = 2
    assert "n is 2" in text.value
    slider.value = -1
    assert "n must not be negative" in text.value


def test_layer_widget_falls_back_to_a_static_figure_and_is_live_with_a_frontend(role_table):
    runs = synthetic_runs()
    fig = explore.layer_widget(runs, role_table, interactive=False)
    image_axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(image_axes) == 3 * 3  # O, E and O_L for each of the three layers
    texts = [t.get_text() for t in fig.texts if t.get_gid() == "view-text"]
    assert len(texts) == 3 and texts[0].startswith("down0 res0")
    box = explore.layer_widget(runs, role_table, interactive=True)
    layer, pair, image, text = box.children
    assert layer.value == NAMES[0] and "role: structure" in text.value
    layer.value = NAMES[1]
    pair.value = 2
    assert "mid res0" in text.value and "pair 2" in text.value
    with pytest.raises(ValueError, match="num_inference_steps"):
        explore.layer_widget(runs, role_table, pipe=object(), interactive=False)


def test_layer_widget_window_slider_runs_the_window_view(sd1):
    original, edit = tiny.example_pair("sd1")
    settings = tiny.call_kwargs("sd1", num_inference_steps=3)
    layer = "unet.mid_block.attentions.0"
    runs = [Run(0, 0, original, edit, injection.sweep(sd1, original, edit, [layer], **settings))]
    box = explore.layer_widget(runs, None, pipe=sd1, settings=settings, interactive=True)
    _, _, window, image, text = box.children
    assert window.value == (0, 3) and "image:" not in text.value  # the stored run, no new sweep
    before = image.value
    window.value = (1, 1)
    assert "no step of 3" in text.value and image.value != before


def test_latent_widget_has_one_slider_per_direction_and_a_grid_without_a_frontend():
    world = World(64)
    space = FactorSpace(world)
    base = space.points_of(world.sample_factors(1, seed=1))[0]
    directions = torch.eye(space.dim)[-2:]  # the jitter coordinates
    import matplotlib.pyplot as plt  # as in a notebook: figures are made through pyplot ...

    fig = explore.latent_widget(space, base, directions, names=["jitter x", "jitter y"], interactive=False)
    assert plt.get_fignums() == []  # ... but the returned fallback is off its list: the cell shows it once
    axes = [ax for ax in fig.axes if ax.get_gid() == "image"]
    assert len(axes) == 25  # 5 x 5 over the two directions
    under = [t.get_text() for t in axes[0].texts]
    assert under == ["jitter x -2.0"]
    box = explore.latent_widget(space, base, directions, names=["jitter x", "jitter y"], interactive=True)
    x, y, image, text = box.children
    assert (x.description, y.description) == ("jitter x", "jitter y")
    x.value = 0.5
    assert "jitter x +0.50, jitter y +0.00" in text.value


def test_a_layer_the_role_table_leaves_out_is_shown_as_not_judged():
    import pandas as pd

    from latentkit.aspects import Run
    from latentkit.injection import SweepResult

    image = np.zeros((4, 4, 3), dtype=np.float32)
    result = SweepResult(image, image + 1, np.stack([image, image]), ["unet.a", "unet.b"])
    runs = [Run(0, 0, {"prompt": "a"}, {"prompt": "b"}, result)]
    table = pd.DataFrame(
        {
            "structure": [1.0],
            "structure_low": [1.0],
            "structure_high": [1.0],
            "valid_share": [1.0],
            "valid_low": [1.0],
            "valid_high": [1.0],
            "role": ["structure"],
        },
        index=["unet.a"],
    )
    view = explore.layer_view(runs, table, "unet.b")
    assert view.role.startswith("not judged") and view.shares == {}
