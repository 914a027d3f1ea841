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
