"""Pixels shared by every export: heatmap overlays and the teacher | student composite.

Why numpy and not a drawing toolkit: the PNG, the PDF and the DICOM Secondary Capture must show
the *same* overlay pixels, and the DICOM one must be a plain RGB array without Qt or a figure
around it. Colouring is explain.overlay's ``blend`` (the
GUI's colours) with the review window's defaults (``inferno``, opacity 0.45, no threshold), so a
report looks like the screen it came from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inference.analysis import Analysis
from .errors import ReportError

DEFAULT_COLORMAP = "inferno"
DEFAULT_OPACITY = 0.45
#: Each panel's longer side is scaled into this range: small tiles (224 px) are enlarged so titles
#: fit and detail is visible; large films (2000 px) are reduced to keep files small.
PANEL_MIN_SIDE = 448
PANEL_MAX_SIDE = 1024
#: Black gap between the teacher and the student panel of the composite.
GAP = 8


@dataclass(frozen=True)
class OverlayStyle:
    """How heat is drawn; the defaults are the review window's, so a report matches the screen."""

    colormap: str = DEFAULT_COLORMAP
    opacity: float = DEFAULT_OPACITY
    threshold: float = 0.0  # heat below this is not drawn


def overlay_rgb(image: np.ndarray, heatmap: np.ndarray, style: OverlayStyle | None = None) -> np.ndarray:
    """*heatmap* ((H, W) in [0, 1]) over *image* ([0, 1] gray or RGB) as uint8 RGB, via explain.overlay."""
    from ..explain.overlay import blend

    style = style or OverlayStyle()
    try:
        return blend(image, heatmap, cmap=style.colormap, alpha=float(np.clip(style.opacity, 0.0, 1.0)),
                     threshold=style.threshold)
    except (ValueError, KeyError) as exc:  # size mismatch, unknown colour map
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


def method_overlays(analysis: Analysis, method: str, style: OverlayStyle | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's and the student's overlay of *method*, each resized to :func:`panel_shape`."""
    missing = [r.role for r in (analysis.teacher, analysis.student) if method not in r.heatmaps]
    if missing:
        have = ", ".join(sorted(analysis.teacher.heatmaps)) or "none"
        raise ReportError(f"The analysis has no {method} heatmap (it has: {have}).")
    shape = panel_shape(analysis.image.shape)
    return tuple(  # type: ignore[return-value]
        _resize_rgb(overlay_rgb(analysis.image, r.heatmaps[method], style), shape)
        for r in (analysis.teacher, analysis.student)
    )


def side_by_side(analysis: Analysis, method: str, style: OverlayStyle | None = None) -> np.ndarray:
    """uint8 RGB (h, 2 w + GAP, 3): teacher overlay | black gap | student overlay (the DICOM SC pixels)."""
    teacher, student = method_overlays(analysis, method, style)
    gap = np.zeros((teacher.shape[0], GAP, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([teacher, gap, student], axis=1))
