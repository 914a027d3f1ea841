"""environment.yml (conda) must list what pyproject.toml (pip) lists, so both installs work.

pyproject.toml is the source of truth; environment.yml mirrors its runtime and dev dependencies
under conda-forge names, with the project itself as ``-e .`` under ``pip:``.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# PyPI name -> conda-forge name, only where the two differ.
CONDA_NAMES = {
    "torch": "pytorch",
    # matplotlib on conda-forge also pulls a Qt GUI stack; -base is the library alone.
    "matplotlib": "matplotlib-base",
}
PYPI_NAMES = {conda: pypi for pypi, conda in CONDA_NAMES.items()}
# Listed in environment.yml although pyproject cannot list them.
CONDA_ONLY = {"python", "pip"}

# A conda match spec as used here: `name`, `name>=1.2`, `conda-forge::name>=1.2`.
_MATCH_SPEC = re.compile(r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*(?P<spec>.*)$")


def load_pyproject(path: Path = ROOT / "pyproject.toml") -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_environment(path: Path = ROOT / "environment.yml") -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def pyproject_requirements(pyproject: dict) -> list[Requirement]:
    """Runtime dependencies and every optional-dependency group, parsed."""
    project = pyproject["project"]
    lines = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines += group
    return [Requirement(line) for line in lines]


def environment_entries(env: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """Split environment.yml dependencies into conda ``(name, spec)`` pairs and raw pip lines."""
    conda, pip = [], []
    for item in env.get("dependencies") or []:
        if isinstance(item, dict):
            pip += item.get("pip") or []
            continue
        match = _MATCH_SPEC.match(str(item).strip())
        if match is None:
            raise ValueError(f"cannot read conda dependency {item!r} in environment.yml")
        conda.append((canonicalize_name(match["name"]), match["spec"].strip()))
    return conda, pip


def _same_bound(a: str, b: str) -> bool:
    try:
        return SpecifierSet(a) == SpecifierSet(b)
    except InvalidSpecifier:  # e.g. conda's single `=`: never equal to a pip specifier
        return False


def find_problems(pyproject: dict, env: dict) -> list[str]:
    """Every way environment.yml disagrees with pyproject.toml, as readable messages."""
    problems = []
    conda, pip_lines = environment_entries(env)
    editable = [line for line in pip_lines if re.fullmatch(r"-e\s+\.", line.strip())]
    pip = [Requirement(line) for line in pip_lines if line not in editable]

    # Each package under its PyPI name, wherever it is listed.
    listed: dict[str, list[str]] = {}
    for name, spec in conda:
        listed.setdefault(PYPI_NAMES.get(name, name), []).append(spec)
    for req in pip:
        listed.setdefault(canonicalize_name(req.name), []).append(str(req.specifier))

    counts = Counter(PYPI_NAMES.get(name, name) for name, _ in conda)
    counts.update(canonicalize_name(req.name) for req in pip)
    problems += [f"{name} is listed {n} times in environment.yml" for name, n in counts.items() if n > 1]

    wanted = {}
    for req in pyproject_requirements(pyproject):
        name = canonicalize_name(req.name)
        wanted[name] = str(req.specifier)
        if name not in listed:
            conda_name = CONDA_NAMES.get(name, name)
            problems.append(
                f"{req.name} is in pyproject.toml but not in environment.yml "
                f"(add '{conda_name}' to dependencies, or to pip: if conda-forge lacks it)"
            )
        elif not any(_same_bound(spec, str(req.specifier)) for spec in listed[name]):
            problems.append(
                f"{req.name}: pyproject.toml wants {str(req.specifier) or 'any version'!r}, "
                f"environment.yml has {listed[name]}"
            )

    extra = sorted(set(listed) - set(wanted) - CONDA_ONLY)
    problems += [f"{name} is in environment.yml but not in pyproject.toml" for name in extra]

    if not editable:
        problems.append("environment.yml must install the project itself: '-e .' under pip:")

    requires_python = pyproject["project"].get("requires-python", "")
    python = listed.get("python", [])
    if not python:
        problems.append("environment.yml does not pin python")
    elif not _same_bound(python[0], requires_python):
        problems.append(
            f"python bound {python[0]!r} in environment.yml differs from "
            f"requires-python {requires_python!r} in pyproject.toml"
        )
    return problems


def test_environment_yml_matches_pyproject():
    problems = find_problems(load_pyproject(), load_environment())
    assert not problems, "environment.yml and pyproject.toml disagree:\n  " + "\n  ".join(problems)


def test_environment_yml_uses_conda_forge_only():
    assert load_environment()["channels"] == ["conda-forge"]


def _add_runtime_dep(pyproject, env):
    pyproject["project"]["dependencies"].append("einops")


def _add_dev_dep(pyproject, env):
    pyproject["project"]["optional-dependencies"]["dev"].append("hypothesis")


def _duplicate_in_pip(pyproject, env):
    _pip_section(env).append("numpy")


def _drop_editable(pyproject, env):
    pip = _pip_section(env)
    pip[:] = [line for line in pip if line.strip() != "-e ."]


def _change_python(pyproject, env):
    pyproject["project"]["requires-python"] = ">=3.12"


def _change_torch_bound(pyproject, env):
    deps = pyproject["project"]["dependencies"]
    deps[:] = ["torch>=2.6" if canonicalize_name(Requirement(d).name) == "torch" else d for d in deps]


def _env_only_dep(pyproject, env):
    env["dependencies"].insert(0, "einops")


def _pip_section(env) -> list:
    return next(item for item in env["dependencies"] if isinstance(item, dict))["pip"]


@pytest.mark.parametrize(
    ("doctor", "expected"),
    [
        (_add_runtime_dep, "einops is in pyproject.toml but not in environment.yml"),
        (_add_dev_dep, "hypothesis is in pyproject.toml but not in environment.yml"),
        (_duplicate_in_pip, "numpy is listed 2 times"),
        (_drop_editable, "'-e .' under pip"),
        (_change_python, "requires-python '>=3.12'"),
        (_change_torch_bound, "torch: pyproject.toml wants '>=2.6'"),
        (_env_only_dep, "einops is in environment.yml but not in pyproject.toml"),
    ],
)
def test_checker_catches_drift(doctor, expected):
    """The check above can fail: each doctored copy of the two files is reported."""
    pyproject, env = copy.deepcopy(load_pyproject()), copy.deepcopy(load_environment())
    doctor(pyproject, env)
    problems = find_problems(pyproject, env)
    assert any(expected in p for p in problems), problems
