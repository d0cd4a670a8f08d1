"""Plain images (PNG, JPEG, TIFF) as a :class:`Study`, and large histology fields as tiles.

Why a reader of its own: a pathologist's H&E export, a dermoscopy photo and a chest
radiograph saved as JPEG all arrive as "just pictures". The app must still show them
upright (EXIF orientation), in honest units (16-bit stays 16-bit), refuse a header that
would exhaust memory *before* decoding, refuse a half-copied file instead of showing a
partly grey image, and guess which kind of picture it is so the registry can propose a
model. Pillow decodes PNG/JPEG (and the TIFF flavours tifffile cannot, e.g. JPEG-in-TIFF
without imagecodecs); tifffile reads TIFF in its stored dtype, with multi-sample and
multi-page layouts that Pillow mishandles.

Conventions (see :mod:`.study`):

* grey: float32 in stored units (0..255, 0..65535, or the file's own float/int range)
  with one window per frame: the full 0..255 range for 8-bit data (the picture was made
  to be seen that way), a robust percentile window (:func:`auto_window`) otherwise;
* colour: float32 RGB in [0, 1] (stored value / dtype maximum);
* an RGB file whose three channels are equal (a radiograph saved as colour) is read as
  grey, so it reaches the grey (radiology) models;
* transparency: grey+alpha (LA) is composited on **black**, the background of radiology
  images; RGBA is composited on **white**, the empty-glass background of pathology slides
  and the page colour of photos and exported figures;
* palette (P), 1-bit, CMYK and YCbCr images are converted to grey or RGB.

Length: over 500 lines because it is one reader with its safety checks (header size
before decoding, truncation, EXIF orientation, 16-bit) and the histology tiling that depends on them.
"""
from __future__ import annotations

import logging
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CorruptStudyError, StudyLoadError, StudyTooLargeError, TruncatedStudyError
from .limits import check_size
from .study import DisplayWindow, SafeMetadata, Study, StudyKind, TileGrid, auto_window, windows_like

log = logging.getLogger(__name__)

__all__ = ["guess_modality", "read_raster", "should_tile", "tile_grid"]

# Size guard: check_size(limits.MAX_PIXELS) runs on the header's dimensions before any
# decoding; Pillow's own DecompressionBombError (above 2 x Image.MAX_IMAGE_PIXELS, which we
# leave at its default because it is process-wide) is mapped to StudyTooLargeError too.
_FULL_8BIT = DisplayWindow(127.5, 255.0)  # low 0, high 255
_GREY_TOLERANCE = 2 / 255  # |R-G|, |R-B| below this (relative to dtype max) -> the image is grey

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass
class _Decoded:
    """Frames in stored units, before the float conversion, plus how they were obtained."""

    frames: np.ndarray  # (Z, H, W) grey or (Z, H, W, 3) RGB, stored dtype (or float32 after compositing)
    max_value: float  # the dtype maximum, to bring RGB into [0, 1]
    eight_bit: bool  # grey 0..255 data: shown with the full 8-bit window
    photometric: str
    orientation: str = "as stored (row 0 at the top)"
    invert: bool = False
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def read_raster(path: Path, tile_size: int = 768) -> Study:
    """Open a PNG, JPEG or TIFF as a Study (T = 1; Z = pages of a multi-page TIFF).

    A colour image judged to be histology (:func:`guess_modality`) and larger than a model
    tile (:func:`should_tile`) becomes a TILED_IMAGE whose ``tiles`` grid cuts it into
    *tile_size* squares at native resolution; the pixels stay the whole field.
    Raises only :class:`StudyLoadError` subclasses.
    """
    path = Path(path)
    if tile_size < 1:
        raise ValueError("tile_size must be positive")  # a programming error, not a damaged file
    try:
        decoded = _decode(path)
        return _to_study(path, decoded, tile_size)
    except StudyLoadError as exc:
        exc.path = exc.path or str(path)
        exc.detail = _without_path(exc.detail, path)
        raise
    except MemoryError:
        raise StudyTooLargeError(detail="MemoryError while decoding", path=str(path)) from None
    except Exception as exc:  # an unforeseen library error is still a damaged-file error for the user
        detail = _without_path(f"{type(exc).__name__}: {exc}", path)
        log.warning("unexpected error decoding image: %s", detail)
        raise CorruptStudyError(detail=detail, path=str(path)) from None


