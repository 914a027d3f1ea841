"""Batches: the result store, resuming, failures, and the Dask engine (a worker killed mid-run included)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from latentkit.batch import ConfigMismatch, Item, Outcome, ResultStore, expand, run_batch, slurm_cluster

# Dask workers are other processes, which cannot import this test module: send its jobs by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass
class SquareJob:
    """Squares ``args["x"]``; fails for the ids in ``fail``; leaves a marker file per execution."""

    fail: tuple[str, ...] = ()
    seconds: float = 0.0

    def __call__(self, item: Item, files: Path) -> pd.DataFrame:
        marks = files / "marks"
        marks.mkdir(parents=True, exist_ok=True)
        (marks / f"{item.id}.{os.getpid()}.{uuid.uuid4().hex}").touch()  # one file per execution
        time.sleep(self.seconds)
        if item.id in self.fail:
            raise RuntimeError(f"boom in {item.id}")
        return pd.DataFrame({"x": [item.args["x"]], "square": [item.args["x"] ** 2], "pid": [os.getpid()]})


def executions(store: ResultStore) -> pd.Series:
    """How many times each item's job started (from the marker files)."""
    names = [p.name.split(".")[0] for p in (store.files / "marks").glob("*")]
    return pd.Series(names, dtype=str).value_counts()


def items(n: int) -> list[Item]:
    return [Item(f"x{i:03d}", {"x": i}) for i in range(n)]


def test_item_ids_are_checked(tmp_path):
    with pytest.raises(ValueError, match="letters, digits"):
        Item("a/b")
    with pytest.raises(ValueError, match="unique"):
        run_batch([Item("a"), Item("a")], SquareJob(), ResultStore(tmp_path))


def test_local_batch_stores_each_item_once_and_resumes(tmp_path):
    store = ResultStore(tmp_path / "run")
    summary = run_batch(items(5), SquareJob(), store, progress=False)
    assert sorted(summary.done) == [f"x{i:03d}" for i in range(5)] and not summary.skipped and summary.ok
    table = store.collect()
    assert list(table.columns[:1]) == ["item"]
    assert sorted(table.square) == [0, 1, 4, 9, 16]

    # an interruption loses one finished item: the rerun computes only that one
    (tmp_path / "run" / "items" / "x002.parquet").unlink()
    again = run_batch(items(5), SquareJob(), store, progress=False)
    assert again.done == ["x002"] and len(again.skipped) == 4
    assert executions(store)["x002"] == 2 and executions(store)["x000"] == 1
    assert store.collect().item.is_unique


def test_a_failed_item_is_recorded_and_retried(tmp_path):
    store = ResultStore(tmp_path / "run")
    summary = run_batch(items(4), SquareJob(fail=("x001",)), store, progress=False)
    assert not summary.ok and list(summary.failed) == ["x001"] and "boom in x001" in summary.failed["x001"]
    record = store.failed()["x001"]
    assert "RuntimeError" in record["traceback"] and record["args"] == {"x": 1}
    assert "failed" in str(summary) and "boom" in str(summary)
    assert sorted(store.done()) == ["x000", "x002", "x003"]

    fixed = run_batch(items(4), SquareJob(), store, progress=False)
    assert fixed.done == ["x001"] and fixed.ok
    assert store.failed() == {}  # a success clears the failure record
    assert len(store.collect()) == 4


def test_a_job_returning_no_table_is_a_failure(tmp_path):
    store = ResultStore(tmp_path / "run")
    summary = run_batch([Item("a")], lambda item, files: [1, 2], store, progress=False)
    assert "not a DataFrame" in summary.failed["a"]


def test_store_refuses_to_mix_batches(tmp_path):
    ResultStore(tmp_path / "run", config={"model": "organism", "steps": 25})
    ResultStore(tmp_path / "run", config={"model": "organism", "steps": 25})  # same: fine
    with pytest.raises(ConfigMismatch, match="steps") as error:
        ResultStore(tmp_path / "run", config={"model": "organism", "steps": 10})
    assert "new output folder" in str(error.value)


