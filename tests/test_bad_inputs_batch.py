"""Issue 16, the batch side: every bad input to a pairs file, a batch folder, the command line or Dask is a
one-line error (or a warning and a recomputation), never "done" with a wrong result, never lost data.

The jobs here are fakes (no model runs): what is tested is the boundary, the store and the command line.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import nbformat
import pandas as pd
import pytest

from latentkit import batch, paths
from latentkit.batch import (
    ConfigMismatch,
    Item,
    ResultStore,
    StoreDamaged,
    StoreWarning,
    dask_client,
    run_batch,
)
from latentkit.cli import main
from latentkit.sweeps import SweepJob, read_pairs, sweep_items, write_pairs

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _one_line(text: str) -> str:
    assert "\n" not in text.strip(), f"not one line: {text!r}"
    return text


# ---------------------------------------------------------------------------------------------------------
# Pairs files (item 4): strict, with the line number of every problem

HEADER = b"original,edit\n"

BAD_PAIRS = {
    "unquoted comma": (
        HEADER + b"a dog,a cat\na big, red dog,a cat\n",
        r"line 3: 3 fields, the header has 2.*quote",
    ),
    "too few fields": (HEADER + b"a dog\n", r"line 2: 1 fields, the header has 2"),
    "empty prompt": (HEADER + b'a dog,""\n', r"line 2: empty prompt in the edit column"),
    "blank prompt": (HEADER + b"   ,a cat\n", r"line 2: empty prompt in the original column"),
    "every bad line named": (
        HEADER + b"a,b,c\nok,fine\n,x\n",
        r"2 bad lines: line 2: 3 fields.*; line 4: empty",
    ),
    "unclosed quote": (HEADER + b'a,b\n"a dog,a cat\n', r"line 3: a quote opened here is never closed"),
    "stray quote": (HEADER + b'"a big" dog,a cat\n', r"line 2: .*stray quote"),
    "prompt over two lines": (
        HEADER + b'"a dog\nrunning",a cat\n',
        r"line 2: a quoted prompt runs on to line 3",
    ),
    "utf-16 with its mark": ("original,edit\na,b\n".encode("utf-16"), r"is UTF-16 text.*save it as UTF-8"),
    "utf-16 without a mark": (
        "original,edit\na,b\n".encode("utf-16-le"),
        r"looks like UTF-16.*save it as UTF-8",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is not a text file \(a zero byte on line 3\)"),
    "latin-1": (
        "original,edit\ncafé,b\nc,d\nné,x\n".encode("latin-1"),
        r"not UTF-8 \(byte 0xe9 on line 2.*2, 4",
    ),
    "empty file": (b"", r"is empty; a pairs file has the header line original,edit"),
    "only blank lines": (b"\n  \n", r"is empty"),
    "only the header": (HEADER, r"holds no pairs, only the header"),
    "|-delimited": (b"original|edit\na|b\n", r"line 1: the header 'original\|edit' is separated by '\|'"),
    ";-delimited": (b"original;edit\na;b\n", r"separated by ';'"),
    "wrong columns": (
        b"o,e\na,b\n",
        r"line 1: the header has the columns \['o', 'e'\]; it needs the columns",
    ),
    "repeated column": (b"original,original,edit\na,b,c\n", r"repeats the columns \['original'\]"),
    "repeated pair": (
        HEADER + b"a,b\nc,d\na,b\n",
        r"1 pair repeated \(lines 2, 4 hold \('a', 'b'\)\).*--merge",
    ),
}


@pytest.mark.parametrize("content, message", BAD_PAIRS.values(), ids=BAD_PAIRS.keys())
def test_bad_pairs_file_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "pairs.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_pairs(path)
    assert str(path) in _one_line(str(error.value))


def test_a_folder_is_not_a_pairs_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder; give a pairs file"):
        read_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="no pairs file"):
        read_pairs(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="duplicates must be 'refuse' or 'merge'"):
        read_pairs(tmp_path, duplicates="drop")


GOOD_PAIRS = {
    "quoted comma": (HEADER + b'"a dog, running",a cat\n', [("a dog, running", "a cat")]),
    "utf-8 byte-order mark": (codecs.BOM_UTF8 + HEADER + b"a,b\n", [("a", "b")]),
    "windows line ends": (b"original,edit\r\na,b\r\nc,d\r\n", [("a", "b"), ("c", "d")]),
    "tabs": (b"original\tedit\na, b\tc\n", [("a, b", "c")]),
    "columns swapped, one more": (b"edit,note,original\nb,x,a\n", [("a", "b")]),
    "blank lines": (HEADER + b"\na,b\n\n", [("a", "b")]),
    "utf-8 text": ("original,edit\nein Hund,un chat 猫\n".encode(), [("ein Hund", "un chat 猫")]),
}


@pytest.mark.parametrize("content, pairs", GOOD_PAIRS.values(), ids=GOOD_PAIRS.keys())
def test_good_pairs_files_read_exactly(tmp_path, content, pairs):
    path = tmp_path / "pairs.csv"
    path.write_bytes(content)
    assert read_pairs(path) == pairs


def test_repeated_pairs_can_be_merged_with_a_warning(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(HEADER + b"a,b\nc,d\na,b\na,b\n")
    with pytest.warns(UserWarning, match=r"2 repeated lines merged.*lines 2, 4, 5.*2 pairs remain"):
        assert read_pairs(path, duplicates="merge") == [("a", "b"), ("c", "d")]


def test_write_pairs_round_trips_and_refuses_what_read_pairs_would(tmp_path):
    pairs = [("a, b", ' "quoted" '), ("x\ty", "z")]
    assert read_pairs(write_pairs(pairs, tmp_path / "p.csv")) == pairs
    with pytest.raises(ValueError, match="pair 0 must be two non-empty one-line prompts"):
        write_pairs([("a\nb", "c")], tmp_path / "q.csv")
    assert not (tmp_path / "q.csv").exists()


@pytest.mark.parametrize(
    "seeds, message",
    [([0, 0], r"seeds must differ; \[0\]"), ([-1], r"whole numbers >= 0, got \[-1\]"), ([1.5], "whole")],
)
def test_sweep_items_check_their_seeds(seeds, message):
    with pytest.raises(ValueError, match=message):
        sweep_items([("a", "b")], seeds)


# ---------------------------------------------------------------------------------------------------------
# The command line: bad arguments stop at the parser, bad files before anything is written


@pytest.fixture
def fake_sweep(monkeypatch):
    """``latentkit sweep`` with a job that loads nothing and returns one row per item (counted)."""
    calls: list[str] = []

    def call(self, item, files):
        calls.append(item.id)
        return pd.DataFrame({"layer": ["unet.mid_block"], "value": [float(item.args["seed"])]})

    monkeypatch.setattr(SweepJob, "__call__", call)
    monkeypatch.setattr(SweepJob, "load", lambda self: (None, None))
    return calls


BAD_ARGUMENTS = {
    "negative steps": (["--steps", "-3"], "argument --steps: must be a whole number >= 1, got -3"),
    "zero steps": (["--steps", "0"], "argument --steps: must be a whole number >= 1, got 0"),
    "fractional steps": (["--steps", "2.5"], "argument --steps: must be a whole number >= 1, got '2.5'"),
    "NaN guidance": (["--guidance", "nan"], "argument --guidance: must be a finite number, got 'nan'"),
    "word guidance": (["--guidance", "high"], "argument --guidance: must be a number, got 'high'"),
    "negative seed": (["--seeds", "-1"], "argument --seeds: must be a whole number >= 0, got -1"),
    "repeated seed": (["--seeds", "0", "1", "0"], r"argument --seeds: [0] given more than once"),
    "zero threads": (["--threads", "0"], "argument --threads: must be a whole number >= 1, got 0"),
    "zero dask workers": (
        ["--engine", "dask", "--workers", "0"],
        "argument --workers: must be a whole number >= 1",
    ),
    "negative pair seed": (
        ["--pair-seed", "-2"],
        "argument --pair-seed: must be a whole number >= 0, got -2",
    ),
    "empty scheduler": (
        ["--scheduler", " "],
        "argument --scheduler: give the address of a running scheduler",
    ),
}


@pytest.mark.parametrize("extra, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_sweep_arguments_stop_at_the_parser(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    start = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "--random-pairs", "2", "--out", str(out), *extra])
    assert stop.value.code == 2 and time.perf_counter() - start < 5
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--random-pairs", "0"], "argument --random-pairs: must be a whole number >= 1, got 0"),
        (["--random-pairs", "many"], "argument --random-pairs: must be a whole number >= 1, got 'many'"),
    ],
)
def test_bad_random_pairs_count(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        main(["sweep", *extra, "--out", str(tmp_path / "out")])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--timeout", "0"], "argument --timeout: must be a whole number >= 1, got 0"),
        (["--seeds", "one"], "argument --seeds: must be a whole number >= 0, got 'one'"),
        (["--engine", "dask", "--workers", "-1"], "argument --workers: must be a whole number >= 1, got -1"),
    ],
)
def test_bad_notebooks_arguments_stop_at_the_parser(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        main(["notebooks", "--out", str(tmp_path / "out"), *extra])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


BAD_FILES = {
    "empty": (b"", "is empty"),
    "binary": (b"\x00\x01\x02\xff", "is not a text file"),
    "utf-16": ("original,edit\na,b\n".encode("utf-16"), "is UTF-16 text"),
    "|-delimited": (b"original|edit\na|b\n", "is separated by '|'"),
    "unquoted comma": (HEADER + b"a big, red dog,a cat\n", "line 2: 3 fields"),
    "repeated pair": (HEADER + b"a,b\na,b\n", "1 pair repeated"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_pairs_file_on_the_command_line_writes_nothing(tmp_path, capsys, fake_sweep, content, message):
    pairs, out = tmp_path / "pairs.csv", tmp_path / "out"
    pairs.write_bytes(content)
    assert main(["sweep", str(pairs), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentkit sweep: ") and message in _one_line(err)
    assert not out.exists() and not fake_sweep


def test_a_folder_as_pairs_file_on_the_command_line(tmp_path, capsys, fake_sweep):
    assert main(["sweep", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "is a folder; give a pairs file" in _one_line(capsys.readouterr().err)


def test_merge_duplicates_on_the_command_line_warns_in_one_line(tmp_path, capsys, fake_sweep):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(HEADER + b"a,b\nc,d\na,b\n")
    out = tmp_path / "out"
    assert main(["sweep", str(pairs), "--merge-duplicates", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "latentkit sweep: warning: " in err and "1 repeated line merged" in err
    assert sorted(fake_sweep) == ["pair0000-seed0000", "pair0001-seed0000"]


def test_resuming_with_another_pair_seed_leaves_the_folder_as_it_was(tmp_path, capsys, fake_sweep):
    out = tmp_path / "out"
    assert main(["sweep", "--random-pairs", "2", "--pair-seed", "0", "--out", str(out), "--no-progress"]) == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert out / "pairs.csv" in before and len(fake_sweep) == 2
    capsys.readouterr()

    assert main(["sweep", "--random-pairs", "2", "--pair-seed", "1", "--out", str(out), "--no-progress"]) == 2
    assert "other settings (pairs differ" in _one_line(capsys.readouterr().err)
    after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before  # pairs.csv still the pairs of the stored results
    assert read_pairs(out / "pairs.csv") == [
        tuple(p) for p in json.loads((out / "config.json").read_text())["pairs"]
    ]


def test_a_relative_out_is_relative_to_where_the_command_runs(tmp_path, monkeypatch, fake_sweep):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert main(["sweep", "--random-pairs", "1", "--out", "runs/sweep", "--no-progress"]) == 0
    assert (tmp_path / "here" / "runs" / "sweep" / "items" / "pair0000-seed0000.parquet").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys, fake_sweep):
    (tmp_path / "out").write_text("not a folder")
    assert main(["sweep", "--random-pairs", "1", "--out", str(tmp_path / "out")]) == 2
    assert "is a file; a batch's output folder must be a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# The store (item 5): every item file checked on resume and by status


def _square(item: Item, files: Path) -> pd.DataFrame:
    marks = files / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    (marks / f"{item.id}.{time.time_ns()}").touch()
    return pd.DataFrame({"x": [item.args["x"]], "square": [item.args["x"] ** 2]})


def _items(n: int, offset: int = 0) -> list[Item]:
    return [Item(f"x{i:03d}", {"x": i + offset}) for i in range(n)]


def _runs(store: ResultStore, item: str) -> int:
    return len(list((store.files / "marks").glob(f"{item}.*")))


def test_item_files_record_their_id_settings_and_arguments(tmp_path):
    store = ResultStore(tmp_path / "run", config={"model": "a"})
    run_batch(_items(1), _square, store, progress=False)
    stored = pd.read_parquet(tmp_path / "run" / "items" / "x000.parquet").attrs["latentkit"]
    assert stored == {"item": "x000", "config": store.config_hash, "args": {"x": 0}}
    assert store.collect().attrs == {}


DAMAGE = {
    "truncated": (lambda root: _truncate(root / "items" / "x001.parquet"), "does not read back"),
    "another item's": (
        lambda root: shutil.copy(root / "items" / "x002.parquet", root / "items" / "x001.parquet"),
        "holds the results of item 'x002'",
    ),
    "another batch's": (lambda root: _foreign(root, "x001"), "computed with other settings"),
    "written without a record": (
        lambda root: pd.DataFrame({"item": ["x001"], "x": [1], "square": [1]}).to_parquet(
            root / "items" / "x001.parquet"
        ),
        "records no item id or settings",
    ),
    "not Parquet at all": (
        lambda root: (root / "items" / "x001.parquet").write_text("{}"),
        "does not read back",
    ),
}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign(root: Path, item: str) -> None:
    other = ResultStore(root.parent / "other", config={"model": "b"})
    run_batch(_items(3), _square, other, progress=False)
    shutil.copy(other.root / "items" / f"{item}.parquet", root / "items" / f"{item}.parquet")


@pytest.mark.parametrize("damage, reason", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_item_file_is_never_done_and_is_recomputed(tmp_path, damage, reason):
    store = ResultStore(tmp_path / "run", config={"model": "a"})
    run_batch(_items(3), _square, store, progress=False)
    damage(store.root)

    assert store.done() == {"x000", "x002"}
    assert reason in store.damaged()["x001"]
    assert sorted(store.collect().item) == ["x000", "x002"]

    with pytest.warns(
        StoreWarning, match=r"items/x001.parquet is not a result of this batch \(.*" + re.escape(reason)
    ):
        summary = run_batch(_items(3), _square, store, progress=False)
    assert summary.done == ["x001"] and sorted(summary.skipped) == ["x000", "x002"]
    assert _runs(store, "x001") == 2 and _runs(store, "x000") == 1
    table = store.collect().set_index("item")
    assert table.loc["x001", "square"] == 1 and len(table) == 3  # the right result, once
    assert len(list((store.root / "damaged").glob("x001.*.parquet"))) == 1  # the bad file kept aside
    assert store.damaged() == {}


def test_many_damaged_files_warn_a_few_lines_not_one_each(tmp_path):
    store = ResultStore(tmp_path / "run")
    run_batch(_items(8), _square, store, progress=False)
    for path in (store.root / "items").glob("*.parquet"):
        _truncate(path)
    with pytest.warns(StoreWarning) as caught:
        assert len(run_batch(_items(8), _square, store, progress=False).done) == 8
    assert len(caught) == 6 and str(caught[-1].message).startswith("3 more item files are not results")
    assert len(list((store.root / "damaged").iterdir())) == 8


def test_an_item_file_whose_data_is_damaged_is_named(tmp_path):
    store = ResultStore(tmp_path / "run")
    run_batch(_items(1), lambda item, files: pd.DataFrame({"x": range(100)}), store, progress=False)
    path = store.root / "items" / "x000.parquet"
    data = bytearray(path.read_bytes())
    data[8:200] = b"\xff" * 192  # the data pages; the footer (what verify reads) stays sound
    path.write_bytes(bytes(data))
    with pytest.raises(
        StoreDamaged, match=r"x000.parquet does not read back .*move it out of items/"
    ) as error:
        store.collect()
    _one_line(str(error.value))


def test_an_item_computed_for_other_arguments_is_recomputed(tmp_path):
    store = ResultStore(tmp_path / "run")  # no config: the arguments still tell items apart
    run_batch(_items(2), _square, store, progress=False)
    with pytest.warns(StoreWarning) as caught:
        summary = run_batch(_items(2, offset=10), _square, store, progress=False)
    assert [str(w.message).split(" is not")[0] for w in caught] == [
        "items/x000.parquet",
        "items/x001.parquet",
    ]
    assert all("computed for other arguments (x differ)" in str(w.message) for w in caught)
    assert sorted(summary.done) == ["x000", "x001"]
    assert sorted(store.collect().square) == [100, 121]


@pytest.mark.parametrize(
    "content, reason",
    [(b'{"model": "a"', "JSONDecodeError"), (b"", "JSONDecodeError"), (b"[1, 2]", "it holds a list")],
    ids=["truncated", "empty", "not an object"],
)
def test_a_damaged_config_says_what_to_do(tmp_path, content, reason):
    store = ResultStore(tmp_path / "run", config={"model": "a"})
    run_batch(_items(2), _square, store, progress=False)
    (tmp_path / "run" / "config.json").write_bytes(content)
    for opening in (
        lambda: ResultStore(tmp_path / "run"),
        lambda: ResultStore(tmp_path / "run", {"model": "a"}),
    ):
        with pytest.raises(
            StoreDamaged, match=rf"config.json is damaged \({reason}.*restore it, or delete it"
        ):
            opening()
    with pytest.raises(StoreDamaged):
        ResultStore.check(tmp_path / "run", {"model": "a"})

    # the advice works: without config.json, the same settings find their items again
    (tmp_path / "run" / "config.json").unlink()
    again = ResultStore(tmp_path / "run", config={"model": "a"})
    assert run_batch(_items(2), _square, again, progress=False).skipped == ["x000", "x001"]


def test_a_damaged_failure_record_is_reported_and_retried(tmp_path):
    store = ResultStore(tmp_path / "run")
    (store.root / "failed" / "x001.json").write_text('{"error": "Runtime')  # truncated
    (store.root / "failed" / "x002.json").write_text('{"item": "x002"}')  # no error in it
    failed = store.failed()
    assert (
        "failed/x001.json is damaged" in failed["x001"]["error"]
        and "run the batch again" in failed["x001"]["error"]
    )
    assert "no 'error' in it" in failed["x002"]["error"]
    assert run_batch(_items(3), _square, store, progress=False).ok
    assert store.failed() == {} and not list((store.root / "failed").iterdir())


def test_check_writes_nothing(tmp_path):
    ResultStore.check(tmp_path / "new", {"model": "a"})
    assert not (tmp_path / "new").exists()
    ResultStore(tmp_path / "old", config={"model": "a"})
    with pytest.raises(ConfigMismatch, match="model differ"):
        ResultStore.check(tmp_path / "old", {"model": "b"})


def test_corrupted_store_resumes_through_the_command_line(tmp_path, capsys, fake_sweep):
    """A sweep folder with a truncated item, another item's file, a foreign item and a broken failure
    record: status counts none of them, the resume recomputes exactly those, and nothing is lost."""
    pairs = tmp_path / "pairs.csv"
    write_pairs([("a dog", "a cat"), ("a car", "a boat"), ("a tree", "a house")], pairs)
    out = tmp_path / "out"
    args = ["sweep", str(pairs), "--seeds", "0", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0 and len(fake_sweep) == 6
    items = out / "items"
    _truncate(items / "pair0000-seed0000.parquet")
    shutil.copy(items / "pair0002-seed0001.parquet", items / "pair0001-seed0000.parquet")
    other = ResultStore(tmp_path / "other", config={"model": "something else"})
    run_batch([Item("pair0001-seed0001", {"x": 1})], _square, other, progress=False)
    shutil.copy(other.root / "items" / "pair0001-seed0001.parquet", items)
    (out / "failed" / "pair0002-seed0000.json").write_text("{")
    (items / "pair0002-seed0000.parquet").unlink()
    capsys.readouterr()

    assert main(["status", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "2 done, 1 failed, 3 damaged" in printed
    assert (
        "pair0000-seed0000: items/pair0000-seed0000.parquet is not counted: it does not read back" in printed
    )
    assert "holds the results of item 'pair0002-seed0001'" in printed and "other settings" in printed
    assert "failed/pair0002-seed0000.json is damaged" in printed

    fake_sweep.clear()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "4 done, 2 skipped, 0 failed" in captured.out
    assert captured.err.count("latentkit sweep: warning: items/") == 3
    assert sorted(fake_sweep) == [
        "pair0000-seed0000",
        "pair0001-seed0000",
        "pair0001-seed0001",
        "pair0002-seed0000",
    ]
    assert len(list((out / "damaged").iterdir())) == 3  # nothing lost: the bad files are kept aside
    table = pd.read_parquet(out / "observations.parquet")
    assert sorted(table.item) == sorted(f"pair{p:04d}-seed{s:04d}" for p in range(3) for s in range(2))
    assert (table.value == table.item.str[-1].astype(float)).all()  # each row is its own item's
    assert main(["status", str(out)]) == 0
    assert "6 done, 0 failed" in capsys.readouterr().out


def test_status_of_a_damaged_config_says_what_to_do(tmp_path, capsys, fake_sweep):
    out = tmp_path / "out"
    assert main(["sweep", "--random-pairs", "1", "--out", str(out), "--no-progress"]) == 0
    (out / "config.json").write_text('{"model": "organ')
    capsys.readouterr()
    assert main(["status", str(out)]) == 2
    assert "config.json is damaged" in _one_line(capsys.readouterr().err)
    assert main(["sweep", "--random-pairs", "1", "--out", str(out), "--no-progress"]) == 2
    assert "restore it, or delete it and run the batch again" in _one_line(capsys.readouterr().err)

    (out / "config.json").unlink()
    assert main(["status", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "1 damaged" in printed and "config.json is missing: run the batch again" in printed
    assert main(["sweep", "--random-pairs", "1", "--out", str(out), "--no-progress"]) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().out  # the same settings: the item counts again


# ---------------------------------------------------------------------------------------------------------
# Dask (item 7): one-line errors within seconds


def test_zero_workers_is_refused_before_any_cluster_starts(tmp_path):
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
            run_batch(_items(1), _square, ResultStore(tmp_path / "run"), engine="dask", workers=workers)
        with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
            with dask_client("dask", workers=workers):
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_one_line_error_within_seconds(tmp_path, capsys, fake_sweep):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    code = main(["sweep", "--random-pairs", "1", "--scheduler", address, "--out", str(tmp_path / "o")])
    assert code == 2 and time.perf_counter() - start < 5
    err = _one_line(capsys.readouterr().err)  # and no progress bar: the connection comes first
    assert f"latentkit sweep: no Dask scheduler answers at {address} (Connection refused" in err
    start = time.perf_counter()
    code = main(
        [
            "sweep",
            "--random-pairs",
            "1",
            "--scheduler",
            address,
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2 and time.perf_counter() - start < 5
    err = _one_line(capsys.readouterr().err)
    assert f"latentkit sweep: no Dask scheduler answers at {address} (Connection refused" in err
    assert "`dask scheduler`" in err


def test_a_scheduler_address_that_is_no_address(tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="scheduler 'nonsense' is not a Dask address"):
        with dask_client("dask", scheduler="nonsense"):
            pass


def test_a_scheduler_without_workers_is_an_error_not_a_hang(monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(batch, "SCHEDULER_TIMEOUT", 1.0)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        start = time.perf_counter()
        with pytest.raises(ConnectionError, match="has no worker .*start some with `dask worker"):
            with dask_client("dask", scheduler=cluster.scheduler_address):
                pass
        assert time.perf_counter() - start < 5


# ---------------------------------------------------------------------------------------------------------
# Notebook runs (item 6): figures stay in the run's folder, never in the committed figures/


def _notebook(path: Path, parameters: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


DRAWS = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "from latentkit.figures import save_figure\n"
    "fig, ax = plt.subplots()\nax.plot(range(3 + seed))\nsave_figure(fig, f'00_line_{seed}')"
)
WHERE = "from latentkit.paths import figures_dir\nprint('FIGURES', figures_dir())"


def test_relative_out_keeps_a_notebook_runs_figures_in_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "clone" / "notebooks"
    folder.mkdir(parents=True)
    _notebook(folder / "00_draws.ipynb", "seed = 0", DRAWS)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.delenv("LATENTKIT_FIGURES", raising=False)
    args = [
        "notebooks",
        "--folder",
        "../clone/notebooks",
        "--seeds",
        "1",
        "--out",
        "runs/nb",
        "--no-progress",
    ]
    assert main(args) == 0, capsys.readouterr().err

    out = tmp_path / "here" / "runs" / "nb"
    run = out / "files" / "runs" / "00_draws--quick--seed_1"
    assert (run / "figures" / "00_line_1.png").exists() and (run / "00_draws.ipynb").exists()
    assert pd.read_parquet(out / "items" / "00_draws--quick--seed_1.parquet").figures.tolist() == [1]
    assert (
        "<img src='files/runs/00_draws--quick--seed_1/figures/00_line_1.png'"
        in (out / "index.html").read_text()
    )
    assert sorted(p.name for p in folder.iterdir()) == ["00_draws.ipynb"]  # nothing written beside it


def test_a_parameter_no_notebook_declares_is_a_typo(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_draws.ipynb", "seed = 0\nsize = 3", "pass")
    out = tmp_path / "out"
    assert main(["notebooks", "--folder", str(folder), "-p", "sise=4", "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "no notebook of 00_draws has the parameter 'sise'; did you mean size?" in err
    assert not out.exists()


def test_figures_go_to_the_committed_folder_only_from_make_store(tmp_path, monkeypatch):
    from latentkit import notebooks

    monkeypatch.delenv("LATENTKIT_FIGURES", raising=False)
    assert paths.figures_dir() == paths.SCRATCH_FIGURES != paths.COMMITTED_FIGURES
    monkeypatch.setenv("LATENTKIT_FIGURES", str(tmp_path / "mine"))
    assert paths.figures_dir() == tmp_path / "mine"

    monkeypatch.delenv("LATENTKIT_FIGURES")
    in_clone = notebooks.NOTEBOOKS_DIR / "00_the_shapes_world.ipynb"
    assert notebooks._store_figures(in_clone) == {"LATENTKIT_FIGURES": str(paths.COMMITTED_FIGURES)}
    assert notebooks._store_figures(tmp_path / "00_elsewhere.ipynb") == {}
    monkeypatch.setenv("LATENTKIT_FIGURES", str(tmp_path / "mine"))
    assert notebooks._store_figures(in_clone) == {}  # an explicit folder wins


def test_papermill_with_other_parameters_never_targets_the_committed_figures(tmp_path, monkeypatch):
    """The kernel is where save_figure runs: ask it (printing figures_dir, drawing nothing)."""
    import papermill

    from latentkit import notebooks

    monkeypatch.delenv("LATENTKIT_FIGURES", raising=False)
    source = _notebook(tmp_path / "00_where.ipynb", "seed = 0", WHERE)
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "run.ipynb"),
        parameters={"seed": 7},
        cwd=str(tmp_path),
        progress_bar=False,
    )
    printed = nbformat.read(tmp_path / "run.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert printed.strip() == f"FIGURES {paths.SCRATCH_FIGURES}"

    # `make store` (execute_in_place) of a clone's notebook: the committed folder
    monkeypatch.setattr(notebooks, "NOTEBOOKS_DIR", tmp_path)
    notebooks.execute_in_place(source, timeout=120)
    printed = nbformat.read(source, as_version=4).cells[-1].outputs[0]["text"]
    assert printed.strip() == f"FIGURES {paths.COMMITTED_FIGURES}"
    assert os.environ.get("LATENTKIT_FIGURES") is None  # restored afterwards
