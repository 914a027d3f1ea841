"""Execute the notebooks: in place with their defaults (what gets committed), or as a papermill batch.

``python -m latentkit.notebooks notebooks/00_the_shapes_world.ipynb`` re-executes a notebook with its
default parameters and stores the outputs in the file, which is how a changed notebook is committed
(nbval then compares the cells marked ``# NBVAL_CHECK_OUTPUT`` against these stored outputs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def execute_in_place(path: str | Path, timeout: int = 1800) -> float:
    """Run every cell of the notebook at ``path`` (cwd: its folder) and save the outputs; returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Execute notebooks in place with their default parameters.")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.paths:
        print(f"{path}: executed in {execute_in_place(path):.1f} s", flush=True)


if __name__ == "__main__":
    main()
