"""The overlay as a DICOM Secondary Capture in a new series of the *same* study.

Why DICOM: a reviewer can send the teacher | student overlay to PACS, where it files under the
patient's study beside the original images, instead of a loose PNG that loses its context.
highdicom's :class:`~highdicom.sc.SCImage` builds the instance from the source dataset, which
copies the Patient and General Study modules (so the StudyInstanceUID is the source's and the
patient is the same); the series is new and says in its description that it is research output.

Privacy: the source header is read here and copied into the file (it must be, to file it under
the right patient), but it is never logged, and the error messages name no patient data.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..explain import method_label
from ..explain.overlay import DEFAULT_STYLE, OverlayStyle
from ..inference.analysis import Analysis
from ..studies.study import Study, StudyKind
from .common import write_file
from .errors import NotDicomError, ReportError
from .render import side_by_side

log = logging.getLogger(__name__)

SERIES_DESCRIPTION = "MedKD overlay (research use only)"
MANUFACTURER = "MedKD Desktop"
DICOM_KINDS = frozenset({StudyKind.DICOM, StudyKind.DICOM_MULTIFRAME, StudyKind.DICOM_SERIES})
#: LPS patient axes -> the letter of the direction each axis points to (DICOM PS3.3 C.7.6.1.1.1).
_LPS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


def _read_header(path: Path):
    """The header of *path*, or None when it is not a DICOM file we can read.

    Read the way the study readers read it: a file without the 128-byte preamble and File Meta
    header (written by some older systems and toolkits) opened and was analysed, so the export
    must accept it too (``force=True``, tried only after a strict read failed).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    except InvalidDicomError:
        pass
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - a forced read of a non-DICOM file can fail in any way
        log.debug("not a DICOM header: %s", type(exc).__name__)
        return None


def _source_dataset(study: Study):
    """The header of the study's source file (for a series folder: its first file of the series)."""
    src = Path(study.source)
    candidates = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    for path in candidates:
        ds = _read_header(path)
        if ds is None:
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if "StudyInstanceUID" in ds and (not study.metadata.series_uid or uid == study.metadata.series_uid):
            return ds
    raise ReportError("The original DICOM file could not be read again, so no Secondary Capture was made; "
                      "check that it was not moved.")


def _letter(vector: np.ndarray) -> str:
    k = int(np.argmax(np.abs(vector)))
    return _LPS_LETTERS[k][1 if vector[k] > 0 else 0]


def _patient_orientation(ds) -> tuple[str, str] | None:
    """Row and column directions of the displayed frame (the readers show DICOM frames as stored)."""
    po = ds.get("PatientOrientation")
    if po is not None and len(po) == 2 and all(len(str(p)) == 1 for p in po):
        return str(po[0]), str(po[1])
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        try:
            iop = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient  # enhanced multi-frame
        except (TypeError, IndexError, AttributeError, KeyError):
            iop = None
    if iop is not None and len(iop) == 6:
        v = np.asarray([float(x) for x in iop])
        return _letter(v[:3]), _letter(v[3:])
    return None


def export_dicom_sc(analysis: Analysis, study: Study, path: str | os.PathLike[str], method: str, *,
                    style: OverlayStyle = DEFAULT_STYLE) -> Path:
    """Write the teacher | student overlay of *method* as an RGB Secondary Capture; returns the path.

    Raises :class:`NotDicomError` for studies not opened from DICOM, :class:`ReportError` otherwise.
    """
    if study.kind not in DICOM_KINDS:
        raise NotDicomError()
    # pydicom and highdicom warn about odd header values *quoting them* (e.g. a one-part patient or
    # physician name): such text must not reach stderr or a log, so warnings are counted, not shown.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = _write_sc(analysis, study, Path(path), method, style)
    if caught:
        log.info("%d DICOM header warning(s) not shown (they may quote patient data)", len(caught))
    return written


def _write_sc(analysis: Analysis, study: Study, path: Path, method: str, style: OverlayStyle) -> Path:
    from highdicom.sc import SCImage
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = side_by_side(analysis, method, style)
    ref = _source_dataset(study)
    orientation = _patient_orientation(ref)
    try:
        series_number = int(ref.get("SeriesNumber") or 0) + 1000
    except (TypeError, ValueError):
        series_number = 1000
    try:
        sc = SCImage.from_ref_dataset(
            ref_dataset=ref,
            pixel_array=pixels,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            patient_orientation=orientation or ("L", "F"),
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # Messages from highdicom can quote header values; log only the exception type.
        log.warning("secondary capture could not be built: %s", type(exc).__name__)
        raise ReportError("The DICOM Secondary Capture could not be built from this study's header.",
                          detail=type(exc).__name__) from None
    if orientation is None:
        sc.PatientOrientation = ""  # Type 2: present but unknown (the source did not say)
    sc.SeriesDescription = SERIES_DESCRIPTION
    sc.BurnedInAnnotation = "NO"  # colours only, no text burned into the pixels
    sc.ImageComments = (
        f"{method_label(method)} heatmaps of {analysis.task}: teacher {analysis.teacher.name} (left, predicted "
        f"{analysis.teacher.predicted}) | student {analysis.student.name} (right, predicted "
        f"{analysis.student.predicted}). Research use only - not for diagnosis."
    )[:10240]
    sc.DerivationDescription = f"MedKD Desktop {method_label(method)} overlay; research use only"[:1024]
    return write_file(path, lambda tmp: sc.save_as(tmp, enforce_file_format=True))
