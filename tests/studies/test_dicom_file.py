"""Single DICOM files (single-frame, Enhanced multi-frame, US palette, Siemens mosaic) on real data.

Expected shapes were read off the files with pydicom and SimpleITK (frames, rows,
columns, samples) and, for multi-frame files, from their functional groups.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from testdata import SHARED_DATA, shared_path, strip_preamble_and_meta
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from medkd_desktop.studies.dicom_file import read_dicom_file
from medkd_desktop.studies.errors import (
    CorruptStudyError,
    MissingCodecError,
    StudyLoadError,
    TruncatedStudyError,
    UnsupportedStudyError,
)
from medkd_desktop.studies.study import StudyKind

D = "dicom"

# relative path -> (T, Z, H, W[, 3]), modality hint
EXPECTED: dict[str, tuple[tuple[int, ...], str]] = {
    "chest/cr_chest_pa_nema_RG1_J2KI.dcm": ((1, 1, 1955, 1841), "CR"),
    "chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm": ((1, 1, 1024, 1024), "CR"),
    "chest/dx_chest_nih_gcp_no_finding.dcm": ((1, 1, 1024, 1024), "DX"),
    "misc/compressed/693_J2KR.dcm": ((1, 1, 512, 512), "CT"),
    "misc/compressed/693_UNCR.dcm": ((1, 1, 512, 512), "CT"),
    "misc/compressed/MR2_J2KI.dcm": ((1, 1, 1024, 1024), "MR"),
    "misc/compressed/MR2_J2KR.dcm": ((1, 1, 1024, 1024), "MR"),
    "misc/compressed/MR2_UNCR.dcm": ((1, 1, 1024, 1024), "MR"),
    "misc/compressed/dwv_nema-ct1_j2ki.dcm": ((1, 1, 512, 512), "CT"),
    "misc/compressed/dwv_nema-ct1_jpll.dcm": ((1, 1, 512, 512), "CT"),
    "misc/compressed/dwv_osirix-cerebrix.dcm": ((1, 1, 224, 176), "OT"),  # Modality SC
    "misc/compressed/explicit_VR-UN.dcm": ((1, 1, 512, 512), "CT"),
    "misc/enhanced_multiframe/OBXXXX1A_rle_2frame.dcm": ((1, 2, 600, 800, 3), "US"),
    "misc/enhanced_multiframe/dwv_multiframe-test1.dcm": ((1, 16, 256, 256), "MR"),
    "misc/enhanced_multiframe/eCT_Supplemental.dcm": ((1, 2, 512, 512), "CT"),
    "misc/enhanced_multiframe/emri_small.dcm": ((1, 10, 64, 64), "MR"),
    "misc/enhanced_multiframe/emri_small_RLE.dcm": ((1, 10, 64, 64), "MR"),
    "misc/enhanced_multiframe/emri_small_big_endian.dcm": ((1, 10, 64, 64), "MR"),
    "misc/enhanced_multiframe/emri_small_jpeg_2k_lossless.dcm": ((1, 10, 64, 64), "MR"),
    "misc/enhanced_multiframe/emri_small_jpeg_ls_lossless.dcm": ((1, 10, 64, 64), "MR"),
    # 64 frames = 32 stack positions x 2 image types (dimension index values (2,0) and (5,18))
    "misc/enhanced_multiframe/philips_IM_0027_fMAP.dcm": ((2, 32, 64, 64), "MR"),
    "misc/enhanced_multiframe/siemens_xa10_rest_sms_6_1.dcm": ((1, 6, 64, 64), "MR"),
    "misc/enhanced_multiframe/siemens_xa10_rest_sms_6_2.dcm": ((1, 6, 64, 64), "MR"),
    "misc/enhanced_multiframe/siemens_xa30_epi_sag_phantom_0063.dcm": ((1, 63, 86, 86), "MR"),
    "misc/single/MR-SIEMENS-DICOM-WithOverlays.dcm": ((1, 1, 484, 484), "MR"),
    "misc/single/dwv_dicompyler-ct.0.dcm": ((1, 1, 512, 512), "CT"),
    "misc/single/dwv_osirix-goudurix.dcm": ((1, 1, 512, 512), "CT"),
    "misc/single/pydicom_CT_small.dcm": ((1, 1, 128, 128), "CT"),
    "misc/single/pydicom_JPEG-lossy.dcm": ((1, 1, 1024, 256), "NM"),  # pylibjpeg rejects it; GDCM decodes
    "misc/single/pydicom_JPEG2000.dcm": ((1, 1, 1024, 256), "NM"),
    "misc/single/pydicom_MR_small.dcm": ((1, 1, 64, 64), "MR"),
    "misc/single/pydicom_MR_small_RLE.dcm": ((1, 1, 64, 64), "MR"),
    "misc/single/pydicom_MR_small_bigendian.dcm": ((1, 1, 64, 64), "MR"),
    "misc/single/pydicom_MR_small_implicit.dcm": ((1, 1, 64, 64), "MR"),
    "misc/single/pydicom_MR_small_jp2klossless.dcm": ((1, 1, 64, 64), "MR"),
    "misc/single/pydicom_MR_small_jpeg_ls_lossless.dcm": ((1, 1, 64, 64), "MR"),
    **{f"misc/transfer_syntax_siemens_mosaic/{i}.dcm": ((1, 35, 64, 64), "MR") for i in range(1, 10)},
}

# the files inside series folders, opened one at a time: per-file (T, Z, H, W)
SERIES_MEMBERS = {
    "canon_mr_dti_ax_vol1_40sl": (40, (1, 1, 64, 64)),
    "ge_mr_epi_fmri_nih_15sl_x10": (150, (1, 1, 64, 64)),
    "siemens_mr_memprage_babymri_6sl": (6, (1, 1, 256, 256)),
    "siemens_mr_epi_mosaic_2vol": (2, (1, 35, 64, 64)),  # each file is a 35-slice mosaic
}
TEXT_FILES = ["chest/README.md", "series/ge_mr_epi_fmri_nih_15sl_x10/README-Series.txt"]


def dcm(rel: str) -> Path:
    return shared_path(D, *rel.split("/"))


def _identifier_strings(ds) -> set[str]:
    """Patient name / ID / birth date (and name parts) long enough to be meaningful."""
    found = set()
    for tag in ("PatientName", "PatientID", "PatientBirthDate"):
        value = str(ds.get(tag, "") or "").strip()
        found |= {p for p in {value, *value.split("^")} if len(p) >= 4}
    return found


# --------------------------------------------------------------------------- every file


def test_table_covers_every_file_outside_series_folders():
    root = shared_path(D)
    on_disk = {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.parts[len(root.parts)] != "series" and p.suffix != ".md"
    }
    assert on_disk == set(EXPECTED)
    assert {p.name for p in (root / "series").iterdir()} == set(SERIES_MEMBERS)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_every_file_opens_with_expected_shape(rel):
    shape, modality = EXPECTED[rel]
    study = read_dicom_file(dcm(rel))
    assert study.pixels.shape == shape
    assert study.modality == modality
    assert study.kind is (StudyKind.DICOM if shape[:2] == (1, 1) else StudyKind.DICOM_MULTIFRAME)
    assert study.pixels.dtype == np.float32 and np.isfinite(study.pixels).all()
    assert study.windows.shape == (*shape[:2], 2)
    if study.is_rgb:
        assert np.isnan(study.windows).all()
        assert study.pixels.min() >= 0.0 and study.pixels.max() <= 1.0
    else:
        assert np.isfinite(study.windows).all() and (study.windows[..., 1] > 0).all()
    shown = study.frame().display()
    assert shown.shape == shape[2:] and 0.0 <= shown.min() <= shown.max() <= 1.0
    assert shown.std() > 0.01, "the default window must show some contrast"


@pytest.mark.parametrize("folder", sorted(SERIES_MEMBERS))
def test_series_members_open_one_by_one(folder):
    n_files, shape = SERIES_MEMBERS[folder]
    files = sorted(p for p in shared_path(D, "series", folder).iterdir() if p.suffix != ".txt")
    assert len(files) == n_files
    step = max(1, n_files // 10)  # a sample keeps the test fast; every file is read by the series tests
    for f in files[::step]:
        assert read_dicom_file(f).pixels.shape == shape


@pytest.mark.parametrize("rel", TEXT_FILES)
def test_text_files_are_refused_as_not_dicom(rel):
    with pytest.raises(UnsupportedStudyError):
        read_dicom_file(dcm(rel))


# --------------------------------------------------------------------------- pixel values


SITK_AGREES = [
    "misc/compressed/693_UNCR.dcm",
    "misc/compressed/693_J2KR.dcm",
    "misc/compressed/MR2_UNCR.dcm",
    "misc/compressed/dwv_osirix-cerebrix.dcm",
    "misc/single/pydicom_CT_small.dcm",
    "misc/single/dwv_osirix-goudurix.dcm",
    "misc/enhanced_multiframe/emri_small.dcm",
]


@pytest.mark.parametrize("rel", SITK_AGREES)
def test_modality_values_agree_with_simpleitk(rel):
    import SimpleITK as sitk

    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(dcm(rel)))).astype(np.float64)
    study = read_dicom_file(dcm(rel))
    ours = study.pixels.reshape(-1, *study.shape).astype(np.float64)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_ct_is_in_hounsfield_units():
    study = read_dicom_file(dcm("misc/compressed/693_UNCR.dcm"))
    assert study.pixels.min() <= -1000  # air (Rescale Intercept -1024 applied)
    assert study.frame().window.center == 40.0  # the stored brain window


@pytest.mark.parametrize("rel", ["misc/enhanced_multiframe/eCT_Supplemental.dcm",
                                 "misc/enhanced_multiframe/siemens_xa30_epi_sag_phantom_0063.dcm"])
def test_enhanced_frames_are_sorted_along_the_slice_normal(rel):
    """SimpleITK keeps stored order; these files store frames against the normal."""
    import SimpleITK as sitk

    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(dcm(rel)))).astype(np.float32)
    study = read_dicom_file(dcm(rel))
    np.testing.assert_array_equal(study.pixels[0], ref[::-1])
    ds = pydicom.dcmread(dcm(rel), stop_before_pixels=True)
    iop = np.array(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
                   if "PlaneOrientationSequence" in ds.SharedFunctionalGroupsSequence[0]
                   else ds.PerFrameFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    pos = [np.array(f.PlanePositionSequence[0].ImagePositionPatient, float) @ normal
           for f in ds.PerFrameFunctionalGroupsSequence]
    assert np.all(np.diff(pos) < 0) and study.slice_spacing == pytest.approx(abs(pos[1] - pos[0]), rel=1e-3)


def test_philips_per_frame_rescale_and_windows_split_into_two_volumes():
    rel = "misc/enhanced_multiframe/philips_IM_0027_fMAP.dcm"
    ds = pydicom.dcmread(dcm(rel))
    raw = ds.pixel_array.astype(np.float64)
    study = read_dicom_file(dcm(rel))
    for volume, type_index in ((0, [2, 0]), (1, [5, 18])):
        frames = [i for i, f in enumerate(ds.PerFrameFunctionalGroupsSequence)
                  if list(f.FrameContentSequence[0].DimensionIndexValues)[2:] == type_index]
        frames.sort(key=lambda i: ds.PerFrameFunctionalGroupsSequence[i].FrameContentSequence[0].InStackPositionNumber)
        assert len(frames) == 32
        for z, i in enumerate(frames[::7]):
            group = ds.PerFrameFunctionalGroupsSequence[i]
            pvt = group.PixelValueTransformationSequence[0]
            expected = raw[i] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
            np.testing.assert_allclose(study.pixels[volume, z * 7], expected, rtol=1e-5, atol=1e-3)
            voi = group.FrameVOILUTSequence[0]
            assert tuple(study.windows[volume, z * 7]) == (float(voi.WindowCenter), float(voi.WindowWidth))
    assert tuple(study.windows[1, 0]) == (0.0, 1000.0)  # the map's own window, not the magnitude's


def test_shared_functional_groups_are_the_fallback():
    study = read_dicom_file(dcm("misc/enhanced_multiframe/eCT_Supplemental.dcm"))
    assert (study.windows[..., 0] == 49).all() and (study.windows[..., 1] == 102).all()
    assert study.pixels.min() < -900  # shared Rescale Intercept -1024
    assert study.pixel_spacing == pytest.approx((0.388672, 0.388672))


def test_first_of_several_windows_is_used():
    study = read_dicom_file(dcm("misc/single/dwv_osirix-goudurix.dcm"))  # (40, -600), (400, 1500)
    assert (study.frame().window.center, study.frame().window.width) == (40.0, 400.0)
    study = read_dicom_file(dcm("misc/single/MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert study.frame().window.center == 450.0


# --------------------------------------------------------------------------- photometric


def _mediastinum_vs_lungs(display: np.ndarray) -> tuple[float, float, float]:
    h, w = display.shape
    band = display[int(0.35 * h): int(0.65 * h)]
    centre = band[:, int(0.45 * w): int(0.55 * w)].mean()
    left = band[:, int(0.20 * w): int(0.35 * w)].mean()
    right = band[:, int(0.65 * w): int(0.80 * w)].mean()
    return float(centre), float(left), float(right)


@pytest.mark.parametrize("rel,invert", [
    ("chest/cr_chest_pa_nema_RG1_J2KI.dcm", True),
    ("chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm", False),
    ("chest/dx_chest_nih_gcp_no_finding.dcm", False),
])
def test_chest_shows_bright_mediastinum_and_dark_lungs(rel, invert):
    study = read_dicom_file(dcm(rel))
    assert study.invert is invert
    centre, left, right = _mediastinum_vs_lungs(study.frame().display())
    assert centre > left + 0.1 and centre > right + 0.1
    if invert:
        assert study.photometric == "MONOCHROME1 (inverted for display)"
        assert study.summary()["invert"] is True


def test_monochrome1_display_matches_gdcm_rendering():
    """GDCM converts MONOCHROME1 to MONOCHROME2 on read: our display must correlate positively."""
    import SimpleITK as sitk

    rel = "chest/cr_chest_pa_nema_RG1_J2KI.dcm"
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(dcm(rel))))[0].astype(np.float64)
    study = read_dicom_file(dcm(rel))
    np.testing.assert_array_equal(study.pixels[0, 0] + gdcm, 2**15 - 1)  # stored values kept, not flipped
    shown = study.frame().display()[::8, ::8].ravel()
    assert np.corrcoef(shown, gdcm[::8, ::8].ravel())[0, 1] > 0.99


def test_palette_color_ultrasound_becomes_rgb():
    import SimpleITK as sitk

    rel = "misc/enhanced_multiframe/OBXXXX1A_rle_2frame.dcm"
    study = read_dicom_file(dcm(rel))
    assert study.is_rgb and study.photometric == "PALETTE COLOR (converted to RGB)"
    frame = study.pixels[0, 0]
    coloured = np.mean(np.abs(frame[..., 0] - frame[..., 1]) > 0.05)
    assert coloured > 0.02, "an ultrasound palette image must look coloured"
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(dcm(rel)))).astype(np.float32)
    np.testing.assert_allclose(study.pixels.reshape(ref.shape) * 255, ref, atol=1.0)


def _rgb_source() -> tuple[pydicom.Dataset, np.ndarray]:
    """A real colour frame (the ultrasound palette image, expanded) to re-encode."""
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(dcm("misc/enhanced_multiframe/OBXXXX1A_rle_2frame.dcm"))
    rgb = (apply_color_lut(ds.pixel_array[0], ds) >> 8).astype(np.uint8)
    return ds, rgb


def _as_colour_file(ds: pydicom.Dataset, photometric: str) -> pydicom.Dataset:
    for kw in [k for k in ds.dir() if "Palette" in k] + ["NumberOfFrames", "FrameIncrementPointer", "FrameTime"]:
        if kw in ds:
            delattr(ds, kw)
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    return ds


def test_ybr_full_422_jpeg_becomes_rgb(tmp_path):
    ds, rgb = _rgb_source()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, subsampling=1)  # 4:2:2, stored as YCbCr
    ds = _as_colour_file(ds, "YBR_FULL_422")
    ds.PixelData = encapsulate([buf.getvalue()])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = tmp_path / "ybr422.dcm"
    ds.save_as(path, enforce_file_format=True)
    study = read_dicom_file(path)
    assert study.is_rgb and study.photometric == "YBR_FULL_422 (converted to RGB)"
    err = np.abs(study.pixels[0, 0] * 255 - rgb.astype(np.float32))
    assert err.mean() < 3.0  # JPEG-lossy but RGB, not YCbCr (which would be off by ~50)


def test_native_ybr_full_becomes_rgb(tmp_path):
    from pydicom.pixels import convert_color_space

    ds, rgb = _rgb_source()
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = _as_colour_file(ds, "YBR_FULL")
    ds.PixelData = ybr.tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    path = tmp_path / "ybr.dcm"
    ds.save_as(path, enforce_file_format=True)
    study = read_dicom_file(path)
    assert study.is_rgb and study.photometric.startswith("YBR_FULL")
    assert np.abs(study.pixels[0, 0] * 255 - rgb.astype(np.float32)).max() <= 2.0


def test_voi_lut_sequence_without_window_is_applied(tmp_path):
    from pydicom.dataelem import DataElement
    from pydicom.pixels import apply_voi_lut

    ds = pydicom.dcmread(dcm("misc/single/pydicom_MR_small.dcm"))
    del ds.WindowCenter, ds.WindowWidth
    n = int(ds.pixel_array.max()) + 1
    lut = np.round(4095 * np.sqrt(np.arange(n) / (n - 1))).astype(np.uint16)  # a gamma-like 12-bit VOI LUT
    item = pydicom.Dataset()
    item.LUTDescriptor = [n, 0, 12]
    item.add(DataElement(0x00283006, "OW", lut.tobytes()))
    ds.VOILUTSequence = [item]
    path = tmp_path / "voilut.dcm"
    ds.save_as(path)
    study = read_dicom_file(path)
    expected = apply_voi_lut(ds.pixel_array, pydicom.dcmread(path))
    np.testing.assert_allclose(study.pixels[0, 0], expected)
    assert (study.frame().window.low, study.frame().window.high) == (0.0, 4095.0)
    np.testing.assert_allclose(study.frame().display(), expected / 4095.0, atol=1e-6)  # the LUT's own curve
    assert "VOI LUT" in study.photometric


# --------------------------------------------------------------------------- odd files


@pytest.mark.parametrize("rel,syntax", [
    ("chest/dx_chest_nih_gcp_no_finding.dcm", "Implicit VR Little Endian"),
    ("misc/single/pydicom_MR_small.dcm", "Explicit VR Little Endian"),
])
def test_file_without_file_meta_reads_the_same_pixels(tmp_path, rel, syntax):
    bare = tmp_path / "bare"
    strip_preamble_and_meta(dcm(rel), bare)
    assert pydicom.dcmread(bare, force=True).file_meta.get("TransferSyntaxUID") is None
    study = read_dicom_file(bare)
    np.testing.assert_array_equal(study.pixels, read_dicom_file(dcm(rel)).pixels)
    assert study.metadata.transfer_syntax == syntax


def test_nine_transfer_syntaxes_give_identical_pixels():
    studies = [read_dicom_file(dcm(f"misc/transfer_syntax_siemens_mosaic/{i}.dcm")) for i in range(1, 10)]
    syntaxes = {s.metadata.transfer_syntax for s in studies}
    assert len(syntaxes) >= 7  # explicit/implicit/big endian, RLE, JPEG Lossless, JPEG-LS, JPEG 2000
    for s in studies[1:]:
        np.testing.assert_array_equal(s.pixels, studies[0].pixels)
        np.testing.assert_array_equal(s.windows, studies[0].windows)


def test_mosaic_is_unpacked_into_its_tiles():
    path = dcm("misc/transfer_syntax_siemens_mosaic/1.dcm")
    mosaic = pydicom.dcmread(path).pixel_array.astype(np.float32)  # 6 x 6 tiles of 64 x 64
    study = read_dicom_file(path)
    assert study.kind is StudyKind.DICOM_MULTIFRAME and study.n_slices == 35
    np.testing.assert_array_equal(study.pixels[0, 0], mosaic[:64, :64])
    np.testing.assert_array_equal(study.pixels[0, 7], mosaic[64:128, 64:128])  # row 1, column 1
    np.testing.assert_array_equal(study.pixels[0, 34], mosaic[320:384, 256:320])  # row 5, column 4
    assert study.slice_spacing == pytest.approx(3.6) and study.pixel_spacing == (3.25, 3.25)


def test_mosaic_without_csa_header_stays_one_frame_with_a_warning(tmp_path):
    ds = pydicom.dcmread(dcm("misc/transfer_syntax_siemens_mosaic/1.dcm"))
    for tag in [t for t in ds.keys() if t.group == 0x0029]:
        del ds[tag]
    path = tmp_path / "mosaic_no_csa.dcm"
    ds.save_as(path)
    study = read_dicom_file(path)
    assert study.pixels.shape == (1, 1, 384, 384)
    assert any("mosaic" in w for w in study.warnings)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("rel", [
    "chest/cr_chest_pa_nema_RG1_J2KI.dcm",  # JPEG 2000, encapsulated
    "chest/dx_chest_nih_gcp_no_finding.dcm",  # native
    "misc/transfer_syntax_siemens_mosaic/4.dcm",  # RLE, large private header
    "misc/enhanced_multiframe/emri_small_jpeg_2k_lossless.dcm",
])
@pytest.mark.parametrize("fraction", [0.03, 0.4, 0.97])
def test_truncated_copy_raises_a_typed_error(tmp_path, rel, fraction):
    data = dcm(rel).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StudyLoadError) as info:
        read_dicom_file(cut)
    assert isinstance(info.value, (TruncatedStudyError, CorruptStudyError))
    assert "\n" not in str(info.value)


def test_truncated_pixel_data_says_the_file_is_incomplete(tmp_path):
    data = dcm("chest/dx_chest_nih_gcp_no_finding.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 5000])
    with pytest.raises(TruncatedStudyError, match="incomplete"):
        read_dicom_file(cut)


def test_unknown_compression_is_a_missing_codec(tmp_path):
    ds = pydicom.dcmread(dcm("misc/single/pydicom_MR_small.dcm"))
    ds.PixelData = encapsulate([ds.PixelData])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG-2: no decoder installed
    path = tmp_path / "mpeg2.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MissingCodecError) as info:
        read_dicom_file(path)
    assert "MPEG2" in info.value.detail


def test_structured_report_without_pixels_is_unsupported(tmp_path):
    sr = Path(pydicom.data.get_testdata_file("test-SR.dcm"))  # a real SR shipped with pydicom
    with pytest.raises(UnsupportedStudyError, match="no image"):
        read_dicom_file(sr)


def test_zero_declared_size_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(dcm("misc/single/pydicom_CT_small.dcm"))
    ds.Rows = 0
    path = tmp_path / "zero.dcm"
    ds.save_as(path)
    with pytest.raises(CorruptStudyError, match="empty size"):
        read_dicom_file(path)


# --------------------------------------------------------------------------- metadata & privacy


def test_safe_metadata_spacing_and_identifiers():
    path = dcm("chest/cr_chest_pa_nema_RG1_J2KI.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    study = read_dicom_file(path)
    md = study.metadata
    assert (md.modality, md.body_part, md.view_position) == ("CR", "CHEST", "PA")
    assert md.sop_uids == (ds.SOPInstanceUID,) and md.series_uid == ds.SeriesInstanceUID
    assert md.transfer_syntax == "JPEG 2000 Image Compression"
    assert md.photometric_interpretation == "MONOCHROME1"
    assert study.pixel_spacing is None  # the file says 0.000 mm, which means unknown
    assert study.identifiers.name == str(ds.PatientName) and study.identifiers.birth_date == ds.PatientBirthDate
    assert read_dicom_file(dcm("chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm")).pixel_spacing == (0.168, 0.168)
    ct = read_dicom_file(dcm("misc/compressed/693_UNCR.dcm"))
    assert ct.orientation.startswith("axial") and "patient right on screen left" in ct.orientation


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_no_identifier_in_repr_summary_or_logs(rel, caplog):
    path = dcm(rel)
    secrets = _identifier_strings(pydicom.dcmread(path, stop_before_pixels=True))
    caplog.set_level(logging.DEBUG)
    study = read_dicom_file(path)
    visible = repr(study) + json.dumps(study.summary()) + repr(study.identifiers) + caplog.text
    for secret in secrets:
        assert secret not in visible


def test_no_identifier_in_errors_of_a_damaged_file(tmp_path, caplog):
    src = dcm("misc/compressed/MR2_UNCR.dcm")
    secrets = _identifier_strings(pydicom.dcmread(src, stop_before_pixels=True))
    assert secrets
    cut = tmp_path / "cut.dcm"
    shutil.copy(src, cut)
    cut.write_bytes(src.read_bytes()[:-1000])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StudyLoadError) as info:
        read_dicom_file(cut)
    visible = str(info.value) + info.value.detail + caplog.text
    for secret in secrets:
        assert secret not in visible


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="real data absent")
def test_every_dicom_opens_well_under_a_second_each():
    import time

    start = time.perf_counter()
    read_dicom_file(dcm("chest/cr_chest_pa_nema_RG1_J2KI.dcm"))  # the largest: 1955 x 1841 JPEG 2000
    assert time.perf_counter() - start < 5.0


def test_gdcm_fallback_decodes_what_pylibjpeg_rejects_and_keeps_monochrome1_polarity(tmp_path):
    """pydicom's JPEG-lossy.dcm (12-bit JPEG with odd SOS) only decodes through GDCM.

    GDCM turns MONOCHROME1 into MONOCHROME2 on read, so a MONOCHROME1 copy must look like
    the negative of the original, not be inverted a second time.
    """
    src = dcm("misc/single/pydicom_JPEG-lossy.dcm")
    study = read_dicom_file(src)
    assert any("GDCM" in w for w in study.warnings)
    j2k = read_dicom_file(dcm("misc/single/pydicom_JPEG2000.dcm"))  # the same scan, JPEG 2000
    assert np.corrcoef(study.pixels.ravel(), j2k.pixels.ravel())[0, 1] > 0.9
    ds = pydicom.dcmread(src)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    negative = read_dicom_file(path)
    assert negative.invert is False and "inverted by the decoder" in negative.photometric
    a, b = study.frame().display().ravel(), negative.frame().display().ravel()
    assert np.corrcoef(a, b)[0, 1] < -0.9
