"""The book (``make book``, :mod:`latentkit.book`): built from the committed notebooks, offline, linked, and,
where Chromium is installed, free of console errors and broken images in a real browser.

Without Chromium the browser tests skip, on a developer's machine. Where ``LATENTKIT_REQUIRE_CHROMIUM`` is
set (``.ci/run`` sets it to 1 once it has installed Chromium), a missing browser fails them instead, so CI
cannot pass without the browser check."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from latentkit import book

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: Set (to anything but "" or "0") where a missing Chromium must fail the browser tests, not skip them.
REQUIRE_CHROMIUM = "LATENTKIT_REQUIRE_CHROMIUM"


def find_chromium() -> str | None:
    """The browser to open the pages in: :data:`latentkit.book.CHROMIUM` (Debian's ``/usr/bin/chromium``) if
    it exists, else ``chromium`` or ``chromium-browser`` (Ubuntu's name) on the PATH; None without one."""
    if Path(book.CHROMIUM).exists():
        return book.CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_or_skip() -> str:
    """The browser's path; without one, skip the test, or fail it where :data:`REQUIRE_CHROMIUM` is set."""
    found = find_chromium()
    if found is not None:
        return found
    where = f"{book.CHROMIUM}, chromium or chromium-browser on the PATH"
    if os.environ.get(REQUIRE_CHROMIUM, "") not in ("", "0"):
        pytest.fail(
            f"{REQUIRE_CHROMIUM} is set but there is no Chromium ({where}): the book's browser check cannot "
            "run. Install it (Debian: apt-get install chromium), or unset the variable to skip this test",
            pytrace=False,
        )
    pytest.skip(
        f"no Chromium ({where}), so the pages are not opened in a browser "
        f"(Debian: apt-get install chromium; .ci/run installs it and sets {REQUIRE_CHROMIUM}=1)"
    )


@pytest.fixture
def chromium() -> str:
    """The browser, for the tests that open pages in it (see :func:`chromium_or_skip`)."""
    return chromium_or_skip()


#: Anchors the notebooks link to (``../docs/glossary.md#...``): renaming an entry must not break them.
GLOSSARY_ANCHORS = [
    "latent-space",
    "bottleneck",
    "autoencoder",
    "vae",
    "gan",
    "z-and-w",
    "diffusion-model",
    "denoiser",
    "u-net",
    "transformer",
    "dit-and-mmdit",
    "attention",
    "cross-attention",
    "timestep",
    "noise",
    "classifier-free-guidance",
    "ddim-inversion",
    "h-space",
    "eos-token",
    "clip",
    "probe",
    "in-distribution-test",
    "density",
    "smoothness",
    "organization",
    "relevance",
    "verdict-marks",
    "chance-corrected-linear-decodability",
    "ppl-style-finite-differences",
    "bootstrap-interval",
    "cka",
    "mutual-k-nn",
    "platonic-representation-hypothesis",
    "injection",
    "original-and-edit-images",
    "structure-content-and-surface",
    "synthesis-index",
    "strict-and-broad-synthesis",
    "fazi",
    "kants-three-syntheses",
]

# A saved widget state as nbclient stores it: a tqdm bar (HBox of HTML, FloatProgress, HTML) and a slider.
WIDGETS = {
    "bar": {
        "model_name": "HBoxModel",
        "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_p", "IPY_MODEL_r"]},
    },
    "left": {"model_name": "HTMLModel", "state": {"value": "Loading: 100%"}},
    "p": {
        "model_name": "FloatProgressModel",
        "state": {"min": 0.0, "max": 5.0, "value": 5.0, "bar_style": "success"},
    },
    "r": {"model_name": "HTMLModel", "state": {"value": " 5/5"}},
    "slider": {"model_name": "IntSliderModel", "state": {"min": 0, "max": 10, "step": 1, "value": 3}},
    "plot": {"model_name": "SomePlotModel", "state": {}},
}


def _png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _widget_output(model_id: str, text: str):
    view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
    return new_output("display_data", {"application/vnd.jupyter.widget-view+json": view, "text/plain": text})


