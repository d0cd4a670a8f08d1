"""The layers of the house rules, enforced: import-linter's contracts in pyproject.toml.

Why import-linter and not a regex over the sources: it follows the real import graph, lazy
imports inside functions and chains through other modules included, so ``report -> ui``
is caught even when the Qt import is two modules away.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[test]')")


def test_import_contracts_are_kept():
    # A subprocess in the repository root: lint-imports analyses the package it imports from the
    # current directory (this checkout), and the test's own sys.path stays as it was.
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"import contracts broken:\n{out.stdout}\n{out.stderr}"
