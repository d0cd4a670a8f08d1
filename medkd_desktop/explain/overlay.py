"""Heatmap -> coloured overlay, and PNG writing, without Qt.

Why here (core) and not in ``ui/``: the CLI, the PDF/PNG report and the GUI must draw the
*same* overlay from the same settings (colormap, opacity, threshold), and the core may not
import Qt. The GUI can show the RGBA layer from ``colorize`` over its own image item; the
exporters use ``blend``. Colours come from matplotlib's colormap objects (no pyplot, no
figure, no backend), so this is cheap and thread-safe.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from .base import Heatmap


@dataclass(frozen=True)
class OverlayStyle:
    colormap: str = "inferno"
    opacity: float = 0.45
    threshold: float = 0.0


def _map(m: Heatmap | np.ndarray) -> np.ndarray:
    arr = m.map if isinstance(m, Heatmap) else np.asarray(m, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap is 2-D, got shape {arr.shape}")
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


def colorize(heatmap: Heatmap | np.ndarray, cmap: str = "jet", alpha: float = 0.5, threshold: float = 0.0) -> np.ndarray:
    """RGBA uint8 (H, W, 4): the map through *cmap*, opacity *alpha*, transparent below *threshold*.

    The threshold hides the weak tail that otherwise tints the whole image and hides the
    anatomy under it; values at or above it keep full *alpha* so the hot region stays legible.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    m = _map(heatmap)
    rgba = colormaps[cmap](m)  # float (H, W, 4)
    rgba[..., 3] = np.where(m >= threshold, alpha, 0.0) if threshold > 0 else alpha
    return (rgba * 255.0 + 0.5).astype(np.uint8)


def blend(image01: np.ndarray, heatmap: Heatmap | np.ndarray, cmap: str = "jet", alpha: float = 0.5,
          threshold: float = 0.0) -> np.ndarray:
    """RGB uint8 (H, W, 3): the displayed frame ([0, 1], gray or RGB) with the overlay on top."""
    img = np.asarray(image01, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    m = _map(heatmap)
    if m.shape != img.shape[:2]:
        raise ValueError(f"heatmap {m.shape} and image {img.shape[:2]} differ in size; use Heatmap.to_frame first")
    over = colorize(m, cmap, alpha, threshold).astype(np.float32) / 255.0
    a = over[..., 3:4]
    out = np.clip(img, 0.0, 1.0) * (1.0 - a) + over[..., :3] * a
    return (out * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write uint8 gray/RGB/RGBA (or a [0, 1] float map, as 8-bit gray) to a PNG."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")
    return path
