"""The flipbook (:func:`latentkit.explore.flipbook`): sliders over images decoded beforehand, which move
without a kernel. Its HTML holds exactly the images it was given; its frames are the decoded points; and,
where Chromium is installed, a slider moves on a page of its own and on a book page built from a
notebook, with no console error."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from test_book import chromium_or_skip

from latentkit import book, explore
from latentkit.spaces import FactorSpace, GaussianSpace
from latentkit.world import World

LABELS = ["-2 sd", "-1 sd", "0 sd", "+1 sd", "+2 sd"]
NAMES = ["neuron 1", "neuron 2"]
CAPTIONS = [[f"n{k + 1} at {label}" for label in LABELS] for k in range(2)]


@pytest.fixture
def chromium() -> str:
    """The browser (see ``tests/test_book.py``: a skip without one, a failure where CI requires it)."""
    return chromium_or_skip()


def images(seed: int = 0, shape=(2, 5, 4, 6, 3)) -> np.ndarray:
    """Random ``(S, P, H, W, 3)`` uint8 images: every frame differs from every other."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def tags(text: str) -> list[tuple[str, dict, str]]:
    """``(tag, attributes, text up to the next tag)`` for every start tag of ``text``."""

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.found: list[list] = []

        def handle_starttag(self, tag, attrs):
            self.found.append([tag, dict(attrs), ""])

        def handle_data(self, data):
            if self.found:
                self.found[-1][2] += data

    parser = Tags()
    parser.feed(text)
    return [tuple(t) for t in parser.found]


def decoded(uri: str) -> np.ndarray:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"))


def script_frames(html: str) -> list[list[str]]:
    """The data URIs the flipbook's script swaps in: ``frames[k][i]``."""
    start = re.search(r"var frames = ", html).end()
    return json.JSONDecoder().raw_decode(html, start)[0]


# --------------------------------------------------------------------------------------------------
# The HTML


def test_one_range_one_image_and_one_label_per_slider():
    book_ = explore.flipbook(
        images(), labels=LABELS, names=NAMES, captions=CAPTIONS, title="two neurons", scale=3
    )
    html = str(book_)
    assert book_.html == html == book_._repr_html_()
    assert repr(book_) == "<Flipbook: 2 sliders x 5 positions>"  # a notebook's text/plain: not the HTML
    found = tags(html)
    ranges = [a for t, a, _ in found if t == "input"]
    assert [(a["type"], a["min"], a["max"], a["value"]) for a in ranges] == [("range", "0", "4", "2")] * 2
    assert all("disabled" in a for a in ranges)  # until the script runs: without it nothing would move
    imgs = [a for t, a, _ in found if t == "img"]
    assert [(a["width"], a["height"]) for a in imgs] == [("18", "12")] * 2  # W * scale, H * scale
    assert all("image-rendering:pixelated" in a["style"] for a in imgs)
    assert [text for t, _, text in found if t == "output"] == ["0 sd", "0 sd"]
    assert [text for t, a, text in found if a.get("class") == "lk-fb-caption"] == ["n1 at 0 sd", "n2 at 0 sd"]
    assert [text.strip() for t, _, text in found if t == "label"] == NAMES
    assert "two neurons" in html
    (root,) = [a for _, a, _ in found if "data-latentkit-flipbook" in a]
    assert re.fullmatch(r"lk-flipbook-[0-9a-f]{10}-\d+", root["id"])
    assert not re.search(r"\b(?:src|href)=\"(?!data:)", html)  # nothing loaded from anywhere


def test_the_data_uris_decode_back_to_the_images():
    given = images()
    html = explore.flipbook(given, labels=LABELS, names=NAMES).html
    frames = script_frames(html)
    assert len(frames) == 2 and all(len(row) == 5 for row in frames)
    for k in range(2):
        for i in range(5):
            assert np.array_equal(decoded(frames[k][i]), given[k, i]), (k, i)
    shown = [a["src"] for t, a, _ in tags(html) if t == "img"]
    assert shown == [frames[0][2], frames[1][2]]  # the middle image, also without scripts


