"""What a frozen (PyInstaller) MedKD needs before anything else runs, and where it lives.

Why a module of its own: the installed app starts from ``packaging/entry.py``, which must fix
a few things before the first heavy import, and the self-test must check the same facts the
fixes depend on. Everything here is Qt-free, torch-free and cheap to import.

* **No console streams.** A windowed executable on Windows starts with ``sys.stdout`` and
  ``sys.stderr`` set to None. Anything that prints (argparse, logging's stderr handler,
  pytorch-grad-cam's ``tqdm`` progress bars in Ablation-CAM) then raises ``AttributeError:
  'NoneType' object has no attribute 'write'`` deep inside an analysis. :func:`ensure_streams`
  points missing streams at a log file in the per-user log folder.
* **Per-user folders only.** The installed folder is read-only on a hospital PC
  (``C:\\Program Files``, ``/opt``). Matplotlib would otherwise put its font cache in
  ``~/.config/matplotlib`` or, failing that, a fresh temporary folder on every start (slow);
  :func:`use_user_folders` gives it a folder in MedKD's per-user cache.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "medkd-desktop"


def is_frozen() -> bool:
    """Running from the PyInstaller bundle (``sys.frozen`` is set by its bootloader)."""
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path | None:
    """The bundle's folder holding the Python modules and data (``_internal`` in PyInstaller 6's
    onedir layout), or None from a source install."""
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass).resolve() if is_frozen() and meipass else None


def install_dir() -> Path | None:
    """The folder holding the executables (``/opt/medkd-desktop``), or None from source."""
    return Path(sys.executable).resolve().parent if is_frozen() else None


def user_dirs() -> dict[str, Path]:
    """Every per-user folder MedKD writes to (platformdirs), by purpose."""
    import platformdirs

    return {
        "data": Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),  # models, audit log
        "cache": Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),  # runs, PACS, fonts
        "log": Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    }


def ensure_streams() -> Path | None:
    """Give ``sys.stdout`` / ``sys.stderr`` a file when the process has none (windowed app).

    Returns the log file used, or None when both streams already existed. The file is opened
    line-buffered in append mode in the per-user log folder (``frozen-console.log``); when that
    folder cannot be written the streams go to ``os.devnull``, which still keeps ``print`` and
    ``tqdm`` from raising.
    """
    if sys.stdout is not None and sys.stderr is not None:
        return None
    target: Path | None = None
    stream = None
    try:
        folder = user_dirs()["log"]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "frozen-console.log"
        stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process
    except OSError:
        target, stream = None, open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream
    return target


def use_user_folders() -> None:
    """Point libraries that cache on disk at MedKD's per-user cache.

    Matplotlib: from source, unless the user chose a folder. Frozen, always: PyInstaller's
    run-time hook has already pointed ``MPLCONFIGDIR`` at a fresh temporary folder (deleted at
    exit), so matplotlib would rebuild its font list on every start.
    """
    if is_frozen() or "MPLCONFIGDIR" not in os.environ:
        os.environ["MPLCONFIGDIR"] = str(user_dirs()["cache"] / "matplotlib")


def prepare_frozen_runtime() -> None:
    """Everything ``packaging/entry.py`` does before importing the app (idempotent)."""
    ensure_streams()
    use_user_folders()
