"""Are the checked verdicts of notebooks 01-06 the same for seeds 0, 1 and 2, and how long do they take?

    python benchmarks/bench_verdict_agreement.py [NOTEBOOK ...] [--seeds 0 1 2] [--out DIR]
    python benchmarks/bench_verdict_agreement.py --full [NOTEBOOK ...] [--copy-to DIR]

Every checked cell of notebooks 01-06 records the verdicts it prints (``latentkit.verdicts``). This
benchmark runs each notebook (all of 01-06, or those named by number, name or path) with papermill at its
default parameters once per seed, through the runner of ``latentkit notebooks``
(:class:`latentkit.notebooks.NotebookJob`), each run in a folder of its own with ``LATENTKIT_RESULTS``
and ``LATENTKIT_FIGURES`` pointed into it, so nothing under the repository is written. Then it prints one
table: per notebook its run time for each seed, then each checked verdict, the verdict of every seed and
whether they agree; and a last line

    N of M checked verdicts agree across seeds 0, 1, 2 (C more differ only in how far they decide,
    D decide differently); notebooks took X s per seed (target <= 900 s)

where X is the slowest seed's total over the notebooks run (the target, 15 minutes, is for all notebooks
together on the project's 2-core machine; the issue asks for every verdict to agree). A verdict missing in
one seed's table counts as disagreeing. The comparison is :func:`latentkit.verdicts.agreement`; a
verdict that differs only in how far it decides (``~/V`` at one seed, ``V`` at another: one interval
straddles the threshold the other clears) is "no, compatible", one that decides differently (``~`` and
``V``) is "no". Only "yes" meets the target; the split says which misses are a near-threshold value
and which would be a contradiction.

``--full`` runs each notebook once with the larger settings of its ``metadata["latentkit"]["full"]``
(``latentkit notebooks --full`` applies the same), and copies the verdict tables to ``results/full/``
(``--copy-to`` to put them elsewhere) with ``runs.csv`` beside them: notebook, parameters and seconds of
each run. Those tables are committed, and the notebooks' narration cites them.

The runs are sequential (their times are the point). The run folders are removed at the end unless
``--out`` names one, or a run failed (the executed notebooks, with the error in them, are kept then);
the exit status is 1 when a notebook failed or recorded no verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TARGET_SECONDS = 900  # all notebooks together, per seed (issue #14)
DEFAULT_NOTEBOOKS = ["01", "02", "03", "04", "05", "06"]


def run_one(item, root: Path, timeout: int) -> tuple[pd.DataFrame | None, float, str | None, Path]:
    """Run one notebook item into ``root``: (its verdicts or None, seconds, error or None, results folder)."""
    from latentkit.notebooks import NotebookFailed, NotebookJob
    from latentkit.verdicts import read_verdicts

    results = root / "runs" / item.id / "results"  # where NotebookJob points LATENTKIT_RESULTS
    start = time.perf_counter()
    try:
        NotebookJob(timeout=timeout, html=False)(item, root)
    except NotebookFailed as error:
        return None, time.perf_counter() - start, str(error), results
    seconds = time.perf_counter() - start
    notebook = Path(item.args["notebook"])
    files = sorted(results.glob("*.csv"))
    if not files:
        return None, seconds, f"{notebook.name} recorded no verdicts (no record_verdicts call?)", results
    if [f.stem for f in files] != [notebook.stem]:
        names = ", ".join(f.stem for f in files)
        error = f"{notebook.name} recorded verdicts as {names}: record_verdicts must name the notebook itself"
        return None, seconds, error, results
    return read_verdicts(files[0]), seconds, None, results


def agreement_table(
    agreed: pd.DataFrame, seconds: dict[int, dict[str, float]], failed: set[tuple[int, str]]
) -> pd.DataFrame:
    """The printed table: per notebook a row of its run time per seed, then its verdicts (``-`` where a
    seed's run did not record one) and whether they agree.

    Args:
        agreed: :func:`latentkit.verdicts.agreement` of the seeds' tables.
        seconds: seed -> notebook -> seconds its run took.
        failed: the (seed, notebook) runs that failed or recorded nothing.
    """
    seeds = list(seconds)
    columns = [f"seed {s}" for s in seeds]
    rows = []
    for notebook in dict.fromkeys([*(nb for by in seconds.values() for nb in by), *agreed["notebook"]]):
        times = {}
        for s in seeds:
            took = seconds[s].get(notebook)
            times[f"seed {s}"] = "-" if took is None else f"{took:.0f} s"
            times[f"seed {s}"] += " (failed)" if (s, notebook) in failed else ""
        rows.append({"notebook": notebook, "claim": "(run time)", **times, "agree": ""})
        for record in agreed[agreed["notebook"] == notebook].to_dict("records"):
            verdicts = {c: "-" if pd.isna(record[c]) else record[c] for c in columns}
            agree = "yes" if record["agree"] else "no, compatible" if record["compatible"] else "no"
            rows.append({"notebook": "", "claim": record["claim"], **verdicts, "agree": agree})
    return pd.DataFrame(rows, columns=["notebook", "claim", *columns, "agree"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", help="numbers, names or paths (default: 01 to 06)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to compare (0 1 2)")
    parser.add_argument("--full", action="store_true", help="one run per notebook with its full settings")
    parser.add_argument(
        "--copy-to", type=Path, default=None, help="where --full puts the tables (results/full)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the runs in this folder")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (3600)")
    args = parser.parse_args(argv)

    from latentkit.notebooks import find_notebooks, notebook_items
    from latentkit.paths import COMMITTED_RESULTS
    from latentkit.verdicts import agreement

    if len(set(args.seeds)) != len(args.seeds) or any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    paths = find_notebooks(args.notebooks or DEFAULT_NOTEBOOKS)
    root = Path(args.out).absolute() if args.out else Path(tempfile.mkdtemp(prefix="latentkit-verdicts-"))
    failures = []
    # The notebooks reuse each other's measurements (latentkit.reuse) within this run only: a fresh store,
    # so that the times are those of one run in order, not of what an earlier run left in the cache.
    os.environ.setdefault("LATENTKIT_REUSE_DIR", str(root / "reuse"))

    if args.full:
        items, _ = notebook_items(paths, full=True)
        copy_to = (args.copy_to or COMMITTED_RESULTS / "full").absolute()
        copy_to.mkdir(parents=True, exist_ok=True)
        tables, runs = {}, []
        for item in items:
            name = Path(item.args["notebook"]).stem
            parameters = json.dumps(item.args["parameters"], sort_keys=True)
            print(f"==> {name} (full: {parameters})", flush=True)
            table, seconds, error, results = run_one(item, root, args.timeout)
            if error:
                failures.append(error)
                continue
            tables[name] = table
            for csv in results.glob("*.csv"):
                shutil.copyfile(csv, copy_to / csv.name)
            runs.append({"notebook": name, "parameters": parameters, "seconds": round(seconds, 1)})
        if runs:  # keep the rows of notebooks not run this time
            listed = copy_to / "runs.csv"
            before = pd.read_csv(listed, dtype=str, keep_default_na=False) if listed.exists() else None
            now = pd.DataFrame(runs)
            if before is not None:
                now = pd.concat([before[~before["notebook"].isin(now["notebook"])], now], ignore_index=True)
            now.sort_values("notebook").to_csv(listed, index=False)
        with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 80):
            for name, table in tables.items():
                print(f"\n{name}:\n{table.drop(columns='notebook').to_string(index=False)}")
        print(f"\n{len(tables)} of {len(items)} notebooks' full verdict tables copied to {copy_to}")
    else:
        by_seed, seconds, failed = {}, {}, set()
        for seed in args.seeds:
            items, unused = notebook_items(paths, {"seed": [seed]})
            unseeded = [name for name, left in unused.items() if "seed" in left]
            if unseeded:
                parser.error(f"{', '.join(unseeded)} declare no seed parameter: the seeds would not differ")
            tables, seconds[seed] = [], {}
            for item in items:
                name = Path(item.args["notebook"]).stem
                print(f"==> {name}, seed {seed}", flush=True)
                table, took, error, _ = run_one(item, root, args.timeout)
                seconds[seed][name] = took
                if error:
                    failures.append(f"seed {seed}: {error}")
                    failed.add((seed, name))
                if table is not None:
                    tables.append(table)
            by_seed[seed] = (
                pd.concat(tables, ignore_index=True)
                if tables
                else pd.DataFrame(columns=["notebook", "claim", "verdict"])
            )
        agreed = agreement(by_seed)
        shown = agreement_table(agreed, seconds, failed)
        with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 70):
            print()
            print(shown.to_string(index=False))
        per_seed = max(sum(by.values()) for by in seconds.values())
        compatible = int((agreed["compatible"] & ~agreed["agree"]).sum())
        print(
            f"{int(agreed['agree'].sum())} of {len(agreed)} checked verdicts agree across seeds "
            f"{', '.join(map(str, args.seeds))} ({compatible} more differ only in how far they decide, "
            f"{int((~agreed['compatible']).sum())} decide differently); notebooks took {per_seed:.0f} s "
            f"per seed (target <= {TARGET_SECONDS} s)"
        )

    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if failures or args.out:
        print(f"runs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
