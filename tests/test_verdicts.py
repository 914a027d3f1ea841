"""latentkit.verdicts: recording a notebook's checked verdicts, comparing runs, and the notebooks' calls."""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from latentkit import paths, verdicts
from latentkit.verdicts import COLUMNS, Verdict, agreement, read_verdicts, record_verdicts, verdicts_path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-6]_*.ipynb"))


@pytest.fixture(autouse=True)
def _fresh_run(monkeypatch):
    """Each test is a fresh kernel: nothing recorded yet in this process."""
    monkeypatch.setattr(verdicts, "_WRITTEN", {})


def _table(**verdict_of_claim):
    return pd.DataFrame(
        {"notebook": "01_x", "claim": list(verdict_of_claim), "verdict": list(verdict_of_claim.values())}
    )


# ---------------------------------------------------------------------------------------------------------
# Where: results_dir


def test_results_dir_is_build_results_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv("LATENTKIT_RESULTS", raising=False)
    assert paths.results_dir() == paths.SCRATCH_RESULTS == paths.REPO_ROOT / "build" / "results"
    assert paths.results_dir() != paths.COMMITTED_RESULTS
    monkeypatch.setenv("LATENTKIT_RESULTS", str(tmp_path / "mine"))
    assert paths.results_dir() == tmp_path / "mine"
    assert verdicts_path("01_x") == tmp_path / "mine" / "01_x.csv"


def test_record_writes_to_results_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTKIT_RESULTS", str(tmp_path / "deep" / "er"))
    assert record_verdicts("01_x", [Verdict("a", "V")]) is None  # a cell ending in the call shows nothing
    assert list(read_verdicts(tmp_path / "deep" / "er" / "01_x.csv")["claim"]) == ["a"]


# ---------------------------------------------------------------------------------------------------------
# Recording


def test_round_trip_keeps_words_and_numbers(tmp_path):
    rows = [
        Verdict("density:autoencoder (3 neurons)", "X", 0.19, 0.14, 0.25, n=256),
        Verdict("every aspect has a layer of its own", "True"),
        Verdict("C4:structure", "not placed", math.nan, 1.0, math.inf),
        Verdict("trivial layers", "none", np.int64(0)),
        Verdict("odd words", "n/a"),
        Verdict("more odd words", "None", valid_share=np.float64(0.49), n=16.0),
        Verdict("mark", "~", None, None, None, None, None),
    ]
    record_verdicts("04_layer_injection", rows, folder=tmp_path)
    table = read_verdicts(tmp_path / "04_layer_injection.csv")
    assert list(table.columns) == list(COLUMNS)
    assert set(table["notebook"]) == {"04_layer_injection"}
    assert list(table["verdict"]) == ["X", "True", "not placed", "none", "n/a", "None", "~"]
    first = table.iloc[0]
    assert (first["value"], first["ci_low"], first["ci_high"], first["n"]) == (0.19, 0.14, 0.25, 256)
    assert math.isnan(first["valid_share"])
    assert table.loc[2, "ci_high"] == math.inf and math.isnan(table.loc[2, "value"])
    assert table.loc[5, "valid_share"] == 0.49 and table.loc[5, "n"] == 16
    assert table["n"].isna().tolist() == [False, True, True, True, True, False, True]
    assert str(table["n"].dtype) == "Int64"


def test_a_dataframe_of_rows_works_like_verdicts(tmp_path):
    rows = pd.DataFrame(
        {"claim": ["a", "b"], "verdict": ["strict", "broad"], "value": [1.0, np.nan], "n": [32, np.nan]}
    )
    record_verdicts("06_y", rows, folder=tmp_path)
    table = read_verdicts(tmp_path / "06_y.csv")
    assert list(table["verdict"]) == ["strict", "broad"]
    assert table["n"].tolist()[0] == 32 and pd.isna(table["n"].tolist()[1])
    record_verdicts("06_y", table, folder=tmp_path)  # a table read back (with its notebook column) records
    pd.testing.assert_frame_equal(read_verdicts(tmp_path / "06_y.csv"), table)


