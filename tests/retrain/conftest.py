"""Each retrain test gets its own user folders (models, cache, audit) through XDG and MEDKD_AUDIT_DIR,
set in the environment so `medkd` subprocesses use them too."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    dirs = {"XDG_DATA_HOME": tmp_path / "xdg-data", "XDG_CACHE_HOME": tmp_path / "xdg-cache",
            "MEDKD_AUDIT_DIR": tmp_path / "audit"}
    for k, v in dirs.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("MEDKD_MODEL_DIRS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return dirs


def env() -> dict[str, str]:
    return dict(os.environ)
