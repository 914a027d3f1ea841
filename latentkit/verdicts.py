"""The checked verdicts of a notebook, as a table: one way to record them, one way to compare runs.

Each checked cell of notebooks 01-06 (a cell whose source starts with ``# NBVAL_CHECK_OUTPUT``) prints
verdicts: the Fig. 4 marks of a space, a layer's role, "strict" or "broad", "reproduced" ... At its end
the cell hands the same verdicts, built from the variables it printed, to :func:`record_verdicts`, which
writes them to ``<results_dir>/<notebook>.csv`` (:func:`latentkit.paths.results_dir`: ``build/results/``
unless ``LATENTKIT_RESULTS`` says otherwise). One row per verdict:

- ``claim``: a stable key, ``"<what>:<subject>"``, e.g. ``"density:autoencoder bottleneck (3 neurons)"``
  or ``"C2:U-Net organism"``; the same in every run of the notebook at the same parameters;
- ``verdict``: the word the cell prints (``V``, ``~``, ``X``, ``strict``, ``undecided``, ``reproduced``,
  ``True``, a list of layers, ``"3 of 18"`` ...);
- ``value``, ``ci_low``, ``ci_high``: the number the verdict rests on and its interval (NaN where none);
- ``valid_share``: the share of valid images behind it, where that applies (else NaN);
- ``n``: the sample size it rests on (points, pairs, valid runs; empty where none).

Readouts that decide nothing (a mean alignment, a pixel difference) are not verdicts; they stay in the
notebook's own output.

A notebook's checked cells record into one file: the first call of a kernel (a fresh run) replaces the
file of an earlier run of the same notebook, and later calls of the same kernel add their rows (a claim
recorded again, by a cell run again, replaces its row). A file that holds another notebook's verdicts,
or is not a verdict table at all, is never overwritten.

:func:`agreement` compares the tables of several runs (``benchmarks/bench_verdict_agreement.py`` runs
notebooks 01-06 for seeds 0, 1 and 2 and prints it).

Example (notebook 01's checked cell, shortened)::

    record_verdicts(
        "01_autoencoder_bottleneck",
        [Verdict(f"{r.property}:{r.space}", r.verdict, r.value, *r.ci, n=n_samples) for r in results],
    )
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from latentkit.paths import results_dir

#: The columns of a verdict table, in order (``notebook`` first: it says whose file it is).
COLUMNS = ("notebook", "claim", "verdict", "value", "ci_low", "ci_high", "valid_share", "n")

_NUMBERS = ("value", "ci_low", "ci_high", "valid_share")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# What this process (one notebook's kernel) has recorded, per file: a fresh kernel starts a fresh file.
_WRITTEN: dict[Path, pd.DataFrame] = {}


def _number(claim: str, name: str, x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"verdict {claim!r}: {name} must be a number or NaN, got {x!r}")
    return float(x)


def _count(claim: str, x: Any) -> int | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and float(x).is_integer() and x >= 0:
        return int(x)
    raise ValueError(f"verdict {claim!r}: n must be a whole number >= 0 or None, got {x!r}")


def _missing(x: Any) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def _text(claim: str, name: str, x: Any) -> str:
    if not isinstance(x, str) or not x.strip() or "\n" in x or "\r" in x:
        hint = " (write the word the cell prints, e.g. str(flag))" if name == "verdict" else ""
        raise ValueError(f"verdict {claim!r}: {name} must be a non-empty one-line str{hint}, got {x!r}")
    return x


@dataclass(frozen=True)
class Verdict:
    """One checked verdict of a notebook (see the module for what each field holds).

    Args:
        claim: stable key, ``"<what>:<subject>"``, e.g. ``"C3:GAN"``.
        verdict: the word the notebook prints (a str: ``str(flag)`` for a printed bool).
        value, ci_low, ci_high: the number behind the verdict and its interval; NaN (or None) where none.
        valid_share: share of valid images behind it, in [0, 1]; NaN where it does not apply.
        n: sample size it rests on; None where none.
    """

    claim: str
    verdict: str
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    valid_share: float = math.nan
    n: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.claim, str) or not self.claim.strip() or "\n" in self.claim:
            raise ValueError(f"a verdict's claim must be a non-empty one-line str, got {self.claim!r}")
        _text(self.claim, "verdict", self.verdict)
        for name in _NUMBERS:
            object.__setattr__(self, name, _number(self.claim, name, getattr(self, name)))
        object.__setattr__(self, "n", _count(self.claim, self.n))
        if not (math.isnan(self.valid_share) or 0 <= self.valid_share <= 1):
            raise ValueError(
                f"verdict {self.claim!r}: valid_share must lie in [0, 1] or be NaN, got {self.valid_share!r}"
            )
        if self.ci_low > self.ci_high:  # False when either is NaN
            raise ValueError(f"verdict {self.claim!r}: ci_low {self.ci_low!r} > ci_high {self.ci_high!r}")


def _check_notebook(notebook: Any) -> str:
    if not isinstance(notebook, str) or not _NAME.fullmatch(notebook):
        raise ValueError(
            f"notebook must be the notebook's file name without folder or suffix, e.g. "
            f"'01_autoencoder_bottleneck', got {notebook!r}"
        )
    if notebook.endswith((".ipynb", ".csv")):
        raise ValueError(
            f"notebook must be given without its suffix: {Path(notebook).stem!r}, not {notebook!r}"
        )
    return notebook


def _as_verdicts(notebook: str, rows: Any) -> list[Verdict]:
    """``rows`` (a sequence of :class:`Verdict` or a DataFrame with their columns) as Verdicts."""
    if isinstance(rows, pd.DataFrame):
        known = [f.name for f in fields(Verdict)]
        unknown = [c for c in rows.columns if c not in (*known, "notebook")]
        if unknown:
            close = {c: difflib.get_close_matches(str(c), known, n=1) for c in unknown}
            hints = ", ".join(
                f"{c!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for c, m in close.items()
            )
            raise ValueError(f"rows: unknown columns {hints}; a verdict table has {list(known)}")
        missing = [c for c in ("claim", "verdict") if c not in rows.columns]
        if missing:
            raise ValueError(f"rows: the columns {missing} are missing (a verdict table has {list(known)})")
        if "notebook" in rows.columns and set(rows["notebook"]) - {notebook}:
            others = sorted(set(rows["notebook"]) - {notebook})
            raise ValueError(f"rows hold verdicts of the notebooks {others}, not only of {notebook!r}")
        records = rows.drop(columns=["notebook"], errors="ignore").to_dict("records")
        numeric = {*_NUMBERS, "n"}  # a missing number may come as NaN, None or pd.NA (nullable columns)
        return [
            Verdict(**{k: None if k in numeric and _missing(v) else v for k, v in record.items()})
            for record in records
        ]
    if isinstance(rows, str | bytes) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a list of Verdict or a DataFrame, got {type(rows).__name__}")
    wrong = [type(r).__name__ for r in rows if not isinstance(r, Verdict)]
    if wrong:
        raise TypeError(f"rows must be Verdict objects, got {', '.join(sorted(set(wrong)))}")
    return list(rows)


def _frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with the :data:`COLUMNS`) as a verdict table with its column types."""
    table = pd.DataFrame(list(records), columns=list(COLUMNS))
    return table.astype({"n": "Int64", **dict.fromkeys(_NUMBERS, float)})