def test_calls_of_one_run_add_up_and_a_new_run_starts_afresh(tmp_path, monkeypatch):
    record_verdicts("04_z", [Verdict("trivial layers", "up2 attn1"), Verdict("roles", "4")], folder=tmp_path)
    record_verdicts("04_z", [Verdict("C2", "undecided")], folder=tmp_path)
    record_verdicts("04_z", [Verdict("roles", "5")], folder=tmp_path)  # a cell run again replaces its rows
    table = read_verdicts(tmp_path / "04_z.csv")
    assert list(zip(table["claim"], table["verdict"], strict=True)) == [
        ("trivial layers", "up2 attn1"),
        ("roles", "5"),
        ("C2", "undecided"),
    ]
    monkeypatch.setattr(verdicts, "_WRITTEN", {})  # another kernel: the earlier run's file is replaced
    record_verdicts("04_z", [Verdict("C2", "reproduced")], folder=tmp_path)
    assert read_verdicts(tmp_path / "04_z.csv")[["claim", "verdict"]].values.tolist() == [
        ["C2", "reproduced"]
    ]


def test_no_verdicts_still_mark_the_run(tmp_path):
    record_verdicts("03_w", [Verdict("old", "V")], folder=tmp_path)
    verdicts._WRITTEN.clear()  # a later run, e.g. of a model without probes, records nothing
    record_verdicts("03_w", [], folder=tmp_path)
    table = read_verdicts(tmp_path / "03_w.csv")
    assert table.empty and list(table.columns) == list(COLUMNS)


def test_never_overwrites_another_notebooks_file(tmp_path):
    record_verdicts("01_a", [Verdict("x", "V")], folder=tmp_path)
    (tmp_path / "02_b.csv").write_bytes((tmp_path / "01_a.csv").read_bytes())  # 01_a's rows under 02_b
    before = (tmp_path / "02_b.csv").read_bytes()
    with pytest.raises(ValueError, match="holds the verdicts of 01_a, not of '02_b': not overwriting"):
        record_verdicts("02_b", [Verdict("x", "X")], folder=tmp_path)
    assert (tmp_path / "02_b.csv").read_bytes() == before


