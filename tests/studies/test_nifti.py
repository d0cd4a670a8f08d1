"""NIfTI reader: real files open as axial radiological frames; orientation, errors, fMRI maps."""
from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from testdata import shared_path

from medkd_desktop.studies import (
    CorruptStudyError,
    StudyKind,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedStudyError,
    UnsupportedStudyError,
)
from medkd_desktop.studies.nifti import read_nifti

# (folder, file, T, Z, H = anterior-posterior extent, W = right-left extent, modality, maps)
REAL = [
    ("fmri4d", "brcdata_COBRE_0040071_3mm_functional_segment.nii.gz", 5, 61, 73, 61, "fMRI", {"mean", "std", "degree", "amplitude"}),
    ("fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii", 10, 15, 64, 64, "fMRI", {"mean", "std"}),
    ("fmri4d", "dcmqa_fMRI_MB_asc_25.nii", 2, 36, 86, 86, "fMRI", {"mean", "std"}),
    ("fmri4d", "nipy_functional.nii.gz", 20, 3, 21, 17, "fMRI", {"mean", "std"}),
    ("anat", "0050002_ABIDE_2mm_anatomical.nii.gz", 1, 91, 109, 91, "MR", set()),
    ("anat", "0050003_ABIDE_2mm_anatomical.nii.gz", 1, 91, 109, 91, "MR", set()),
]


@pytest.mark.parametrize("folder,name,t,z,h,w,modality,maps", REAL, ids=[r[1] for r in REAL])
def test_real_files_open_with_expected_geometry(folder, name, t, z, h, w, modality, maps):
    study = read_nifti(shared_path("nifti", folder, name))
    assert study.kind is StudyKind.NIFTI
    assert study.pixels.shape == (t, z, h, w) and study.pixels.dtype == np.float32
    assert study.modality == modality
    assert set(study.maps) == maps
    assert study.orientation.startswith("axial, radiological")
    assert study.pixel_spacing is not None and study.slice_spacing is not None
    assert np.all(np.isfinite(study.pixels))
    # one display window for every frame, so slices and time points compare
    assert np.all(study.windows == study.windows[0, 0]) and study.windows[0, 0, 1] > 0
    assert study.frame().display().std() > 0.05  # a visible image, not a flat frame


def test_spacing_follows_the_reoriented_axes():
    study = read_nifti(shared_path("nifti", "fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii"))
    assert study.pixel_spacing == pytest.approx((3.75, 3.75))
    assert study.slice_spacing == pytest.approx(5.0)
    assert study.metadata.manufacturer == "GE"  # from the dcm2niix JSON sidecar
    nipy = read_nifti(shared_path("nifti", "fmri4d", "nipy_functional.nii.gz"))
    assert nipy.pixel_spacing == pytest.approx((4.0, 4.0)) and nipy.slice_spacing == pytest.approx(8.0)


def test_pixels_sit_where_the_affine_says_anterior_top_patient_right_left():
    """Derived from the file's own affine: LAS 2 mm MNI, x = 90 - 2i, y = -126 + 2j."""
    path = shared_path("nifti", "anat", "0050002_ABIDE_2mm_anatomical.nii.gz")
    raw = np.asarray(nib.load(path).dataobj).astype(np.float32)
    study = read_nifti(path)
    # column c: x = 90 - 2c (column 0 = patient's far right); row r: y = 90 - 2r (row 0 = front)
    k = 45
    expected = np.empty((109, 91), np.float32)
    for r in range(109):
        j = 108 - r  # y = -126 + 2j = 90 - 2r
        for c in range(91):
            expected[r, c] = raw[c, j, k]  # i = c  -> x = 90 - 2c
    assert np.array_equal(study.pixels[0, k], expected)