def _without_path(text: str, path: Path) -> str:
    """Library messages quote the file path; file names can hold patient names, so drop them."""
    for s in (str(path), path.name):
        if s:
            text = text.replace(s, "<file>")
    return text


def guess_modality(rgb: np.ndarray) -> str:
    """Guess what a colour picture shows: "histology", "dermoscopy" or "photo".

    Why colour statistics: H&E is two dyes: haematoxylin (blue-purple nuclei) and eosin
    (pink cytoplasm). Both absorb green most, so stained pixels have *blue well above
    green* and *red above green* (magenta hues), and the two dyes spread the blue-green
    difference widely. Skin under a dermatoscope is red-brown (melanin, haemoglobin): red
    above green and green about equal to or above blue. Anything else (greens, blues,
    yellows in quantity) is an ordinary photograph or figure.

    The rule, on "stained" pixels (optical density sum > 0.3, i.e. not the white glass
    or page, and not black borders or vignette corners), weighting by optical density so
    that dyed tissue, not pale background, decides the mean colour:

    * ``histology`` when at least 35% of them have a purple-to-pink hue (230-345 deg) and
      ``mean(B-G) + 1.75 * std(B-G) >= 0.26``;
    * otherwise ``dermoscopy`` when the mean colour is reddish (R-G >= 0.03) and at most
      15% of them are colourful pixels outside the purple-pink-red-brown hues;
    * otherwise ``photo``.

    The thresholds were set on the *train* and *val* splits of histo-lc25000 and
    skin-ham10000 and measured on their *test* splits (see tests/studies/test_raster.py).
    A portrait or any skin-coloured close-up can read as "dermoscopy" and a purple-stained
    non-H&E slide as "histology": this is a hint for proposing a model, which the user
    confirms. *rgb* is (H, W, 3), float in [0, 1] or an integer dtype.
    """
    px = _as_unit_rgb(rgb)
    stats = _colour_stats(px)
    if stats["magenta"] >= 0.35 and stats["bg"] + 1.75 * stats["bg_spread"] >= 0.26:
        return "histology"
    if stats["rg"] >= 0.03 and stats["other"] <= 0.15:
        return "dermoscopy"
    return "photo"


def should_tile(height: int, width: int, modality: str, tile_size: int = 768) -> bool:
    """Whether a colour image is a large histology field to analyse tile by tile.

    Why this rule: models for H&E were trained on tiles cut at *tile_size* px (LC25000:
    768 px, downsized to 224 for the network), so a field must be fed at that scale, not
    shrunk whole. A field is tiled when it is histology, its longer side exceeds two tiles
    (a 768 px tile or a slightly larger crop is simply resized like the training tiles),
    and its shorter side holds at least one full tile (every tile must be full size).
    Dermoscopy and photos are never tiled: their models see the whole picture.
    """
    return (
        modality == "histology"
        and max(height, width) > 2 * tile_size
        and min(height, width) >= tile_size
    )


def tile_grid(height: int, width: int, tile_size: int = 768) -> TileGrid:
    """Cover an image with full-size *tile_size* squares at native resolution.

    Rows and columns are ``ceil(side / tile_size)``; the last row/column is shifted inward
    (overlapping its neighbour) so that every tile is full size, as the model expects, and
    every pixel lies in at least one tile. Boxes are row-major ``(y0, x0, y1, x1)``.
    """
    if tile_size < 1 or height < tile_size or width < tile_size:
        raise ValueError(f"a {height}x{width} image cannot hold a full {tile_size} px tile")
    n_rows = math.ceil(height / tile_size)
    n_cols = math.ceil(width / tile_size)
    boxes = []
    for r in range(n_rows):
        y0 = min(r * tile_size, height - tile_size)
        for c in range(n_cols):
            x0 = min(c * tile_size, width - tile_size)
            boxes.append((y0, x0, y0 + tile_size, x0 + tile_size))
    return TileGrid(tile_size=tile_size, n_rows=n_rows, n_cols=n_cols, boxes=tuple(boxes))