@pytest.mark.parametrize(
    "content",
    ["a,b\n1,2\n", "", "notebook,claim,verdict,value,ci_low,ci_high,valid_share,n\n03,c,V,big,,,,\n"],
)
def test_never_overwrites_a_file_that_is_no_verdict_table(tmp_path, content):
    (tmp_path / "03_c.csv").write_text(content)
    with pytest.raises(ValueError, match="not a latentkit verdict table.*not overwriting it"):
        record_verdicts("03_c", [Verdict("x", "V")], folder=tmp_path)
    assert (tmp_path / "03_c.csv").read_text() == content


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: Verdict("", "V"), ValueError, "claim must be a non-empty one-line str"),
        (lambda: Verdict("two\nlines", "V"), ValueError, "claim must be a non-empty one-line str"),
        (lambda: Verdict(3, "V"), ValueError, "claim must be a non-empty one-line str"),
        (
            lambda: Verdict("a", True),
            ValueError,
            r"verdict must be a non-empty one-line str \(write the word",
        ),
        (lambda: Verdict("a", " "), ValueError, "'a': verdict must be a non-empty"),
        (lambda: Verdict("a", "V", "0.5"), TypeError, "'a': value must be a number or NaN, got '0.5'"),
        (lambda: Verdict("a", "V", True), TypeError, "value must be a number"),
        (lambda: Verdict("a", "V", ci_low=[0.1]), TypeError, "ci_low must be a number"),
        (lambda: Verdict("a", "V", valid_share=1.5), ValueError, r"valid_share must lie in \[0, 1\]"),
        (lambda: Verdict("a", "V", ci_low=0.6, ci_high=0.4), ValueError, "ci_low 0.6 > ci_high 0.4"),
        (lambda: Verdict("a", "V", n=-1), ValueError, "n must be a whole number >= 0 or None"),
        (lambda: Verdict("a", "V", n=2.5), ValueError, "n must be a whole number"),
        (lambda: Verdict("a", "V", n=True), ValueError, "n must be a whole number"),
    ],
)
def test_a_wrong_field_is_refused_at_once(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "notebook, rows, error, message",
    [
        ("01_x.ipynb", [], ValueError, "without its suffix: '01_x'"),
        ("notebooks/01_x", [], ValueError, "file name without folder or suffix"),
        ("", [], ValueError, "file name without folder or suffix"),
        (1, [], ValueError, "file name without folder or suffix"),
        ("01_x", [Verdict("a", "V"), Verdict("a", "X")], ValueError, r"claims \['a'\] more than once"),
        ("01_x", [("a", "V")], TypeError, "rows must be Verdict objects, got tuple"),
        ("01_x", Verdict("a", "V"), TypeError, "rows must be a list of Verdict or a DataFrame, got Verdict"),
        ("01_x", "a", TypeError, "rows must be a list of Verdict or a DataFrame, got str"),
        ("01_x", pd.DataFrame({"claim": ["a"], "verdcit": ["V"]}), ValueError, "did you mean 'verdict'"),
        ("01_x", pd.DataFrame({"claim": ["a"]}), ValueError, r"columns \['verdict'\] are missing"),
        ("01_x", pd.DataFrame({"claim": ["a"], "verdict": [np.nan]}), ValueError, "'a': verdict must be"),
        ("01_x", _table(a="V").assign(notebook="02_y"), ValueError, r"notebooks \['02_y'\], not only"),
    ],
)
def test_wrong_input_is_refused_and_nothing_written(tmp_path, notebook, rows, error, message):
    with pytest.raises(error, match=message):
        record_verdicts(notebook, rows, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# Comparing runs


def test_agreement_per_claim():
    agreed = agreement(
        {
            0: _table(density="X", C2="undecided", roles="4"),
            1: _table(density="X", C2="reproduced", roles="4"),
            2: _table(density="X", C2="undecided", roles="4"),
        }
    )
    assert list(agreed.columns) == ["notebook", "claim", "seed 0", "seed 1", "seed 2", "agree", "compatible"]
    assert list(agreed["claim"]) == ["density", "C2", "roles"]
    assert agreed["agree"].tolist() == [True, False, True]
    assert agreed.loc[1, ["seed 0", "seed 1", "seed 2"]].tolist() == ["undecided", "reproduced", "undecided"]


@pytest.mark.parametrize(
    "verdicts, compatible",
    [
        (["~/V", "V", "~/V"], True),  # one interval clears the threshold the others straddle
        (["X/V", "X/~", "X/V"], True),  # X/V spans all three bands
        (["~", "V", "~"], False),  # two decided marks
        (["X/~", "~/V", "~"], True),  # all allow ~
        (["X/~", "~/V", "V"], False),  # X/~ and V share no band
        (["undecided", "reproduced", "undecided"], True),
        (["undetermined", "structure", "content"], False),  # two decided roles
        (["undecided", "undecided", "undetermined"], True),  # nothing decided at all
        (["strict", "broad", "strict"], False),
        (["16 of 18", "16 of 18", "16 of 18"], True),
    ],
)
def test_compatible_when_one_decided_reading_fits_every_run(verdicts, compatible):
    agreed = agreement({seed: _table(a=v) for seed, v in enumerate(verdicts)})
    assert agreed["compatible"].tolist() == [compatible]
    assert agreed["agree"].tolist() == [len(set(verdicts)) == 1]


def test_a_claim_missing_in_one_run_disagrees():
    agreed = agreement({0: _table(a="V", b="V"), 1: _table(a="V"), 2: _table(a="V", c="X")})
    assert list(agreed["claim"]) == ["a", "b", "c"]
    assert agreed["agree"].tolist() == [True, False, False]
    assert agreed["compatible"].tolist() == [True, False, False]  # missing is never compatible
    assert (
        agreed.loc[1, "seed 0"] == "V"
        and pd.isna(agreed.loc[1, "seed 1"])
        and pd.isna(agreed.loc[1, "seed 2"])
    )


def test_agreement_keeps_notebooks_apart_and_reads_files(tmp_path):
    by_seed = {}
    for seed in (0, 1):
        folder = tmp_path / f"seed{seed}"
        record_verdicts("01_a", [Verdict("C1", "contradicted")], folder=folder)
        record_verdicts("02_b", [Verdict("C1", "reproduced" if seed else "contradicted")], folder=folder)
        by_seed[seed] = pd.concat([read_verdicts(f) for f in sorted(folder.glob("*.csv"))])
    agreed = agreement(by_seed)
    assert agreed[["notebook", "claim", "agree"]].values.tolist() == [
        ["01_a", "C1", True],
        ["02_b", "C1", False],
    ]


def test_one_run_agrees_with_itself():
    assert agreement({7: _table(a="V")})["agree"].tolist() == [True]


@pytest.mark.parametrize(
    "tables, error, message",
    [
        ({}, ValueError, "tables_by_seed is empty"),
        (
            {0: _table(a="V"), 1: _table(a="V").drop(columns="notebook")},
            ValueError,
            r"seed 1 lacks .*'notebook'",
        ),
        (
            {0: pd.concat([_table(a="V"), _table(a="X")])},
            ValueError,
            r"seed 0 has the claims \[\('01_x', 'a'\)\]",
        ),
        ({0: [("a", "V")]}, TypeError, "the table of seed 0 must be a DataFrame, got list"),
    ],
)
def test_agreement_refuses_bad_tables(tables, error, message):
    with pytest.raises(error, match=message):
        agreement(tables)


# ---------------------------------------------------------------------------------------------------------
# The notebooks' calls (read, not run)


def _calls(source: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record_verdicts"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_checked_cells_record_under_their_own_notebook(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "from latentkit.verdicts import Verdict, record_verdicts" in cells[1].source
    recording = 0
    for cell in cells:
        calls = _calls(cell.source)
        if not calls:
            continue
        assert cell.source.startswith("# NBVAL_CHECK_OUTPUT"), "only checked cells record verdicts"
        assert len(calls) == 1, "one record_verdicts call per checked cell"
        assert [a.value for a in calls[0].args[:1] if isinstance(a, ast.Constant)] == [path.stem]
        last = ast.parse(cell.source).body[-1]  # so that the checked output ends as it did
        assert isinstance(last, ast.Expr) and _calls(ast.unparse(last.value)), "the call ends the cell"
        recording += 1
    assert recording >= 1


# ---------------------------------------------------------------------------------------------------------
# The benchmark, end to end on a throwaway notebook (seconds, not the real notebooks)


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench_verdict_agreement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_notebook(path: Path) -> Path:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    parameters = new_code_cell('seed = 0\nn = 8\ndevice = "auto"', metadata={"tags": ["parameters"]})
    nb = new_notebook(
        cells=[
            new_markdown_cell("# two verdicts, one of them the seed's parity"),
            parameters,
            new_code_cell("from latentkit.verdicts import Verdict, record_verdicts"),
            new_code_cell(
                "# NBVAL_CHECK_OUTPUT\n"
                f"record_verdicts({path.stem!r}, [Verdict('always', 'V', n=n), "
                "Verdict('parity', 'even' if seed % 2 == 0 else 'odd')])"
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "latentkit": {"full": {"n": 64}},
        },
    )
    nbformat.write(nb, path)
    return path


def test_benchmark_table_marks_missing_and_failed():
    shown = _benchmark().agreement_table(
        agreement({0: _table(a="V", b="~/V"), 1: _table(a="X", b="V")}),
        {0: {"01_x": 1.2}, 1: {"01_x": 3.9}},
        {(1, "01_x")},
    )
    assert shown.values.tolist() == [
        ["01_x", "(run time)", "1 s", "4 s (failed)", ""],
        ["", "a", "V", "X", "no"],
        ["", "b", "~/V", "V", "no, compatible"],
    ]


@pytest.mark.slow
def test_benchmark_end_to_end(tmp_path, capsys):
    notebook = _tiny_notebook(tmp_path / "00_tiny.ipynb")
    bench = _benchmark()
    assert bench.main([str(notebook), "--seeds", "0", "1", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    # "even" at seed 0 and "odd" at seed 1: two decided readings, so not compatible
    assert (
        "1 of 2 checked verdicts agree across seeds 0, 1 (0 more differ only in how far they decide, "
        "1 decide differently); notebooks took"
    ) in out
    assert "(target <= 900 s)" in out
    figures = list((tmp_path / "runs" / "runs").glob("*/figures"))
    assert len(figures) == 2  # each run had its own folders, nothing went to the repository's build/
    assert bench.main([str(notebook), "--full", "--copy-to", str(tmp_path / "full")]) == 0
    full = read_verdicts(tmp_path / "full" / "00_tiny.csv")
    assert full["n"].tolist()[0] == 64  # the notebook's full settings
    assert pd.read_csv(tmp_path / "full" / "runs.csv")["notebook"].tolist() == ["00_tiny"]
