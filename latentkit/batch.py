"""Batch runs: many items of work, resumable, on this process or on a Dask cluster.

The paper's public code runs 500 O/E pairs per model; researchers also run every notebook over models and
seeds. Both are *batches*: a list of :class:`Item` (one unit of work with a stable id: one O/E pair at one
seed, one notebook with one set of parameters) handed to a *job* (a picklable callable that does one item
and returns a table) and collected in a :class:`ResultStore`, a folder on disk:

=============================  ==========================================================================
``config.json``                what the batch computes (model, settings); a resumed batch must match it
``items/<id>.parquet``         the table of a finished item, written once, atomically (temp file + rename);
                               it records its item id, its arguments and the hash of ``config.json``
``failed/<id>.json``           a failed item: its error and traceback (it is tried again on the next run)
``files/``                     whatever a job writes beside its table (images, executed notebooks)
``damaged/``                   item files that failed their check, moved aside when they are recomputed
=============================  ==========================================================================

An item counts as finished only when its file reads back and records the same item id, the same arguments
and the same configuration hash as the batch (:meth:`ResultStore.verify`): a truncated file, another
item's file or one of another batch is computed again, with a :class:`StoreWarning`, never counted done.

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

import hashlib
import json
import os
import socket
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

ENGINES = ("local", "dask", "slurm")

#: Seconds to wait for a Dask scheduler to answer, and for a running one to have a worker.
SCHEDULER_TIMEOUT = 10.0


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


class StoreDamaged(ValueError):
    """A file of a batch folder that latentkit needs (``config.json``) cannot be read; says what to do."""


class StoreWarning(UserWarning):
    """A stored result failed its check and is computed again (or a failure record could not be read)."""


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a batch's configuration (as it reads back from JSON)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _said(error: BaseException) -> str:
    """``Type: message`` of an error, on one line (pyarrow's messages span several)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, paths strings ...)."""
    return json.loads(json.dumps(value, default=str))


def _read_config(root: Path) -> dict[str, Any] | None:
    """The stored ``config.json`` of the batch in ``root`` (``None`` if there is none)."""
    path = root / "config.json"
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        stored, reason = None, f"{_said(error)}"
    else:
        reason = f"it holds a {type(stored).__name__}, not a JSON object"
    if not isinstance(stored, dict):
        raise StoreDamaged(
            f"{path} is damaged ({reason}); it records the settings of the batch in {root}: restore it, or "
            "delete it and run the batch again with its original settings (finished items that recorded "
            "the same settings are kept, the others are computed again), or give a new output folder"
        )
    return stored


def _check_config(root: Path, stored: dict[str, Any] | None, config: dict[str, Any]) -> None:
    if stored is not None and stored != config:
        changed = sorted(k for k in {*stored, *config} if stored.get(k) != config.get(k))
        raise ConfigMismatch(
            f"{root} holds a batch with other settings ({', '.join(changed)} differ: stored "
            f"{ {k: stored.get(k) for k in changed} }, asked { {k: config.get(k) for k in changed} }). "
            "Resume it with the same settings, or give a new output folder."
        )


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file; a batch's output folder must be a folder (new or a batch's)")


