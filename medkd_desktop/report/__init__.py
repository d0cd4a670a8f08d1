"""Exports of an analysis (PDF, PNG, JSON, DICOM Secondary Capture), without Qt.

Why without Qt: ``medkd analyze`` and the GUI's Export menu must write the same files, and the
CLI runs on machines with no display. Anything that needs Qt to draw belongs in ``ui/``. The
overlay pixels come from ``explain.overlay`` (the renderer the window paints with), so every
export looks like the screen; ``OverlayStyle`` is re-exported here because every export takes one.
"""
from __future__ import annotations

from ..explain.overlay import DEFAULT_STYLE, OverlayStyle
from .common import DISCLAIMER, DISCLAIMER_LONG
from .dicom_export import export_dicom_sc
from .errors import NotDicomError, ReportError
from .export_all import ExportResult, export_analysis
from .json_export import analysis_json, export_json
from .pdf_export import export_pdf, report_figures
from .png_export import export_png, png_size
from .render import overlay_rgb, panel_shape, side_by_side

__all__ = [
    "DEFAULT_STYLE",
    "DISCLAIMER",
    "DISCLAIMER_LONG",
    "ExportResult",
    "NotDicomError",
    "OverlayStyle",
    "ReportError",
    "analysis_json",
    "export_analysis",
    "export_dicom_sc",
    "export_json",
    "export_pdf",
    "export_png",
    "overlay_rgb",
    "panel_shape",
    "png_size",
    "report_figures",
    "side_by_side",
]
