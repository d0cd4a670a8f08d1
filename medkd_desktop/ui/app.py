"""`medkd-desktop [PATH] [--task T] [--method M] [--screenshot FILE [--faithfulness]] [--device D]`,
`medkd-desktop --selftest [--json]`.

Why a screenshot mode: the docs, CI and a machine without a display (``make run`` on a server)
need to see exactly what the window shows on a study — both overlays, the predictions panel —
without anyone clicking. ``--screenshot`` opens PATH, runs the analysis in the worker as the
window would, waits for it, renders the window offscreen at its default size and saves a PNG;
``--faithfulness`` also runs "Check faithfulness" first, so the figures are in the picture.

Exit status as for ``medkd``: 0 success, 2 bad input or a failed analysis (one line
``error: <message>`` on stderr, never a traceback), 1 for anything unexpected.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2
SCREENSHOT_TIMEOUT_S = 600
GIL_SWITCH_INTERVAL_S = 0.001


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medkd-desktop",
                                description="MedKD Desktop: teacher vs student review (research use only).")
    p.add_argument("path", nargs="?", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF to open")
    p.add_argument("--task", help="model pair to use (default: proposed from the study)")
    p.add_argument("--method", help="explanation method (gradcam, gradcam++, scorecam, layercam, ...)")
    p.add_argument("--screenshot", metavar="FILE", help="open PATH, analyse, save a PNG of the window and exit")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the models run (default: the setting)")
    p.add_argument("--faithfulness", action="store_true",
                   help="with --screenshot: also run Check faithfulness before the screenshot")
    p.add_argument("--selftest", action="store_true",
                   help="check this installation (decoders, samples, models, reports, Qt) and exit: 0 only if all pass")
    p.add_argument("--json", action="store_true", help="with --selftest: print the result as JSON")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def load_style(app) -> None:
    """Apply resources/style.qss when present (the app works without it)."""
    from ..paths import RESOURCES_DIR

    qss = RESOURCES_DIR / "style.qss"
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))


#: Qt bindings known to corrupt reference counts on this Python: PySide6 6.12.0 drops a reference
#: to None on every void call when None is not immortal (Python < 3.12), and the process aborts
#: with "none_dealloc" after a few thousand calls. Measured: 6.11.3 is fine.
BROKEN_BINDINGS = {"6.12.0"}


class QtBindingError(RuntimeError):
    """The installed Qt binding is known to crash on this Python."""


def check_qt_binding() -> None:
    import PySide6

    if sys.version_info < (3, 12) and PySide6.__version__ in BROKEN_BINDINGS:
        raise QtBindingError(
            f"PySide6 {PySide6.__version__} crashes on Python {sys.version_info.major}.{sys.version_info.minor} "
            "(reference-count bug); install PySide6-Essentials 6.11 (pip install 'PySide6-Essentials<6.12').")


def make_app(argv: Sequence[str] | None = None):
    check_qt_binding()
    from PySide6.QtWidgets import QApplication

    from .settings import APPLICATION, ORGANIZATION

    # While the worker runs Python code (explainers, hooks), the GUI thread waits for the GIL;
    # a 1 ms switch interval (default 5 ms) shortens each wait and so the event loop's gaps.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = QApplication.instance() or QApplication(list(argv or [sys.argv[0]]))
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setStyle("Fusion")  # the same look on Windows, macOS and Linux; style.qss builds on it
    load_style(app)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_qt_binding()
    except QtBindingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.selftest:
        from .selftest_qt import main as selftest_main

        return selftest_main(args.json)
    if args.screenshot:
        if not args.path:
            print("error: --screenshot needs a PATH to open", file=sys.stderr)
            return EXIT_BAD_INPUT
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return screenshot(args)
    app = make_app()
    from .main_window import MainWindow

    window = MainWindow(device=args.device, forced_task=args.task, method=args.method)
    window.show()
    if os.environ.get(STARTUP_TRACE_ENV):
        trace_startup(window)
    if args.path:
        window.open_path(args.path)
    return app.exec()


#: Set (to anything) to print ``medkd-startup window`` once the window has been painted and
#: ``medkd-startup overlays`` when both overlays are shown, on stderr: scripts/bench_frozen.py
#: times a cold start of the installed app against the source install with these marks.
STARTUP_TRACE_ENV = "MEDKD_STARTUP_TRACE"


def trace_startup(window) -> None:  # noqa: ANN001
    from PySide6.QtCore import QTimer

    def mark(event: str) -> None:
        print(f"medkd-startup {event}", file=sys.stderr, flush=True)

    window.repaint()
    QTimer.singleShot(0, lambda: mark("window"))  # the first turn of the event loop: the window is up
    window.analysis_applied.connect(lambda _a: QTimer.singleShot(0, lambda: mark("overlays")))


def screenshot(args: argparse.Namespace) -> int:
    """Headless: open, analyse, render, save. Errors go to stderr with exit status 2."""
    app = make_app()
    from PySide6.QtCore import QEventLoop, QTimer

    from .main_window import MainWindow
    from .settings import Settings

    # Never touch the user's settings (recent files) from a scripted run.
    tmp = tempfile.TemporaryDirectory(prefix="medkd-shot-")
    window = MainWindow(settings=Settings(Path(tmp.name) / "settings.ini"), device=args.device,
                        forced_task=args.task, method=args.method)
    outcome: dict[str, str] = {}
    loop = QEventLoop()

    def fail(message: str) -> None:
        outcome.setdefault("error", message)
        loop.quit()

    window.error_sink = lambda _title, message: fail(message)
    window.analysis_applied.connect(lambda _a: (outcome.setdefault("ok", "1"), loop.quit()))
    window.analysis_failed.connect(fail)
    window.open_failed.connect(fail)
    window.show()
    window.open_path(args.path)
    QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, lambda: fail("the analysis did not finish in time"))
    if not outcome:
        loop.exec()
    if args.faithfulness and "error" not in outcome:
        _check_faithfulness(window, outcome)
    try:
        if "error" in outcome:
            print(f"error: {outcome['error']}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for _ in range(5):  # let layouts and pyqtgraph finish painting the new overlays
            app.processEvents()
        out = Path(args.screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out), "PNG"):
            print(f"error: could not write {out}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(str(out))
        return 0
    finally:
        window.close()
        tmp.cleanup()


def _check_faithfulness(window, outcome: dict[str, str]) -> None:
    """Run the window's "Check faithfulness" and wait for its figures (``--faithfulness``)."""
    from PySide6.QtCore import QEventLoop, QTimer

    panel = window.faithfulness
    loop = QEventLoop()

    def fail(message: str) -> None:
        outcome.setdefault("error", message)
        loop.quit()

    panel.check_finished.connect(lambda shown: loop.quit() if shown else fail(panel.model.message))
    panel.check_failed.connect(fail)
    if panel.start() is None:
        outcome.setdefault("error", f"the faithfulness check cannot run: {panel.model.reason or 'already checked'}")
        return
    QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, lambda: fail("the faithfulness check did not finish in time"))
    loop.exec()


if __name__ == "__main__":
    sys.exit(main())
