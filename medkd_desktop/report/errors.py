"""Typed export errors: one sentence the user can act on, library text in ``detail``."""
from __future__ import annotations


class ReportError(Exception):
    """An export could not be written."""

    message = "The report could not be written."

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        self.detail = detail
        super().__init__(message or self.message)


class NotDicomError(ReportError):
    message = ("A DICOM Secondary Capture can only be made for a study opened from DICOM files; "
               "export a PDF or PNG instead.")
