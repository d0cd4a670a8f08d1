"""Pixels shared by every export: heatmap overlays and the teacher | student composite.

Why numpy and not a drawing toolkit: the PNG, the PDF and the DICOM Secondary Capture must show
the *same* overlay pixels, and the DICOM one must be a plain RGB array without Qt or a figure
around it. Colouring follows the review window's defaults (``inferno``, opacity 0.45) so a
report looks like the screen it came from.
"""
from __future__ import annotations

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


def overlay_rgb(image: np.ndarray, heatmap: np.ndarray, colormap: str = DEFAULT_COLORMAP,
                opacity: float = DEFAULT_OPACITY) -> np.ndarray:
    """Colour *heatmap* ((H, W) in [0, 1]) over *image* ([0, 1] gray (H, W) or RGB (H, W, 3)) -> uint8 RGB.

    The heat itself sets how much colour covers a pixel (``opacity * min(1, 2 * heat)``):
    regions the model ignored, and the parts of the frame outside the model's crop (heat 0),
    show the untouched image instead of a uniform tint of the colour map's coldest colour.
    """
    from matplotlib import colormaps

    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    if heat.shape != img.shape[:2]:
        raise ReportError(f"The heatmap ({heat.shape[1]}x{heat.shape[0]}) does not match the image "
                          f"({img.shape[1]}x{img.shape[0]}).")
    try:
        cmap = colormaps[colormap]
    except KeyError:
        raise ReportError(f"Unknown colour map {colormap!r}.") from None
    colour = cmap(heat)[..., :3].astype(np.float32)
    alpha = (float(np.clip(opacity, 0.0, 1.0)) * np.minimum(1.0, 2.0 * heat))[..., None]
    out = img * (1.0 - alpha) + colour * alpha
    return np.round(out * 255.0).astype(np.uint8)


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


def method_overlays(analysis: Analysis, method: str, colormap: str = DEFAULT_COLORMAP,
                    opacity: float = DEFAULT_OPACITY) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's and the student's overlay of *method*, each resized to :func:`panel_shape`."""
    missing = [r.role for r in (analysis.teacher, analysis.student) if method not in r.heatmaps]
    if missing:
        have = ", ".join(sorted(analysis.teacher.heatmaps)) or "none"
        raise ReportError(f"The analysis has no {method} heatmap (it has: {have}).")
    shape = panel_shape(analysis.image.shape)
    return tuple(  # type: ignore[return-value]
        _resize_rgb(overlay_rgb(analysis.image, r.heatmaps[method], colormap, opacity), shape)
        for r in (analysis.teacher, analysis.student)
    )


def side_by_side(analysis: Analysis, method: str, colormap: str = DEFAULT_COLORMAP,
                 opacity: float = DEFAULT_OPACITY) -> np.ndarray:
    """uint8 RGB (h, 2 w + GAP, 3): teacher overlay | black gap | student overlay (the DICOM SC pixels)."""
    teacher, student = method_overlays(analysis, method, colormap, opacity)
    gap = np.zeros((teacher.shape[0], GAP, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([teacher, gap, student], axis=1))