def _tiny_notebook(number: str, links: str):
    """An executed notebook: an image, a progress bar, a slider, and a widget the book cannot draw."""
    code = new_code_cell("show()", execution_count=1)
    code.outputs = [
        _widget_output("bar", "Loading: 0%"),
        _widget_output("slider", "IntSlider(value=3)"),
        _widget_output("plot", "SomePlot()"),
        _widget_output("closed", "a bar closed before the notebook was saved"),
        new_output("display_data", {"image/png": _png(), "text/plain": "<Figure>"}),
    ]
    nb = new_notebook(
        cells=[new_markdown_cell(f"# {number} · Tiny chapter {number}\n\n**Claim.** {links}"), code]
    )
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": WIDGETS,
            "version_major": 2,
            "version_minor": 0,
        }
    }
    return nb


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[book.Chapter]]:
    out = tmp_path_factory.mktemp("book") / "book"
    return out, book.build_book(out)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A book of two synthetic notebooks that link to each other and to the glossary."""
    notebooks, figures = tmp_path / "notebooks", tmp_path / "figures"
    notebooks.mkdir()
    figures.mkdir()
    (figures / "00_key.png").write_bytes(base64.b64decode(_png()))
    nbformat.write(
        _tiny_notebook("00", "Read [CKA](../docs/glossary.md#cka) and [the next one](01_tiny.ipynb)."),
        notebooks / "00_tiny.ipynb",
    )
    nbformat.write(
        _tiny_notebook("01", "Back to [00](../notebooks/00_tiny.ipynb#Tiny); ![key](../figures/00_key.png)"),
        notebooks / "01_tiny.ipynb",
    )
    out = tmp_path / "book"
    book.build_book(out, notebooks, figures=figures)
    return out


def test_a_page_per_notebook_and_the_docs(built):
    out, chapters = built
    assert [c.source for c in chapters] == NOTEBOOKS
    pages = {p.name for p in out.glob("*.html")}
    assert pages == {f"{p.stem}.html" for p in NOTEBOOKS} | {"index.html", "glossary.html", "teaching.html"}


def test_the_index_has_a_card_with_its_figure_per_notebook(built):
    out, chapters = built
    index = (out / "index.html").read_text(encoding="utf-8")
    for chapter in chapters:
        card = re.search(rf'<a class="lk-card" href="{re.escape(chapter.page)}">(.*?)</a>', index, re.S)
        assert card, f"no card for {chapter.page}"
        assert chapter.title in card.group(1)
        image = re.search(r'<img src="([^"]+)"', card.group(1))
        assert image and (out / image.group(1)).is_file(), f"card of {chapter.page} has no figure"


def test_chapters_link_to_the_previous_the_next_and_the_index(built):
    out, chapters = built
    for i, chapter in enumerate(chapters):
        text = (out / chapter.page).read_text(encoding="utf-8")
        prev = re.findall(r'<a\b(?=[^>]*\brel="prev")[^>]*\bhref="([^"]+)"', text)
        nxt = re.findall(r'<a\b(?=[^>]*\brel="next")[^>]*\bhref="([^"]+)"', text)
        assert prev == ([chapters[i - 1].page] * 2 if i > 0 else [])  # top and bottom bars
        assert nxt == ([chapters[i + 1].page] * 2 if i + 1 < len(chapters) else [])
        assert 'href="index.html"' in text and 'href="glossary.html"' in text


def test_pages_load_nothing_from_outside_and_every_link_resolves(built):
    out, _ = built
    assert book.check_links(out) == []
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        cdn = re.findall(
            r"https?://[^\s\"'<>]*(?:cdnjs|jsdelivr|unpkg|mathjax|require)[^\s\"'<>]*", text, re.I
        )
        assert not cdn, f"{page.name} refers to {cdn[:3]}"
        assert "application/vnd.jupyter.widget-state+json" not in text


def test_the_glossary_has_every_anchor_the_notebooks_link_to(built):
    out, _ = built
    parser = book._Anchors()
    parser.feed((out / "glossary.html").read_text(encoding="utf-8"))
    missing = [a for a in GLOSSARY_ANCHORS if a not in parser.ids]
    assert not missing, f"docs/glossary.md lost the entries {missing}"
    headings = re.findall(r"^#{2,3} (.+)$", (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8"), re.M)
    slugs = [book.github_slug(h) for h in headings]
    assert len(slugs) == len(set(slugs)), "two glossary headings share an anchor"


def test_links_between_notebooks_and_docs_become_book_links(tiny):
    first = (tiny / "00_tiny.html").read_text(encoding="utf-8")
    second = (tiny / "01_tiny.html").read_text(encoding="utf-8")
    assert 'href="glossary.html#cka"' in first and 'href="01_tiny.html"' in first
    assert 'href="00_tiny.html#Tiny"' in second and 'src="figures/00_key.png"' in second
    assert (tiny / "figures" / "00_key.png").is_file()
    # the notebooks' own heading ids are nbconvert's: "#Tiny" is deliberately not one of them
    assert book.check_links(tiny) == ["01_tiny.html: link to 00_tiny.html#Tiny, which has no such anchor"]


def _tags(text: str, name: str) -> list[dict]:
    """The attributes of every ``<name>`` tag (nbconvert re-serialises pages: attribute order is not kept)."""

    class Tags(HTMLParser):
        found: list[dict] = []

        def handle_starttag(self, tag, attrs):
            if tag == name:
                self.found.append(dict(attrs))

    parser = Tags()
    parser.found = []
    parser.feed(text)
    return parser.found


def test_widgets_are_drawn_from_their_saved_state(tiny):
    text = (tiny / "00_tiny.html").read_text(encoding="utf-8")
    assert _tags(text, "progress") == [{"class": "lk-w-success", "max": "5", "value": "5"}]
    assert "Loading: 100%" in text and "Loading: 0%" not in text  # not the bar's stale text/plain
    (slider,) = [t for t in _tags(text, "input") if t.get("type") == "range"]
    assert (slider["min"], slider["max"], slider["step"], slider["value"]) == ("0", "10", "1", "3")
    assert "SomePlot()" in text  # a widget the book cannot draw shows its text/plain
    assert "closed before the notebook was saved" not in text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("../docs/glossary.md#cka", "glossary.html#cka"),
        ("glossary.md", "glossary.html"),
        ("teaching.md#before-each-class", "teaching.html#before-each-class"),
        ("04_layer_injection.ipynb", "04_layer_injection.html"),
        ("../notebooks/05_across_architectures.ipynb#The-test", "05_across_architectures.html#The-test"),
        ("../figures/04_aspect_heatmap.png", "figures/04_aspect_heatmap.png"),
        ("https://arxiv.org/abs/2501.14524", "https://arxiv.org/abs/2501.14524"),
        ("../latentkit/properties.py", "../latentkit/properties.py"),
    ],
)
def test_book_link(target, expected):
    assert book.book_link(target) == expected


def test_widget_html_draws_what_it_knows_and_nothing_else():
    assert book.widget_html("plot", WIDGETS) is None
    assert book.widget_html("gone", WIDGETS) == ""
    bar = book.widget_html("bar", WIDGETS)
    assert bar.startswith('<div class="lk-widget lk-w-hbox">') and bar.count("<span") == 3
    hidden = {**WIDGETS, "s2": {"model_name": "IntSliderModel", "state": {"layout": "IPY_MODEL_l"}}}
    hidden["l"] = {"model_name": "LayoutModel", "state": {"display": "none"}}
    assert book.widget_html("s2", hidden) == ""


def test_github_slug():
    assert book.github_slug("Kant's three syntheses") == "kants-three-syntheses"
    assert book.github_slug("Mutual k-NN") == "mutual-k-nn"
    assert book.github_slug("Down, mid and up blocks") == "down-mid-and-up-blocks"


def test_build_refuses_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(FileExistsError, match="not a book built by latentkit.book"):
        book.build_book(tmp_path)
    assert (tmp_path / "thesis.tex").exists()


def test_build_refuses_a_notebook_that_was_never_run(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# 00 · Not run"), new_code_cell("1 + 1")])
    nbformat.write(nb, tmp_path / "00_not_run.ipynb")
    with pytest.raises(ValueError, match="has no outputs"):
        book.build_book(tmp_path / "book", tmp_path)


def test_a_missing_browser_skips_here_and_fails_where_required(monkeypatch):
    monkeypatch.setattr(book, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv(REQUIRE_CHROMIUM, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        chromium_or_skip()
    monkeypatch.setenv(REQUIRE_CHROMIUM, "0")
    with pytest.raises(pytest.skip.Exception):
        chromium_or_skip()
    monkeypatch.setenv(REQUIRE_CHROMIUM, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_CHROMIUM} is set but there is no Chromium"):
        chromium_or_skip()


def test_the_browser_is_also_found_on_the_path(monkeypatch):
    monkeypatch.setattr(book, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(
        shutil, "which", lambda name: "/opt/bin/chromium-browser" if name == "chromium-browser" else None
    )
    assert find_chromium() == "/opt/bin/chromium-browser"
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/local/bin/{name}")
    assert find_chromium() == "/usr/local/bin/chromium"


@pytest.mark.slow
def test_every_page_opens_in_chromium_without_errors(built, tmp_path, chromium):
    out, _ = built
    pages = sorted(out.glob("*.html"))
    reports = book.check_pages(pages, screenshots=tmp_path, chromium=chromium)
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n".join(bad)
    for report in reports:
        assert report.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_slider_in_the_book_still_moves(tiny, chromium):
    move = (
        "(() => { const r = document.querySelector('input[type=range]'); r.value = 7;"
        " r.dispatchEvent(new Event('input')); return r.nextElementSibling.textContent; })()"
    )
    (report,) = book.check_pages([tiny / "00_tiny.html"], evaluate=move, chromium=chromium)
    assert report.ok, str(report)
    assert report.evaluated == "7"


def test_the_browser_check_sees_errors(tmp_path, chromium):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><img src='missing.png'>"
        "<script>console.error('on purpose')</script>"
        "<script src='https://example.invalid/cdn.js'></script></body></html>"
    )
    (report,) = book.check_pages([page], chromium=chromium)
    assert not report.ok
    assert any("on purpose" in e for e in report.errors)
    assert report.broken_images and report.broken_images[0].endswith("missing.png")
    assert report.external == ["https://example.invalid/cdn.js"]