def _restore(img: nib.Nifti1Image, codes: tuple[str, str, str]) -> nib.Nifti1Image:
    """The same physical image, with voxels stored along *codes* (data and affine changed)."""
    current = nib.orientations.io_orientation(img.affine)
    target = nib.orientations.axcodes2ornt(codes)
    out = img.as_reoriented(nib.orientations.ornt_transform(current, target))
    assert nib.aff2axcodes(out.affine) == codes
    return out


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("P", "I", "R"), ("S", "R", "A")])
@pytest.mark.parametrize(
    "rel", [("fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii"), ("anat", "0050002_ABIDE_2mm_anatomical.nii.gz")], ids=["4d", "3d"]
)
def test_same_image_stored_differently_displays_identically(tmp_path, rel, codes):
    path = shared_path("nifti", *rel)
    original = read_nifti(path)
    moved = tmp_path / ("restored_" + "".join(codes) + ".nii.gz")
    nib.save(_restore(nib.load(path), codes), moved)
    again = read_nifti(moved)
    assert np.array_equal(again.pixels, original.pixels)
    assert again.pixel_spacing == pytest.approx(original.pixel_spacing)
    assert again.slice_spacing == pytest.approx(original.slice_spacing)


@pytest.mark.parametrize("codes", [("R", "A", "S"), ("L", "P", "S"), ("P", "I", "R")])
def test_bright_voxel_anterior_right_appears_top_left(tmp_path, codes):
    ras = np.zeros((20, 20, 10), np.float32)
    ras[17, 16, 4] = 1000.0  # x index high = patient right, y index high = anterior (RAS+)
    img = _restore(nib.Nifti1Image(ras, np.diag([2.0, 2.0, 3.0, 1.0])), codes)
    path = tmp_path / "dot.nii"
    nib.save(img, path)
    study = read_nifti(path)
    assert study.pixels.shape == (1, 10, 20, 20)
    z, row, col = np.argwhere(study.pixels[0] == 1000.0)[0]
    assert z == 4
    assert row < 10 and col < 10, (row, col)  # top-left quadrant
    assert (row, col) == (3, 2)


def test_abide_degree_map_opens_as_fmri_input_map():
    path = shared_path("fmri-asd", "degree", "NYU_0050952_cc200_degree.nii.gz")
    study = read_nifti(path)
    assert study.modality == "fMRI" and study.n_volumes == 1
    assert set(study.maps) == {"input", "degree"}  # the header's description names the map
    assert study.maps["degree"] is study.maps["input"]
    ref = nib.as_closest_canonical(nib.load(path))
    assert np.array_equal(study.maps["input"].data, ref.get_fdata(dtype=np.float32))
    assert np.allclose(study.maps["input"].affine, ref.affine)


def test_amplitude_map_is_named_from_its_header_and_an_unnamed_map_stays_input(tmp_path):
    path = shared_path("fmri-asd", "amplitude", "NYU_0050952_cc200_std.nii.gz")
    assert set(read_nifti(path).maps) == {"input", "amplitude"}
    img = nib.load(path)
    img.header["descrip"] = b"exported by some tool"
    unnamed = tmp_path / "map.nii.gz"
    nib.save(nib.Nifti1Image(img.get_fdata(dtype=np.float32), img.affine, img.header), unnamed)
    assert set(read_nifti(unnamed).maps) == {"input"}


def test_short_series_on_the_atlas_grid_warns_about_connectivity():
    study = read_nifti(shared_path("nifti", "fmri4d", "brcdata_COBRE_0040071_3mm_functional_segment.nii.gz"))
    assert "degree" in study.maps
    assert any("time points" in w for w in study.warnings)


def test_oblique_acquisition_is_flagged():
    study = read_nifti(shared_path("nifti", "fmri4d", "dcmqa_fMRI_MB_asc_25.nii"))
    assert "oblique" in study.orientation and study.warnings


