"""Where latentkit finds its shipped weights and writes figures and caches.

The repository layout is ``data/`` (shipped weights), ``figures/`` (figures the notebooks draw) and
``build/`` (executed notebooks). Each location can be moved with an environment variable, which is how
a cluster job points many workers at one shared copy of the weights.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _from_env(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def data_dir() -> Path:
    """Shipped weights (``LATENTKIT_DATA`` overrides ``<repo>/data``)."""
    return _from_env("LATENTKIT_DATA", REPO_ROOT / "data")


def figures_dir() -> Path:
    """Figures written by the notebooks (``LATENTKIT_FIGURES`` overrides ``<repo>/figures``)."""
    return _from_env("LATENTKIT_FIGURES", REPO_ROOT / "figures")


def cache_dir() -> Path:
    """Training checkpoints that recipes resume from (``LATENTKIT_CACHE``, default ``~/.cache/latentkit``).

    Checkpoints live outside the repository on purpose: they are large, change often, and must not
    end up in git history. Only the final fp16 weights are exported to :func:`data_dir`.
    """
    return _from_env("LATENTKIT_CACHE", Path.home() / ".cache" / "latentkit")


def shipped(*parts: str) -> Path:
    """Path of a shipped artefact under :func:`data_dir`, with a helpful error when it is missing."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing. It is shipped with the repository (data/); if you deleted it or "
            "point LATENTKIT_DATA elsewhere, retrain it with `make weights`."
        )
    return path