def test_text_cannot_break_out_of_the_page_or_the_script():
    nasty = ["</script><b>", '"quoted"', "a & b", "<!--", "x"]
    html = explore.flipbook(images(shape=(1, 5, 2, 2, 3)), labels=nasty, names=["<i>n</i>"]).html
    assert html.count("</script>") == 1 and "<b>" not in html and "<i>" not in html
    assert "&lt;i&gt;n&lt;/i&gt;" in html


def test_two_flipbooks_on_one_page_have_distinct_ids():
    same = [explore.flipbook(images(), labels=LABELS) for _ in range(2)]
    other = explore.flipbook(images(seed=1), labels=LABELS)
    ids = [re.search(r'id="([^"]+)"', b.html).group(1) for b in [*same, other]]
    assert len(set(ids)) == 3
    assert [i.rsplit("-", 1)[0] for i in ids[:2]] == [ids[0].rsplit("-", 1)[0]] * 2  # from the content ...
    for b, uid in zip([*same, other], ids, strict=True):
        assert f"document.getElementById({json.dumps(uid)})" in b.html  # ... and each script finds its own


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": images().astype(np.float32)}, "images must be uint8"),
        ({"images": images()[0]}, r"images must be \(S, P, H, W, 3\)"),
        ({"images": images()[..., :1]}, r"images must be \(S, P, H, W, 3\)"),
        ({"images": images()[:, :1], "labels": ["0 sd"]}, "at least 2 positions, got P = 1"),
        ({"images": images()[:0]}, r"no slider \(S = 0\)"),
        ({"labels": LABELS[:3]}, r"3 labels for the 5 positions of images \(2, 5, 4, 6, 3\)"),
        ({"names": ["neuron 1"]}, "1 names for the 2 sliders"),
        ({"captions": CAPTIONS[:1]}, r"captions must be \(S, P\) = \(2, 5\), one per image, got 1 rows"),
        ({"captions": ["one caption", "per slider"]}, r"captions must be \(S, P\) = \(2, 5\)"),
        ({"scale": 0}, "scale must be positive"),
    ],
)
def test_bad_input_is_refused_in_one_line(change, message):
    arguments = {"images": images(), "labels": LABELS, "names": NAMES, **change}
    with pytest.raises(ValueError, match=message) as error:
        explore.flipbook(arguments.pop("images"), **arguments)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------------
# The frames


def test_flipbook_frames_are_the_decoded_points_and_the_middle_one_is_the_start():
    world = World(64)
    space = FactorSpace(world)
    start = space.points_of(world.sample_factors(1, seed=3))[0]  # (33,)
    directions = torch.eye(space.dim)[[0, space.dim - 1]]  # a shape's one-hot entry, jitter y
    steps = [-2.0, -0.5, 0.0, 0.5, 2.0]
    frames = explore.flipbook_frames(space, start, directions, steps)
    assert frames.shape == (2, 5, 64, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[:, 2], np.stack([space.decode(start[None])[0]] * 2))
    for k in range(2):
        for i, step in enumerate(steps):
            values = [step if j == k else 0.0 for j in range(2)]
            expected = explore.latent_view(space, start, values, directions).image
            assert np.array_equal(frames[k, i], expected), (k, step)
    assert not np.array_equal(frames[1, 0], frames[1, 4])  # jitter moved the shape


