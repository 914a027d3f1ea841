"""The ``latentkit`` command: notebook batches with papermill (index page, failures named, per-run figures),
sweeps from a pairs file with resume, and status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from latentkit import tiny
from latentkit.cli import main
from latentkit.notebooks import find_notebooks, notebook_items
from latentkit.sweeps import write_pairs


def _notebook(path: Path, parameters: str, body: str, full: dict | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if full:
        nb.metadata["latentkit"] = {"full": full}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder / "00_draws.ipynb",
        "seed = 0\nsize = 3",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from latentkit.figures import save_figure\n"
        "fig, ax = plt.subplots()\nax.plot(range(size + seed))\nsave_figure(fig, f'00_line_{seed}')\n"
        "print('seed', seed, 'size', size)",
        full={"size": 30},
    )
    _notebook(
        folder / "01_breaks.ipynb", "seed = 0", "x = 1\nraise ValueError(f'broken on purpose, seed {seed}')"
    )
    return folder


def test_notebook_items_pass_only_declared_parameters(notebooks):
    found = find_notebooks([], notebooks)
    assert [p.name for p in found] == ["00_draws.ipynb", "01_breaks.ipynb"]
    items, unused = notebook_items(found, {"seed": [0, 1], "size": [5]}, full=False)
    assert unused == {"00_draws": [], "01_breaks": ["size"]}
    assert [i.args["parameters"] for i in items] == [
        {"seed": 0, "size": 5},
        {"seed": 1, "size": 5},
        {"seed": 0},
        {"seed": 1},
    ]
    full, _ = notebook_items(found[:1], {}, full=True)
    assert full[0].args["parameters"] == {"size": 30} and "full" in full[0].id
    assert find_notebooks(["01"], notebooks) == found[1:]
    with pytest.raises(ValueError, match="matches none"):
        find_notebooks(["07"], notebooks)


@pytest.mark.slow
def test_notebooks_batch_writes_runs_figures_and_an_index_naming_failures(notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["notebooks", "--folder", str(notebooks), "--seeds", "0", "1", "--out", str(out), "--no-progress"]
    )
    assert code == 1  # a notebook failed
    err = capsys.readouterr().err
    assert "01_breaks.ipynb failed in cell" in err and "broken on purpose" in err

    runs = sorted((out / "files" / "runs").iterdir())
    assert len(runs) == 4
    draws = [r for r in runs if r.name.startswith("00_draws")]
    for run, seed in zip(draws, (0, 1), strict=True):  # each run has its executed notebook and own figures
        executed = nbformat.read(run / "00_draws.ipynb", as_version=4)
        assert f"seed {seed} size 3" in executed.cells[-1].outputs[0]["text"]
        assert (run / "figures" / f"00_line_{seed}.png").exists()
        assert (run / "00_draws.html").exists()
    index = (out / "index.html").read_text()
    assert index.count("class='done'") == 2 and index.count("class='failed'") == 2
    assert "broken on purpose" in index and "00_draws.html" in index and "00_line_1.png" in index

    # resume: the finished runs are skipped, the failed ones retried (and fail again)
    assert (
        main(
            ["notebooks", "--folder", str(notebooks), "--seeds", "0", "1", "--out", str(out), "--no-progress"]
        )
        == 1
    )
    assert "0 done, 2 skipped, 2 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_notebooks_batch_on_dask(notebooks, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    code = main(
        ["notebooks", "00", "--folder", str(notebooks), "--seeds", "2", "3", "--full", "--out", str(out)]
        + ["--engine", "dask", "--workers", "2", "--no-progress"]
    )
    assert code == 0
    rows = pd.concat([pd.read_parquet(p) for p in (out / "items").glob("*.parquet")])
    assert sorted(json.loads(p)["seed"] for p in rows.parameters) == [2, 3]
    assert {json.loads(p)["size"] for p in rows.parameters} == {30}  # the full-run setting


def test_sweep_command_resumes_and_reports_status(tmp_path, capsys):
    folder = tiny.save_tiny("sd1", tmp_path / "sd1")
    pairs = write_pairs(
        [("a photo of a dog", "a painting of a cat"), ("a red car", "a blue boat")], tmp_path / "p.csv"
    )
    out = tmp_path / "sweep"
    args = ["sweep", str(pairs), "--model", str(folder), "--seeds", "0", "1", "--steps", "2"]
    args += ["--layers", "unet.mid_block", "--device", "cpu", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    table = pd.read_parquet(out / "observations.parquet")
    assert table.item.nunique() == 4 and len(list((out / "files" / "images").glob("*.png"))) == 4
    capsys.readouterr()

    (out / "items" / "pair0001-seed0000.parquet").unlink()  # as if interrupted before this item
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "1 done, 3 skipped, 0 failed" in printed

    assert main(["status", str(out)]) == 0
    assert "4 done, 0 failed" in capsys.readouterr().out
    changed = [a if a != "2" else "3" for a in args]  # other steps, same folder: refused, nothing lost
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err
    assert len(list((out / "items").glob("*.parquet"))) == 4


def test_bad_input_teaches(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no pairs file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--out", str(tmp_path / "o")])  # neither a file nor --random-pairs
    with pytest.raises(SystemExit):
        main(["notebooks", "-p", "no-equals-sign"])


def test_entry_point_is_installed():
    done = subprocess.run([sys.executable, "-m", "latentkit.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "sweep" in done.stdout
    script = Path(sys.executable).parent / "latentkit"
    assert script.exists(), "pip install -e . should install the `latentkit` command"


@pytest.mark.slow
def test_sweep_runs_on_a_running_scheduler_by_address(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    folder = tiny.save_tiny("sd1", tmp_path / "sd1")
    pairs = write_pairs([("a dog", "a cat"), ("a car", "a boat"), ("a tree", "a house")], tmp_path / "p.csv")
    out = tmp_path / "sweep"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        args = ["sweep", str(pairs), "--model", str(folder), "--steps", "2", "--layers", "unet.mid_block"]
        code = main(args + ["--scheduler", cluster.scheduler_address, "--out", str(out), "--no-progress"])
        workers = set(cluster.workers)
    assert code == 0 and workers
    assert "3 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert pd.read_parquet(out / "observations.parquet").item.nunique() == 3
