"""The import contract of pyproject.toml ([tool.importlinter]): the layers of docs/design.md
hold on the package as it is, and a forbidden import added to a copy of it is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "dpdeblur"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def lint_imports(
    python_path: Path | None = None, contract: str | None = None
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    return subprocess.run(
        [
            str(LINT_IMPORTS),
            "--no-cache",
            *(["--contract", contract] if contract else []),
            str(REPO / "pyproject.toml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_package(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "dpdeblur", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_package_keeps_its_layers():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a model reaching up into the training layer
        ("models/registry.py", "import dpdeblur.training.losses", "layers"),
        # the library importing a console script
        ("inference/tiling.py", "import dpdeblur.cli.deblur", "layers"),
        # plain torch code importing Lightning
        ("metrics/pixel.py", "import lightning", "plain-torch"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path, module, line, contract):
    root = copy_of_package(tmp_path)
    path = root / "dpdeblur" / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    assert lint_imports(contract=contract).returncode == 0  # holds before the change
    result = lint_imports(python_path=root, contract=contract)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert f"-> {line.split()[1]}" in result.stdout  # the report names the new import