class ResultStore:
    """A batch's folder: one Parquet table per finished item, one JSON per failed one (see the module).

    Args:
        root: the folder (created; a relative path is taken relative to the current folder, once).
        config: what the batch computes (JSON-serialisable). Stored on first use; a later run with another
            config raises :class:`ConfigMismatch` rather than mixing results (use another folder). Without
            it the stored ``config.json`` is used (none: ``{}``).

    Raises:
        ConfigMismatch: ``config`` differs from the stored one.
        StoreDamaged: the stored ``config.json`` cannot be read.
    """

    def __init__(self, root: str | os.PathLike, config: dict[str, Any] | None = None):
        self.root = Path(root).expanduser().absolute()
        _check_root(self.root)
        stored = _read_config(self.root)
        if config is not None:
            config = _as_json(config)
            _check_config(self.root, stored, config)
        # every check has passed: only now is anything written
        for sub in ("items", "failed", "files"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if config is not None and stored is None:
            atomic_write(self.root / "config.json", json.dumps(config, indent=2, sort_keys=True).encode())
        self._config = config if config is not None else (stored or {})
        self.config_hash = config_hash(self._config)

    @staticmethod
    def check(root: str | os.PathLike, config: dict[str, Any]) -> None:
        """Raise what :class:`ResultStore` ``(root, config)`` would raise, writing nothing."""
        root = Path(root).expanduser().absolute()
        _check_root(root)
        _check_config(root, _read_config(root), _as_json(config))

    @property
    def files(self) -> Path:
        """Where jobs write their side files (images, notebooks)."""
        return self.root / "files"

    def config(self) -> dict[str, Any]:
        """The batch's configuration (``{}`` for a batch stored without one)."""
        return dict(self._config)

    def verify(self, items: Iterable[Item] | None = None) -> tuple[set[str], dict[str, str]]:
        """Check every item file: ``(done, damaged)``, the ids of the good ones and, per bad one, why.

        A file is good when it reads back as Parquet and records its own id, the batch's configuration hash
        and (for the ``items`` given) the same arguments. Only its footer is read.
        """
        import pyarrow.parquet as pq

        wanted = {item.id: _as_json(item.args) for item in items} if items is not None else {}
        done, damaged = set(), {}
        for path in sorted((self.root / "items").glob("*.parquet")):
            item = path.stem
            try:
                metadata = pq.read_schema(path).metadata or {}
                record = json.loads(metadata.get(b"PANDAS_ATTRS", b"{}")).get("latentkit")
            except Exception as error:  # whatever breaks the read, the file is unusable
                damaged[item] = f"it does not read back ({_said(error)}); truncated?"
                continue
            if not isinstance(record, dict):
                damaged[item] = (
                    "it records no item id or settings (written by hand, or by an older latentkit)"
                )
            elif record.get("item") != item:
                damaged[item] = f"it holds the results of item {record.get('item')!r}"
            elif record.get("config") != self.config_hash:
                damaged[item] = (
                    f"it was computed with other settings (configuration hash {record.get('config')}, "
                    f"this batch's is {self.config_hash})"
                )
            elif item in wanted and record.get("args") != wanted[item]:
                stored = record.get("args") or {}
                changed = sorted(k for k in {*stored, *wanted[item]} if stored.get(k) != wanted[item].get(k))
                damaged[item] = f"it was computed for other arguments ({', '.join(changed)} differ)"
            else:
                done.add(item)
        return done, damaged

    def done(self) -> set[str]:
        """Ids of the finished items (whose files pass :meth:`verify`)."""
        return self.verify()[0]

    def damaged(self) -> dict[str, str]:
        """Item files that fail :meth:`verify`: id -> why (the next run computes them again)."""
        return self.verify()[1]

    def set_aside(self, item: str) -> Path:
        """Move a damaged item file to ``damaged/``, where it is kept (nothing is deleted); returns where."""
        source = self.root / "items" / f"{item}.parquet"
        target = self.root / "damaged" / f"{item}.{time.strftime('%Y%m%d-%H%M%S')}.{time.time_ns():x}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target

    def failed(self) -> dict[str, dict[str, Any]]:
        """Failed items that have not succeeded since: id -> record (error, traceback, worker, when).

        A record that cannot be read is reported as such (its item is tried again on the next run anyway).
        """
        done = self.done()
        records = {}
        for path in sorted((self.root / "failed").glob("*.json")):
            if path.stem in done:
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(record, dict) or not isinstance(record.get("error"), str):
                    raise ValueError("no 'error' in it")
            except (OSError, UnicodeDecodeError, ValueError) as error:
                record = {
                    "error": f"its failure record {path.relative_to(self.root)} is damaged "
                    f"({_said(error)}); run the batch again to retry the item",
                    "damaged": True,
                }
            records[path.stem] = record
        return records

    def record(self, outcome: Outcome) -> None:
        """Store an outcome: the table of a finished item, or the record of a failed one."""
        if outcome.error is None:
            table = outcome.table.copy()
            table.insert(0, "item", outcome.item)
            table.attrs = {
                "latentkit": {
                    "item": outcome.item,
                    "config": self.config_hash,
                    "args": _as_json(outcome.args),
                }
            }
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
        """Every finished item's table, concatenated (column ``item`` first); empty if none.

        Only the files that pass :meth:`verify` are read.
        """
        done = self.done()
        paths = [p for p in sorted((self.root / "items").glob("*.parquet")) if p.stem in done]
        if not paths:
            return pd.DataFrame(columns=["item"])
        tables = []
        for path in paths:
            try:
                tables.append(pd.read_parquet(path))
            except Exception as error:  # its footer was sound (verify), its data is not
                raise StoreDamaged(
                    f"{path} does not read back ({_said(error)}); move it out of items/ and "
                    "run the batch again to compute that item again"
                ) from None
        table = pd.concat(tables, ignore_index=True)
        table.attrs = {}
        return table


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

    An item whose stored file fails :meth:`ResultStore.verify` (truncated, another item's, another batch's)
    is computed again, with a :class:`StoreWarning`; the file is moved to ``damaged/``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if client is None and engine != "local" and not (engine == "dask" and scheduler):
        _check_workers(workers)
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"item ids must be unique; repeated: {repeated[:5]}")
    start = time.perf_counter()
    finished, damaged = store.verify(items)
    _set_aside(store, [(item, damaged[item]) for item in ids if item in damaged])
    summary = Summary(skipped=[i for i in ids if i in finished])
    pending = [item for item in items if item.id not in finished]
    with ExitStack() as stack:
        if pending and client is None and engine != "local":  # connect first: a bad address fails here
            client = stack.enter_context(dask_client(engine, workers=workers, scheduler=scheduler))
        bar = stack.enter_context(
            tqdm(total=len(pending), desc=description, disable=not progress or not pending)
        )

        def take(outcome: Outcome) -> None:
            store.record(outcome)
            if outcome.error is None:
                summary.done.append(outcome.item)
            else:
                summary.failed[outcome.item] = outcome.error
            bar.update(1)
            bar.set_postfix(failed=len(summary.failed))

        if not pending:
            pass
        elif client is not None:
            _run_on_dask(client, pending, job, store, take)
        else:
            for item in pending:
                take(run_item(job, item, store.files))
    summary.seconds = time.perf_counter() - start
    return summary


