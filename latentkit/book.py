"""The book: the executed notebooks as a static HTML site that readers without Python can open.

``python -m latentkit.book --out build/book`` (``make book``) turns the committed, executed notebooks of
``notebooks/`` into a folder a teacher can put on any web server or hand out as it is:

- ``index.html``: one card per notebook, with its key figure from ``figures/`` (:data:`KEY_FIGURES`), the
  claim it tests and how long its last stored run took;
- ``00_the_shapes_world.html`` ...: one page per notebook, with links to the previous and the next chapter
  and back to the index;
- ``glossary.html`` and ``teaching.html``: ``docs/glossary.md`` and ``docs/teaching.md`` as pages. Links
  between them and the notebooks (``../docs/glossary.md#cka``, ``04_layer_injection.ipynb``) are rewritten
  to the book's pages (``glossary.html#cka``).

Nothing is executed: a page shows what the notebook's last run stored. To show new results, run ``make
store`` first, or ``make run`` and then ``--notebooks build/notebooks --figures build/figures``.

**Offline.** nbconvert's ``lab`` template loads require.js, MathJax and mermaid from cdnjs, and draws
widgets with ``@jupyter-widgets/html-manager`` from a CDN; none of that is on disk, so a page opened
without a network would log errors and show nothing where a widget was. The book's template
(:data:`TEMPLATE`) leaves those scripts out. The notebooks' markdown holds no TeX, so MathJax is not
missed (a warning says so if one ever does), and widgets are drawn from the state the notebook saved,
as plain HTML (:func:`widget_html`): progress bars, text, and sliders, menus and check boxes as the
browser's own controls, which still move but recompute nothing (that needs a kernel: open the notebook
in JupyterLab). Other HTML outputs are kept as the notebook stored them, inline scripts included, so a
:func:`latentkit.explore.flipbook` (images decoded beforehand, flipped by a script) still moves; a script
or image they load from elsewhere is reported by the checks below like any other.

**Checked in a browser.** :func:`check_pages` opens pages in headless Chromium (Debian's ``chromium``)
through the DevTools protocol over a pipe, and reports console errors, failed or external requests and
broken images, with a screenshot of each page; :func:`check_links` checks every link and image of the
folder without a browser. ``--check`` runs both on the built book; ``tests/test_book.py`` runs them too.

Example::

    chapters = build_book("build/book")  # -> list of Chapter
    reports = check_pages(sorted(Path("build/book").glob("*.html")), screenshots=Path("shots"))
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from latentkit.paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: The committed figures, drawn by the committed notebooks (``make store``); the cards show them.
FIGURES_DIR = REPO_ROOT / "figures"
DOCS_DIR = REPO_ROOT / "docs"

#: ``docs/<name>.md`` pages of the book, with their titles in the navigation bar.
DOCS = {"glossary": "Glossary", "teaching": "For teachers"}

#: The figure (in ``figures/``, without extension) on each notebook's card. A notebook not listed here, or
#: whose figure is gone, gets its first ``figures/<number>_*.png``; with none, a card without a picture.
KEY_FIGURES = {
    "00": "00_world_samples",
    "01": "01_bottleneck_3d",
    "02": "02_interpolation_strips",
    "03": "03_probe_strips",
    "04": "04_aspect_heatmap",
    "05": "05_aspects_by_depth",
    "06": "06_synthesis_index",
}

#: Debian's Chromium, used by :func:`check_pages`.
CHROMIUM = "/usr/bin/chromium"
#: A fresh headless browser that talks to nothing but the pages it is given.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)

_MARKER = ".latentkit-book"  # marks a folder as a book, so that a rebuild may empty it

# ---------------------------------------------------------------------------------------------------------
# Chapters


@dataclass(frozen=True)
class Chapter:
    """One notebook as a chapter of the book.

    Attributes:
        source: the ``.ipynb`` file.
        number: its two-digit prefix, ``"04"``.
        title: the first heading without the number, as plain text.
        summary: the opening paragraph's first sentences, markdown.
        seconds: how long its stored run took (first to last cell), or None when it kept no timings.
        figure: the key figure (a PNG in ``figures/``), or None.
    """

    source: Path
    number: str
    title: str
    summary: str
    seconds: float | None
    figure: Path | None

    @property
    def stem(self) -> str:
        return self.source.stem

    @property
    def page(self) -> str:
        return f"{self.stem}.html"

    @property
    def label(self) -> str:
        return f"{self.number} · {self.title}"


def _plain(markdown: str) -> str:
    """Markdown inline text as plain text (emphasis, code and link syntax removed)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[*_`]", "", text).strip()


def _summary(first_cell: str, max_chars: int = 330) -> str:
    """The first paragraph after the heading, cut to the sentences that fit in ``max_chars``."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", first_cell) if p.strip()]
    body = next((p for p in paragraphs if not p.startswith("#")), "")
    body = re.sub(r"^\*\*[^*]+\*\*\s*", "", " ".join(body.split()))  # the bold lead, "The claim ... tests."
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z(*])", body)
    kept = ""
    for sentence in sentences:
        if kept and (len(kept) + len(sentence) + 1 > max_chars or sentence.endswith(":")):
            break  # a sentence that announces a list needs the list: leave it out
        kept = f"{kept} {sentence}".strip()
    return kept


def _run_seconds(nb) -> float | None:
    """Seconds from the first cell's start to the last cell's reply, from the execution metadata."""
    starts, ends = [], []
    for cell in nb.cells:
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in times and "shell.execute_reply" in times:
            starts.append(datetime.fromisoformat(times["iopub.execute_input"]))
            ends.append(datetime.fromisoformat(times["shell.execute_reply"]))
    return (max(ends) - min(starts)).total_seconds() if starts else None


def _key_figure(number: str, figures: Path) -> Path | None:
    wanted = figures / f"{KEY_FIGURES.get(number, '')}.png"
    if number in KEY_FIGURES and wanted.exists():
        return wanted
    found = sorted(figures.glob(f"{number}_*.png"))
    return found[0] if found else None


def read_chapter(path: Path, figures: Path) -> Chapter:
    """The :class:`Chapter` of the notebook at ``path``; raises if it was never executed."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and not any(c.get("outputs") for c in code):
        raise ValueError(
            f"{path} has no outputs: the book shows executed notebooks. Run it first "
            f"(make store NB={path}), or point --notebooks at executed copies (make run: build/notebooks)."
        )
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    heading = next((line for line in first.splitlines() if line.startswith("# ")), f"# {path.stem}")
    match = re.match(r"#\s+(\d+)\s*[·:.-]\s*(.+)", heading)
    number = path.stem.split("_")[0]
    title = _plain(match.group(2) if match else heading[2:])
    return Chapter(path, number, title, _summary(first), _run_seconds(nb), _key_figure(number, figures))


def about(seconds: float | None) -> str:
    """``"about 2 min"``, ``"about 45 s"``; an empty string for None."""
    if seconds is None:
        return ""
    return f"about {seconds:.0f} s" if seconds < 100 else f"about {seconds / 60:.0f} min"


# ---------------------------------------------------------------------------------------------------------
# Links between notebooks, docs and pages

_NOTEBOOK_LINK = re.compile(r"(?:\.\./|\./)*(?:notebooks/)?(?P<stem>\d\d_[\w-]+)\.ipynb(?P<fragment>#\S*)?")
_DOC_LINK = re.compile(r"(?:\.\./|\./)*(?:docs/)?(?P<name>{})\.md(?P<fragment>#\S*)?".format("|".join(DOCS)))
_FIGURE_LINK = re.compile(r"(?:\.\./|\./)*figures/(?P<name>[\w.-]+\.(?:png|jpg|jpeg|svg|gif))")
_LINK_TARGET = re.compile(r"(?P<lead>\]\(\s*<?|\b(?:href|src)=[\"'])(?P<target>[^)\s\"'>]+)")


def book_link(target: str) -> str:
    """A link of a notebook or doc as it must read in the book (``../docs/glossary.md#cka`` ->
    ``glossary.html#cka``); other links unchanged."""
    if m := _NOTEBOOK_LINK.fullmatch(target):
        return f"{m['stem']}.html{m['fragment'] or ''}"
    if m := _DOC_LINK.fullmatch(target):
        return f"{m['name']}.html{m['fragment'] or ''}"
    if m := _FIGURE_LINK.fullmatch(target):
        return f"figures/{m['name']}"
    return target


def rewrite_links(markdown: str) -> tuple[str, set[str]]:
    """``markdown`` with every link and image target passed through :func:`book_link`; also the names of
    the ``figures/`` files it shows (they are copied into the book)."""
    figures = set()

    def replace(m: re.Match) -> str:
        target = book_link(m["target"])
        if target.startswith("figures/"):
            figures.add(target.removeprefix("figures/"))
        return m["lead"] + target

    return _LINK_TARGET.sub(replace, markdown), figures


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.

    ``"Kant's three syntheses"`` -> ``"kants-three-syntheses"``; the book's pages use the same anchors, so
    ``docs/glossary.md#cka`` works on GitHub and ``glossary.html#cka`` in the book.
    """
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _markdown_renderer():
    import mistune

    class Renderer(mistune.HTMLRenderer):
        def __init__(self):
            super().__init__(escape=False)
            self.seen: dict[str, int] = {}

        def heading(self, text: str, level: int, **attrs) -> str:
            slug = github_slug(html.unescape(re.sub(r"<[^>]+>", "", text)))
            n = self.seen.get(slug, 0)
            self.seen[slug] = n + 1
            anchor = slug if n == 0 else f"{slug}-{n}"
            return f'<h{level} id="{anchor}">{text}</h{level}>\n'

    return mistune.create_markdown(renderer=Renderer(), plugins=["table", "strikethrough", "footnotes"])


def render_markdown(markdown: str) -> str:
    """Markdown as HTML with mistune (nbconvert's own renderer), GitHub's heading anchors and book links."""
    text, _ = rewrite_links(markdown)
    return _markdown_renderer()(text)


# ---------------------------------------------------------------------------------------------------------
# Widgets, from their saved state


class _NotDrawable(Exception):
    pass


def _escape(value) -> str:
    return html.escape(str(value))


def _output_html(output: Mapping) -> str:
    """One stored output (of an Output widget) as HTML: HTML, PNG, or text."""
    data = output.get("data", {})
    if output.get("output_type") == "stream":
        return f"<pre>{_escape(''.join(output.get('text', '')))}</pre>"
    if "text/html" in data:
        return "".join(data["text/html"])
    if "image/png" in data:
        return f'<img alt="output" src="data:image/png;base64,{"".join(data["image/png"]).strip()}">'
    if "text/plain" in data:
        return f"<pre>{_escape(''.join(data['text/plain']))}</pre>"
    raise _NotDrawable(f"an output with {sorted(data)}")


def widget_html(model_id: str, state: Mapping[str, Mapping]) -> str | None:
    """Static HTML for the widget ``model_id``, drawn from a notebook's saved widget state.

    Args:
        model_id: the ``model_id`` of an ``application/vnd.jupyter.widget-view+json`` output.
        state: ``nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]``: model id ->
            ``{"model_name": "IntSliderModel", "state": {...}, "buffers": [...]}``.

    Returns:
        HTML that needs no script, or None when the widget (or a child of it) is of a kind this function
        does not draw; the caller then shows the output's ``text/plain``. A widget whose model was not
        saved (closed before the notebook was stored) is drawn as nothing, as JupyterLab would.
    """
    try:
        return _widget(model_id, state)
    except _NotDrawable:
        return None


def _widget(model_id: str, state: Mapping[str, Mapping]) -> str:
    model_id = model_id.removeprefix("IPY_MODEL_")
    if model_id not in state:
        return ""
    model = state[model_id]
    name, s = model.get("model_name", ""), model.get("state", {})
    layout = state.get(str(s.get("layout", "")).removeprefix("IPY_MODEL_"), {}).get("state", {})
    if layout.get("display") == "none" or layout.get("visibility") == "hidden":
        return ""
    desc = s.get("description") or ""
    label = f'<span class="lk-w-desc">{_escape(desc)}</span> ' if desc else ""
    live = ' title="moves here; the notebook recomputes only in JupyterLab"'

    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
        kind = "lk-w-hbox" if name == "HBoxModel" else "lk-w-vbox"
        children = "".join(_widget(c, state) for c in s.get("children", []))
        return f'<div class="lk-widget {kind}">{children}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<span class="lk-widget">{label}{s.get("value", "")}</span>'
    if name == "LabelModel":
        return f'<span class="lk-widget">{label}{_escape(s.get("value", ""))}</span>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        low, high = float(s.get("min", 0)), float(s.get("max", 100))
        value = min(max(float(s.get("value", 0)), low), high)
        style = _escape(s.get("bar_style") or "info")
        return (
            f'<span class="lk-widget">{label}<progress class="lk-w-{style}" max="{high - low:g}" '
            f'value="{value - low:g}"></progress></span>'
        )
    if name in ("IntSliderModel", "FloatSliderModel"):
        low, high, step, value = (_escape(s.get(k, "")) for k in ("min", "max", "step", "value"))
        return (
            f'<label class="lk-widget"{live}>{label}<input type="range" min="{low}" max="{high}" '
            f'step="{step}" value="{value}" oninput="this.nextElementSibling.textContent = this.value">'
            f"<output>{value}</output></label>"
        )
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        index = s.get("index")
        options = "".join(
            f"<option{' selected' if i == index else ''}>{_escape(o)}</option>"
            for i, o in enumerate(s.get("_options_labels", []))
        )
        return f'<label class="lk-widget"{live}>{label}<select>{options}</select></label>'
    if name == "CheckboxModel":
        checked = " checked" if s.get("value") else ""
        return f'<label class="lk-widget"{live}><input type="checkbox"{checked}> {_escape(desc)}</label>'
    if name in (
        "TextModel",
        "IntTextModel",
        "FloatTextModel",
        "BoundedIntTextModel",
        "BoundedFloatTextModel",
    ):
        return f'<label class="lk-widget"{live}>{label}<input value="{_escape(s.get("value", ""))}"></label>'
    if name == "ButtonModel":
        return f'<button class="lk-widget" disabled>{_escape(desc)}</button>'
    if name == "OutputModel":
        return (
            f'<div class="lk-widget lk-w-vbox">{"".join(_output_html(o) for o in s.get("outputs", []))}</div>'
        )
    if name == "ImageModel":
        buffer = next((b for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
        if buffer is None or buffer.get("encoding") != "base64":
            raise _NotDrawable("an image without its bytes")
        kind = {"svg": "svg+xml"}.get(s.get("format", "png"), s.get("format", "png"))
        return f'<img class="lk-widget" alt="widget image" src="data:image/{kind};base64,{buffer["data"]}">'
    raise _NotDrawable(name)


def static_widgets(nb):
    """A copy of ``nb`` whose widget outputs are plain HTML (:func:`widget_html`) or their ``text/plain``,
    and without the saved widget state (nothing left for a widget manager to load)."""
    nb = copy.deepcopy(nb)
    saved = nb.metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    state = saved.get("state", {})
    view = "application/vnd.jupyter.widget-view+json"
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if view in data:
                drawn = widget_html(data[view].get("model_id", ""), state)
                if drawn == "":
                    continue
                data.pop(view)
                if drawn is not None:
                    output["data"] = {"text/html": drawn}
                elif not data:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return nb


# ---------------------------------------------------------------------------------------------------------
# Pages

#: The chapters' template: nbconvert's ``lab`` page without its CDN scripts (require.js, MathJax, mermaid,
#: the widget manager), with the book's style sheet and navigation.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style type="text/css">{{ resources.book.css }}</style>{% endblock extra_css %}
{%- block body_header -%}{{ super() }}{{ resources.book.nav_top }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.book.nav_bottom }}{{ super() }}{% endblock body_footer %}
"""

CSS = """
.lk-nav { display: flex; flex-wrap: wrap; gap: .4em 1.4em; align-items: baseline; margin: 0 0 1.2em;
  padding: .6em 1em; background: #f3f1ec; border-bottom: 1px solid #d8d4ca;
  font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
.lk-nav a { color: #1d4f7a; text-decoration: none; }
.lk-nav a:hover { text-decoration: underline; }
.lk-nav .lk-home { font-weight: 600; }
.lk-nav .lk-step { margin-left: auto; display: flex; gap: 1.4em; }
.lk-nav-bottom { margin: 2em 0 0; border-top: 1px solid #d8d4ca; border-bottom: none; }
.lk-widget { display: inline-flex; align-items: center; gap: .5em; margin: 2px 0; font-size: 13px; }
.lk-w-hbox { display: flex; flex-direction: row; }
.lk-w-vbox { display: flex; flex-direction: column; align-items: flex-start; }
.lk-widget progress { width: 14em; accent-color: #2f7ed8; }
.lk-widget progress.lk-w-success { accent-color: #4caf50; }
.lk-widget progress.lk-w-warning { accent-color: #ff9800; }
.lk-widget progress.lk-w-danger { accent-color: #f44336; }
.lk-widget pre { margin: 0; }
body.lk-doc { margin: 0; background: #fff; color: #222;
  font: 17px/1.55 Charter, "Bitstream Charter", Georgia, Cambria, serif; }
.lk-doc main { max-width: 46em; margin: 0 auto; padding: 0 1.2em 1em; }
.lk-doc h1, .lk-doc h2, .lk-doc h3 { font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  line-height: 1.25; }
.lk-doc h2 { margin-top: 2em; border-bottom: 1px solid #e4e1da; padding-bottom: .2em; }
.lk-doc h3 { margin: 1.6em 0 .3em; }
.lk-doc code { font-size: 90%; background: #f4f3f0; padding: 0 .2em; border-radius: 3px; }
.lk-doc pre code { display: block; padding: .6em .8em; overflow-x: auto; }
.lk-doc table { border-collapse: collapse; margin: 1em 0; font-size: 15px; }
.lk-doc th, .lk-doc td { border: 1px solid #d8d4ca; padding: .3em .6em; vertical-align: top;
  text-align: left; }
.lk-doc a { color: #1d4f7a; }
.lk-doc :target { background: #fff6d6; }
.lk-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(19em, 1fr)); gap: 1.2em;
  max-width: 72em; margin: 1.5em auto; padding: 0 1.2em; }
.lk-doc a.lk-card { display: flex; flex-direction: column; border: 1px solid #d8d4ca; border-radius: 6px;
  background: #fbfaf7; color: #222; text-decoration: none; overflow: hidden; }
.lk-card h2 { color: #1d4f7a; }
.lk-card:hover { border-color: #1d4f7a; box-shadow: 0 2px 8px rgba(0,0,0,.12); }
.lk-card img { width: 100%; height: 13em; object-fit: contain; background: #fff;
  border-bottom: 1px solid #e4e1da; }
.lk-card .lk-noimg { height: 13em; display: flex; align-items: center; justify-content: center; color: #888; }
.lk-card h2 { font-size: 1.05em; margin: .7em .9em .2em; border: none; padding: 0; }
.lk-card p { margin: .3em .9em; font-size: .88em; line-height: 1.45; }
.lk-card .lk-meta { margin-top: auto; padding: .5em 0 .8em; color: #666; font-size: .8em; }
"""


def _nav(chapters: Sequence[Chapter], current: int | None, bottom: bool = False) -> str:
    """The navigation bar: the index, the docs pages, and for a chapter its previous and next one."""
    links = ['<a class="lk-home" href="index.html">latentkit · the book</a>']
    links += [f'<a href="{name}.html">{_escape(title)}</a>' for name, title in DOCS.items()]
    step = []
    if current is not None:
        if current > 0:
            prev = chapters[current - 1]
            step.append(f'<a rel="prev" href="{prev.page}">&larr; {_escape(prev.label)}</a>')
        if current + 1 < len(chapters):
            nxt = chapters[current + 1]
            step.append(f'<a rel="next" href="{nxt.page}">{_escape(nxt.label)} &rarr;</a>')
    where = "lk-nav lk-nav-bottom" if bottom else "lk-nav"
    label = "chapters, bottom" if bottom else "chapters"
    steps = f'<span class="lk-step">{"".join(step)}</span>'
    return f'<nav class="{where}" aria-label="{label}">{"".join(links)}{steps}</nav>'


def _doc_page(title: str, body: str, nav: str, after: str = "") -> str:
    """A page of the book that is not a notebook: ``body`` in a column, ``after`` below it at full width."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        f"<title>{_escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body class="lk-doc">\n{nav}\n<main>\n{body}\n</main>\n{after}</body>\n</html>\n'
    )


def _index(chapters: Sequence[Chapter], figures: Mapping[str, str]) -> str:
    cards = []
    for chapter in chapters:
        name = figures.get(chapter.stem)
        picture = (
            f'<img src="figures/{name}" alt="key figure of notebook {chapter.number}: '
            f'{_escape(Path(name).stem.removeprefix("card_"))}">'
            if name
            else '<div class="lk-noimg">no figure</div>'
        )
        run = about(chapter.seconds)
        meta = f"last stored run: {run}, default parameters" if run else "executed notebook"
        summary = re.sub(r"</?a\b[^>]*>", "", render_markdown(chapter.summary))  # the card is the link
        cards.append(
            f'<a class="lk-card" href="{chapter.page}">{picture}<h2>{_escape(chapter.label)}</h2>'
            f'{summary}<p class="lk-meta">{meta}</p></a>'
        )
    intro = render_markdown(
        "# The Evolving Nature of Latent Spaces, measured\n\n"
        "Eight notebooks re-run, on small models trained on a toy world of shapes, the arguments of "
        "L. Schaerf's paper *The Evolving Nature of Latent Spaces: From GANs to Diffusion*: what a "
        "GAN's or an autoencoder's latent space holds, which of a diffusion model's many spaces could be "
        '"the" latent space, and how a diffusion model splits the work of drawing an image across its '
        "layers. Each page is a notebook as it was last run: the text, the code, and what the code "
        "printed and drew. Nothing here needs Python; to change a parameter and run a notebook yourself, "
        "see the project's README (`make lab`).\n\n"
        "Read them in order. Unfamiliar words are explained in the [glossary](glossary.md); "
        "[the teacher's page](teaching.md) has a seminar plan for each notebook.\n"
    )
    grid = '<div class="lk-cards">\n' + "\n".join(cards) + "\n</div>\n"
    return _doc_page("latentkit · the book", intro, _nav(chapters, None), after=grid)


def _chapter_exporter():
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        theme="light",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        sanitize_html=False,  # outputs' HTML as stored, inline scripts included: a flipbook's must run
        extra_loaders=[jinja2.DictLoader({"latentkit_book.html.j2": TEMPLATE})],
    )
    exporter.template_file = "latentkit_book.html.j2"
    return exporter


_TEX = re.compile(r"(?<![\\$])\$[^\s$][^$\n]*\$|\$\$|\\\(|\\\[")


def _prepare(nb, chapter: Chapter) -> tuple[object, set[str]]:
    """The notebook as the book shows it: links rewritten, widgets drawn statically, a page title."""
    nb = static_widgets(nb)
    shown = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if _TEX.search(cell.source):
                warnings.warn(
                    f"{chapter.source.name}: a markdown cell holds TeX math; the book has no MathJax "
                    "(it would need a CDN) and shows it as written",
                    stacklevel=3,
                )
            cell.source, figures = rewrite_links(cell.source)
            shown |= figures
    nb.metadata["title"] = f"{chapter.label} · latentkit"
    return nb, shown


def _thumbnail(source: Path, target: Path, size: tuple[int, int] = (900, 600)) -> None:
    from PIL import Image

    with Image.open(source) as image:
        image.thumbnail(size)
        image.save(target, optimize=True)


def _empty_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise FileExistsError(
            f"{out} is not empty and is not a book built by latentkit.book: choose another --out "
            "(e.g. build/book) or empty it yourself"
        )
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    (out / _MARKER).write_text("built by python -m latentkit.book; emptied on every build\n")


def build_book(
    out: str | Path = "build/book",
    notebooks: str | Path | Sequence[str | Path] = NOTEBOOKS_DIR,
    figures: str | Path = FIGURES_DIR,
    docs: str | Path = DOCS_DIR,
) -> list[Chapter]:
    """Write the book into ``out`` (emptied first): index, one page per notebook, the docs pages.

    Args:
        out: the book's folder; a non-empty folder that is not an earlier book is refused.
        notebooks: a folder of executed ``NN_*.ipynb`` (the committed ``notebooks/``, or ``build/notebooks``
            after ``make run``), or the notebook files themselves, in reading order.
        figures: where the key figures are: the committed ``figures/``, or ``build/figures`` beside
            ``build/notebooks``.
        docs: the folder of ``glossary.md`` and ``teaching.md``.

    Returns:
        The chapters, in order.
    """
    import nbformat

    figures, docs, out = Path(figures), Path(docs), Path(out)
    if isinstance(notebooks, (str, Path)) and Path(notebooks).is_dir():
        paths = sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))
    elif isinstance(notebooks, (str, Path)):
        paths = [Path(notebooks)]
    else:
        paths = [Path(p) for p in notebooks]
    if not paths:
        raise FileNotFoundError(f"no notebooks NN_*.ipynb in {notebooks}")
    missing = [str(p) for p in paths if not p.is_file()] + [
        str(docs / f"{name}.md") for name in DOCS if not (docs / f"{name}.md").is_file()
    ]
    if missing:
        raise FileNotFoundError(f"the book needs {', '.join(missing)}")
    chapters = [read_chapter(p, figures) for p in paths]
    prepared = [_prepare(nbformat.read(str(c.source), as_version=4), c) for c in chapters]
    pages = {name: rewrite_links((docs / f"{name}.md").read_text(encoding="utf-8")) for name in DOCS}
    shown = set().union(*(used for _, used in prepared), *(used for _, used in pages.values()))
    if missing := sorted(name for name in shown if not (figures / name).is_file()):
        raise FileNotFoundError(f"the pages show {', '.join(missing)}, which are not in {figures}")

    _empty_folder(out)
    exporter = _chapter_exporter()
    card_figures = {}
    for i, (chapter, (nb, _)) in enumerate(zip(chapters, prepared, strict=True)):
        resources = {
            "book": {"css": CSS, "nav_top": _nav(chapters, i), "nav_bottom": _nav(chapters, i, bottom=True)}
        }
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        (out / chapter.page).write_text(body, encoding="utf-8")
        if chapter.figure is not None:
            card_figures[chapter.stem] = f"card_{chapter.figure.name}"
            _thumbnail(chapter.figure, out / "figures" / card_figures[chapter.stem])
    for name, (text, _) in pages.items():
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), DOCS[name])
        page = _doc_page(f"{_plain(title)} · latentkit", render_markdown(text), _nav(chapters, None))
        (out / f"{name}.html").write_text(page, encoding="utf-8")
    for name in sorted(shown):
        shutil.copy2(figures / name, out / "figures" / name)
    (out / "index.html").write_text(_index(chapters, card_figures), encoding="utf-8")
    return chapters


# ---------------------------------------------------------------------------------------------------------
# Checks: links without a browser, pages in headless Chromium


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (attribute, value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(("href", attrs["href"]))
        if tag in ("img", "script", "iframe") and attrs.get("src"):
            self.links.append(("src", attrs["src"]))
        if tag == "link" and attrs.get("href"):
            self.links.append(("href", attrs["href"]))


def check_links(folder: str | Path) -> list[str]:
    """Every broken link of the HTML pages in ``folder``: a relative link to a missing file or anchor, or a
    script, style sheet or image from outside the folder. Links to web sites (``<a href="https://...">``)
    are allowed: they do not stop a page from loading offline."""
    folder = Path(folder)
    parsed = {}
    for page in sorted(folder.glob("*.html")):
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page.name] = parser
    problems = []
    for name, parser in parsed.items():
        for attribute, link in parser.links:
            parts = urlsplit(link)
            if parts.scheme == "data" or parts.scheme == "mailto":
                continue
            if parts.scheme or link.startswith("//"):
                if attribute == "src" or not link.startswith(("http://", "https://")):
                    problems.append(f"{name}: loads {link[:100]} from outside the book")
                continue
            target = name if not parts.path else unquote(parts.path)
            if not (folder / target).is_file():
                problems.append(f"{name}: link to missing {target}")
                continue
            fragment = parts.fragment  # a browser tries it as written, then percent-decoded
            ids = parsed[target].ids if target in parsed else None
            if fragment and ids is not None and fragment not in ids and unquote(fragment) not in ids:
                problems.append(f"{name}: link to {target}#{fragment}, which has no such anchor")
    return problems


@dataclass
class PageReport:
    """What a browser saw on one page (:func:`check_pages`).

    Attributes:
        page: the file.
        errors: console errors, uncaught exceptions and failed loads, as text.
        external: URLs requested from outside the page's folder (the book must work offline).
        broken_images: sources of images that did not load.
        screenshot: the PNG written, if asked for.
        evaluated: the value of the ``evaluate`` expression, if one was given.
    """

    page: Path
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    evaluated: object = None

    @property
    def ok(self) -> bool:
        return not (self.errors or self.external or self.broken_images)

    def __str__(self) -> str:
        if self.ok:
            return f"{self.page.name}: ok"
        lines = [f"{self.page.name}:"]
        lines += [f"  console error: {e}" for e in self.errors]
        lines += [f"  request outside the book: {u}" for u in self.external]
        lines += [f"  broken image: {s}" for s in self.broken_images]
        return "\n".join(lines)


_BROKEN_IMAGES = (
    "JSON.stringify(Array.from(document.images)"
    ".filter(img => !img.complete || img.naturalWidth === 0)"
    ".map(img => (img.currentSrc || img.src).slice(0, 120)))"
)


class _Chromium:
    """Headless Chromium driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
    the browser reads commands on fd 3 and answers on fd 4, NUL-separated JSON). No port, no extra package."""

    def __init__(self, binary: str, timeout: float):
        self.timeout = timeout
        self.events: list[dict] = []
        self._next_id = 0
        self._buffer = b""
        self._profile = tempfile.TemporaryDirectory(prefix="latentkit-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def onto_fds_3_and_4():  # in the child, before exec
            a, b = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115 (closed in close)
        self._process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=onto_fds_3_and_4,
            close_fds=False,  # Python's own descriptors are not inheritable; fds 3 and 4 are
        )
        os.close(to_browser_read)
        os.close(from_browser_write)

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]

    def _receive(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                log = Path(self._log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed the DevTools pipe. Its log ends:\n{log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while (reply := self._receive(deadline)) is not None:
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"Chromium: {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"Chromium did not answer {method} within {self.timeout:.0f} s")

    def wait_for(self, method: str, session: str, since: int) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self.events[since:]):
                return
            event = self._receive(deadline)
            if event is None:
                raise TimeoutError(f"no {method} within {self.timeout:.0f} s")
            self.events.append(event)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (event := self._receive(deadline)) is not None:
            self.events.append(event)

    def close(self) -> None:
        try:
            self._send({"id": 0, "method": "Browser.close", "params": {}})
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                os.close(fd)
            self._log.close()
            self._profile.cleanup()


def _console_text(params: dict) -> str:
    parts = [str(a.get("value", a.get("description", a.get("type", "")))) for a in params.get("args", [])]
    return " ".join(parts)


def _findings(events: Iterable[dict], session: str, report: PageReport) -> None:
    urls = {}
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, p = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            report.errors.append(_console_text(p))
        elif method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            report.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            report.errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            urls[p.get("requestId")] = url
            if urlsplit(url).scheme not in ("file", "data", "about", "blob"):
                report.external.append(url)
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            report.errors.append(f"failed to load {urls.get(p.get('requestId'), '?')}: {p.get('errorText')}")


def check_pages(
    pages: Sequence[str | Path],
    screenshots: str | Path | None = None,
    chromium: str = CHROMIUM,
    width: int = 1280,
    height: int = 1000,
    full_page: bool = False,
    timeout: float = 60.0,
    evaluate: str | None = None,
) -> list[PageReport]:
    """Open each page in headless Chromium and report what went wrong there.

    Each page is loaded from its file in a fresh tab; after the load event (and half a second for late
    errors) the report lists console errors, uncaught exceptions, failed loads, every request that left
    ``file:``/``data:``, and each ``<img>`` that did not load.

    Args:
        pages: HTML files.
        screenshots: a folder for one ``<page>.png`` each (``width`` x ``height``, or the whole page with
            ``full_page``, up to 16,000 px tall); None for no screenshots.
        chromium: the browser (Debian: ``apt-get install chromium``).
        timeout: seconds allowed for each step of a page.
        evaluate: a JavaScript expression run on each page after the checks (e.g. one that moves a
            slider); its JSON value goes to :attr:`PageReport.evaluated`, and errors it causes are reported.
    """
    if not Path(chromium).exists() and shutil.which(chromium) is None:
        raise FileNotFoundError(f"no Chromium at {chromium}: on Debian, apt-get install chromium")
    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    browser = _Chromium(chromium, timeout)
    reports = []
    try:
        for page in map(Path, pages):
            report = PageReport(page)
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Network", "Page"):
                browser.call(f"{domain}.enable", session=session)
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            browser.call("Emulation.setDeviceMetricsOverride", metrics, session)
            since = len(browser.events)
            navigation = browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
            if navigation.get("errorText"):
                report.errors.append(f"navigation failed: {navigation['errorText']}")
            else:
                browser.wait_for("Page.loadEventFired", session, since)
                browser.drain(0.5)
                found = browser.call(
                    "Runtime.evaluate", {"expression": _BROKEN_IMAGES, "returnByValue": True}, session
                )
                report.broken_images = json.loads(found["result"]["value"])
                if evaluate is not None:
                    value = browser.call(
                        "Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, session
                    )
                    report.evaluated = value["result"].get("value")
                    if "exceptionDetails" in value:
                        report.errors.append(f"evaluate: {value['exceptionDetails'].get('text', '')}")
                    browser.drain(0.2)
                if screenshots is not None:
                    shot = {"format": "png"}
                    if full_page:
                        size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
                        tall = min(size["height"], 16000)
                        shot.update(
                            captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": width, "height": tall, "scale": 1},
                        )
                    data = browser.call("Page.captureScreenshot", shot, session)["data"]
                    report.screenshot = Path(screenshots) / f"{page.stem}.png"
                    report.screenshot.write_bytes(base64.b64decode(data))
            browser.call("Target.closeTarget", {"targetId": target})
            _findings(browser.events[since:], session, report)
            reports.append(report)
    finally:
        browser.close()
    return reports


# ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m latentkit.book",
        description="Build a static HTML site of the executed notebooks (index, chapters, glossary).",
    )
    parser.add_argument("--out", type=Path, default=Path("build/book"), help="the book's folder (build/book)")
    parser.add_argument(
        "--notebooks", type=Path, default=NOTEBOOKS_DIR, help="executed NN_*.ipynb (notebooks/)"
    )
    parser.add_argument("--figures", type=Path, default=FIGURES_DIR, help="the cards' figures (figures/)")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="glossary.md and teaching.md (docs/)")
    parser.add_argument("--check", action="store_true", help="then check links, and every page in Chromium")
    parser.add_argument("--screenshots", type=Path, default=None, help="with --check: one PNG per page here")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser for --check ({CHROMIUM})")
    args = parser.parse_args(argv)
    if args.screenshots is not None and not args.check:
        parser.error("--screenshots needs --check")

    start = time.perf_counter()
    chapters = build_book(args.out, args.notebooks, args.figures, args.docs)
    print(
        f"{len(chapters)} chapters, glossary and teacher's page in {args.out}/ "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(f"open {(args.out / 'index.html').resolve().as_uri()}")
    if not args.check:
        return 0
    problems = check_links(args.out)
    print("\n".join(problems) or "links: ok")
    reports = check_pages(
        sorted(args.out.glob("*.html")), screenshots=args.screenshots, chromium=args.chromium
    )
    print("\n".join(map(str, reports)))
    return 1 if problems or not all(r.ok for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
