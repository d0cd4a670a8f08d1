"""Typed export errors: one sentence the user can act on, library text in ``detail``."""
from __future__ import annotations

from ..errors import MedKDError


class ReportError(MedKDError):
    """An export could not be written."""

    message = "The report could not be written."


class NotDicomError(ReportError):
    message = ("A DICOM Secondary Capture can only be made for a study opened from DICOM files; "
               "export a PDF or PNG instead.")
