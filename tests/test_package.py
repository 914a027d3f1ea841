"""The package's shape: every submodule reachable lazily, and hooks registered in one place only."""

from __future__ import annotations

import ast
from pathlib import Path

import latentkit

PACKAGE = Path(latentkit.__file__).parent


def test_every_submodule_is_listed_for_lazy_import():
    files = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert latentkit._SUBMODULES == files | folders


def test_only_layers_registers_torch_hooks():
    """notebook -> experiment module -> latentkit.run -> latentkit.layers: no other module hooks a model."""
    registering = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("register_forward"):
                registering.add(str(path.relative_to(PACKAGE)))
    assert registering == {"layers.py"}


def test_cpu_threads_auto_uses_the_cores_this_process_may_run_on(monkeypatch):
    import os

    import pytest
    import torch

    import latentkit

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        assert latentkit.set_cpu_threads("auto") == 2 and torch.get_num_threads() == 2
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
        assert latentkit.set_cpu_threads("auto") == latentkit.MAX_AUTO_THREADS
        assert latentkit.set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, -1, 1.5, True, "two"):
            with pytest.raises(ValueError, match="cpu_threads must be 'auto' or a whole number >= 1"):
                latentkit.set_cpu_threads(bad)
    finally:
        torch.set_num_threads(before)
