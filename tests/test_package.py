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