def test_nan_voxels_become_zero_with_a_warning(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    data[1, 2, 0] = np.nan
    data[0, 0, 2] = np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    study = read_nifti(path)
    assert np.all(np.isfinite(study.pixels))
    assert any("2 voxels" in w for w in study.warnings)


def test_scale_factors_are_applied(tmp_path):
    stored = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(stored, np.eye(4))
    img.header.set_slope_inter(2.0, -10.0)
    img.set_data_dtype(np.int16)
    path = tmp_path / "scaled.nii"
    nib.save(img, path)
    study = read_nifti(path)
    assert study.pixels.min() == pytest.approx(-10.0) and study.pixels.max() == pytest.approx(2.0 * 59 - 10.0)


def test_huge_declared_size_is_refused_before_reading(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 1024, 10))
    hdr.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as fh:  # header only: reading the voxels would report truncation
        hdr.write_to(fh)
        fh.write(b"\0" * 4)
    with pytest.raises(StudyTooLargeError):
        read_nifti(path)


def test_truncated_and_corrupt_files_raise_typed_errors(tmp_path):
    gz = shared_path("nifti", "fmri4d", "nipy_functional.nii.gz").read_bytes()
    raw = shared_path("nifti", "fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii").read_bytes()
    cases = {
        "half.nii.gz": (gz[: len(gz) // 2], TruncatedStudyError),
        "header_only.nii.gz": (gz[:150], TruncatedStudyError),
        "half.nii": (raw[: len(raw) // 2], TruncatedStudyError),
        "garbage.nii": (b"not an image at all " * 40, UnsupportedStudyError),
        "empty.nii.gz": (b"", CorruptStudyError),
    }
    damaged = bytearray(gz)
    damaged[len(gz) // 2 : len(gz) // 2 + 64] = bytes(64)  # deflate data zeroed: gzip CRC fails
    cases["crc.nii.gz"] = (bytes(damaged), CorruptStudyError)
    for name, (content, error) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(error) as info:
            read_nifti(path)
        assert str(info.value) and "\n" not in str(info.value), name
    with pytest.raises(StudyLoadError):
        read_nifti(tmp_path / "missing.nii.gz")


def test_file_without_nifti_name_opens_from_its_content(tmp_path):
    src = shared_path("nifti", "fmri4d", "nipy_functional.nii.gz")
    plain = tmp_path / "IM0001"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    assert np.array_equal(read_nifti(plain).pixels, read_nifti(src).pixels)


def test_dimensions_two_and_five(tmp_path):
    two = tmp_path / "two.nii"
    nib.save(nib.Nifti1Image(np.ones((6, 7), np.float32), np.eye(4)), two)
    assert read_nifti(two).pixels.shape == (1, 1, 7, 6)
    singleton = tmp_path / "singleton5d.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 3, 1), np.float32), np.eye(4)), singleton)
    assert read_nifti(singleton).pixels.shape == (3, 6, 5, 4)
    vector = tmp_path / "vector.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1, 3), np.float32), np.eye(4)), vector)
    with pytest.raises(UnsupportedStudyError):
        read_nifti(vector)


def test_unusable_affine_shows_data_as_stored_with_a_warning(tmp_path):
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4))
    img.set_sform(np.diag([0.0, 0.0, 0.0, 1.0]), code=1)
    img.set_qform(None, code=0)
    path = tmp_path / "noaffine.nii"
    nib.save(img, path)
    study = read_nifti(path)
    assert study.orientation.startswith("as stored") and study.warnings


def test_sidecar_identifiers_never_reach_the_study(tmp_path):
    src = shared_path("nifti", "fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii")
    shutil.copy(src, tmp_path / "scan.nii")
    info = json.loads(src.with_suffix(".json").read_text())
    info.update({"PatientName": "Doe^Jane", "PatientID": "ID-12345", "PatientBirthDate": "19700101"})
    (tmp_path / "scan.json").write_text(json.dumps(info))
    study = read_nifti(tmp_path / "scan.nii")
    text = json.dumps(study.summary()) + repr(study)
    assert study.metadata.manufacturer == "GE"
    for secret in ("Doe", "ID-12345", "19700101"):
        assert secret not in text
