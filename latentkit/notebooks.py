"""Execute the notebooks: in place with their defaults (what gets committed), or as a papermill batch.

``python -m latentkit.notebooks notebooks/00_the_shapes_world.ipynb`` re-executes a notebook with its
default parameters and stores the outputs in the file, which is how a changed notebook is committed
(nbval then compares the cells marked ``# NBVAL_CHECK_OUTPUT`` against these stored outputs).

A *batch* (``latentkit notebooks``) runs notebooks with papermill over a grid of parameters (seeds,
models, devices ...), each run an item of :func:`latentkit.batch.run_batch`, so it resumes after an
interruption and runs on a Dask cluster. A parameter is passed only to the notebooks that declare it in
their ``parameters`` cell (``model`` goes to the diffusion notebooks, not to notebook 00). Each run keeps
its executed notebook, an HTML rendering and its own figures under
``<out>/files/runs/<item>/``; :func:`write_index` writes ``<out>/index.html`` linking them all.

*Quick* runs use the notebooks' defaults (sized for a 2-core CPU); *full* runs apply the larger settings
a notebook names in its metadata, ``metadata["latentkit"]["full"]`` (e.g. more O/E pairs), for a GPU.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentkit.batch import Item, ResultStore
from latentkit.paths import COMMITTED_FIGURES
from latentkit.reuse import REUSE_DIR_ENV

#: Where the notebooks live in a clone.
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def execute_in_place(path: str | Path, timeout: int = 1800) -> float:
    """Run every cell of the notebook at ``path`` (cwd: its folder) and save the outputs; returns seconds.

    This is ``make store``: a notebook of the clone's ``notebooks/`` then writes its figures to the
    committed ``figures/`` (unless ``LATENTKIT_FIGURES`` is set); any other notebook to
    :func:`latentkit.paths.figures_dir`.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path).absolute()
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    with _environment(**_store_figures(path)):
        client.execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def _store_figures(path: Path) -> dict[str, str]:
    """The environment of a ``make store`` run of ``path``: the committed ``figures/`` for the clone's own
    notebooks (run with their defaults), unless ``LATENTKIT_FIGURES`` is already set; else nothing."""
    if os.environ.get("LATENTKIT_FIGURES") or path.resolve().parent != NOTEBOOKS_DIR.resolve():
        return {}
    return {"LATENTKIT_FIGURES": str(COMMITTED_FIGURES)}


# ---------------------------------------------------------------------------------------------------------
# Batches


def find_notebooks(names: Sequence[str] = (), folder: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """Notebooks by name, number prefix or path (``"04"``, ``"04_layer_injection"``); all if none named."""
    folder = Path(folder).expanduser().absolute()  # papermill runs each in its folder: paths must not move
    every = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        if not every:
            raise FileNotFoundError(f"no notebooks (NN_name.ipynb) in {folder}")
        return every
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            found.append(path.resolve())
            continue
        matches = [p for p in every if p.stem == name or p.stem.startswith(f"{name}_") or p.name == name]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in every)
            what = "matches several" if matches else "matches none"
            raise ValueError(f"notebook {name!r} {what} of the notebooks in {folder}: {known}")
        found.append(matches[0])
    return found


def declared_parameters(path: str | Path) -> dict[str, str]:
    """The notebook's parameters (name -> default as written), read from its ``parameters`` cell."""
    import papermill

    return {name: spec["default"] for name, spec in papermill.inspect_notebook(str(path)).items()}


def full_parameters(path: str | Path) -> dict[str, Any]:
    """The larger settings of a *full* run, from ``metadata["latentkit"]["full"]`` ({} if none)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return dict(nb.metadata.get("latentkit", {}).get("full", {}))


def notebook_items(
    notebooks: Sequence[Path], grid: Mapping[str, Iterable[Any]] | None = None, full: bool = False
) -> tuple[list[Item], dict[str, list[str]]]:
    """One item per notebook and combination of the parameter grid it declares.

    Args:
        notebooks: from :func:`find_notebooks`.
        grid: parameter -> values, e.g. ``{"seed": [0, 1], "model": ["organism"]}``; each notebook gets
            the combinations of the parameters it declares (so a notebook without ``model`` runs once per
            seed, not once per model).
        full: apply each notebook's full-run settings (``metadata["latentkit"]["full"]``) under the grid.

    Returns:
        ``(items, unused)``: the items, and per notebook the grid parameters it does not declare.
    """
    from latentkit.batch import expand

    grid = dict(grid or {})
    items, unused, seen = [], {}, set()
    for path in notebooks:
        declared = declared_parameters(path)
        unused[path.stem] = [k for k in grid if k not in declared]
        own = {k: v for k, v in grid.items() if k in declared}
        base = {k: v for k, v in full_parameters(path).items() if k in declared} if full else {}
        for combo in expand(own) if own else [{}]:
            parameters = {**base, **combo}
            item_id = _run_id(path.stem, combo, full)
            if item_id not in seen:
                seen.add(item_id)
                items.append(Item(item_id, {"notebook": str(path), "parameters": parameters, "full": full}))
    return items, unused


def _run_id(stem: str, combo: Mapping[str, Any], full: bool) -> str:
    """``04_layer_injection--seed_1--model_organism`` (hashed when it would be long or odd)."""
    import hashlib

    parts = [stem, "full" if full else "quick"]
    parts += [f"{k}_{v}" for k, v in combo.items()]
    text = "--".join(parts)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    if len(safe) > 120:
        digest = hashlib.sha1(json.dumps(dict(combo), sort_keys=True, default=str).encode()).hexdigest()[:12]
        safe = f"{stem}--{parts[1]}--{digest}"
    return safe


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; the message names the notebook, the cell and the error."""


