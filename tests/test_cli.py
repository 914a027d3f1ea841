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


def _table(out: str) -> list[list[str]]:
    """The rows of `latentkit layers`' table (its header first), split into columns."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["depth", "name"])
    return [line.split(None, 4) for line in lines[start:]]


@pytest.mark.parametrize(
    "model_id, count, last",
    [
        ("CompVis/stable-diffusion-v1-4", 38, "unet.up_blocks.3.attentions.2"),
        ("stabilityai/stable-diffusion-xl-base-1.0", 28, "unet.up_blocks.2.resnets.2"),
        ("black-forest-labs/FLUX.1-dev", 57, "transformer.single_transformer_blocks.37"),
    ],
)
def test_layers_architecture_lists_a_real_models_layers_without_weights(model_id, count, last, capsys):
    assert main(["layers", model_id, "--architecture", "--no-shapes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{model_id}: ") and f"{count} layers" in out and "no weights" in out
    rows = _table(out)
    assert rows[0] == ["depth", "name", "group", "kind"]  # no shape column without shapes
    assert len(rows) == 1 + count and rows[-1][:2] == [str(count - 1), last]


def test_layers_architecture_prints_shapes_at_the_native_size(capsys):
    assert main(["layers", "CompVis/stable-diffusion-v1-4", "--architecture"]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows[0] == ["depth", "name", "group", "kind", "shape"]
    assert rows[1] == ["0", "unet.down_blocks.0.resnets.0", "down", "ResnetBlock2D", "(320, 64, 64)"]
    assert ["15", "unet.mid_block.attentions.0", "mid", "Transformer2DModel", "(1280, 8, 8)"] in rows


def test_layers_of_a_saved_folder_load_it(tmp_path, capsys):
    from latentkit.layers import list_layers

    folder = tiny.save_tiny("sd1", tmp_path / "sd1")
    assert main(["layers", str(folder), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    expected = list_layers(tiny.build("sd1"))
    assert [row[1] for row in rows[1:]] == [layer.name for layer in expected]
    assert [row[4] for row in rows[1:]] == [str(layer.shape) for layer in expected]
    assert "loaded, on cpu" in out


def test_layers_bad_input_teaches(tmp_path, monkeypatch, capsys):
    assert main(["layers", "sd14", "--architecture"]) == 2  # unknown: one line, with the known ids
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentkit layers: 'sd14' is no model id") and "\n" not in err
    assert "CompVis/stable-diffusion-v1-4" in err and "black-forest-labs/FLUX.1-dev" in err
    assert main(["layers", "organism", "--architecture"]) == 2  # has weights: no --architecture needed
    assert "without --architecture" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a real model that is not cached: and how to list it anyway
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert main(["layers", "stabilityai/sdxl-turbo", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "hf download stabilityai/sdxl-turbo" in err
    assert "latentkit layers stabilityai/sdxl-turbo --architecture" in err
