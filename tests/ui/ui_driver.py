"""Driving the real window from tests (a plain module: see tests/testdata.py for why not conftest)."""
from __future__ import annotations

from pathlib import Path


def open_and_wait(qtbot, window, path, timeout=120_000):
    """Open *path* in the window and return the Analysis the window applied."""
    with qtbot.waitSignal(window.analysis_applied, timeout=timeout) as blocker:
        window.open_path(path)
    return blocker.args[0]


def engine_factory(model_root: Path):
    """The real engine and registry, over *model_root* only (never the user's installed models)."""

    def factory(_device):
        from medkd_desktop.inference.engine import Engine
        from medkd_desktop.models.registry import ModelRegistry

        registry = ModelRegistry([model_root])
        return Engine(registry=registry, device="cpu"), registry

    return factory
