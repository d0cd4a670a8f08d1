"""Pixels shared by every export: heatmap overlays and the teacher | student composite.

Why numpy and not a drawing toolkit: the PNG, the PDF and the DICOM Secondary Capture must show
the *same* overlay pixels, and the DICOM one must be a plain RGB array without Qt or a figure
around it. Colouring is explain.overlay's ``blend``, the renderer the review window paints
with (its lookup table, alpha ramp and opacity), with the window's defaults (``inferno``,
opacity 0.45, threshold 0), so a report looks like the screen it came from.
"""
from __future__ import annotations

import numpy as np

from ..explain.overlay import DEFAULT_STYLE, OverlayError, OverlayStyle, blend
from ..inference.analysis import Analysis
from .errors import ReportError

#: Each panel's longer side is scaled into this range: small tiles (224 px) are enlarged so titles
#: fit and detail is visible; large films (2000 px) are reduced to keep files small.
PANEL_MIN_SIDE = 448
PANEL_MAX_SIDE = 1024
#: Black gap between the teacher and the student panel of the composite.
GAP = 8


def overlay_rgb(image: np.ndarray, heatmap, style: OverlayStyle = DEFAULT_STYLE) -> np.ndarray:
    """*heatmap* over *image* ([0, 1] gray or RGB) as uint8 RGB, drawn as the window draws it.

    *heatmap* is a (H, W) map in [0, 1] on the image's grid or a ``PlacedMap``.
    """
    try:
        return blend(image, heatmap, style or DEFAULT_STYLE)
    except OverlayError as exc:  # a heatmap not on the image's grid
        raise ReportError(f"The overlay could not be drawn: {exc}", detail=str(exc)) from None


def panel_shape(image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, cols) of one panel: the image scaled so its longer side lies in [PANEL_MIN_SIDE, PANEL_MAX_SIDE]."""
    h, w = int(image_shape[0]), int(image_shape[1])
    longer = max(h, w)
    target = min(max(longer, PANEL_MIN_SIDE), PANEL_MAX_SIDE)
    scale = target / longer
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if rgb.shape[:2] == shape:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.Resampling.LANCZOS))


def require_method(analysis: Analysis, method: str) -> None:
    """Raise :class:`ReportError` unless both models have a *method* heatmap (before any file exists)."""
    missing = [r.role for r in (analysis.teacher, analysis.student) if method not in r.heatmaps]
    if missing:
        have = ", ".join(sorted(analysis.teacher.heatmaps)) or "none"
        raise ReportError(f"The analysis has no {method} heatmap (it has: {have}).")


def method_overlays(analysis: Analysis, method: str, style: OverlayStyle = DEFAULT_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's and the student's overlay of *method*, each resized to :func:`panel_shape`."""
    require_method(analysis, method)
    shape = panel_shape(analysis.image.shape)
    return tuple(  # type: ignore[return-value]
        _resize_rgb(overlay_rgb(analysis.image, r.heatmaps[method], style), shape)
        for r in (analysis.teacher, analysis.student)
    )


def side_by_side(analysis: Analysis, method: str, style: OverlayStyle = DEFAULT_STYLE) -> np.ndarray:
    """uint8 RGB (h, 2 w + GAP, 3): teacher overlay | black gap | student overlay (the DICOM SC pixels)."""
    teacher, student = method_overlays(analysis, method, style)
    gap = np.zeros((teacher.shape[0], GAP, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([teacher, gap, student], axis=1))
