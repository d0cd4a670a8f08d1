"""House rules a machine can check: the core loads no Qt; nothing unpickles or downloads.

Which package may import which (Qt only in ui/) is import-linter's job: tests/test_layers.py."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "medkd_desktop"


def test_opening_a_study_loads_no_qt_module():
    code = (
        "import sys, medkd_desktop.studies as s, medkd_desktop.cli;"
        "print(any(m.split('.')[0] in ('PySide6','pyqtgraph','shiboken6') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_unpickling_or_hub_downloads():
    bad = re.compile(r"pickle\.loads?\(|pretrained\s*=\s*True|torch\.load\((?![^)]*weights_only=True)")
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if bad.search(p.read_text())]
    assert offenders == []
