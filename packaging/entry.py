"""The frozen app's one entry script, behind both executables of the bundle.

Why one script for two executables: ``medkd-desktop`` (the window; windowed on Windows) and
``medkd`` (the console commands) share one PyInstaller analysis and one folder of libraries; the
executable's own name picks which ``main`` runs. Three things must happen before anything else:

1. ``multiprocessing.freeze_support()``: a "spawn" child (the trainer's data workers, the
   self-test's probe) re-runs this executable with ``--multiprocessing-fork``; here it turns
   into the worker instead of starting a second window or parsing those arguments.
2. A windowed app has no stdout/stderr: give them a log file (``selftest.runtime``).
3. Libraries that cache on disk (matplotlib's font list) write to the per-user cache, never
   into the read-only installed folder.
"""
import multiprocessing
import sys
from pathlib import Path


def main() -> int:
    multiprocessing.freeze_support()
    from medkd_desktop.selftest.runtime import prepare_frozen_runtime

    prepare_frozen_runtime()
    if Path(sys.executable).stem.lower() == "medkd":
        from medkd_desktop.cli import main as run
    else:
        from medkd_desktop.ui.app import main as run
    return run()


if __name__ == "__main__":
    sys.exit(main())