def test_records_are_written_atomically(tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "run")
    table = pd.DataFrame({"a": [1]})
    store.record(Outcome("good", table=table))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError):
        store.record(Outcome("bad", table=table))
    assert store.done() == {"good"}
    assert not [p for p in (tmp_path / "run" / "items").iterdir() if p.name.startswith(".")]  # no debris


def test_expand_grid():
    assert expand({"seed": [0, 1], "model": ["a", "b"]}) == [
        {"seed": 0, "model": "a"},
        {"seed": 0, "model": "b"},
        {"seed": 1, "model": "a"},
        {"seed": 1, "model": "b"},
    ]
    with pytest.raises(ValueError, match="no values"):
        expand({"seed": []})


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        run_batch(items(1), SquareJob(), ResultStore(tmp_path), engine="spark")


# ---------------------------------------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_batch_matches_the_local_one(tmp_path, cluster):
    store = ResultStore(tmp_path / "dask")
    summary = run_batch(items(9), SquareJob(fail=("x004",)), store, client=cluster, progress=False)
    assert sorted(summary.done) == sorted(f"x{i:03d}" for i in range(9) if i != 4)
    assert list(summary.failed) == ["x004"]
    table = store.collect()
    assert len(table) == 8 and table.item.is_unique
    assert (table.square == table.x**2).all()
    assert table.pid.nunique() >= 2  # the work really was spread over worker processes
    assert os.getpid() not in set(table.pid)


@pytest.mark.slow
def test_dask_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path, cluster):
    """SIGKILL a worker while it runs an item: the item is run again elsewhere and stored once."""
    store = ResultStore(tmp_path / "kill")
    n = 15
    killed: dict[str, str] = {}

    def kill_one_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and len(store.done()) < 3:
            time.sleep(0.05)
        workers = set(cluster.run(os.getpid).values())
        # A worker's queue (``client.processing()``) also lists items it has not started, so choose the
        # victim from the marker files instead: an item that started less than 0.3 s ago (its job sleeps
        # 0.6 s), in a worker process, and is not yet stored, is certainly running right now.
        while time.time() < deadline:
            done = store.done()
            for mark in (store.files / "marks").glob("*"):
                item, pid = mark.name.split(".")[:2]
                if int(pid) in workers and item not in done and time.time() - mark.stat().st_mtime < 0.3:
                    killed["item"] = item
                    os.kill(int(pid), signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    summary = run_batch(items(n), SquareJob(seconds=0.6), store, client=cluster, progress=False)
    killer.join()

    assert killed, "no worker was busy to kill"
    assert summary.ok, summary.failed
    table = store.collect()
    assert sorted(table.item) == [f"x{i:03d}" for i in range(n)]  # nothing lost, nothing twice
    assert (table.square == table.x**2).all()
    counts = executions(store)
    assert counts[killed["item"]] >= 2  # the killed item had started, and was run again
    assert len(summary.done) == n and len(json.loads(json.dumps(summary.done))) == n


def test_slurm_cluster_is_configured_not_submitted():
    pytest.importorskip("dask_jobqueue")
    cluster = slurm_cluster(
        queue="gpu",
        account="my-lab",
        cores=4,
        memory="16GB",
        walltime="02:00:00",
        job_extra_directives=["--gres=gpu:1"],
        job_script_prologue=["source ~/latentkit/.venv/bin/activate"],
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and "#SBATCH --gres=gpu:1" in script
    assert "source ~/latentkit/.venv/bin/activate" in script and "distributed.cli.dask_worker" in script


def test_local_cluster_workers_keep_glibcs_malloc_trimming():
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 made a sweep item 2.2-2.6x slower in a worker."""
    pytest.importorskip("distributed")
    from latentkit.batch import dask_client

    with dask_client("dask", workers=1) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(seen.values()) == [None]
