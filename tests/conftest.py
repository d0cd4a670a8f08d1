"""Shared fixtures. Helpers to import live in testdata.py and model_factory.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from testdata import shared_path


@pytest.fixture(scope="session", autouse=True)
def _audit_dir_for_tests(tmp_path_factory):
    """Keep the suite's audit entries (windows opened, CLI analyses) out of the user's own log;
    set in the environment so CLI subprocesses inherit it. A test wanting its own log sets
    MEDKD_AUDIT_DIR again (monkeypatch or env=)."""
    os.environ["MEDKD_AUDIT_DIR"] = str(tmp_path_factory.mktemp("audit"))


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# A live Orthanc PACS, started on first use and stopped at the end of the session (skips where
# Orthanc is not installed): any test folder may ask for it (tests/pacs, tests/ui).
from orthanc_server import orthanc  # noqa: E402,F401
