"""`open_study` over every real file: a Study or a typed error, never a crash or a leak."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from testdata import SHARED_DATA, shared_path

from medkd_desktop.studies import StudyLoadError, UnsupportedStudyError, open_study


def _all_files(sub: str) -> list[Path]:
    root = SHARED_DATA / sub
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


ALL_FILES = _all_files("dicom") + _all_files("nifti")
SERIES_DIRS = sorted(p for p in (SHARED_DATA / "dicom" / "series").glob("*") if p.is_dir()) if SHARED_DATA.exists() else []


@pytest.mark.skipif(not ALL_FILES, reason=f"real data not found at {SHARED_DATA}")
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(SHARED_DATA)))
def test_every_real_file_opens_or_fails_typed(path):
    try:
        study = open_study(path)
    except StudyLoadError as exc:
        assert str(exc) and "\n" not in str(exc)
        if path.suffix in (".md", ".json"):
            assert isinstance(exc, UnsupportedStudyError)
        return
    assert path.suffix not in (".md", ".json"), "a text file must not open as a study"
    assert study.n_frames >= 1
    assert study.pixels.dtype == np.float32 and np.isfinite(study.pixels).all()
    shown = study.frame().display()
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    json.dumps(study.summary())  # JSON-ready


def test_missing_path_and_empty_folder_are_typed_errors(tmp_path):
    with pytest.raises(StudyLoadError, match="does not exist"):
        open_study(tmp_path / "nope.dcm")
    with pytest.raises(StudyLoadError):
        open_study(tmp_path)


def _identifiers(path: Path) -> set[str]:
    """Patient name / ID / birth date strings long enough to be meaningful, read with pydicom."""
    import pydicom

    files = [path] if path.is_file() else sorted(path.iterdir())[:3]
    found: set[str] = set()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:
            continue
        uids = " ".join(str(ds.get(t, "")) for t in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        for tag in ("PatientName", "PatientID", "PatientBirthDate"):
            value = str(ds.get(tag, "") or "").strip()
            for part in {value, *value.split("^")}:
                if len(part) >= 4 and part not in uids:
                    found.add(part)
    return found


PRIVACY_CASES = [p for p in _all_files("dicom") if p.suffix != ".md" and "series" not in p.parts] + SERIES_DIRS


@pytest.mark.skipif(not PRIVACY_CASES, reason=f"real data not found at {SHARED_DATA}")
@pytest.mark.parametrize("path", PRIVACY_CASES, ids=lambda p: str(p.relative_to(SHARED_DATA)))
def test_no_patient_identifier_reaches_logs_or_summary(path, caplog):
    secrets = _identifiers(path)
    if not secrets:
        pytest.skip("file carries no patient identifiers")
    caplog.set_level(logging.DEBUG)
    try:
        study = open_study(path)
        visible = repr(study) + json.dumps(study.summary()) + repr(study.identifiers) + repr(study.metadata)
    except StudyLoadError as exc:
        visible = str(exc) + exc.detail
    visible += caplog.text
    for secret in secrets:
        assert secret not in visible


def test_identifiers_are_kept_for_the_user_to_reveal():
    study = open_study(shared_path("dicom/chest/cr_chest_pa_nema_RG1_J2KI.dcm"))
    assert "RG1" in study.identifiers.name  # available on request (the GUI's toggle) ...
    assert "RG1" not in repr(study.identifiers)  # ... but masked wherever it could be logged
