"""Shared fixtures. Helpers to import live in testdata.py and model_factory.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from testdata import shared_path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()
