"""Batch runs: many items of work, resumable, on this process or on a Dask cluster.

The paper's public code runs 500 O/E pairs per model; researchers also run every notebook over models and
seeds. Both are *batches*: a list of :class:`Item` (one unit of work with a stable id: one O/E pair at one
seed, one notebook with one set of parameters) handed to a *job* (a picklable callable that does one item
and returns a table) and collected in a :class:`ResultStore`, a folder on disk:

=============================  ==========================================================================
``config.json``                what the batch computes (model, settings); a resumed batch must match it
``items/<id>.parquet``         the table of a finished item, written once, atomically (temp file + rename)
``failed/<id>.json``           a failed item: its error and traceback (it is tried again on the next run)
``files/``                     whatever a job writes beside its table (images, executed notebooks)
=============================  ==========================================================================

Only the process that called :func:`run_batch` writes ``items/`` and ``failed/``, so an item is stored at
most once even when a cluster runs it twice (a worker that dies mid-item has its item re-run elsewhere).
An interrupted batch resumes by running the same command again: finished items are skipped.

Engines (``engine=``): ``"local"`` runs the items one after another in this process; ``"dask"`` sends them
to a Dask cluster: a :class:`distributed.LocalCluster` of ``workers`` processes by default, any running
scheduler with ``scheduler="tcp://host:8786"``, or SLURM jobs with ``engine="slurm"`` (dask-jobqueue,
configured in ``~/.config/dask/jobqueue.yaml``; see the README, "Batch runs and clusters").

Example::

    store = ResultStore("runs/sweep-sd14", config={"model": "organism"})
    summary = run_batch(items, job, store, engine="dask", workers=4)
    print(summary)  # done / skipped / failed
    table = store.collect()  # every finished item's rows, with an ``item`` column
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

ENGINES = ("local", "dask", "slurm")


@dataclass(frozen=True)
class Item:
    """One unit of work: ``id`` names it in the store (letters, digits, ``-_.``), ``args`` are the job's."""

    id: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.id or any(not (c.isalnum() or c in "-_.") for c in self.id):
            raise ValueError(f"item id {self.id!r} must be non-empty letters, digits, '-', '_' or '.'")


@dataclass
class Outcome:
    """What a job returned for one item: its table, or the error that stopped it."""

    item: str
    args: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    worker: str = ""


#: A job: does one item (writing any side files under ``files``) and returns its table.
Job = Callable[[Item, Path], pd.DataFrame]


def run_item(job: Job, item: Item, files: Path) -> Outcome:
    """Run ``job`` on one item, catching its error: a failure is recorded, never lost (runs on workers)."""
    start = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    try:
        table = job(item, files)
    except Exception as error:  # any failure of one item must not stop the batch
        return Outcome(
            item.id,
            item.args,
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(),
            seconds=time.perf_counter() - start,
            worker=worker,
        )
    if not isinstance(table, pd.DataFrame):
        return Outcome(item.id, item.args, error=f"the job returned {type(table).__name__}, not a DataFrame")
    return Outcome(item.id, item.args, table=table, seconds=time.perf_counter() - start, worker=worker)


# ---------------------------------------------------------------------------------------------------------
# The store


class ConfigMismatch(ValueError):
    """A resumed batch computes something else than the batch already in the folder."""


