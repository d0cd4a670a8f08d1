"""`open_study`: the one door through which every study enters the app.

Why a dispatcher: the GUI, CLI and tests must get the same `Study` for the same bytes
and the same typed error for the same bad input. Readers are imported lazily so the
window appears before pydicom/nibabel/nilearn have loaded.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import StudyLoadError, StudyTooLargeError
from .sniff import FileKind, sniff
from .study import Study

log = logging.getLogger(__name__)


def _read_file(path: Path, kind: FileKind, tile_size: int) -> Study:
    if kind is FileKind.DICOM:
        from .dicom_file import read_dicom_file

        return read_dicom_file(path)
    if kind is FileKind.NIFTI:
        from .nifti import read_nifti

        return read_nifti(path)
    from .raster import read_raster

    return read_raster(path, tile_size=tile_size)


def open_study(path: str | os.PathLike[str], *, series_uid: str | None = None, tile_size: int = 768) -> Study:
    """Open a DICOM file, multi-frame file or series folder, a NIfTI, or a PNG/JPEG/TIFF.

    A folder is read as DICOM: the series *series_uid*, or by default the largest series
    (the others are listed in ``Study.series``). Raises only :class:`StudyLoadError`
    subclasses; their message is one sentence for a clinician, ``detail`` is for the log.
    """
    p = Path(path)
    try:
        if not p.exists():
            raise StudyLoadError("The file or folder does not exist.")
        if p.is_dir():
            from .dicom_series import read_dicom_folder

            study = read_dicom_folder(p, series_uid)
        else:
            study = _read_file(p, sniff(p), tile_size)
    except StudyLoadError as exc:
        exc.path = exc.path or str(p)
        log.info("could not open study: %s (%s)", type(exc).__name__, exc.detail or exc)
        raise
    except MemoryError:
        log.info("could not open study: out of memory")
        raise StudyTooLargeError() from None
    except Exception as exc:  # a reader bug or an unforeseen library error: still a typed error
        log.warning("unexpected error opening study: %s: %s", type(exc).__name__, exc)
        raise StudyLoadError(
            "The study could not be opened because of an unexpected error while reading it; the log has details.",
            detail=f"{type(exc).__name__}: {exc}",
            path=str(p),
        ) from None
    log.debug("opened %s study: %d frames of %s", study.kind.value, study.n_frames, study.shape)
    return study
