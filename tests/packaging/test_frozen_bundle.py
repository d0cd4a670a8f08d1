"""The built bundle (dist/medkd-desktop from `make package`), run with an empty environment.

Skipped without a build: building takes ~15 minutes and ~6 GB, so `make test` does not build it;
`make package && make package-test` covers the bundle, the tarball and the .deb in full.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "dist" / "medkd-desktop"
SAMPLE = REPO / "resources" / "samples" / "chest_xray_cr_pa_nema.dcm"

pytestmark = pytest.mark.skipif(not (BUNDLE / "medkd-desktop").is_file(),
                                reason="no frozen bundle at dist/medkd-desktop (build it with `make package`)")


def clean_env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}


def test_frozen_selftest_passes(tmp_path):
    proc = subprocess.run([str(BUNDLE / "medkd-desktop"), "--selftest", "--json"], env=clean_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, [c for c in report["checks"] if not c["ok"]]
    assert report["frozen"] is True and report["bundle"].startswith(str(BUNDLE))


def test_frozen_console_describes_a_study_without_identifiers(tmp_path):
    proc = subprocess.run([str(BUNDLE / "medkd"), "info", str(SAMPLE), "--json"], env=clean_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["modality"] == "CR" and "JPEG 2000" in json.dumps(summary)
    assert "Anonymized" not in proc.stdout and "birth" not in proc.stdout.lower()


def test_frozen_console_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "not a study.dcm"
    bad.write_bytes(b"hello")
    proc = subprocess.run([str(BUNDLE / "medkd"), "info", str(bad)], env=clean_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
