"""`medkd bench load`: how long opening each kind of study takes (median of runs).

Each entry is a real file from ../shared/data chosen to represent one reader path; a
missing file is reported as skipped rather than failing the whole benchmark.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..studies import StudyLoadError, open_study
from .timing import time_call

#: label -> path relative to the shared data folder
FILE_CASES: dict[str, str] = {
    "dicom_cr_jpeg2000_1955x1841": "dicom/chest/cr_chest_pa_nema_RG1_J2KI.dcm",
    "dicom_cr_jpeg_baseline": "dicom/chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm",
    "dicom_dx_uncompressed": "dicom/chest/dx_chest_nih_gcp_no_finding.dcm",
    "dicom_enhanced_mr_multiframe": "dicom/misc/enhanced_multiframe/emri_small.dcm",
    "dicom_series_ge_epi_150_files": "dicom/series/ge_mr_epi_fmri_nih_15sl_x10",
    "dicom_series_canon_dti_40_files": "dicom/series/canon_mr_dti_ax_vol1_40sl",
    "nifti_3d_t1_2mm": "nifti/anat/0050002_ABIDE_2mm_anatomical.nii.gz",
    "nifti_4d_fmri_176_volumes_cc200_maps": "fmri-asd/painted_4d/NYU_0050952_cc200_painted_4d.nii.gz",
}

#: label -> (dataset folder, manifest column): the first row's file is timed
MANIFEST_CASES: dict[str, tuple[str, str]] = {
    "nifti_fmri_degree_map": ("fmri-asd", "degree_map"),
    "jpeg_chest_xray": ("cxr-covid", "path"),
    "jpeg_histology_tile": ("histo-lc25000", "path"),
    "jpeg_dermoscopy": ("skin-ham10000", "path"),
}


def _first_in_manifest(root: Path, folder: str, column: str) -> str | None:
    import csv

    manifest = root / folder / "manifest.csv"
    if not manifest.exists():
        return None
    with open(manifest, newline="") as fh:
        row = next(csv.DictReader(fh), None)
    return f"{folder}/{row[column]}" if row else None


def bench_load(data_root: Path, repeat: int = 5) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cases = dict(FILE_CASES)
    cases.update({label: _first_in_manifest(data_root, *where) for label, where in MANIFEST_CASES.items()})
    for label, rel in cases.items():
        path = data_root / rel if rel else None
        if path is None or not path.exists():
            results[label] = {"skipped": f"not found: {rel}"}
            continue
        try:
            study = open_study(path)
            timing = time_call(lambda: open_study(path), repeat=repeat)
        except StudyLoadError as exc:
            results[label] = {"path": rel, "error": str(exc)}
            continue
        results[label] = {"path": rel, "kind": study.kind.value, "n_frames": study.n_frames, "shape": list(study.shape), **timing}
    return {"data_root": str(data_root), "repeat": repeat, "results": results}
