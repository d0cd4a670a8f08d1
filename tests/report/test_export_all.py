"""All exports of one analysis into a folder: an optional export that fails sinks no other.

Regression: a DICOM file without File Meta header opened and was analysed, but the Secondary
Capture export re-read the original strictly and failed, and `medkd analyze` then exited 2 with
no JSON although the PNG and PDF had been written.
"""
from __future__ import annotations

import json
import os

import pydicom
import pytest

from medkd_desktop.report import ExportResult, export_analysis, export_dicom_sc
from medkd_desktop.studies import StudyKind

METHOD = "gradcam++"  # as in conftest.py
STEM = "gradcampp"


def test_a_dicom_without_file_meta_still_gets_its_secondary_capture(bare_mr, small_mr, tmp_path):
    study, analysis = bare_mr
    assert study.kind is StudyKind.DICOM
    assert pydicom.dcmread(study.source, force=True).file_meta.get("TransferSyntaxUID") is None
    sc = pydicom.dcmread(export_dicom_sc(analysis, study, tmp_path / "sc.dcm", METHOD))
    source = pydicom.dcmread(small_mr[0].source, stop_before_pixels=True)
    assert sc.StudyInstanceUID == source.StudyInstanceUID  # filed under the original study
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID


def test_all_exports_of_a_dicom_without_file_meta(bare_mr, registry, tmp_path):
    study, analysis = bare_mr
    result = export_analysis(analysis, study, registry.pair("brain-tumor-mri"), tmp_path, METHOD)
    assert result.errors == {} and result.ok
    assert set(result.files) == {"png", "pdf", "dicom", "json"}
    assert all(os.path.isfile(p) for p in result.files.values())
    back = json.loads((tmp_path / "analysis.json").read_text())
    assert back["files"] == result.files and back["errors"] == {}
    assert back["overlay"] == {"colormap": "inferno", "opacity": 0.45, "threshold": 0.0}


def test_a_failed_export_is_reported_and_the_others_are_written(small_mr, registry, tmp_path):
    study, analysis = small_mr
    (tmp_path / f"overlay_{STEM}.dcm").mkdir()  # the SC's file name is taken by a folder
    result = export_analysis(analysis, study, registry.pair("brain-tumor-mri"), tmp_path, METHOD)
    assert isinstance(result, ExportResult) and not result.ok
    assert set(result.errors) == {"dicom"}
    assert "could not be written" in result.errors["dicom"] and str(tmp_path) not in result.errors["dicom"]
    assert set(result.files) == {"png", "pdf", "json"}
    back = json.loads((tmp_path / "analysis.json").read_text())
    assert back["errors"] == result.errors and "dicom" not in back["files"]
    assert back["task"] == "brain-tumor-mri"  # the analysis itself is all there
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["analysis.json", "report.pdf", f"overlay_{STEM}.png", f"overlay_{STEM}.dcm"])  # nothing half-written


def test_no_pdf_and_a_non_dicom_study_write_only_what_applies(histology, registry, tmp_path):
    study, analysis = histology
    result = export_analysis(analysis, study, registry.pair("histo-lc25000"), tmp_path, METHOD, pdf=False)
    assert result.errors == {} and set(result.files) == {"png", "json"}


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores file permissions")
def test_an_unwritable_folder_fails_every_export_without_raising(histology, registry, tmp_path):
    study, analysis = histology
    tmp_path.chmod(0o500)
    try:
        result = export_analysis(analysis, study, registry.pair("histo-lc25000"), tmp_path, METHOD)
    finally:
        tmp_path.chmod(0o700)
    assert result.files == {} and set(result.errors) == {"png", "pdf", "json"}
