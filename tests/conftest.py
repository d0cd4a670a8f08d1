"""Shared fixtures. Helpers to import live in testdata.py and model_factory.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from testdata import shared_path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# A live Orthanc PACS, started on first use and stopped at the end of the session (skips where
# Orthanc is not installed): any test folder may ask for it (tests/pacs, tests/ui).
from orthanc_server import orthanc  # noqa: E402,F401