def _records(notebook: str, verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [{"notebook": notebook, **{f.name: getattr(v, f.name) for f in fields(Verdict)}} for v in verdicts]


def verdicts_path(notebook: str, folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/<notebook>.csv``: the file :func:`record_verdicts` writes (default folder:
    :func:`latentkit.paths.results_dir`)."""
    return Path(folder if folder is not None else results_dir()) / f"{_check_notebook(notebook)}.csv"


def read_verdicts(path: str | os.PathLike) -> pd.DataFrame:
    """A verdict table written by :func:`record_verdicts`, with its words kept as written.

    (pandas alone would read a verdict ``"None"`` or ``"n/a"`` as missing and ``"True"`` as a bool.)
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame()
    if list(raw.columns) != list(COLUMNS):
        raise ValueError(
            f"{path} is not a latentkit verdict table (columns {list(raw.columns)}, expected {list(COLUMNS)})"
        )
    table = raw.copy()
    for name in (*_NUMBERS, "n"):
        try:
            table[name] = pd.to_numeric(raw[name].replace("", math.nan), errors="raise")
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a latentkit verdict table (column {name}: {error})") from None
    return _frame(table.to_dict("records"))


def record_verdicts(
    notebook: str, rows: Sequence[Verdict] | pd.DataFrame, folder: str | os.PathLike | None = None
) -> None:
    """Write the verdicts a checked cell printed to ``<folder>/<notebook>.csv``; returns nothing (a cell
    that ends in this call shows nothing more).

    The first call of a process replaces the file of an earlier run of the same notebook; later calls add
    their rows, and a claim recorded again replaces its row. Notebooks 01-06 call it at the end of each
    checked cell.

    Args:
        notebook: the notebook's file name without suffix, e.g. ``"04_layer_injection"``.
        rows: a list of :class:`Verdict` (empty: nothing to record, the file still says this run), or a
            DataFrame with their columns (``claim`` and ``verdict`` required; a ``notebook`` column must
            name ``notebook``).
        folder: where to write; :func:`latentkit.paths.results_dir` if None.

    Raises:
        ValueError, TypeError: a wrong notebook name, row or field (one line, naming the claim); a claim
            twice in ``rows``; a file at the path that holds another notebook's verdicts or is not a
            verdict table (it is left as it is).
    """
    notebook = _check_notebook(notebook)
    verdicts = _as_verdicts(notebook, rows)
    twice = sorted(c for c, times in Counter(v.claim for v in verdicts).items() if times > 1)
    if twice:
        raise ValueError(f"rows name the claims {twice} more than once; each claim is one row")
    path = verdicts_path(notebook, folder)
    if path.exists():
        try:
            there = read_verdicts(path)
        except ValueError as error:
            raise ValueError(
                f"{error}: not overwriting it; move it, or set LATENTKIT_RESULTS elsewhere"
            ) from None
        others = sorted(set(there["notebook"]) - {notebook})
        if others:
            raise ValueError(
                f"{path} holds the verdicts of {', '.join(others)}, not of {notebook!r}: not overwriting it "
                "(two notebooks recording under one name?)"
            )
    new = _records(notebook, verdicts)
    key = path.resolve()
    if key in _WRITTEN:  # the same run: keep what its other cells recorded, replace what is recorded again
        by_claim = {row["claim"]: row for row in new}
        new = [by_claim.pop(row["claim"], row) for row in _WRITTEN[key].to_dict("records")]
        new += by_claim.values()
    table = _frame(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    table.to_csv(partial, index=False, float_format="%.6g")
    os.replace(partial, path)
    _WRITTEN[key] = table


#: Verdicts that decline to decide (an interval across a threshold; too few valid images): compatible with
#: any reading in :func:`agreement`.
UNDECIDED = ("undecided", "undetermined")
_BANDS = ("X", "~", "V")  # Fig. 4's marks, low to high


def _readings(verdict: str) -> set[str] | None:
    """The decided readings a verdict allows: None for any (:data:`UNDECIDED`); the bands a Fig. 4 mark
    spans (``"~/V"`` allows ``~`` and ``V``, ``"X/V"`` all three); otherwise only itself."""
    if verdict in UNDECIDED:
        return None
    ends = verdict.split("/")
    if len(ends) in (1, 2) and all(e in _BANDS for e in ends):
        at = sorted(_BANDS.index(e) for e in ends)
        return set(_BANDS[at[0] : at[-1] + 1])
    return {verdict}


def agreement(tables_by_seed: Mapping[Any, pd.DataFrame]) -> pd.DataFrame:
    """Whether each checked verdict is the same in every run: one row per (notebook, claim).

    Args:
        tables_by_seed: seed (or any run label) -> the verdicts of that run, every notebook together
            (columns ``notebook``, ``claim``, ``verdict``; e.g. :func:`read_verdicts` of each file,
            concatenated).

    Returns:
        Columns ``notebook``, ``claim``, ``seed <s>`` per seed (the verdict; NA where that run did not record
        the claim), ``agree`` (True when every run recorded the claim with the same verdict) and
        ``compatible`` (True when every run recorded it and one decided reading fits them all: runs that
        differ only in how far they decide, as ``~/V`` and ``V``, or ``undecided`` and ``reproduced``; False
        when two runs decide differently, as ``~`` and ``V``). Rows in the order in which the runs first
        recorded them.
    """
    if not tables_by_seed:
        raise ValueError("tables_by_seed is empty: give the verdict tables of at least one run")
    verdicts: dict[str, dict[tuple[str, str], str]] = {}
    order: dict[tuple[str, str], None] = {}
    for seed, table in tables_by_seed.items():
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"the table of seed {seed!r} must be a DataFrame, got {type(table).__name__}")
        missing = [c for c in ("notebook", "claim", "verdict") if c not in table.columns]
        if missing:
            raise ValueError(f"the table of seed {seed!r} lacks the columns {missing}")
        keys = list(zip(table["notebook"], table["claim"], strict=True))
        twice = sorted(k for k, times in Counter(keys).items() if times > 1)
        if twice:
            raise ValueError(f"the table of seed {seed!r} has the claims {twice} more than once")
        verdicts[f"seed {seed}"] = dict(zip(keys, table["verdict"], strict=True))
        order.update(dict.fromkeys(keys))
    rows = []
    for key in order:
        seen = {column: by_key.get(key) for column, by_key in verdicts.items()}
        seen = {column: None if pd.isna(v) else v for column, v in seen.items()}
        values = list(seen.values())
        recorded = all(v is not None for v in values)
        agree = recorded and len(set(values)) == 1
        allowed = [r for r in map(_readings, values) if r is not None] if recorded else []
        compatible = recorded and (not allowed or bool(set.intersection(*allowed)))
        rows.append({"notebook": key[0], "claim": key[1], **seen, "agree": agree, "compatible": compatible})
    return pd.DataFrame(rows, columns=["notebook", "claim", *verdicts, "agree", "compatible"])


__all__ = [
    "COLUMNS",
    "UNDECIDED",
    "Verdict",
    "agreement",
    "read_verdicts",
    "record_verdicts",
    "verdicts_path",
]
