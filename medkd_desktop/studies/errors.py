"""Typed errors for opening studies.

Every failure inside :func:`medkd_desktop.studies.open_study` surfaces as a
:class:`StudyLoadError` subclass whose ``str()`` is one sentence a clinician can
act on. Technical detail (the library's own exception) goes to ``detail`` and the
log, never to the message, and never carries patient identifiers.
"""
from __future__ import annotations

from ..errors import MedKDError


class StudyLoadError(MedKDError):
    """Base class: the study could not be opened."""

    message = "The study could not be opened."

    def __init__(self, message: str | None = None, *, detail: str = "", path: str = "") -> None:
        super().__init__(message, detail=detail)
        self.path = path


class UnsupportedStudyError(StudyLoadError):
    message = "This file is not a study MedKD can open (DICOM, NIfTI, PNG, JPEG or TIFF)."


class CorruptStudyError(StudyLoadError):
    message = "The file is damaged and its image could not be decoded."


class TruncatedStudyError(CorruptStudyError):
    message = "The file is incomplete (it ends before the image data does); copy it again from the source."


class StudyTooLargeError(StudyLoadError):
    message = "The image is too large to open safely on this computer."


class EmptySeriesError(StudyLoadError):
    message = "The folder holds no images MedKD can open."


class MissingCodecError(StudyLoadError):
    message = "The image uses a compression this installation cannot decode."