@contextmanager
def _environment(**values: str):
    """Set environment variables (the kernel papermill starts inherits them), then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class NotebookJob:
    """Runs one notebook item with papermill into ``files/runs/<item>/`` (notebook, HTML, figures).

    The run's figures and its recorded verdicts go to its own folders (``LATENTKIT_FIGURES`` and
    ``LATENTKIT_RESULTS``, absolute paths: the kernel runs in the notebook's folder), so runs never
    overwrite each other or the committed ``figures/`` and ``results/``. A failing
    cell raises :class:`NotebookFailed` naming the notebook and the cell; the partly executed notebook is
    kept, with the error in it.
    """

    timeout: int = 3600
    kernel: str = "python3"
    html: bool = True

    def __call__(self, item: Item, files: Path) -> pd.DataFrame:
        import papermill
        from papermill.exceptions import PapermillExecutionError

        source = Path(item.args["notebook"]).absolute()
        parameters = item.args["parameters"]
        files = Path(files).absolute()  # papermill changes into the notebook's folder while it runs
        run_dir = files / "runs" / item.id
        figures = run_dir / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        results = run_dir / "results"
        output = run_dir / source.name
        start = time.perf_counter()
        try:
            with _environment(LATENTKIT_FIGURES=str(figures), LATENTKIT_RESULTS=str(results)):
                papermill.execute_notebook(
                    str(source),
                    str(output),
                    parameters=parameters,
                    cwd=str(source.parent),
                    kernel_name=self.kernel,
                    progress_bar=False,
                    execution_timeout=self.timeout,
                )
        except PapermillExecutionError as error:
            raise NotebookFailed(
                f"{source.name} failed in cell {error.exec_count} (code cell index {error.cell_index}): "
                f"{error.ename}: {error.evalue}; the executed notebook is {output}"
            ) from None
        finally:
            if self.html and output.exists():
                _render_html(output)
        return pd.DataFrame(
            [
                {
                    "notebook": source.stem,
                    "parameters": json.dumps(parameters, sort_keys=True, default=str),
                    "full": bool(item.args.get("full", False)),
                    "seconds": time.perf_counter() - start,
                    "output": str(output.relative_to(files)),
                    "figures": len(list(figures.glob("*.png"))),
                }
            ]
        )


def _render_html(notebook: Path) -> Path | None:
    """An HTML copy of an executed notebook beside it (needs nbconvert; skipped without it)."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    import nbformat

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    path = notebook.with_suffix(".html")
    path.write_text(body, encoding="utf-8")
    return path


def write_index(store: ResultStore, title: str = "latentkit notebook runs") -> Path:
    """``index.html`` in the store's folder: one row per run (finished or failed), with links to the
    executed notebook, its HTML rendering and its figures."""
    root = store.root
    rows = []
    done = store.collect()
    for record in done.to_dict("records"):
        rows.append((record["item"], "done", record.get("seconds", 0.0), "", record["output"]))
    for item, record in store.failed().items():
        notebook = Path(record.get("args", {}).get("notebook", item))
        output = Path("runs") / item / notebook.name
        rows.append((item, "failed", record.get("seconds", 0.0), record.get("error", ""), str(output)))
    lines = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left;"
        "vertical-align:top}tr.failed{background:#fee}img{height:90px;margin:2px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{sum(r[1] == 'done' for r in rows)} done, {sum(r[1] == 'failed' for r in rows)} failed; "
        f"written {time.strftime('%Y-%m-%d %H:%M')}.</p>",
        "<table><tr><th>run</th><th>status</th><th>seconds</th><th>notebook</th><th>figures</th></tr>",
    ]
    for item, status, seconds, error, output in sorted(rows):
        notebook = Path("files") / output
        links = [f"<a href='{html.escape(notebook.as_posix())}'>ipynb</a>"]
        if (root / notebook.with_suffix(".html")).exists():
            links.append(f"<a href='{html.escape(notebook.with_suffix('.html').as_posix())}'>html</a>")
        figures = sorted((root / notebook.parent / "figures").glob("*.png"))
        thumbs = "".join(
            f"<a href='{html.escape(p.relative_to(root).as_posix())}'>"
            f"<img src='{html.escape(p.relative_to(root).as_posix())}' title='{html.escape(p.stem)}'></a>"
            for p in figures
        )
        note = f"<br><small>{html.escape(error)}</small>" if error else ""
        lines.append(
            f"<tr class='{status}'><td>{html.escape(item)}</td><td>{status}{note}</td>"
            f"<td>{seconds:.0f}</td><td>{' | '.join(links)}</td><td>{thumbs}</td></tr>"
        )
    lines += ["</table></body></html>"]
    path = root / "index.html"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Execute notebooks in place with their default parameters.")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    # One fresh store of reusable results for this run (latentkit.reuse), as CI has: the stored notebooks
    # then show what one run in order computes, not what an older run of this machine left behind.
    with tempfile.TemporaryDirectory(prefix="latentkit-reuse-") as store:
        own = {} if os.environ.get(REUSE_DIR_ENV) else {REUSE_DIR_ENV: store}
        with _environment(**own):
            for path in args.paths:
                print(f"{path}: executed in {execute_in_place(path):.1f} s", flush=True)


if __name__ == "__main__":
    main()
