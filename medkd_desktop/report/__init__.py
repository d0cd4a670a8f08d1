"""Exports of an analysis (PDF, PNG, JSON, DICOM Secondary Capture), without Qt.

Why without Qt: ``medkd analyze`` and the GUI's Export menu must write the same files, and the
CLI runs on machines with no display. Anything that needs Qt to draw belongs in ``ui/``. The
overlay pixels come from ``explain.overlay`` (the renderer the window paints with), so every
export looks like the screen; ``OverlayStyle`` is re-exported here because every export takes one.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public names and the submodule each lives in, loaded on first use (PEP 562): the window
#: imports the disclaimer while it starts, and must not wait for the exporters (matplotlib's
#: PDF backend, highdicom, the explainers' labels and so torch).
_EXPORTS = {
    "DEFAULT_STYLE": "..explain.overlay", "OverlayStyle": "..explain.overlay",
    "DISCLAIMER": ".common", "DISCLAIMER_LONG": ".common",
    "export_dicom_sc": ".dicom_export",
    "NotDicomError": ".errors", "ReportError": ".errors",
    "ExportResult": ".export_all", "export_analysis": ".export_all",
    "analysis_json": ".json_export", "export_json": ".json_export",
    "export_pdf": ".pdf_export", "report_figures": ".pdf_export",
    "export_png": ".png_export", "png_size": ".png_export",
    "overlay_rgb": ".render", "panel_shape": ".render", "side_by_side": ".render",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


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
