"""pyproject.toml and environment.yml must name the same packages with the
same version bounds, so Binder users get what pip users get."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "matplotlib-base": "matplotlib"}
CONDA_ONLY = {"python", "pip"}


def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out = {}
    for line in reqs:
        req = Requirement(line)
        out[canonicalize_name(req.name)] = req.specifier
    return out


def conda_spec(text: str) -> tuple[str, SpecifierSet]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", text.strip()).groups()
    # conda's "=X" means "X or X.*"; the project uses it only for exact pins.
    spec = re.sub(r"(^|,)=(?!=)", r"\1==", spec.replace(" ", ""))
    return canonicalize_name(CONDA_TO_PYPI.get(name, name)), SpecifierSet(spec)


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_requirements() -> dict[str, SpecifierSet]:
    """The environment's packages: conda-forge's, then those its pip section
    takes from PyPI (options such as snnlib's own ``-e .`` aside)."""
    out = {}
    for dep in environment()["dependencies"]:
        if isinstance(dep, str):
            name, spec = conda_spec(dep)
            if name not in CONDA_ONLY:
                out[name] = spec
        else:
            for line in dep.get("pip", []):
                if not line.startswith("-"):
                    req = Requirement(line)
                    out[canonicalize_name(req.name)] = req.specifier
    return out


def test_both_files_name_the_same_packages():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert sorted(set(pip) - set(conda)) == [], "in pyproject.toml only"
    assert sorted(set(conda) - set(pip)) == [], "in environment.yml only"


def test_both_files_give_the_same_version_bounds():
    pip, conda = pyproject_requirements(), conda_requirements()
    differ = {name: (str(pip[name]), str(conda[name])) for name in pip
              if name in conda and pip[name] != conda[name]}
    assert differ == {}


def test_the_pins_that_matter_are_there():
    pip = pyproject_requirements()
    assert "<2.4" in str(pip["numpy"])  # Brian2 2.9 fails on numpy 2.4
    assert str(pip["brian2"]) == "==2.9.0"
    assert "<2" in str(pip["jupyter-book"])  # 2.x reads myst.yml and needs the network


def test_environment_is_binder_ready():
    env = environment()
    assert "conda-forge" in env["channels"]
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]  # Binder honours only an exact Python pin
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_section and "-e ." in pip_section[0]["pip"]  # installs snnlib from the repo