class ResultStore:
    """A batch's folder: one Parquet table per finished item, one JSON per failed one (see the module).

    Args:
        root: the folder (created).
        config: what the batch computes (JSON-serialisable). Stored on first use; a later run with another
            config raises :class:`ConfigMismatch` rather than mixing results (use another folder).
    """

    def __init__(self, root: str | os.PathLike, config: dict[str, Any] | None = None):
        self.root = Path(root)
        for sub in ("items", "failed", "files"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if config is not None:
            self._check_config(json.loads(json.dumps(config)))  # as it reads back from JSON

    @property
    def files(self) -> Path:
        """Where jobs write their side files (images, notebooks)."""
        return self.root / "files"

    def _check_config(self, config: dict[str, Any]) -> None:
        path = self.root / "config.json"
        if not path.exists():
            atomic_write(path, json.dumps(config, indent=2, sort_keys=True).encode())
            return
        stored = json.loads(path.read_text())
        if stored != config:
            changed = sorted(k for k in {*stored, *config} if stored.get(k) != config.get(k))
            raise ConfigMismatch(
                f"{self.root} holds a batch with other settings ({', '.join(changed)} differ: stored "
                f"{ {k: stored.get(k) for k in changed} }, asked { {k: config.get(k) for k in changed} }). "
                "Resume it with the same settings, or give a new output folder."
            )

    def config(self) -> dict[str, Any]:
        path = self.root / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def done(self) -> set[str]:
        """Ids of the finished items."""
        return {p.stem for p in (self.root / "items").glob("*.parquet")}

    def failed(self) -> dict[str, dict[str, Any]]:
        """Failed items that have not succeeded since: id -> record (error, traceback, worker, when)."""
        done = self.done()
        records = {}
        for path in sorted((self.root / "failed").glob("*.json")):
            if path.stem not in done:
                records[path.stem] = json.loads(path.read_text())
        return records

    def record(self, outcome: Outcome) -> None:
        """Store an outcome: the table of a finished item, or the record of a failed one."""
        if outcome.error is None:
            table = outcome.table.copy()
            table.insert(0, "item", outcome.item)
            buffer = _parquet_bytes(table)
            atomic_write(self.root / "items" / f"{outcome.item}.parquet", buffer)
            (self.root / "failed" / f"{outcome.item}.json").unlink(missing_ok=True)
        else:
            record = {k: v for k, v in asdict(outcome).items() if k != "table"}
            record["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
            atomic_write(
                self.root / "failed" / f"{outcome.item}.json",
                json.dumps(record, indent=2, default=str).encode(),
            )

    def collect(self) -> pd.DataFrame:
        """Every finished item's table, concatenated (column ``item`` first); empty if none."""
        paths = sorted((self.root / "items").glob("*.parquet"))
        if not paths:
            return pd.DataFrame(columns=["item"])
        return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def _parquet_bytes(table: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# Running a batch


@dataclass
class Summary:
    """How a batch went: items finished now, skipped (finished before), failed (with their errors)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> pd.DataFrame:
        """One row per status: count and the first few ids."""
        rows = [
            ("done", len(self.done), ", ".join(self.done[:3]) + (" ..." if len(self.done) > 3 else "")),
            ("skipped", len(self.skipped), "finished by an earlier run" if self.skipped else ""),
            ("failed", len(self.failed), "; ".join(f"{k}: {v}" for k, v in list(self.failed.items())[:3])),
        ]
        return pd.DataFrame(rows, columns=["status", "items", "which"]).set_index("status")

    def headline(self) -> str:
        """``3 done, 5 skipped, 1 failed in 12.0 s (0.25 items/s)``."""
        rate = f" ({len(self.done) / self.seconds:.2f} items/s)" if self.done and self.seconds else ""
        counts = f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"
        return f"{counts} in {self.seconds:.1f} s{rate}"

    def __str__(self) -> str:
        return f"{self.headline()}\n{self.table().to_string()}"


def run_batch(
    items: Sequence[Item],
    job: Job,
    store: ResultStore,
    engine: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    description: str = "items",
    client: Any = None,
) -> Summary:
    """Run ``job`` on every item not yet finished in ``store``; finished items are skipped.

    Args:
        items: the batch (ids must be unique).
        job: ``job(item, files) -> DataFrame``, picklable for Dask (a module-level function or a dataclass
            instance with ``__call__``); ``files`` is :attr:`ResultStore.files`.
        store: where results go; see :class:`ResultStore`.
        engine: ``"local"`` (this process), ``"dask"`` (a local cluster of ``workers`` processes, or the
            scheduler at ``scheduler``) or ``"slurm"`` (``workers`` SLURM jobs via dask-jobqueue).
        workers: worker processes (local cluster) or jobs (SLURM).
        scheduler: address of a running Dask scheduler (``engine="dask"`` only).
        progress: show a progress bar.
        description: the progress bar's label.
        client: a ``distributed.Client`` you already have (e.g. in a notebook); overrides ``engine``,
            and is left open.

    Returns:
        A :class:`Summary`. Failed items are in ``store.failed()`` with their tracebacks.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"item ids must be unique; repeated: {repeated[:5]}")
    start = time.perf_counter()
    finished = store.done()
    summary = Summary(skipped=[i for i in ids if i in finished])
    pending = [item for item in items if item.id not in finished]
    bar = tqdm(total=len(pending), desc=description, disable=not progress or not pending)

    def take(outcome: Outcome) -> None:
        store.record(outcome)
        if outcome.error is None:
            summary.done.append(outcome.item)
        else:
            summary.failed[outcome.item] = outcome.error
        bar.update(1)
        bar.set_postfix(failed=len(summary.failed))

    try:
        if not pending:
            pass
        elif client is not None:
            _run_on_dask(client, pending, job, store, take)
        elif engine == "local":
            for item in pending:
                take(run_item(job, item, store.files))
        else:
            with dask_client(engine, workers=workers, scheduler=scheduler) as client:
                _run_on_dask(client, pending, job, store, take)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _run_on_dask(client, pending: Sequence[Item], job: Job, store: ResultStore, take) -> None:
    """Submit every pending item; store each outcome as it arrives (in this process only)."""
    from distributed import as_completed

    token = f"{time.time_ns():x}"  # fresh keys: a resumed batch must not get a cached result
    futures = {
        client.submit(run_item, job, item, store.files, key=f"latentkit-{item.id}-{token}", pure=False): item
        for item in pending
    }
    for future in as_completed(futures):
        item = futures[future]
        try:
            outcome = future.result()
        except Exception as error:  # e.g. KilledWorker after repeated worker deaths
            outcome = Outcome(item.id, item.args, error=f"{type(error).__name__}: {error}", worker="dask")
        take(outcome)
        future.release()


@contextmanager
def dask_client(engine: str = "dask", workers: int = 2, scheduler: str | None = None, threads: int = 1):
    """A ``distributed.Client`` for ``engine``; the cluster it started (if any) is closed on exit.

    ``engine="dask"``: the scheduler at ``scheduler``, else a local cluster of ``workers`` processes with
    ``threads`` threads each. ``engine="slurm"``: ``dask_jobqueue.SLURMCluster()`` configured from Dask's
    config (``~/.config/dask/jobqueue.yaml``), scaled to ``workers`` jobs.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:  # pragma: no cover: distributed is a dependency
        raise ImportError("the dask engine needs `pip install 'dask[distributed]'`") from error

    if engine == "dask" and scheduler:
        client, cluster = Client(scheduler), None
    elif engine == "dask":
        import dask

        # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's adaptive malloc
        # thresholds: a sweep item then ran 2.2-2.6x slower in a worker than in this process
        # (benchmarks/bench_batch.py). Workers get glibc's defaults instead. (Dask's nanny also leaves the
        # variable in this process's environment after spawning, where an earlier cluster put it.)
        key = "MALLOC_TRIM_THRESHOLD_"
        if os.environ.get(key) == str(dask.config.get(f"distributed.nanny.pre-spawn-environ.{key}")):
            del os.environ[key]
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{key}": None}):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None
            )
        client = Client(cluster)
    elif engine == "slurm":
        cluster = slurm_cluster()
        cluster.scale(jobs=workers)
        client = Client(cluster)
    else:
        raise ValueError(f"dask_client needs engine 'dask' or 'slurm', got {engine!r}")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def slurm_cluster(**overrides: Any):
    """A ``dask_jobqueue.SLURMCluster`` from Dask's configuration, with ``overrides`` (not yet scaled).

    Put the cluster's settings in ``~/.config/dask/jobqueue.yaml`` (queue, account, cores, memory,
    walltime, ``job_script_prologue`` to activate the environment); see the README. ``cluster.job_script()``
    shows the script SLURM would get.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as error:
        raise ImportError(
            "engine='slurm' needs dask-jobqueue: `pip install dask-jobqueue` (or `pip install -e '.[slurm]'`)"
        ) from error
    return SLURMCluster(**overrides)


def expand(grid: dict[str, Iterable[Any]]) -> list[dict[str, Any]]:
    """Every combination of a parameter grid: ``{"seed": [0, 1], "model": ["a"]}`` -> 2 dicts."""
    import itertools

    keys = list(grid)
    values = [list(grid[k]) for k in keys]
    for key, options in zip(keys, values, strict=True):
        if not options:
            raise ValueError(f"parameter {key!r} has no values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