def _set_aside(store: ResultStore, damaged: list[tuple[str, str]], shown: int = 5) -> None:
    """Move the damaged files of items about to run to ``damaged/``, with a warning for each of the first
    ``shown`` and one for the rest."""
    for k, (item, reason) in enumerate(damaged):
        target = store.set_aside(item)
        if k < shown:
            warnings.warn(
                f"items/{item}.parquet is not a result of this batch ({reason}): it is computed again; the "
                f"file was moved to {target.relative_to(store.root)}",
                StoreWarning,
                stacklevel=3,
            )
    if len(damaged) > shown:
        warnings.warn(
            f"{len(damaged) - shown} more item files are not results of this batch (`latentkit status` "
            "before a run lists why); they are computed again, the files were moved to damaged/",
            StoreWarning,
            stacklevel=3,
        )


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

    if engine not in ("dask", "slurm"):
        raise ValueError(f"dask_client needs engine 'dask' or 'slurm', got {engine!r}")
    if not (engine == "dask" and scheduler):
        _check_workers(workers)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1 (threads per Dask worker), got {threads!r}")
    if engine == "dask" and scheduler:
        client, cluster = _connect(scheduler), None
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
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(workers: Any) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(
            f"workers must be a whole number >= 1 (Dask worker processes, or SLURM jobs), got {workers!r}"
        )


def _connect(scheduler: str, timeout: float | None = None):
    """A ``Client`` of the running scheduler at ``scheduler`` that has a worker, or a one-line
    ``ConnectionError`` within ``timeout`` seconds (default :data:`SCHEDULER_TIMEOUT`)."""
    from distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    example = "e.g. tcp://10.0.0.5:8786"
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(
            f"scheduler must be the address of a running Dask scheduler ({example}), got {scheduler!r}"
        )
    try:
        protocol, location = parse_address(scheduler)
        host, port = parse_host_port(location) if protocol in ("tcp", "tls") else (None, None)
    except ValueError as error:
        raise ValueError(f"scheduler {scheduler!r} is not a Dask address ({example}): {error}") from None
    hint = (
        "start one (`dask scheduler`, then `dask worker ADDRESS`), or leave out the scheduler to use a "
        "local cluster"
    )
    if host is not None:  # a plain TCP probe first: quick, and no half-built Client to clean up
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as error:
            reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
            raise ConnectionError(
                f"no Dask scheduler answers at {scheduler} ({reason}; waited at most {timeout:g} s); {hint}"
            ) from None
    try:
        client = Client(scheduler, timeout=timeout)
    except Exception as error:  # whatever answered is not a scheduler we can use
        raise ConnectionError(f"no Dask scheduler answers at {scheduler} ({_said(error)}); {hint}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # TimeoutError, or the scheduler went away
        client.close()
        raise ConnectionError(
            f"the Dask scheduler at {scheduler} has no worker (waited {timeout:g} s); "
            f"start some with `dask worker {scheduler}`"
        ) from None
    return client


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
