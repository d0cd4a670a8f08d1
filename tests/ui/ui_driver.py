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


class GatedEngine:
    """The real engine, whose every progress report waits for *gate*: a run is then certainly still
    going when a test presses Cancel, however fast the machine."""

    def __init__(self, engine, gate):
        self._engine, self._gate = engine, gate

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def analyze(self, *args, on_progress=None, **kwargs):
        def progress(fraction, message):
            on_progress(fraction, message)
            self._gate.wait(30)

        return self._engine.analyze(*args, on_progress=progress, **kwargs)
