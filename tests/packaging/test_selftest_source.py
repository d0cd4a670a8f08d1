"""The installation self-test, run from the source install (no build needed).

Why: ``medkd-desktop --selftest`` is what an IT person runs on a hospital PC after installing; it
must pass on a good installation, name what is broken on a bad one, and leave nothing outside
MedKD's per-user folders. The frozen bundle runs the same code (tests/packaging/test_frozen_bundle.py
and ``make package-test``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medkd_desktop import selftest
from medkd_desktop.selftest import checks, runtime

REPO = Path(__file__).resolve().parents[2]
#: Every check a user sees, in order: a check silently dropped from the list fails here.
EXPECTED = ["user_folders", "no_console", "codecs", "samples", "glass_brain", "models", "report", "cuda",
            "multiprocessing", "qt_platforms", "qt_window", "modules"]
#: What a fresh HOME may hold afterwards (platformdirs data, cache, state; Qt's settings).
ALLOWED_HOME = (".local/share/medkd-desktop", ".cache/medkd-desktop", ".local/state/medkd-desktop",
                ".config/MedKD", ".config/medkd-desktop")


def fresh_home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MEDKD_AUDIT"))}
    # PYTHONPATH: this checkout's package, whichever checkout the venv's editable install points to
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    return env


@pytest.fixture(scope="module")
def cli_selftest(tmp_path_factory):
    """`medkd selftest --json` in a subprocess with a fresh HOME (one run, ~40 s, shared by the tests)."""
    home = tmp_path_factory.mktemp("home")
    proc = subprocess.run([sys.executable, "-m", "medkd_desktop.cli", "selftest", "--json"], cwd=home,
                          env=fresh_home_env(home), capture_output=True, text=True, timeout=900)
    return proc, home


def test_selftest_passes_on_this_installation(cli_selftest):
    proc, _home = cli_selftest
    report = json.loads(proc.stdout)
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert not failed, failed
    assert proc.returncode == 0 and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == EXPECTED
    assert report["frozen"] is False and report["version"] != "unknown"
    details = {c["name"]: c["detail"] for c in report["checks"]}
    for family in ("JPEG baseline", "JPEG 2000", "JPEG-LS", "RLE"):
        assert family in details["codecs"]
    assert "5 pairs verified" in details["models"]
    assert "platform offscreen" in details["qt_window"]


def test_selftest_writes_only_to_per_user_folders(cli_selftest):
    _proc, home = cli_selftest
    written = [p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()]
    assert written, "the self-test writes its probe files and caches somewhere"
    # From source, matplotlib keeps its font list in its own per-user cache; the frozen app points
    # it into MedKD's (selftest.runtime.use_user_folders; checked by make package-test).
    assert [w for w in written if not w.startswith((*ALLOWED_HOME, ".cache/matplotlib/"))] == []


def test_damaged_weights_fail_the_models_check(tmp_path, monkeypatch):
    """A weights file changed on disk (a bad copy, a bad sector) is named, and the self-test fails."""
    task = "skin-ham10000"
    shutil.copytree(checks.BUNDLED_MODELS_DIR / task, tmp_path / task)
    weights = tmp_path / task / "student.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(checks, "BUNDLED_MODELS_DIR", tmp_path)
    report = selftest.run_selftest(only=["models"])
    assert not report.ok
    (result,) = report.checks
    assert result.name == "models" and "skin-ham10000/student" in result.detail and "sha256" in result.detail


def test_missing_codec_file_fails_the_codecs_check(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "SELFTEST_DIR", tmp_path)
    report = selftest.run_selftest(only=["codecs"])
    assert not report.ok and "missing from the installation" in report.checks[0].detail


def test_lossless_codecs_decode_identically_to_their_reference():
    report = selftest.run_selftest(only=["codecs"])
    assert report.ok, report.to_text()
    for family in ("JPEG lossless", "JPEG 2000", "JPEG-LS", "RLE"):
        assert f"{family} (identical)" in report.checks[0].detail


def test_windowed_app_without_console_streams_gets_a_log_file(tmp_path, monkeypatch):
    """What a windowed Windows executable starts with: no stdout/stderr. After ensure_streams,
    print() and tqdm (pytorch-grad-cam's progress bars) work and land in the per-user log folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    code = ("import sys, tqdm\n"
            "sys.stdout = sys.stderr = None\n"
            "from medkd_desktop.selftest.runtime import ensure_streams\n"
            "log = ensure_streams()\n"
            "print('hello from a windowed app')\n"
            "sum(tqdm.tqdm(range(3)))\n"
            "sys.__stdout__.write(str(log))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    log = Path(proc.stdout.strip())
    assert log.is_relative_to(tmp_path) and "medkd-desktop" in log.parts
    assert "hello from a windowed app" in log.read_text(encoding="utf-8")


def test_streams_that_exist_are_left_alone():
    assert runtime.ensure_streams() is None


def test_source_install_is_not_frozen():
    assert runtime.is_frozen() is False and runtime.bundle_dir() is None and runtime.install_dir() is None


def test_modules_outside_the_allowed_roots_are_named(monkeypatch, tmp_path):
    """A module imported from a stray folder (a second site-packages) fails the modules check."""
    stray = tmp_path / "stray_pkg_for_selftest.py"
    stray.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("stray_pkg_for_selftest")
    try:
        report = selftest.run_selftest(only=["modules"])
    finally:
        sys.modules.pop("stray_pkg_for_selftest", None)
    assert not report.ok and "stray_pkg_for_selftest" in report.checks[0].detail


def test_shared_library_from_outside_is_named(tmp_path):
    """A native library loaded from a stray folder (a CUDA toolkit in /usr/local, another venv)
    fails the modules check, as a stray Python module does."""
    import ctypes
    import ctypes.util

    system_lib = Path("/lib/x86_64-linux-gnu/libz.so.1")
    if not system_lib.is_file() or not Path("/proc/self/maps").is_file():
        pytest.skip("needs Linux with /lib/x86_64-linux-gnu/libz.so.1")
    stray = tmp_path / "libstray_for_selftest.so.1"
    shutil.copy(system_lib, stray)
    handle = ctypes.CDLL(str(stray))
    report = selftest.run_selftest(only=["modules"])
    assert not report.ok and "libstray_for_selftest" in report.checks[0].detail
    del handle
