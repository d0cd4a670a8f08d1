"""Exports as a reviewer receives them: files read back with the usual tools, not our own code.

Analyses come from the real engine on real samples with small random-weight models (conftest.py);
the PDF is read by inflating its page streams, the PNG with Pillow, the DICOM with pydicom.
"""
from __future__ import annotations

import json
import logging
import re
import zlib

import numpy as np
import pydicom
import pytest
from testdata import SAMPLES
from PIL import Image

from medkd_desktop.report import (
    DISCLAIMER,
    NotDicomError,
    ReportError,
    export_dicom_sc,
    export_json,
    export_pdf,
    export_png,
    side_by_side,
)
from medkd_desktop.report.png_export import FOOTER, HEADER, PAD
from medkd_desktop.report.render import GAP, method_overlays
from medkd_desktop.studies import open_study

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
METHOD = "gradcam++"  # as in conftest.py


def pdf_pages_text(data: bytes) -> tuple[int, list[str]]:
    """(page count, text of every inflated content stream); text from the Tj / TJ operators."""
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    texts = []
    for m in re.finditer(rb"/FlateDecode[^>]*>>\s*stream\r?\n", data):
        try:  # a decompressobj stops at the end of the deflate data: no need to trust "endstream"
            raw = zlib.decompressobj().decompress(data[m.end():])
        except zlib.error:
            continue
        parts = []
        for op in re.finditer(rb"\[(.*?)\]\s*TJ|\(((?:\\.|[^\\)])*)\)\s*Tj", raw, re.S):
            chunk = op.group(1) if op.group(1) is not None else b"(" + op.group(2) + b")"
            for s in re.findall(rb"\(((?:\\.|[^\\)])*)\)", chunk):
                parts.append(re.sub(rb"\\(.)", rb"\1", s).decode("cp1252", "replace"))
            parts.append("\n")
        texts.append("".join(parts))
    return pages, texts


def test_pdf_has_the_disclaimer_on_every_page_and_hides_identifiers(chest, registry, tmp_path):
    study, analysis = chest
    pdf = export_pdf(analysis, study, registry.pair("cxr-covid"), tmp_path / "report.pdf", METHOD)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages, texts = pdf_pages_text(data)
    page_texts = [t for t in texts if t.strip()]
    assert pages == 4 and len(page_texts) == pages  # summary, heatmaps, two model cards
    # matplotlib draws the em dash as a glyph object, not text: allow one non-text mark between the halves.
    head, tail = DISCLAIMER.split(" — ")
    disclaimer = re.compile(re.escape(head) + r"\s*\x00?\s*" + re.escape(tail))
    assert all(disclaimer.search(t) for t in page_texts)
    everything = "\n".join(page_texts)
    for needle in ("cxr-covid", analysis.teacher.predicted, "Pearson r", "0.912", "95% CI 0.880 to 0.940",
                   "augmentation groups", "Intended use"):
        assert needle in everything, needle
    assert "RG1" not in everything and "1940" not in everything  # name, ID, birth date stay hidden
    assert "chest_xray_cr_pa_nema" not in everything  # so does the file name
    shown = export_pdf(analysis, study, registry.pair("cxr-covid"), tmp_path / "ids.pdf", METHOD, show_identifiers=True)
    shown_text = "\n".join(pdf_pages_text(shown.read_bytes())[1])
    assert "CompressedSamples^RG1" in shown_text and "9RG1" in shown_text


def test_pdf_refuses_a_method_that_was_not_computed_without_leaving_a_file(chest, registry, tmp_path):
    study, analysis = chest
    with pytest.raises(ReportError, match="no scorecam heatmap"):
        export_pdf(analysis, study, registry.pair("cxr-covid"), tmp_path / "r.pdf", "scorecam")
    assert list(tmp_path.iterdir()) == []


def test_png_shows_both_overlays_unresampled_at_the_expected_size(histology, tmp_path):
    study, analysis = histology
    png = export_png(analysis, study, tmp_path / "overlay.png", METHOD)
    with Image.open(png) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    panel = 448  # a 224 px tile is enlarged to the 448 px minimum panel
    assert pixels.shape == (HEADER + panel + FOOTER, 2 * panel + GAP + 2 * PAD, 3)
    teacher, student = method_overlays(analysis, METHOD)
    np.testing.assert_array_equal(pixels[HEADER:HEADER + panel, PAD:PAD + panel], teacher)
    np.testing.assert_array_equal(pixels[HEADER:HEADER + panel, PAD + panel + GAP:PAD + 2 * panel + GAP], student)
    assert not np.array_equal(teacher, student)


