"""Size limits checked from headers *before* pixel data is decoded.

Why: a 60 000 x 60 000 whole-slide image or a corrupt header claiming 2^31 frames
must fail in milliseconds with a clear message, not after the OS kills the app.
"""
from __future__ import annotations

from .errors import StudyTooLargeError

#: Total pixels (frames x rows x columns, colour not counted) one study may hold.
MAX_PIXELS = 500_000_000
#: Any single dimension (rows, columns, frames, slices, time points).
MAX_DIM = 65_536


def check_size(shape: tuple[int, ...], what: str = "image") -> None:
    """Refuse a study whose declared *shape* (pixel dims only) exceeds the limits."""
    dims = [int(d) for d in shape]
    if any(d <= 0 for d in dims):
        from .errors import CorruptStudyError

        raise CorruptStudyError(
            f"The {what} declares an empty size and holds no image.", detail=f"shape={dims}"
        )
    total = 1
    for d in dims:
        total *= d
    if any(d > MAX_DIM for d in dims) or total > MAX_PIXELS:
        raise StudyTooLargeError(
            f"The {what} is too large to open safely ({total / 1e6:.0f} million pixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} million).",
            detail=f"shape={dims}",
        )