def test_each_slider_of_the_frames_moves_its_own_direction_only():
    # a decoder that paints the two coordinates into the red and green channels
    def decoder(z: torch.Tensor) -> torch.Tensor:  # (N, 2) -> (N, 3, 1, 1)
        return torch.stack([z[:, 0], z[:, 1], torch.zeros(len(z))], 1)[:, :, None, None]

    space = GaussianSpace("toy", decoder, mean=torch.zeros(2))
    frames = explore.flipbook_frames(
        space, torch.tensor([0.5, 0.5]), torch.diag(torch.tensor([0.2, 0.1])), [-2, 0, 2]
    )
    red, green = frames[..., 0, 0, 0].astype(int), frames[..., 0, 0, 1].astype(int)
    assert np.abs(red - [[25, 128, 230], [128, 128, 128]]).max() <= 1
    assert np.abs(green - [[128, 128, 128], [77, 128, 179]]).max() <= 1
    with pytest.raises(ValueError, match=r"\(K, D\) = \(2, 2\)"):
        explore.flipbook_frames(space, torch.zeros(2), torch.eye(3)[:2], [-1, 1])


# --------------------------------------------------------------------------------------------------
# In a browser

MOVE = """(() => {
  const books = document.querySelectorAll('[data-latentkit-flipbook]');
  const box = books[0].querySelectorAll('[data-slider]')[1];
  const range = box.querySelector('input[type=range]');
  range.value = 4;
  range.dispatchEvent(new Event('input'));
  const other = books.length > 1 ? books[1].querySelectorAll('[data-slider]')[1] : null;
  const still = other ? other.querySelector('img').src : null;
  return {disabled: range.disabled, src: box.querySelector('img').src, alt: box.querySelector('img').alt,
          label: box.querySelector('output').textContent,
          caption: box.querySelector('.lk-fb-caption').textContent, still: still};
})()"""


def test_a_flipbook_slider_moves_in_a_browser(tmp_path, chromium):
    first = explore.flipbook(images(), labels=LABELS, names=NAMES, captions=CAPTIONS)
    second = explore.flipbook(images(seed=1), labels=LABELS, names=NAMES, captions=CAPTIONS)
    page = tmp_path / "flipbook.html"
    page.write_text(
        f'<!DOCTYPE html><html lang="en"><meta charset="utf-8"><body>{first}{second}</body></html>'
    )
    (report,) = book.check_pages([page], evaluate=MOVE, chromium=chromium)
    assert report.ok, str(report)
    moved = report.evaluated
    assert moved["disabled"] is False
    assert moved["src"] == script_frames(first.html)[1][4]
    assert (moved["label"], moved["caption"], moved["alt"]) == ("+2 sd", "n2 at +2 sd", "neuron 2 at +2 sd")
    assert moved["still"] == script_frames(second.html)[1][2]  # the other flipbook did not move


def test_a_flipbook_slider_moves_in_the_book(tmp_path, chromium):
    world = World(64)
    space = FactorSpace(world)
    start = space.points_of(world.sample_factors(1, seed=1))[0]
    frames = explore.flipbook_frames(
        space, start, torch.eye(space.dim)[[0, space.dim - 2]], [-2, -1, 0, 1, 2]
    )
    shown = explore.flipbook(frames, labels=LABELS, names=NAMES, captions=CAPTIONS)
    code = new_code_cell("flipbook(frames, labels=labels)", execution_count=1)
    code.outputs = [new_output("display_data", {"text/html": shown.html, "text/plain": repr(shown)})]
    nb = new_notebook(cells=[new_markdown_cell("# 00 · A flipbook\n\n**Claim.** It moves."), code])
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "figures").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "00_flipbook.ipynb")
    out = tmp_path / "book"
    book.build_book(out, tmp_path / "notebooks", figures=tmp_path / "figures")
    assert book.check_links(out) == []
    (report,) = book.check_pages([out / "00_flipbook.html"], evaluate=MOVE, chromium=chromium)
    assert report.ok, str(report)
    assert report.evaluated["src"] == script_frames(shown.html)[1][4]
    assert np.array_equal(decoded(report.evaluated["src"]), frames[1, 4])
    assert report.evaluated["label"] == "+2 sd" and report.evaluated["disabled"] is False
