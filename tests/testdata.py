"""Where tests find real data.

Real data lives in ``../shared/data`` beside the checkout (CI has it). On a fresh clone
without it, tests that need it skip with a clear reason; everything that
``resources/samples/`` can feed still runs. (A plain module, not conftest: pytest swaps
the ``conftest`` module per test folder, so importing helpers from it is fragile.)
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
SHARED_DATA = Path(os.environ.get("MEDKD_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEDKD = [sys.executable, "-m", "medkd_desktop.cli"]  # the `medkd` command of this interpreter's install


def run_medkd(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``medkd ARGS`` as a user runs it: a real subprocess, its exit code and output."""
    return subprocess.run([*MEDKD, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, skipping the calling test when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not found at {p} (clone with ../shared/data beside it, or set MEDKD_SHARED_DATA)")
    return p


def strip_preamble_and_meta(src: Path, dst: Path) -> Path:
    """Write *src* without its 128-byte preamble, "DICM" and File Meta group, as some old systems
    write DICOM (pydicom reads it only with ``force=True``)."""
    import struct

    data = Path(src).read_bytes()
    assert data[128:132] == b"DICM"
    (group_length,) = struct.unpack("<I", data[140:144])  # (0002,0000) UL, explicit VR LE
    Path(dst).write_bytes(data[144 + group_length:])
    return Path(dst)
