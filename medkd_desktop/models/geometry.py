"""The ONE geometry: where a card's input box lies on a frame, and how a map moves between grids.

Why one module: the model sees a crop of the frame (``InputSpec.crop``), and every consumer of a
heatmap must put it back on exactly that crop: the engine (agreement), the viewers (overlay), the
exporters (PDF/PNG/DICOM) and the explain CLI. When each of them wrote its own crop and its own
resizer, the same map could land a few pixels apart and the agreement figures differed between
the window and ``medkd explain``. Now :func:`input_box` is the only definition of the crop,
:func:`resize_map` the only 2-D resampler, and a heatmap travels as a :class:`PlacedMap`: the map
at its model's resolution plus the box of the analysed image it covers. It is only brought to a
full-frame grid by whoever draws it, at the size that drawing needs, so a 2000 x 2500 radiograph
no longer costs 20 MB of float32 per cached map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Shape = tuple[int, int]


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle ``[y0, y1) x [x0, x1)`` on an image."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def shape(self) -> Shape:
        return self.height, self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.y0, self.x0, self.y1, self.x1

    def shifted(self, dy: int, dx: int) -> Box:
        return Box(self.y0 + dy, self.x0 + dx, self.y1 + dy, self.x1 + dx)

    def scaled(self, src: Shape, dst: Shape) -> Box:
        """This box of an image of shape *src*, on a grid of shape *dst* showing the same picture."""
        if tuple(src) == tuple(dst):
            return self
        sy, sx = dst[0] / src[0], dst[1] / src[1]
        y0, x0 = int(round(self.y0 * sy)), int(round(self.x0 * sx))
        return Box(y0, x0, max(y0 + 1, int(round(self.y1 * sy))), max(x0 + 1, int(round(self.x1 * sx))))

    def intersection(self, other: Box) -> Box | None:
        y0, x0 = max(self.y0, other.y0), max(self.x0, other.x0)
        y1, x1 = min(self.y1, other.y1), min(self.x1, other.x1)
        return Box(y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def whole(shape: Shape) -> Box:
    return Box(0, 0, int(shape[0]), int(shape[1]))


def input_box(shape: Shape, spec: Any) -> Box:
    """The part of an (H, W) image a model with input *spec* sees.

    ``center_square`` keeps the largest centred square (the model keeps the anatomy's aspect);
    ``stretch`` takes the whole image. *spec* is an ``InputSpec`` or anything with ``crop``.
    """
    h, w = int(shape[0]), int(shape[1])
    if getattr(spec, "crop", "stretch") == "center_square":
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        return Box(y0, x0, y0 + s, x0 + s)
    return Box(0, 0, h, w)


def fit(shape: Shape, max_side: int) -> Shape:
    """*shape* scaled down (never up) so that its longer side is at most *max_side*."""
    h, w = int(shape[0]), int(shape[1])
    scale = min(1.0, max_side / max(h, w, 1))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_map(arr: np.ndarray | torch.Tensor, shape: Shape,
               mode: Literal["bilinear", "nearest"] = "bilinear") -> np.ndarray:
    """The one 2-D map resampler: float32 in [0, 1]; bilinear is area-averaged when shrinking
    (a 2000 px map brought to 256 px keeps its mass instead of aliasing), nearest keeps hard
    masks hard.

    torch is imported here, not at the top: the review window imports this module while it
    starts, and must not wait the second torch takes to import (the engine imports it on the
    worker thread meanwhile).
    """
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(arr, dtype=np.float32) if isinstance(arr, np.ndarray) else arr.detach().float().cpu())
    shape = (int(shape[0]), int(shape[1]))
    if tuple(t.shape) != shape:
        if mode == "nearest":
            t = F.interpolate(t[None, None], size=shape, mode="nearest")[0, 0]
        else:
            shrink = shape[0] < t.shape[0] or shape[1] < t.shape[1]
            t = F.interpolate(t[None, None], size=shape, mode="bilinear", align_corners=False, antialias=shrink)[0, 0]
    return np.ascontiguousarray(t.clamp(0.0, 1.0).numpy(), dtype=np.float32)


@dataclass
class PlacedMap:
    """A heatmap at its model's resolution and the box of the analysed image it covers.

    ``map`` is float32 (h, w) in [0, 1]; ``box`` is in the pixel coordinates of the analysed
    image of shape ``image_shape``. Outside the box the model saw nothing, so a drawn map is 0
    there: an overlay never claims evidence from pixels the model did not look at.
    """

    map: np.ndarray
    box: Box
    image_shape: Shape

    @property
    def empty(self) -> bool:
        return self.map.size == 0 or float(self.map.max()) <= 0.0

    def over(self, region: Box, shape: Shape) -> np.ndarray:
        """The map resampled over *region* of the analysed image, on a grid of *shape*."""
        out = np.zeros(shape, dtype=np.float32)
        common = self.box.intersection(region)
        if common is None:
            return out
        # the common part, first on this map's own grid, then onto the output grid
        src = Box(common.y0 - self.box.y0, common.x0 - self.box.x0,
                  common.y1 - self.box.y0, common.x1 - self.box.x0).scaled(self.box.shape, self.map.shape)
        dst = common.shifted(-region.y0, -region.x0).scaled(region.shape, shape)
        out[dst.slices] = resize_map(self.map[src.slices], dst.shape)
        return out

    def on_grid(self, shape: Shape | None = None) -> np.ndarray:
        """The map drawn on the whole analysed image, at *shape* (default: the image's own)."""
        return self.over(whole(self.image_shape), tuple(shape or self.image_shape))
