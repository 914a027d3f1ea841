"""The habits every notebook keeps (README, Contributing): papermill can drive it, nbval can check it."""

import ast
from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_habits(path):
    nb = nbformat.read(path, as_version=4)
    cells = _code_cells(nb)
    assert path.stem[:2].isdigit(), "notebooks are numbered in the paper's order: NN_name.ipynb"
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with the claim it tests"
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell is tagged 'parameters'"

    # papermill must see every assignment of the parameters cell (it skips lines it cannot parse,
    # e.g. a comment holding '=' or '>=').
    assigns = [node for node in ast.parse(first.source).body if isinstance(node, ast.Assign)]
    assert all(isinstance(t, ast.Name) for node in assigns for t in node.targets), (
        "assign one parameter per line: papermill cannot parse `a, b = ...`"
    )
    assigned = {t.id for node in assigns for t in node.targets}
    seen = {p.name for p in PythonTranslator.inspect(first)}
    assert seen == assigned, f"papermill cannot parse parameters {sorted(assigned - seen)}"
    assert "device" in assigned and "seed" in assigned

    assert "seed_everything(seed)" in cells[1].source, "the second cell seeds explicitly"
    assert any(c.source.startswith("# NBVAL_CHECK_OUTPUT") for c in cells), "a result cell is checked"
    assert all(c.get("outputs") or not c.source.strip() for c in cells[1:]), "commit notebooks executed"
    assert "papermill" not in nb.metadata, "commit the notebook run in place, not papermill's output copy"

    # `latentkit notebooks --full` applies these larger settings: they must be parameters of the notebook
    full = nb.metadata.get("latentkit", {}).get("full")
    assert full, 'name the full-run settings in metadata["latentkit"]["full"] (see latentkit.notebooks)'
    assert set(full) <= assigned, f"full-run settings that are not parameters: {sorted(set(full) - assigned)}"
