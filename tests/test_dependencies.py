"""Every dependency earns its place: each package pyproject.toml declares is imported by the
package, and everything the package imports is declared (docs/design.md, "Dependencies")."""

from __future__ import annotations

import ast
import contextlib
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "dpdeblur"


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` == ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every absolute non-stdlib import."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top != "dpdeblur" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def distributions_of(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """Distribution name -> the top-level modules of it that are imported."""
    providers = packages_distributions()
    result: dict[str, set[str]] = {}
    for module in imports:
        for dist in providers.get(module, [module]):
            result.setdefault(normalise(dist), set()).add(module)
    return result


def test_every_declared_dependency_is_imported_by_the_package():
    imported = distributions_of(third_party_imports(SOURCE))
    declared = {requirement_name(r) for r in project()["dependencies"]}
    unused = sorted(declared - set(imported))
    assert not unused, (
        f"declared in pyproject.toml but imported nowhere in src/dpdeblur: {unused}; "
        "use them where they serve users or remove them (docs/design.md, 'Dependencies')"
    )


def test_every_imported_package_is_declared():
    imports = third_party_imports(SOURCE)
    meta = project()
    allowed = {requirement_name(r) for r in meta["dependencies"]}
    for extra in meta.get("optional-dependencies", {}).values():
        for requirement in extra:  # an extra's packages and what they bring (grimp)
            name = requirement_name(requirement)
            allowed.add(name)
            with contextlib.suppress(PackageNotFoundError):
                allowed.update(requirement_name(r) for r in requires(name) or [])
    undeclared = {
        dist: sorted(file for module in modules for file in imports[module])
        for dist, modules in distributions_of(imports).items()
        if dist not in allowed
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_scan_sees_a_token_dependency(tmp_path):
    # The checks are only as good as the scan: it must find every import form it relies on.
    (tmp_path / "a.py").write_text(
        "import os\nimport numpy as np\nfrom scipy import fft\n"
        "def f():\n    import yaml.constructor\n    from . import b\n"
    )
    imports = third_party_imports(tmp_path)
    assert set(imports) == {"numpy", "scipy", "yaml"}
    assert distributions_of(imports) == {
        "numpy": {"numpy"},
        "scipy": {"scipy"},
        "pyyaml": {"yaml"},
    }
    assert requirement_name("opencv-python-headless>=4.8") == "opencv-python-headless"
    assert requirement_name("PyYAML [extra] >=6; python_version>'3'") == "pyyaml"
