"""The shapes world: determinism, balance, geometry, captions and clear errors."""

import numpy as np
import pytest

from latentkit.world import (
    BACKGROUNDS,
    COLORS,
    FACTORS,
    HELD_OUT,
    SHAPES,
    Factors,
    World,
    caption_of,
    parse_caption,
    vocabulary,
)


@pytest.fixture(scope="module")
def world():
    return World(64)


def test_same_seed_same_images_bit_for_bit(world):
    a, b = world.sample(64, seed=7), world.sample(64, seed=7)
    assert a.images.dtype == np.uint8 and a.images.shape == (64, 64, 64, 3)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.captions == b.captions
    assert not np.array_equal(a.images, world.sample(64, seed=8).images)


def test_batches_are_deterministic_and_sized(world):
    first = [b.images for b in world.batches(250, batch_size=100, seed=3)]
    again = [b.images for b in world.batches(250, batch_size=100, seed=3)]
    assert [len(x) for x in first] == [100, 100, 50]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


@pytest.mark.parametrize("size", [32, 48, 128])
def test_other_sizes_scale_the_geometry(size):
    w = World(size)
    batch = w.sample(20, seed=0, masks=True)
    assert batch.images.shape == (20, size, size, 3)
    # The object covers the same share of the image at every size (areas scale with size^2).
    ref = World(64).sample(20, seed=0, masks=True)
    ratio = batch.masks.sum((1, 2)) / ref.masks.sum((1, 2)) / (size / 64) ** 2
    assert np.allclose(ratio, 1, atol=0.15)


@pytest.mark.parametrize("size", [50, 8, 16, 65])
def test_size_must_be_a_multiple_of_16(size):
    with pytest.raises(ValueError, match="multiple of 16"):
        World(size)


def test_factor_values_are_as_promised():
    assert len(SHAPES) >= 6 and len(COLORS) >= 6 and len(BACKGROUNDS) >= 4
    assert len(FACTORS["texture"]) >= 3 and len(FACTORS["position"]) == 9
    assert FACTORS["size"] == ("small", "large")


def test_sampling_is_balanced(world):
    f = world.sample_factors(9000, seed=1)
    for name, values in FACTORS.items():
        counts = np.bincount(getattr(f, name), minlength=len(values))
        expected = 9000 / len(values)
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (name, counts)


def test_splits_hold_out_shape_colour_pairs(world):
    held = {(SHAPES.index(s), FACTORS["color"].index(c)) for s, c in HELD_OUT}
    train = world.sample_factors(5000, seed=2, split="train")
    pairs = set(zip(train.shape.tolist(), train.color.tolist(), strict=True))
    assert not pairs & held
    assert len(pairs) == len(SHAPES) * len(COLORS) - len(HELD_OUT)
    heldout = world.sample_factors(500, seed=2, split="heldout")
    assert set(zip(heldout.shape.tolist(), heldout.color.tolist(), strict=True)) == held
    with pytest.raises(ValueError, match="split"):
        world.sample_factors(3, seed=0, split="test")


def test_centroid_is_exact_and_in_its_cell(world):
    batch = world.sample(500, seed=4, masks=True)
    m = batch.masks
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    cx = (m * xx).sum((1, 2)) / m.sum((1, 2))
    cy = (m * yy).sum((1, 2)) / m.sum((1, 2))
    assert np.allclose(batch.centroids, np.stack([cx, cy], 1), atol=1e-3)
    assert np.array_equal(world.cell_of(batch.centroids), batch.factors.position)
    # Shapes stay inside the image: no coverage on the border rows/columns.
    assert m[:, 0].max() == 0 and m[:, -1].max() == 0 and m[:, :, 0].max() == 0


def test_object_pixels_have_the_object_colour(world):
    batch = world.sample(200, seed=5, masks=True)
    colors = np.array(list(COLORS.values()))
    for i in range(len(batch)):
        inside = batch.images[i][batch.masks[i] > 0.999]
        assert len(inside) > 20
        assert np.abs(inside.astype(int) - colors[batch.factors.color[i]]).max() <= 1


def test_every_shape_looks_different(world):
    f = Factors.from_names(
        shape=list(SHAPES), color="red", background="white", texture="plain",
        position="center", size="large",
    )  # fmt: skip
    masks = world.render(f, masks=True).masks > 0.5
    for i in range(len(SHAPES)):
        for j in range(i + 1, len(SHAPES)):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.85, (SHAPES[i], SHAPES[j], iou)


def test_render_at_given_centers_moves_the_object(world):
    f = world.sample_factors(10, seed=6)
    centers = world.centers(f) + 3.0
    moved = world.render(f, centers=centers)
    assert np.allclose(moved.centroids - world.render(f).centroids, 3.0, atol=0.05)
    back = world.center_from_centroid(f.shape, f.size, moved.centroids)
    assert np.allclose(back, centers, atol=0.05)


def test_captions_round_trip(world):
    f = world.sample_factors(300, seed=9)
    for i, caption in enumerate(world.caption(f)):
        assert parse_caption(caption) == f.names(i)
        assert set(caption.split()) <= set(vocabulary())
    assert (
        caption_of(
            {
                "size": "large",
                "color": "red",
                "shape": "star",
                "position": "top left",
                "texture": "striped",
                "background": "white",
            }
        )  # fmt: skip
        == "a large red star at the top left on a striped white background"
    )


def test_bad_input_gets_clear_errors(world):
    with pytest.raises(ValueError, match="Did you mean 'star'"):
        Factors.from_names(
            shape="starr", color="red", background="white", texture="plain",
            position="center", size="large",
        )  # fmt: skip
    with pytest.raises(ValueError, match="missing"):
        Factors.from_names(shape="star")
    with pytest.raises(ValueError, match="caption grammar"):
        parse_caption("a dog on a sofa")
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        parse_caption("a large pink star at the top on a plain white background")
    with pytest.raises(ValueError, match="labels must be in"):
        Factors(shape=[9], color=[0], background=[0], texture=[0], position=[0], size=[0],
                jitter=[[0, 0]])  # fmt: skip
    with pytest.raises(TypeError, match="Factors"):
        world.render({"shape": [0]})
