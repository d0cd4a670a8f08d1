"""Exports of an analysis (PDF, PNG, JSON, DICOM Secondary Capture), without Qt.

Why without Qt: ``medkd analyze`` and the GUI's Export menu must write the same files, and the
CLI runs on machines with no display. Anything that needs Qt to draw belongs in ``ui/``.
"""
from __future__ import annotations

from .common import DISCLAIMER, DISCLAIMER_LONG
from .dicom_export import export_dicom_sc
from .errors import NotDicomError, ReportError
from .json_export import analysis_json, export_json
from .pdf_export import export_pdf
from .png_export import export_png, png_size
from .render import OverlayStyle, overlay_rgb, panel_shape, side_by_side

__all__ = [
    "DISCLAIMER",
    "DISCLAIMER_LONG",
    "NotDicomError",
    "OverlayStyle",
    "ReportError",
    "analysis_json",
    "export_dicom_sc",
    "export_json",
    "export_pdf",
    "export_png",
    "overlay_rgb",
    "panel_shape",
    "png_size",
    "side_by_side",
]