# ---------------------------------------------------------------------------------------
# Study assembly
# ---------------------------------------------------------------------------------------


def _to_study(path: Path, d: _Decoded, tile_size: int) -> Study:
    frames = d.frames
    warnings_ = list(d.warnings)
    photometric = d.photometric
    eight_bit = d.eight_bit
    if frames.ndim == 4 and _is_grey(frames, d.max_value):
        frames = frames.astype(np.float32).mean(axis=-1)
        eight_bit = d.max_value == 255.0
        photometric += "; the three colour channels are equal, so it is shown as grey"
    if frames.ndim == 4:  # RGB
        pixels = np.empty(frames.shape, dtype=np.float32)
        np.multiply(frames, np.float32(1.0 / d.max_value), out=pixels, casting="unsafe")
        np.clip(pixels, 0.0, 1.0, out=pixels)
        pixels = pixels[None]
        modality = guess_modality(pixels[0, pixels.shape[1] // 2])
        window = None
    else:
        pixels = frames.astype(np.float32, copy=False)[None]
        if not np.isfinite(pixels).all():
            warnings_.append("Some pixels hold no number (NaN or infinity); they are shown as black.")
            pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
        modality = "OT"
        window = _FULL_8BIT if eight_bit else auto_window(pixels)
    kind = StudyKind.IMAGE
    tiles = None
    h, w = pixels.shape[2:4]
    if pixels.shape[1] == 1 and window is None and should_tile(h, w, modality, tile_size):
        kind = StudyKind.TILED_IMAGE
        tiles = tile_grid(h, w, tile_size)
    log.debug(
        "image read: %s, %d frame(s) of %dx%d, modality hint %s, %s",
        path.suffix, pixels.shape[1], h, w, modality, "tiled" if tiles else "not tiled",
    )
    return Study(
        kind=kind,
        modality=modality,
        pixels=pixels,
        windows=windows_like(pixels, window),
        source=path,
        invert=d.invert,
        photometric=photometric,
        orientation=d.orientation,
        metadata=SafeMetadata(
            modality=modality,
            photometric_interpretation=("RGB" if window is None else ("MONOCHROME1" if d.invert else "MONOCHROME2")),
        ),
        warnings=warnings_,
        tiles=tiles,
    )


def _is_grey(frames: np.ndarray, max_value: float) -> bool:
    """True when R, G and B agree within a JPEG rounding error everywhere."""
    tol = _GREY_TOLERANCE * max_value
    sub = frames[:, ::7, ::7]  # a cheap first look rejects colour images at once
    for a in (sub, frames):
        r, g, b = (a[..., i].astype(np.float32) for i in range(3))
        if np.abs(r - g).max() > tol or np.abs(r - b).max() > tol:
            return False
    return True


# ---------------------------------------------------------------------------------------
# modality statistics
# ---------------------------------------------------------------------------------------


def _as_unit_rgb(rgb: np.ndarray) -> np.ndarray:
    """At most ~512x512 pixels of *rgb* as float32 (N, 3) in [0, 1]."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"guess_modality needs an (H, W, 3) image, got {a.shape}")
    step = max(1, max(a.shape[0], a.shape[1]) // 512)
    a = a[::step, ::step]  # striding keeps the per-pixel colour distribution
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    return np.clip(a.astype(np.float32, copy=False), 0.0, 1.0).reshape(-1, 3)


def _colour_stats(px: np.ndarray) -> dict[str, float]:
    """Colour statistics of the stained (not white, not black) pixels; see guess_modality."""
    od = -np.log(np.clip(px, 1.0 / 255.0, 1.0))
    od_sum = od.sum(axis=1)
    stained = (od_sum > 0.3) & (px.max(axis=1) > 0.12)
    if stained.mean() < 0.05:  # almost blank: judge all pixels
        stained[:] = True
    p = px[stained]
    weight = od_sum[stained]
    mean = (p * weight[:, None]).sum(axis=0) / max(float(weight.sum()), 1e-6)
    r, g, b = p[:, 0], p[:, 1], p[:, 2]
    mx, mn = p.max(axis=1), p.min(axis=1)
    chroma = mx - mn
    sat = chroma / np.maximum(mx, 1e-6)
    hue = _hue_degrees(r, g, b, mx, chroma)
    colourful = sat > 0.08
    magenta = colourful & (hue >= 230) & (hue < 345)
    warm = colourful & ((hue >= 345) | (hue < 50))
    return {
        "bg": float(mean[2] - mean[1]),
        "rg": float(mean[0] - mean[1]),
        "bg_spread": float((b - g).std()),
        "magenta": float(magenta.mean()),
        "warm": float(warm.mean()),
        "other": float((colourful & ~magenta & ~warm).mean()),
    }


def _hue_degrees(r: np.ndarray, g: np.ndarray, b: np.ndarray, mx: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        mx == r,
        np.mod(60.0 * (g - b) / safe, 360.0),
        np.where(mx == g, 60.0 * (b - r) / safe + 120.0, 60.0 * (r - g) / safe + 240.0),
    )
    return np.where(chroma > 0, hue, 0.0)


# ---------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------


def _decode(path: Path) -> _Decoded:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise StudyLoadError("The file could not be read; check that it exists and that you may open it.",
                             detail=f"{type(exc).__name__}: {exc}") from None
    if head in _TIFF_MAGIC:
        return _decode_tiff(path)
    return _decode_pil(path)


# --- Pillow (PNG, JPEG, and TIFF flavours tifffile cannot decode) ----------------------


def _open_pil(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise StudyTooLargeError(detail=str(exc)) from None
    except UnidentifiedImageError as exc:
        raise CorruptStudyError(
            "The file is damaged or incomplete: its image header could not be read.", detail=str(exc)
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_error(exc) from None


def _decode_error(exc: BaseException) -> StudyLoadError:
    """Pillow reports a short file as 'truncated' (OSError) or EOFError; anything else is damage."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower() or "end of file" in str(exc).lower():
        return TruncatedStudyError(detail=text)
    return CorruptStudyError(detail=text)


def _decode_pil(path: Path) -> _Decoded:
    from PIL import Image, ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone turned on silent acceptance of partial files
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; truncated images may not be detected")
    im = _open_pil(path)
    try:
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        width, height = im.size
        is_tiff = (im.format or "").upper() == "TIFF"
        check_size((n_frames if is_tiff else 1, height, width))
        notes: list[str] = []
        if n_frames > 1 and not is_tiff:
            notes.append(f"The file holds {n_frames} pictures; the first is shown.")
        indices = [0]
        if is_tiff and n_frames > 1:
            sizes = []
            for i in range(n_frames):
                im.seek(i)
                sizes.append((im.size, im.mode))
            if all(s == sizes[0] for s in sizes):
                indices = list(range(n_frames))
            else:
                notes.append(_mixed_pages_warning(n_frames))
        arrays, max_value, eight_bit, photometric, orientation = [], 1.0, False, "", ""
        for i in indices:
            im.seek(i)
            try:
                im.load()
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
                raise _decode_error(exc) from None
            frame, orientation = _exif_upright(im, notes)
            arr, max_value, eight_bit, photometric = _pil_to_array(frame)
            arrays.append(arr)
        photometric = f"{im.format or 'image'}: {photometric}"
        return _Decoded(np.stack(arrays), max_value, eight_bit, photometric, orientation, warnings=notes)
    finally:
        im.close()


_ORIENTATION_WORDS = {
    1: "as stored (row 0 at the top)",
    2: "orientation tag 2 applied (mirrored left-right)",
    3: "orientation tag 3 applied (rotated 180 degrees)",
    4: "orientation tag 4 applied (mirrored top-bottom)",
    5: "orientation tag 5 applied (transposed)",
    6: "orientation tag 6 applied (rotated 90 degrees clockwise)",
    7: "orientation tag 7 applied (transverse)",
    8: "orientation tag 8 applied (rotated 90 degrees anticlockwise)",
}


def _exif_upright(im, notes: list[str]):
    """The frame turned upright as the camera/scanner recorded (EXIF/TIFF Orientation tag)."""
    from PIL import ImageOps

    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception as exc:  # malformed EXIF must not stop the image from opening
        log.info("unreadable EXIF block: %s", exc)
        orientation = 1
    if orientation not in _ORIENTATION_WORDS:
        notes.append(f"The orientation tag holds an invalid value ({orientation}); the image is shown as stored.")
        return im, _ORIENTATION_WORDS[1]
    if orientation == 1:
        return im, _ORIENTATION_WORDS[1]
    try:
        return ImageOps.exif_transpose(im), _ORIENTATION_WORDS[orientation]
    except Exception as exc:
        log.info("EXIF orientation could not be applied: %s", exc)
        notes.append("The orientation tag could not be applied; the image is shown as stored.")
        return im, _ORIENTATION_WORDS[1]


def _pil_to_array(im) -> tuple[np.ndarray, float, bool, str]:
    """(array in stored units, dtype max, 8-bit grey?, words) for one Pillow frame."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L")), 255.0, True, "1-bit black and white, shown as grey 0/255"
    if mode == "L":
        return np.asarray(im), 255.0, True, "8-bit grey"
    if mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"), dtype=np.float32)
        grey = la[..., 0] * (la[..., 1] / 255.0)  # composite on black (radiology background)
        return grey, 255.0, True, "8-bit grey with transparency, composited on black"
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        if has_alpha:
            return _composite_rgba(np.asarray(im.convert("RGBA"))), 255.0, False, (
                "palette colour with transparency, composited on white")
        return np.asarray(im.convert("RGB")), 255.0, False, "palette colour"
    if mode in ("RGBA", "RGBa", "PA"):
        return _composite_rgba(np.asarray(im.convert("RGBA"))), 255.0, False, (
            "8-bit RGB with transparency, composited on white")
    if mode == "RGB":
        return np.asarray(im), 255.0, False, "8-bit RGB"
    if mode == "CMYK":
        return np.asarray(im.convert("RGB")), 255.0, False, "CMYK converted to RGB"
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), 65535.0, False, "16-bit grey"
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), 65535.0, False, "16-bit grey"
        return arr.astype(np.float32), float(np.abs(arr).max() or 1), False, "32-bit integer grey"
    if mode == "F":
        return np.asarray(im, dtype=np.float32), 1.0, False, "32-bit float grey"
    # YCbCr, LAB, HSV, RGBX and other colour spaces
    return np.asarray(im.convert("RGB")), 255.0, False, f"{mode} converted to RGB"


def _composite_rgba(rgba: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """RGB over a white background, in the same units as *rgba*."""
    a = rgba[..., 3:4].astype(np.float32) / max_value
    return rgba[..., :3].astype(np.float32) * a + max_value * (1.0 - a)


def _mixed_pages_warning(n: int) -> str:
    return f"The TIFF holds {n} pages of different sizes; only the first page is shown."


# --- tifffile -----------------------------------------------------------------------------


def _decode_tiff(path: Path) -> _Decoded:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, struct.error) as exc:
        raise _tiff_open_error(path, exc) from None
    try:
        pages = list(tif.pages)
        if not pages:
            raise CorruptStudyError("The TIFF file holds no image.", detail="no pages")
        first = pages[0]
        same = all(_page_key(p) == _page_key(first) for p in pages)
        use = pages if same else pages[:1]
        h, w = _page_hw(first)
        check_size((len(use), h, w))
        _check_complete(path, use)
        notes = [] if same else [_mixed_pages_warning(len(pages))]
        if first.photometric not in (0, 1, 2, 3) or first.dtype is None:
            # CMYK, YCbCr, CIELab...: Pillow converts these colour spaces
            tif.close()
            return _decode_pil(path)
        try:
            arrays = [_tiff_page_array(p) for p in use]
        except (ValueError, NotImplementedError, KeyError, RuntimeError, TypeError) as exc:
            # typically a compression tifffile cannot decode without imagecodecs (JPEG, LZW...)
            log.info("tifffile could not decode the TIFF (%s); trying Pillow", _without_path(str(exc), path))
            tif.close()
            return _decode_pil(path)
        frames = np.stack(arrays)
        max_value, eight_bit = _dtype_range(frames)
        invert = first.photometric == 0  # MINISWHITE: low values are bright, like DICOM MONOCHROME1
        words = _tiff_words(first, frames)
        orientation = _tiff_orientation(first)
        if orientation not in _ORIENTATION_WORDS:
            notes.append(f"The orientation tag holds an invalid value ({orientation}); the image is shown as stored.")
            orientation = 1
        if orientation != 1:
            frames = np.stack([_orient(f, orientation) for f in frames])
        return _Decoded(frames, max_value, eight_bit, words, _ORIENTATION_WORDS[orientation], invert, notes)
    finally:
        tif.close()


def _tiff_open_error(path: Path, exc: BaseException) -> StudyLoadError:
    try:
        size = os.path.getsize(path)
    except OSError:
        size = -1
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, EOFError) or 0 <= size < 64 or "truncat" in str(exc).lower():
        return TruncatedStudyError(detail=text)
    return CorruptStudyError(detail=text)


def _tiff_orientation(page) -> int:
    tag = page.tags.get(274)  # Orientation
    try:
        return int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 0  # reported as invalid


def _page_key(page) -> tuple:
    return (tuple(page.shape), str(page.dtype), page.photometric)


def _page_hw(page) -> tuple[int, int]:
    return int(page.imagelength), int(page.imagewidth)


def _check_complete(path: Path, pages) -> None:
    """Refuse a TIFF whose strips/tiles end beyond the end of the file (a partial copy)."""
    size = os.path.getsize(path)
    for page in pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > size:
            raise TruncatedStudyError(detail=f"image data ends at byte {max(ends)} of a {size}-byte file")


def _tiff_page_array(page) -> np.ndarray:
    """One page as (H, W) grey or (H, W, 3) RGB in stored units (alpha composited)."""
    arr = page.asarray()
    axes = page.axes
    if "S" in axes and axes.index("S") != len(axes) - 1:  # planar (separate) samples -> last
        arr = np.moveaxis(arr, axes.index("S"), -1)
    arr = np.squeeze(arr)
    if page.photometric == 3:  # palette
        cmap = page.colormap
        if cmap is None or arr.ndim != 2:
            raise ValueError("palette TIFF without a usable colour map")
        return np.moveaxis(cmap[:, arr], 0, -1)  # uint16 RGB
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f"unsupported TIFF page layout {page.axes} {page.shape}")
    samples = arr.shape[-1]
    if page.photometric == 2 and samples >= 3:
        if samples >= 4:
            max_value, _ = _dtype_range(arr)
            return _composite_rgba(arr[..., :4], max_value)
        return arr[..., :3]
    if page.photometric in (0, 1) and samples == 2:  # grey + alpha: composite on black
        max_value, _ = _dtype_range(arr)
        return arr[..., 0].astype(np.float32) * (arr[..., 1].astype(np.float32) / max_value)
    if page.photometric in (0, 1):  # several grey samples (channels): the first is shown
        return arr[..., 0]
    raise ValueError(f"unsupported TIFF samples: photometric {page.photometric}, {samples} samples")


def _dtype_range(arr: np.ndarray) -> tuple[float, bool]:
    """(value that means 'full intensity', whether it is 8-bit data) for *arr*'s dtype."""
    if arr.dtype == np.uint8:
        return 255.0, True
    if np.issubdtype(arr.dtype, np.integer):
        return float(np.iinfo(arr.dtype).max), False
    peak = float(np.nanmax(arr)) if arr.size else 1.0
    return (1.0 if peak <= 1.0 else peak), False


def _tiff_words(page, frames: np.ndarray) -> str:
    colour = frames.ndim == 4
    bits = page.bitspersample
    kind = {0: "grey (white is zero)", 1: "grey", 2: "RGB", 3: "palette colour"}.get(page.photometric, "image")
    words = f"TIFF: {bits}-bit {kind}"
    if page.photometric == 3:
        words += ", converted to RGB"
    samples = page.samplesperpixel
    if colour and samples >= 4 or not colour and samples == 2:
        words += ", transparency composited on " + ("white" if colour else "black")
    return words


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply a TIFF/EXIF Orientation value to an (H, W[, C]) array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return np.swapaxes(a, 0, 1)
    if orientation == 6:
        return np.rot90(a, k=-1)
    if orientation == 7:
        return np.swapaxes(a, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(a, k=1)
    return a
