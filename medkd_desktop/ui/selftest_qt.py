"""The window's part of the self-test: Qt's platform plugins and one drawn main window.

Why here: only ``ui`` may import Qt (import-linter), and the frozen trap is Qt's own: the
platform plugins (``xcb`` for a Linux desktop, ``offscreen`` for headless runs, ``windows`` on
Windows) are loaded from the bundle's plugin folder by name at start-up, so a bundle without
them starts no window at all ("could not load the Qt platform plugin").
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..selftest import Check, CheckFailed, SelfTestContext

#: Platform plugins the bundle must carry, per OS (file-name stems, as Qt names them).
REQUIRED_PLATFORMS = {"linux": ("qxcb", "qoffscreen"), "win32": ("qwindows", "qoffscreen"),
                      "darwin": ("qcocoa", "qoffscreen")}


def _platform_plugins() -> tuple[Path, set[str]]:
    from PySide6.QtCore import QLibraryInfo

    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    names = {p.name.split(".")[0].removeprefix("lib") for p in folder.glob("*")} if folder.is_dir() else set()
    return folder, names


def check_qt_platforms(ctx: SelfTestContext) -> str:
    """The platform plugins this OS needs are in the bundle's Qt plugin folder."""
    folder, names = _platform_plugins()
    missing = [n for n in REQUIRED_PLATFORMS.get(sys.platform, ("qoffscreen",)) if n not in names]
    if missing:
        raise CheckFailed(f"Qt platform plugins missing from {folder}: {', '.join(missing)}")
    return f"{', '.join(sorted(names))} in {folder}"


def check_qt_window(ctx: SelfTestContext) -> str:
    """The review window starts on the current platform (xcb on a desktop, offscreen without a
    display), with the stylesheet, and draws a non-empty image of itself."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .app import make_app
    from .main_window import MainWindow
    from .settings import Settings

    app = make_app()
    with tempfile.TemporaryDirectory(prefix="medkd-selftest-qt-") as tmp:
        window = MainWindow(settings=Settings(Path(tmp) / "settings.ini"), device="cpu")
        try:
            window.show()
            for _ in range(5):
                app.processEvents()
            image = window.grab().toImage()
            if image.isNull() or image.width() < 100:
                raise CheckFailed("the main window drew nothing")
            colours = {image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 37)}
            if len(colours) < 3:
                raise CheckFailed("the main window is blank")
            size = f"{image.width()}x{image.height()}"
        finally:
            window.close()
            worker = getattr(window, "worker", None)
            if worker is not None and hasattr(worker, "shutdown"):
                worker.shutdown(0)
    return f"platform {app.platformName()}: main window drawn, {size} px"


QT_CHECKS: list[Check] = [("qt_platforms", check_qt_platforms), ("qt_window", check_qt_window)]


def main(as_json: bool) -> int:
    """``medkd-desktop --selftest [--json]``: every check, the window's included; 0 only if all pass."""
    from ..selftest import run_selftest

    def progress(result) -> None:  # noqa: ANN001
        if not as_json:
            print(f"  {'PASS' if result.ok else 'FAIL'}  {result.name:<16} {result.detail}", file=sys.stderr, flush=True)

    report = run_selftest(extra=QT_CHECKS, progress=progress)
    print(report.to_json() if as_json else report.to_text())
    return 0 if report.ok else 1
