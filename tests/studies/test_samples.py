"""The bundled sample studies: each one documented (origin, licence, attribution) and usable.

Why: samples ship to hospitals inside the installer, so an undocumented file is a licence
problem, and a sample that does not open is a broken demo. DICOM and NIfTI samples are
opened by the `open_study` tests; here only plain images are opened.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from testdata import SAMPLES

from medkd_desktop.studies.raster import read_raster

SOURCES = SAMPLES / "SOURCES.md"
_ROW = re.compile(r"^\|\s*`([^`]+)`[^|]*\|(.*)$")


def _table() -> dict[str, list[str]]:
    """File name (a folder ends with '/') -> the other cells of its row in SOURCES.md."""
    rows = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line.strip())
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).strip().strip("|").split("|")]
    return rows


def _sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p != SOURCES)


def test_every_listed_sample_exists_and_is_documented():
    table = _table()
    assert len(table) >= 6
    for name, cells in table.items():
        path = SAMPLES / name
        assert path.is_dir() if name.endswith("/") else path.is_file(), f"{name} is listed but missing"
        if name.endswith("/"):
            assert any(path.iterdir()), f"{name} is empty"
        origin, licence, attribution, shows = cells[:4]
        assert origin and licence and attribution and shows, f"{name}: a column is empty"
        assert "brain-tumor-mri" not in origin, "brain-tumor-mri images have an unverified licence"


def test_no_sample_file_is_unlisted():
    table = _table()
    folders = [SAMPLES / n.rstrip("/") for n in table if n.endswith("/")]
    for f in _sample_files():
        listed = f.relative_to(SAMPLES).as_posix() in table or any(d in f.parents for d in folders)
        assert listed, f"{f.relative_to(SAMPLES)} is not listed in SOURCES.md"


def test_samples_stay_small():
    total = sum(f.stat().st_size for f in _sample_files())
    assert total < 4_000_000, f"samples take {total / 1e6:.1f} MB"


def test_every_study_kind_has_a_sample():
    names = list(_table())
    assert any(n.endswith(".dcm") for n in names), "a single DICOM file"
    assert any(n.endswith("/") for n in names), "a DICOM series folder"
    assert any(n.endswith((".nii", ".nii.gz")) for n in names), "an fMRI map"
    assert any(n.endswith((".jpg", ".png", ".tif")) for n in names), "a plain image"


_EXPECTED_MODALITY = {"chest_xray": "OT", "histology": "histology", "dermoscopy": "dermoscopy"}
_IMAGES = [n for n in (_table() if SOURCES.exists() else {}) if n.endswith((".jpg", ".jpeg", ".png", ".tif", ".tiff"))]


@pytest.mark.parametrize("name", _IMAGES)
def test_image_samples_open_with_the_right_modality_hint(name):
    study = read_raster(SAMPLES / name)
    expected = next(m for prefix, m in _EXPECTED_MODALITY.items() if name.startswith(prefix))
    assert study.modality == expected
    assert study.is_rgb == (expected != "OT")
    shown = study.frame().display()
    assert 0.0 <= shown.min() and shown.max() <= 1.0 and shown.std() > 0.05
