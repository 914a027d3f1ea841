"""Reuse a measurement another notebook already made from the same inputs.

Several notebooks repeat their predecessors' work on purpose: notebook 03 sets the strict-sense spaces of
notebooks 01 and 02 beside the diffusion candidates, 05 sweeps the U-Net organism as 04 does, 06 sweeps
both organisms again and measures the four properties of 01 and 02 once more for its claims table. Run in
order, the later notebook finds the result on disk and loads it instead of computing it again; run alone,
it computes it. Either way the numbers are the same: a result is reused only when everything it was
computed from is the same:

* the inputs, fingerprinted by value (:func:`fingerprint`): a model by its weights and buffers, a
  pipeline by its components, a space by its kind, name, distribution and the models behind it, numbers,
  strings, arrays and containers by what they hold;
* the code: a hash of every source file of the latentkit package (:func:`code_version`), so an edit to
  any of it computes everything afresh.

An input that cannot be fingerprinted (a space built by hand around a function, a model on the meta
device) means no reuse: the result is computed and not stored.

Where: :func:`store_dir`, ``LATENTKIT_REUSE_DIR`` or ``<cache>/reuse`` (``LATENTKIT_CACHE``). Set
``LATENTKIT_REUSE=0`` to compute everything every time. ``make store`` (:mod:`latentkit.notebooks`) and
CI each give a run of notebooks a fresh folder, so the stored notebooks show what one run in order
computes. The files are pickles: load only folders you wrote yourself.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from latentkit.paths import cache_dir

T = TypeVar("T")

#: ``LATENTKIT_REUSE=0`` turns reuse off (everything is computed, nothing stored).
REUSE_ENV = "LATENTKIT_REUSE"
#: Where reusable results live (default ``<cache>/reuse``).
REUSE_DIR_ENV = "LATENTKIT_REUSE_DIR"


class Unfingerprintable(TypeError):
    """An input whose value cannot be hashed: the result is computed and not stored."""


def store_dir() -> Path:
    """The folder of reusable results: ``LATENTKIT_REUSE_DIR``, else ``<cache>/reuse``."""
    value = os.environ.get(REUSE_DIR_ENV)
    return Path(value).expanduser() if value else cache_dir() / "reuse"


def enabled() -> bool:
    """False when ``LATENTKIT_REUSE`` is ``0`` (or ``false``, ``no``, ``off``)."""
    return os.environ.get(REUSE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


@cache
def code_version() -> str:
    """A hash of every ``.py`` file of the latentkit package (paths and contents), in path order."""
    root = Path(__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _update(h, value: Any) -> None:
    """Feed ``value`` into the hash ``h``, tagged with its kind so that 1, 1.0 and "1" differ."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, torch.Tensor):
        if value.is_meta:
            raise Unfingerprintable("a tensor on the meta device has no values")
        data = value.detach().cpu().contiguous()
        h.update(f"tensor:{data.dtype}:{tuple(data.shape)}:{value.device.type};".encode())
        h.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    elif isinstance(value, np.ndarray):
        h.update(f"array:{value.dtype}:{value.shape};".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        h.update(f"map:{len(value)};".encode())
        for key in sorted(value, key=repr):
            _update(h, key)
            _update(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(f"seq:{len(value)};".encode())
        for item in value:
            _update(h, item)
    elif isinstance(value, torch.nn.Module):
        h.update(f"module:{type(value).__qualname__};".encode())
        _update(h, dict(value.state_dict()))
        _update(h, _settings(getattr(value, "config", None)))  # e.g. attention heads: not in the shapes
    elif hasattr(value, "fingerprint_parts"):  # spaces, probes: what they are made of
        h.update(f"{type(value).__qualname__};".encode())
        parts = value.fingerprint_parts()
        if parts is None:
            raise Unfingerprintable(f"{type(value).__name__} {getattr(value, 'name', '')!r} names no source")
        _update(h, parts)
    elif hasattr(value, "components") and isinstance(value.components, Mapping):  # a diffusers pipeline
        h.update(f"pipeline:{type(value).__qualname__};".encode())
        _update(h, {k: _component(v) for k, v in value.components.items()})
    elif hasattr(value, "config") and isinstance(value.config, Mapping):  # a scheduler: its settings
        h.update(f"configured:{type(value).__qualname__};".encode())
        _update(h, _settings(value.config))
    else:
        try:
            payload = pickle.dumps(value, protocol=4)
        except Exception as error:
            raise Unfingerprintable(f"cannot fingerprint a {type(value).__name__}: {error}") from None
        h.update(f"pickle:{type(value).__qualname__};".encode() + payload)


def _settings(config: Any) -> dict:
    """A diffusers or transformers config as a dict, without its bookkeeping (``_name_or_path``, versions)."""
    if callable(config) and not hasattr(config, "to_dict"):  # latentkit's models: a config() method
        config = config()
    if isinstance(config, Mapping):
        as_dict = dict(config)
    elif hasattr(config, "to_dict"):
        as_dict = config.to_dict()
    else:
        return {}
    return {k: v for k, v in as_dict.items() if not k.startswith("_") and k != "transformers_version"}


def _component(value: Any) -> Any:
    """A pipeline component as something :func:`_update` hashes (tokenizers: their class and vocabulary)."""
    if value is None or isinstance(value, torch.nn.Module) or hasattr(value, "config"):
        return value
    vocab = getattr(value, "get_vocab", None)
    return {"class": type(value).__qualname__, "vocab": vocab() if callable(vocab) else repr(value)}


def fingerprint(*values: Any, **named: Any) -> str:
    """A hex digest of the values (see the module for what counts); raises :class:`Unfingerprintable`."""
    h = hashlib.blake2b(digest_size=20)
    _update(h, list(values))
    _update(h, named)
    return h.hexdigest()


def reused(label: str, compute: Callable[[], T], /, **inputs: Any) -> T:
    """``compute()``, or the result a call with the same ``label``, inputs and code stored before.

    Args:
        label: what is computed (part of the key and of the file name), e.g. ``"measure_all"``.
        compute: computes the result from exactly ``inputs`` (nothing else may change it).
        **inputs: everything the result depends on, fingerprinted by value.
    """
    if not enabled():
        return compute()
    try:
        key = fingerprint(label=label, code=code_version(), **inputs)
    except Unfingerprintable:
        return compute()
    path = store_dir() / f"{label}-{key}.pkl"
    if path.exists():
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except Exception:  # a truncated or stale file: compute it again and overwrite it
            pass
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{label}-", delete=False) as f:
        pickle.dump(result, f, protocol=4)
    os.replace(f.name, path)  # atomic: a reader never sees half a file
    return result


__all__ = ["Unfingerprintable", "code_version", "enabled", "fingerprint", "reused", "store_dir"]
