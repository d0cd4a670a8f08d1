"""Content sniffing: the kind comes from the bytes, whatever the file is called."""
from __future__ import annotations

import gzip
import shutil

import pytest
from testdata import shared_path

from medkd_desktop.studies import CorruptStudyError, FileKind, UnsupportedStudyError, sniff

CASES = [
    ("dicom/chest/cr_chest_pa_nema_RG1_J2KI.dcm", FileKind.DICOM),
    ("dicom/misc/single/pydicom_CT_small.dcm", FileKind.DICOM),
    ("nifti/fmri4d/nipy_functional.nii.gz", FileKind.NIFTI),
    ("nifti/fmri4d/dcmqa_nih_ge_epi_fmri_mr0004.nii", FileKind.NIFTI),
]


@pytest.mark.parametrize("rel,kind", CASES)
def test_kind_survives_a_misleading_name(rel, kind, tmp_path):
    renamed = tmp_path / "IMG0001.jpg"  # wrong extension on purpose
    shutil.copy(shared_path(rel), renamed)
    assert sniff(renamed) is kind


def test_raster_kinds_from_magic(tmp_path):
    from PIL import Image

    src = next((shared_path("histo-lc25000") / "images").rglob("*.jpg"))
    img = Image.open(src)
    for fmt, kind in (("PNG", FileKind.PNG), ("JPEG", FileKind.JPEG), ("TIFF", FileKind.TIFF)):
        out = tmp_path / f"tile.{fmt.lower()}.dat"
        img.save(out, format=fmt)
        assert sniff(out) is kind


def test_dicom_without_preamble_is_recognised(tmp_path):
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(shared_path("dicom/misc/single/pydicom_MR_small_implicit.dcm"))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)  # the bare data set: no preamble, no "DICM", no file meta
    raw = tmp_path / "raw"
    raw.write_bytes(fp.getvalue())
    assert raw.read_bytes()[128:132] != b"DICM"
    assert sniff(raw) is FileKind.DICOM


def test_text_and_empty_and_broken_gzip_are_refused(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("patient notes, not an image\n" * 20)
    with pytest.raises(UnsupportedStudyError):
        sniff(text)
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    with pytest.raises(CorruptStudyError):
        sniff(empty)
    other_gz = tmp_path / "log.gz"
    other_gz.write_bytes(gzip.compress(b"x" * 2000))
    with pytest.raises(UnsupportedStudyError):
        sniff(other_gz)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(shared_path("nifti/fmri4d/nipy_functional.nii.gz").read_bytes()[:40])
    with pytest.raises(CorruptStudyError):
        sniff(broken)
