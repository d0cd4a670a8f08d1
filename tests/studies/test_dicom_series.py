"""DICOM series folders on real data: grouping, sorting along the normal, 4-D split, oddities."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from testdata import shared_path

from medkd_desktop.studies.dicom_file import read_dicom_file
from medkd_desktop.studies.dicom_series import list_dicom_series, read_dicom_folder
from medkd_desktop.studies.errors import EmptySeriesError, StudyLoadError, TruncatedStudyError
from medkd_desktop.studies.study import StudyKind

GE = "ge_mr_epi_fmri_nih_15sl_x10"
CANON = "canon_mr_dti_ax_vol1_40sl"
BABY = "siemens_mr_memprage_babymri_6sl"
MOSAIC = "siemens_mr_epi_mosaic_2vol"

EXPECTED = {  # folder -> (T, Z, H, W)
    GE: (10, 15, 64, 64),  # 150 slices = 15 positions x 10 time points (+ a README text file)
    CANON: (1, 40, 64, 64),
    BABY: (1, 6, 256, 256),
    MOSAIC: (2, 35, 64, 64),  # two mosaic files, one volume each
}


def series(name: str) -> Path:
    return shared_path("dicom", "series", name)


def _headers(folder: Path) -> dict[str, pydicom.Dataset]:
    """SOP Instance UID -> header, for checking the order the reader chose."""
    out = {}
    for f in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        out[ds.SOPInstanceUID] = ds
    return out


def _projected(ds: pydicom.Dataset) -> float:
    iop = np.array(ds.ImageOrientationPatient, float)
    return float(np.array(ds.ImagePositionPatient, float) @ np.cross(iop[:3], iop[3:]))


@pytest.fixture(scope="module")
def ge_study():
    return read_dicom_folder(series(GE))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_series_opens_with_expected_shape(name, ge_study):
    study = ge_study if name == GE else read_dicom_folder(series(name))
    assert study.kind is StudyKind.DICOM_SERIES
    assert study.pixels.shape == EXPECTED[name]
    assert study.modality == "MR"
    assert study.windows.shape == EXPECTED[name][:2] + (2,) and np.isfinite(study.windows).all()
    assert study.series == []  # one series per folder
    assert study.pixel_spacing is not None and study.slice_spacing and study.slice_spacing > 0
    shown = study.frame().display()
    assert shown.std() > 0.05


def test_ge_fmri_splits_into_ten_volumes_of_fifteen_slices(ge_study):
    study = ge_study
    headers = _headers(series(GE))
    uids = study.metadata.sop_uids
    assert len(uids) == 150 and len(set(uids)) == 150
    grid = [[headers[u] for u in uids[t * 15:(t + 1) * 15]] for t in range(10)]
    positions = np.array([[_projected(ds) for ds in row] for row in grid])
    assert np.all(np.diff(positions, axis=1) > 0)  # slices run along the normal...
    assert np.allclose(positions, positions[0])  # ...and every volume has the same 15 positions
    instances = np.array([[int(ds.InstanceNumber) for ds in row] for row in grid])
    assert np.all(np.diff(instances[:, 0]) > 0)  # time points in acquisition order
    assert study.slice_spacing == pytest.approx(5.0)
    # the 151st file is README-Series.txt, a text dump of a header: skipped and said so
    assert (series(GE) / "README-Series.txt").exists()
    assert any("1 file(s)" in w and "not DICOM" in w for w in study.warnings)


def test_ge_volume_slices_are_the_files_pixels(ge_study):
    headers = _headers(series(GE))
    by_uid = {ds.SOPInstanceUID: f for f in series(GE).glob("*.dcm")
              for ds in [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])]}
    for t, z in ((0, 0), (4, 7), (9, 14)):
        uid = ge_study.metadata.sop_uids[t * 15 + z]
        single = read_dicom_file(by_uid[uid])
        np.testing.assert_array_equal(ge_study.pixels[t, z], single.pixels[0, 0])
        assert tuple(ge_study.windows[t, z]) == (float(headers[uid].WindowCenter), float(headers[uid].WindowWidth))


def test_canon_rotated_series_is_sorted_along_the_normal():
    study = read_dicom_folder(series(CANON))
    headers = _headers(series(CANON))
    positions = [_projected(headers[u]) for u in study.metadata.sop_uids]
    assert len(positions) == 40 and np.all(np.diff(positions) > 0)
    assert study.slice_spacing == pytest.approx(3.0)
    assert study.orientation.startswith("axial") and "rotated 30°" in study.orientation


@pytest.mark.parametrize("name", [CANON, BABY])
def test_series_volume_matches_simpleitk(name):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series(name))))
    ref = sitk.GetArrayFromImage(reader.Execute()).astype(np.float32)
    np.testing.assert_array_equal(read_dicom_folder(series(name)).pixels[0], ref)


def test_mosaic_series_gives_two_volumes_of_the_files_slices():
    study = read_dicom_folder(series(MOSAIC))
    files = sorted(series(MOSAIC).iterdir(), key=lambda f: int(pydicom.dcmread(f, stop_before_pixels=True).AcquisitionNumber))
    for t, f in enumerate(files):
        np.testing.assert_array_equal(study.pixels[t], read_dicom_file(f).pixels[0])
    assert not np.array_equal(study.pixels[0], study.pixels[1])  # two acquisitions, not one twice
    assert study.slice_spacing == pytest.approx(3.6)


# --------------------------------------------------------------------------- folders built from real files


def _copy(name: str, dst: Path, pattern: str = "*") -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(series(name).glob(pattern)):
        shutil.copy(f, dst / f.name)
        out.append(dst / f.name)
    return out


def test_folder_with_two_series_lists_both_and_opens_the_largest(tmp_path):
    _copy(CANON, tmp_path)
    _copy(BABY, tmp_path)
    (tmp_path / "DICOMDIR").write_bytes(b"not read")  # an index file is ignored, not counted
    listed = list_dicom_series(tmp_path)
    assert [s.n_files for s in listed] == [40, 6]
    assert listed[0].series_description == "DTI AX 30d" and listed[0].series_number == 8006
    study = read_dicom_folder(tmp_path)
    assert study.pixels.shape == (1, 40, 64, 64)
    assert [s.series_uid for s in study.series] == [listed[1].series_uid]
    assert any("2 series" in w for w in study.warnings)
    assert not any("not DICOM" in w for w in study.warnings)
    other = read_dicom_folder(tmp_path, series_uid=listed[1].series_uid)
    assert other.pixels.shape == (1, 6, 256, 256)
    assert [s.series_uid for s in other.series] == [listed[0].series_uid]
    with pytest.raises(EmptySeriesError):
        read_dicom_folder(tmp_path, series_uid="1.2.3.4")


def test_duplicate_and_missing_positions_survive_with_warnings(tmp_path):
    files = _copy(CANON, tmp_path)
    for f in files[10:13]:  # three slices missing in the middle
        f.unlink()
    shutil.copy(files[20], tmp_path / "copy_of_slice_21.dcm")  # the same slice twice
    study = read_dicom_folder(tmp_path)
    assert study.pixels.shape == (1, 38, 64, 64)
    text = " ".join(study.warnings)
    assert "more than once" in text
    assert "About 3 slice position(s) are missing" in text
    np.testing.assert_array_equal(study.pixels[0, 17], study.pixels[0, 18])  # the duplicate, kept


def test_image_of_a_different_size_is_left_out(tmp_path):
    _copy(CANON, tmp_path)
    canon_uid = pydicom.dcmread(tmp_path / "0001.dcm", stop_before_pixels=True).SeriesInstanceUID
    stray = pydicom.dcmread(next(series(BABY).iterdir()))  # a 256 x 256 slice relabelled into the series
    stray.SeriesInstanceUID = canon_uid
    stray.save_as(tmp_path / "stray.dcm")
    study = read_dicom_folder(tmp_path)
    assert study.pixels.shape == (1, 40, 64, 64)
    assert any("different image size" in w for w in study.warnings)


def test_truncated_member_is_left_out_but_an_all_truncated_folder_fails_typed(tmp_path):
    files = _copy(CANON, tmp_path / "one_bad")
    files[5].write_bytes(files[5].read_bytes()[:-4000])
    study = read_dicom_folder(tmp_path / "one_bad")
    assert study.n_slices == 39
    assert any("could not be decoded" in w for w in study.warnings)
    for f in _copy(BABY, tmp_path / "all_bad"):
        f.write_bytes(f.read_bytes()[:-4000])
    with pytest.raises(TruncatedStudyError):
        read_dicom_folder(tmp_path / "all_bad")


def test_empty_and_non_dicom_folders_raise_empty_series(tmp_path):
    with pytest.raises(EmptySeriesError):
        read_dicom_folder(tmp_path)
    shutil.copy(series(GE) / "README-Series.txt", tmp_path)
    shutil.copy(pydicom.data.get_testdata_file("test-SR.dcm"), tmp_path)  # a real report, no pixels
    with pytest.raises(EmptySeriesError):
        read_dicom_folder(tmp_path)
    with pytest.raises(EmptySeriesError):
        list_dicom_series(tmp_path)
    with pytest.raises(StudyLoadError):
        read_dicom_folder(tmp_path / "absent")


def test_reports_among_images_are_counted(tmp_path):
    _copy(BABY, tmp_path)
    shutil.copy(pydicom.data.get_testdata_file("test-SR.dcm"), tmp_path)
    study = read_dicom_folder(tmp_path)
    assert study.n_slices == 6
    assert any("without an image" in w for w in study.warnings)


# --------------------------------------------------------------------------- performance & privacy


def test_each_file_is_parsed_once_and_150_files_open_quickly(monkeypatch):
    calls: list[str] = []
    real = pydicom.dcmread

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    start = time.perf_counter()
    study = read_dicom_folder(series(GE))
    elapsed = time.perf_counter() - start
    assert study.n_frames == 150
    assert len(calls) == 151 and len(set(calls)) == 151  # 150 images + the README, once each
    assert elapsed < 10.0, f"150-file series took {elapsed:.1f} s"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_identifier_in_repr_summary_or_logs(name, caplog):
    secrets = set()
    for ds in list(_headers(series(name)).values())[:3]:
        for tag in ("PatientName", "PatientID", "PatientBirthDate"):
            value = str(ds.get(tag, "") or "").strip()
            secrets |= {p for p in {value, *value.split("^")} if len(p) >= 4}
    assert secrets
    caplog.set_level(logging.DEBUG)
    study = read_dicom_folder(series(name))
    visible = repr(study) + json.dumps(study.summary()) + repr(study.identifiers) + caplog.text
    for secret in secrets:
        assert secret not in visible
    assert study.identifiers.patient_id  # kept for the user to reveal


def test_multiframe_files_of_one_series_become_time_points(tmp_path):
    """Two Enhanced MR files (one SMS fMRI volume each), named so file order is backwards."""
    src = shared_path("dicom", "misc", "enhanced_multiframe")
    shutil.copy(src / "siemens_xa10_rest_sms_6_2.dcm", tmp_path / "a.dcm")
    shutil.copy(src / "siemens_xa10_rest_sms_6_1.dcm", tmp_path / "b.dcm")
    study = read_dicom_folder(tmp_path)
    assert study.pixels.shape == (2, 6, 64, 64)
    np.testing.assert_array_equal(study.pixels[0], read_dicom_file(src / "siemens_xa10_rest_sms_6_1.dcm").pixels[0])
    np.testing.assert_array_equal(study.pixels[1], read_dicom_file(src / "siemens_xa10_rest_sms_6_2.dcm").pixels[0])
