"""The ONE overlay renderer: heat -> colours -> composited over the image, without Qt.

Why one renderer: the review window, the PNG / PDF / DICOM Secondary Capture exports and
``medkd explain`` must show the *same* picture for the same settings. When the window used a
pyqtgraph lookup table with an alpha ramp and the exports a flat-alpha matplotlib blend, an
export at the default threshold 0 tinted the whole image with the colour map's dark end while
the screen left the anatomy visible; and the window's "Heat" map (a pyqtgraph map) made the
exports fail. Now :func:`overlay_lut` is the table the window paints with, :func:`colorize`
applies it to a heatmap exactly as pyqtgraph's ``ImageItem`` does, and :func:`blend`
composites it as Qt paints an item with an opacity over the image.

Every colour map in :data:`COLORMAPS` works here without pyqtgraph: four come from
matplotlib's colormap objects (no pyplot, no backend: cheap and thread-safe), whose 256
colours are identical to pyqtgraph's copies; "Heat" (colorcet's CET-L3) is embedded in
``cet_l3.py``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Colour maps the window offers, in its menu order: name -> what the user reads.
COLORMAPS: dict[str, str] = {
    "inferno": "Inferno",
    "turbo": "Turbo (rainbow)",
    "viridis": "Viridis",
    "magma": "Magma",
    "plasma": "Plasma",
    "heat": "Heat",
}
#: Names settings files and older code may still hold (the window stored pyqtgraph's name).
COLORMAP_ALIASES: dict[str, str] = {"CET-L3": "heat"}

DEFAULT_COLORMAP = "inferno"
DEFAULT_OPACITY = 0.45
DEFAULT_THRESHOLD = 0.0
#: Heat range over which the overlay fades in above the threshold: where a model barely looks,
#: the anatomy stays visible instead of being tinted by the colour map's dark end.
ALPHA_RAMP = 0.25
#: Entries of the lookup table (pyqtgraph's ImageItem indexes it by heat * 256).
LUT_SIZE = 256


class OverlayError(ValueError):
    """An overlay cannot be drawn with these settings; the message is one plain sentence."""


class UnknownColormapError(OverlayError):
    """A colour-map name this renderer does not offer."""

    def __init__(self, name: object) -> None:
        self.name = name
        super().__init__(f"There is no colour map called {name!r}; choose one of: {', '.join(COLORMAPS)}.")


def canonical_colormap(name: str) -> str:
    """The key in :data:`COLORMAPS` for *name* (case-insensitive; "CET-L3" means "heat").

    Raises :class:`UnknownColormapError`, which lists the names on offer.
    """
    if isinstance(name, str):
        key = name.strip().lower()
        for known in COLORMAPS:
            if known == key:
                return known
        for alias, known in COLORMAP_ALIASES.items():
            if alias.lower() == key:
                return known
    raise UnknownColormapError(name)


def _unit(value: Any, what: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise OverlayError(f"The overlay {what} must lie between 0 and 1, got {value}.")
    return v


@dataclass(frozen=True)
class OverlayStyle:
    """How heat is drawn; the defaults are the review window's, so every export matches the screen.

    ``threshold``: heat below it is not drawn; ``opacity`` scales the whole layer, as the
    window's opacity slider does. The colour map is stored under its canonical name, so a
    style made from the legacy "CET-L3" equals one made from "heat".
    """

    colormap: str = DEFAULT_COLORMAP
    opacity: float = DEFAULT_OPACITY
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "colormap", canonical_colormap(self.colormap))
        object.__setattr__(self, "opacity", _unit(self.opacity, "opacity"))
        object.__setattr__(self, "threshold", _unit(self.threshold, "threshold"))


#: The window's defaults; exports use it when no style is given.
DEFAULT_STYLE = OverlayStyle()


@functools.cache
def _table(name: str) -> np.ndarray:
    if name == "heat":
        from .cet_l3 import CET_L3_HEX

        rgb = np.frombuffer(bytes.fromhex("".join(CET_L3_HEX)), dtype=np.uint8).reshape(LUT_SIZE, 3)
    else:
        from matplotlib import colormaps

        rgb = (colormaps[name](np.arange(LUT_SIZE))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    table = np.full((LUT_SIZE, 4), 255, dtype=np.uint8)
    table[:, :3] = rgb
    table.setflags(write=False)
    return table


def colormap_table(colormap: str) -> np.ndarray:
    """The colour map as an opaque (256, 4) uint8 RGBA table (thumbnails, legends, contour pens)."""
    return _table(canonical_colormap(colormap)).copy()


def colormap_color(colormap: str, value: float) -> tuple[int, int, int]:
    """The RGB colour at *value* in [0, 1], interpolated between entries as pyqtgraph's ``map`` does."""
    t = _table(canonical_colormap(colormap))[:, :3].astype(np.float64)
    x = float(np.clip(value, 0.0, 1.0)) * (LUT_SIZE - 1)
    i = min(int(x), LUT_SIZE - 2)
    c = t[i] + (t[i + 1] - t[i]) * (x - i)
    return tuple(int(v + 0.5) for v in c)  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _lut(name: str, threshold: float) -> np.ndarray:
    lut = _table(name).copy()
    levels = np.arange(LUT_SIZE, dtype=np.float32) / (LUT_SIZE - 1)
    alpha = np.clip((levels - threshold) / ALPHA_RAMP, 0.0, 1.0)
    alpha[levels < threshold] = 0.0
    lut[:, 3] = np.round(alpha * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def overlay_lut(colormap: str, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The (256, 4) uint8 RGBA table the window paints the heatmap with.

    Entry k stands for heat k / 255. Alpha is 0 below *threshold*, then ramps from 0 at the
    threshold to opaque ALPHA_RAMP above it. Why a table: pyqtgraph applies it while painting,
    so moving the threshold slider is a 1 KB table change, not a pass over a large heatmap.
    """
    return _lut(canonical_colormap(colormap), _unit(threshold, "threshold")).copy()


def lut_index(heat: np.ndarray) -> np.ndarray:
    """Table index of each heat value, pyqtgraph's rule for float data with levels (0, 1) and a
    256-entry table: ``floor(heat * 256)`` in float32, clipped to [0, 255] (so 1.0 -> 255)."""
    scaled = np.asarray(heat, dtype=np.float32) * np.float32(LUT_SIZE)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, LUT_SIZE - 1).astype(np.uint8)


def _on_grid(heat: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """*heat* as a float32 (H, W) map on an image grid of *shape* (default: its own grid).

    A ``PlacedMap`` is drawn onto the grid (0 outside the box its model saw); a 2-D array (or a
    ``Heatmap``'s map) must already be on that grid: resizing it here would guess a geometry.
    """
    from ..models.geometry import PlacedMap

    if shape is not None:
        shape = (int(shape[0]), int(shape[1]))
    if isinstance(heat, PlacedMap):
        return heat.on_grid(shape)
    arr = np.asarray(getattr(heat, "map", heat), dtype=np.float32)
    if arr.ndim != 2:
        raise OverlayError(f"A heatmap is a 2-D map, got an array of shape {arr.shape}.")
    if shape is not None and arr.shape != shape:
        raise OverlayError(f"The heatmap ({arr.shape[0]} x {arr.shape[1]}) is not on the image's grid "
                           f"({shape[0]} x {shape[1]}); place it on the frame first.")
    return arr


def colorize(heat: Any, style: OverlayStyle | None = None) -> np.ndarray:
    """RGBA uint8 (H, W, 4): *heat* through :func:`overlay_lut`, alpha times ``style.opacity``.

    The colours are the window's pixel for pixel (pyqtgraph's index rule, see
    :func:`lut_index`); a ``PlacedMap`` is drawn at its analysed image's size.
    """
    style = style or OverlayStyle()
    grid = _on_grid(heat)
    lut = _lut(style.colormap, style.threshold)
    out = lut[lut_index(grid)]
    out[..., 3] = np.round(out[..., 3].astype(np.float32) * np.float32(style.opacity)).astype(np.uint8)
    out[np.isnan(grid), 3] = 0
    return out


def _image01(image01: np.ndarray) -> np.ndarray:
    """The frame as float32 (H, W, 1) gray or (H, W, 3) colour in [0, 1] (gray is not tripled:
    broadcasting does that in the blend, at a third of the memory traffic)."""
    img = np.asarray(image01, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] in (1, 4):
        img = img[..., :1] if img.shape[-1] == 1 else img[..., :3]
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise OverlayError(f"The image to draw on must be gray (H, W) or colour (H, W, 3), got shape {img.shape}.")
    return np.clip(img, 0.0, 1.0, where=~np.isnan(img), out=np.zeros_like(img))


def blend(image01: np.ndarray, heat: Any, style: OverlayStyle | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3): the displayed frame ([0, 1], gray or RGB) with the overlay on top.

    Source-over, as Qt paints the overlay item (its LUT alpha times the item's opacity) over the
    image item: where the heat is 0 (or below the threshold) the image is unchanged.
    *heat* is a 2-D map on the image's grid, a ``Heatmap`` placed on the frame, or a
    ``PlacedMap`` (drawn onto the image's grid here).
    """
    style = style or OverlayStyle()
    img = _image01(image01)
    grid = _on_grid(heat, img.shape[:2])
    lut = _lut(style.colormap, style.threshold).astype(np.float32) / 255.0
    alpha = lut[:, 3] * np.float32(style.opacity)
    # Per table entry: the colour already weighted by its alpha, and what is left of the image.
    colour, keep = lut[:, :3] * alpha[:, None], 1.0 - alpha
    idx = lut_index(grid)
    nan = np.isnan(grid)
    if nan.any():  # pyqtgraph leaves NaN pixels transparent
        idx = idx.astype(np.int16)
        idx[nan] = LUT_SIZE  # one extra, empty entry
        colour = np.vstack([colour, np.zeros((1, 3), np.float32)])
        keep = np.append(keep, np.float32(1.0))
    out = colour[idx]
    out += img * keep[idx][..., None]
    out *= 255.0
    out += 0.5
    return out.astype(np.uint8)


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write uint8 gray/RGB/RGBA (or a [0, 1] float map, as 8-bit gray) to a PNG."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")
    return path


__all__ = [
    "ALPHA_RAMP",
    "COLORMAPS",
    "COLORMAP_ALIASES",
    "DEFAULT_COLORMAP",
    "DEFAULT_OPACITY",
    "DEFAULT_STYLE",
    "DEFAULT_THRESHOLD",
    "OverlayError",
    "OverlayStyle",
    "UnknownColormapError",
    "blend",
    "canonical_colormap",
    "colorize",
    "colormap_color",
    "colormap_table",
    "lut_index",
    "overlay_lut",
    "save_png",
]
