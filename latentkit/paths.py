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

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


#: The verdict tables committed with the repository (``results/full/``: the notebooks' ``full`` runs);
#: written only when ``LATENTKIT_RESULTS`` points here, or by
#: ``benchmarks/bench_verdict_agreement.py --full``.
COMMITTED_RESULTS = REPO_ROOT / "results"

#: Where every other run's verdict tables go when ``LATENTKIT_RESULTS`` is unset (not committed).
SCRATCH_RESULTS = REPO_ROOT / "build" / "results"


def results_dir() -> Path:
    """Where :func:`latentkit.verdicts.record_verdicts` writes: ``LATENTKIT_RESULTS`` if set, else
    ``<repo>/build/results`` (the committed ``<repo>/results`` only when ``LATENTKIT_RESULTS`` names it,
    as for :func:`figures_dir`)."""
    return _from_env("LATENTKIT_RESULTS", SCRATCH_RESULTS)


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
    from safetensors.torch import load_file

    where = data_dir() / folder
    weights, config = where / filename, where / "config.json"
    if not weights.exists() or not config.exists():
        raise FileNotFoundError(
            f"no {folder} weights in {where} (expected {filename} and config.json). They ship with the "
            f"repository; to rebuild them run `python -m latentkit.recipes {recipe}`, or point "
            "LATENTKIT_DATA at a folder that has them."
        )
    restore = (
        f"restore it with `git checkout data/`, or retrain it with `python -m latentkit.recipes {recipe}` "
        "(`make weights` retrains every organism)"
    )
    with reading_weights(weights, restore):
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    try:
        settings = json.loads(config.read_text())
    except ValueError as error:  # UnicodeDecodeError included
        raise DamagedWeights(f"{config} is damaged (not valid JSON: {error}); {restore}") from error
    return state, settings


# ---------------------------------------------------------------------------------------------------------
# Damaged weights: a file that is there but does not read back (a copy cut short, a file overwritten)


class DamagedWeights(OSError):
    """A weights file that exists but does not read back (truncated, or overwritten by something else)."""


#: How to get the shipped weights back, for the errors about a damaged or missing file under ``data/``.
RESTORE_SHIPPED = "restore it with `git checkout data/`, or retrain it with `make weights`"


def restore_hint(where: str | os.PathLike) -> str:
    """How to get back the shipped weights at ``where``, or those a copy of them at ``where`` came from."""
    try:
        shipped_here = Path(where).resolve().is_relative_to(data_dir().resolve())
    except OSError:
        shipped_here = False
    if shipped_here:
        return RESTORE_SHIPPED
    return (
        f"copy it again from the shipped weights in {data_dir()} (`git checkout data/` restores those, "
        "`make weights` retrains them)"
    )


def safetensors_damage(path: str | os.PathLike) -> str | None:
    """Why the safetensors file ``path`` cannot be read, or ``None`` when its header and size agree.

    Reads only the header (8 bytes of length, then JSON), so it is cheap on multi-gigabyte files. The checks
    are those ``safetensors`` makes before it reads a tensor: the header fits in the file, parses, and the
    tensors' byte ranges end exactly where the file does.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"truncated: {size} bytes, too few for a safetensors header"
            n = int.from_bytes(head, "little")
            if 8 + n > size:
                return f"truncated or overwritten: {size:,} bytes, its header alone claims {8 + n:,}"
            header = json.loads(f.read(n))
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return "its header is not valid JSON (overwritten?)"
    try:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        end = 8 + n + int(end)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return "its header does not describe safetensors tensors (overwritten?)"
    if size < end:
        return f"truncated: {size:,} of {end:,} bytes"
    if size > end:
        return f"{size - end:,} bytes longer than its header says (overwritten?)"
    return None


def damaged_files(where: str | os.PathLike) -> dict[Path, str]:
    """The damaged safetensors files at ``where`` (a file, or a folder searched recursively), with why."""
    where = Path(where)
    if where.is_dir():
        files = sorted(where.rglob("*.safetensors"))
    else:
        files = [where] if where.is_file() else []
    return {f: why for f in files if (why := safetensors_damage(f)) is not None}


@contextmanager
def reading_weights(where: str | os.PathLike, restore: str) -> Iterator[None]:
    """Load weights from ``where`` (a file or a folder) inside this block; an error a damaged file caused
    becomes :class:`DamagedWeights`, naming the file and saying how to get it back (``restore``).

    Safetensors, diffusers and transformers report a truncated file without naming it ("incomplete
    metadata") or as a generic load failure; the block's error is kept as the cause. Errors of other
    origins (no damaged file found) pass unchanged.
    """
    try:
        yield
    except DamagedWeights:
        raise
    except Exception as error:
        damaged = damaged_files(where)
        if not damaged:
            raise
        files = ", ".join(f"{path} ({why})" for path, why in damaged.items())
        if len(damaged) == 1:
            [(path, why)] = damaged.items()
            subject = f"{path} is damaged ({why})"
        else:
            subject = f"{len(damaged)} weights files are damaged: {files}"
        raise DamagedWeights(f"{subject}; {restore}") from error
