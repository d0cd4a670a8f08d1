"""Small real training folders for the retrain tests: brain MRI JPEGs from ../shared/data, some
turned into DICOM files (with a PatientID and a name, to prove neither is written anywhere)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from testdata import shared_path

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
PATIENT_ID = "PID-SECRET-4711"
PATIENT_NAME = "Doe^Jane"


def brain_rows(split: str = "test", per_class: int = 6) -> list[tuple[Path, str]]:
    root = shared_path("brain-tumor-mri")
    seen: dict[str, int] = {}
    out = []
    with open(root / "manifest.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["split"] != split or seen.get(r["label"], 0) >= per_class:
                continue
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            out.append((root / r["path"], r["label"]))
    return out


def jpeg_to_dicom(src: Path, dst: Path, patient_id: str, instance: int) -> Path:
    """The JPEG's pixels as an 8-bit MR Secondary Capture with patient identifiers."""
    import pydicom
    from PIL import Image
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    px = np.asarray(Image.open(src).convert("L"), dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient_id, PATIENT_NAME, "19700101"
    ds.Modality, ds.InstanceNumber = "MR", instance
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = px.tobytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def make_folder(dst: Path, per_class: int = 6, dicom: bool = True) -> Path:
    """One subfolder per class (names in other case, as a user writes them); in glioma two DICOM
    files of one patient, and a text file that is not an image."""
    rows = brain_rows(per_class=per_class)
    for k, (src, label) in enumerate(rows):
        folder = dst / label.capitalize()
        folder.mkdir(parents=True, exist_ok=True)
        if dicom and label == "glioma" and k % 6 < 2:
            jpeg_to_dicom(src, folder / f"im{k}.dcm", PATIENT_ID, k)
        else:
            shutil.copy(src, folder / src.name)
    (dst / "Glioma" / "notes.txt").write_text("not an image")
    return dst