def test_json_round_trips_the_analysis_without_identifiers(chest, tmp_path):
    study, analysis = chest
    path = export_json(analysis, study, tmp_path / "analysis.json")
    text = path.read_text(encoding="utf-8")
    back = json.loads(text)
    assert back["task"] == "cxr-covid" and back["disclaimer"] == DISCLAIMER
    for role in ("teacher", "student"):
        res = getattr(analysis, role)
        assert back[role]["probabilities"] == {c: float(p) for c, p in zip(res.classes, res.probabilities)}
        assert back[role]["predicted"] == res.predicted
    assert back["agreement"][METHOD] == analysis.agreement[METHOD].to_dict()
    assert back["study"]["metadata"]["study_uid"] == study.metadata.study_uid
    assert "source" not in back["study"]
    assert "RG1" not in text and "19400305" not in text


def test_dicom_sc_files_under_the_same_study_in_a_new_series(chest, tmp_path, caplog, capsys, recwarn):
    study, analysis = chest
    caplog.set_level(logging.DEBUG)
    out = export_dicom_sc(analysis, study, tmp_path / "overlay.dcm", METHOD)
    source = pydicom.dcmread(SAMPLES / "chest_xray_cr_pa_nema.dcm", stop_before_pixels=True)
    sc = pydicom.dcmread(out)
    assert sc.SOPClassUID == SECONDARY_CAPTURE
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID and sc.SOPInstanceUID != source.SOPInstanceUID
    assert sc.PatientName == source.PatientName and sc.PatientID == source.PatientID  # filed under the same patient
    assert "research use only" in sc.SeriesDescription.lower()
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3 and sc.BitsAllocated == 8
    assert list(sc.PatientOrientation) == list(source.PatientOrientation)
    expected = side_by_side(analysis, METHOD)
    assert expected.shape == (1024, 2 * 964 + GAP, 3)  # 1955 x 1841 reduced to a 1024 px panel
    np.testing.assert_array_equal(sc.pixel_array, expected)
    captured = capsys.readouterr()
    warned = " ".join(str(w.message) for w in recwarn)
    for secret in ("CompressedSamples", "RG1", "19400305"):
        assert secret not in caplog.text + captured.out + captured.err + warned


def _header_names(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "ReferringPhysicianName") if ds.get(k, "")]


def test_dicom_sc_of_a_series_uses_its_first_file(engine, tmp_path, caplog, recwarn):
    study = open_study(SAMPLES / "mr_brain_epi_mosaic_series")
    analysis = engine.analyze(study, "brain-tumor-mri", [METHOD])
    caplog.set_level(logging.DEBUG)
    recwarn.clear()
    sc = pydicom.dcmread(export_dicom_sc(analysis, study, tmp_path / "mr.dcm", METHOD))
    # The series' one-part patient name makes highdicom warn, quoting it: that must stay hidden.
    names = _header_names(next(p for p in sorted((SAMPLES / "mr_brain_epi_mosaic_series").iterdir())))
    assert names and all(n not in caplog.text + " ".join(str(w.message) for w in recwarn) for n in names)
    assert sc.StudyInstanceUID == study.metadata.study_uid
    assert sc.SeriesInstanceUID != study.metadata.series_uid
    assert sc.Rows == 448 and sc.Columns == 2 * 448 + GAP  # 64 x 64 slices enlarged to the minimum panel
    assert len(sc.PatientOrientation) == 2 and all(sc.PatientOrientation)  # derived from the slice orientation


def test_dicom_sc_is_refused_for_a_jpeg(histology, tmp_path):
    study, analysis = histology
    with pytest.raises(NotDicomError, match="only be made for a study opened from DICOM"):
        export_dicom_sc(analysis, study, tmp_path / "x.dcm", METHOD)
    assert not (tmp_path / "x.dcm").exists()


def test_unwritable_destination_is_a_plain_error(histology, tmp_path):
    study, analysis = histology
    with pytest.raises(ReportError, match="does not exist"):
        export_json(analysis, study, tmp_path / "missing" / "a.json")
