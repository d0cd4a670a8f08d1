"""Driving the real window from tests (a plain module: see tests/testdata.py for why not conftest)."""
from __future__ import annotations


def open_and_wait(qtbot, window, path, timeout=120_000):
    """Open *path* in the window and return the Analysis the window applied."""
    with qtbot.waitSignal(window.analysis_applied, timeout=timeout) as blocker:
        window.open_path(path)
    return blocker.args[0]
