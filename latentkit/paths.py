"""Where latentkit finds its shipped weights and writes figures and caches.

The repository layout is ``data/`` (shipped weights), ``figures/`` (the committed figures, drawn by the
notebooks run with their default parameters) and ``build/`` (executed notebooks, other figures). Each
location can be moved with an environment variable, which is how a cluster job points many workers at one
shared copy of the weights.

Which run writes the committed ``figures/``: only ``make store`` (``python -m latentkit.notebooks``, which
executes a clone's notebooks in place with their defaults and sets ``LATENTKIT_FIGURES`` to it). A kernel
cannot tell the parameters papermill injected from the defaults, so every other run (papermill, nbval,
Jupyter, ``make run``) writes to ``build/figures/`` unless ``LATENTKIT_FIGURES`` says otherwise, and a
batch (``latentkit notebooks``) gives each run its own folder.
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


#: The figures committed with the repository; written only by ``make store`` (see the module).
COMMITTED_FIGURES = REPO_ROOT / "figures"

#: Where the figures of every other run go when ``LATENTKIT_FIGURES`` is unset (not committed).
SCRATCH_FIGURES = REPO_ROOT / "build" / "figures"


def figures_dir() -> Path:
    """Where :func:`latentkit.figures.save_figure` writes: ``LATENTKIT_FIGURES`` if set, else
    ``<repo>/build/figures`` (the committed ``<repo>/figures`` is written only by ``make store``, which sets
    ``LATENTKIT_FIGURES``; see the module)."""
    return _from_env("LATENTKIT_FIGURES", SCRATCH_FIGURES)


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


def save_weights(folder: str, filename: str, module, config: dict) -> Path:
    """Export a trained model to ``data/<folder>/``: ``<filename>`` (fp16 safetensors) and ``config.json``.

    Args:
        folder: the organism's folder under :func:`data_dir`, e.g. ``"autoencoder"``.
        filename: the weights file, e.g. ``"autoencoder.safetensors"``.
        module: the trained ``torch.nn.Module``, or its state dict (e.g.
            :func:`latentkit.models.codec.own_state`, which leaves a shared frozen part out).
        config: what its loader needs to rebuild it, plus provenance (steps, recipe, ...).

    Returns:
        The folder written.
    """
    import json

    from safetensors.torch import save_file

    out = data_dir() / folder
    out.mkdir(parents=True, exist_ok=True)
    state = module if isinstance(module, dict) else module.state_dict()
    state = {k: v.detach().half().contiguous() for k, v in state.items()}
    save_file(state, str(out / filename))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def load_weights(folder: str, filename: str, recipe: str) -> tuple[dict, dict]:
    """The state dict (fp32) and config of a shipped model written by :func:`save_weights`.

    Args:
        folder: the organism's folder under :func:`data_dir`.
        filename: the weights file in it.
        recipe: the recipe that rebuilds it, named in the error when the files are missing.
    """
    import json

    from safetensors.torch import load_file

    where = data_dir() / folder
    weights, config = where / filename, where / "config.json"
    if not weights.exists() or not config.exists():
        raise FileNotFoundError(
            f"no {folder} weights in {where} (expected {filename} and config.json). They ship with the "
            f"repository; to rebuild them run `python -m latentkit.recipes {recipe}`, or point "
            "LATENTKIT_DATA at a folder that has them."
        )
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    return state, json.loads(config.read_text())
