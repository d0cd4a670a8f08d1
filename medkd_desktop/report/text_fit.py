"""Fitting report text into the width it has: wrap it, or shorten it with an ellipsis.

Why measured and not counted in characters: a caption of 80 characters is twice as wide in
"WWW" as in "iii", and model names are chosen by whoever trained the model. A title that runs
past its panel lands on its neighbour's (the PDF's teacher and student captions overlapped
with long names). Widths come from matplotlib's own text layout (Agg renderer, the fonts the
figure uses), in points, so what is measured is what is drawn, in the PDF as in the PNG.
"""
from __future__ import annotations

from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties

ELLIPSIS = "…"
_OVERSAMPLE = 4


def text_width(text: str, size: float, weight: str = "normal", family: str | None = None) -> float:
    """Width in points of one line of *text* at *size* points."""
    if not text:
        return 0.0
    prop = FontProperties(size=size, weight=weight, family=family)
    # A fresh renderer per call: exports run on a worker thread, so nothing is shared. Measured
    # at 4x 72 dpi, because Agg rounds to whole pixels.
    width, _h, _d = RendererAgg(1, 1, 72 * _OVERSAMPLE).get_text_width_height_descent(text, prop, ismath=False)
    return float(width) / _OVERSAMPLE


def shorten(text: str, width: float, size: float, weight: str = "normal", family: str | None = None) -> str:
    """*text* on one line no wider than *width* points, cut at the end with an ellipsis if needed."""
    if text_width(text, size, weight, family) <= width:
        return text
    lo, hi = 0, len(text)  # the longest prefix that fits with the ellipsis
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + ELLIPSIS, size, weight, family) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS


def wrap(text: str, width: float, size: float, weight: str = "normal", family: str | None = None, *,
         max_lines: int | None = None, indent: str = "") -> list[str]:
    """*text* broken at spaces into lines no wider than *width* points.

    Text that fits is returned as it is (spaces kept). A word longer than a line is cut with an
    ellipsis; with *max_lines*, the last line kept ends with an ellipsis when text was left out.
    Continuation lines start with *indent*.
    """
    if text_width(text, size, weight, family) <= width:
        return [text]  # as given: aligned columns keep their spaces
    lead = text[:len(text) - len(text.lstrip())]  # a bullet's indent stays on the first line
    lines: list[str] = []
    current = ""
    for i, word in enumerate(text.split()):
        word = lead + word if i == 0 else word
        candidate = f"{current} {word}" if current else (indent + word if lines else word)
        if text_width(candidate, size, weight, family) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = shorten(indent + word, width, size, weight, family)
    if current or not lines:
        lines.append(current)
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        kept[-1] = shorten(kept[-1] + ELLIPSIS, width, size, weight, family)
        return kept
    return lines
