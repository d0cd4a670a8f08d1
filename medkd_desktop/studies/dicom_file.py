"""Read one DICOM file: a single frame, a multi-frame object or a Siemens mosaic.

Why multi-frame layout matters: an Enhanced MR file stores its frames in whatever order
the scanner wrote them, possibly several time points or image types interleaved. The
viewer scrolls Z and steps T, so frames are laid out by their functional groups (stack
position, temporal and other dimension indices) only when that layout is unambiguous;
otherwise they stay in stored order as one volume. A Siemens mosaic packs a whole
volume into one tiled frame; it is unpacked into slices so it scrolls like any volume.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from .dicom_tags import (
    DicomInput,
    apply_voi_lut_sequence,
    declared_spacing_between_slices,
    decode_raw,
    fill_missing_windows,
    frame_group,
    image_orientation,
    image_position,
    is_interrupt,
    modality_hint,
    orientation_text,
    photometric_text,
    pixel_spacing,
    read_dataset,
    require_pixels,
    safe_metadata,
    scrub,
    slice_normal,
    stored_windows,
    to_modality,
    to_rgb01,
)
from .errors import CorruptStudyError, StudyLoadError, StudyTooLargeError
from .study import Study, StudyKind

log = logging.getLogger(__name__)

# Dimension index pointers that say *where* a frame is, not *which volume* it belongs to.
_SPATIAL_POINTERS = {0x00209056, 0x00209057, 0x00200032}  # StackID, InStackPositionNumber, ImagePositionPatient


@dataclass
class DecodedImage:
    """One file's pixels laid out as (T, Z, ...) with what is needed to build a Study."""

    pixels: np.ndarray  # float32 (T, Z, H, W) modality units, or (T, Z, H, W, 3) RGB in [0, 1]
    windows: np.ndarray  # (T, Z, 2); NaN where the file stores no window
    invert: bool
    photometric: str
    pixel_spacing: tuple[float, float] | None
    slice_spacing: float | None
    orientation: str
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.pixels.shape[0] * self.pixels.shape[1])


# --------------------------------------------------------------------------- mosaic


def _is_mosaic(ds: Dataset) -> bool:
    image_type = ds.get("ImageType")
    if image_type is None:
        return False
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return any(str(v).strip().upper() == "MOSAIC" for v in values)


def _mosaic_count(ds: Dataset) -> int | None:
    """NumberOfImagesInMosaic from the Siemens CSA image header (nibabel parses it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns that its readers are experimental
        try:
            from nibabel.nicom import csareader

            csa = csareader.get_csa_header(ds, "image")
            n = csareader.get_n_mosaic(csa) if csa else None
        except Exception as exc:  # unreadable CSA: keep the mosaic as one frame
            log.debug("CSA header unreadable: %s", type(exc).__name__)
            return None
    try:
        return int(n) if n else None
    except (TypeError, ValueError):
        return None


def _unpack_mosaic(frame: np.ndarray, n_images: int) -> np.ndarray | None:
    """Tiles of a (H, W) mosaic, row by row, as (n_images, h, w); None if they do not fit."""
    grid = math.ceil(math.sqrt(n_images))
    rows, cols = frame.shape
    if grid < 1 or rows % grid or cols % grid or n_images > grid * grid:
        return None
    th, tw = rows // grid, cols // grid
    tiles = frame.reshape(grid, th, grid, tw).swapaxes(1, 2).reshape(grid * grid, th, tw)
    return np.ascontiguousarray(tiles[:n_images])


# --------------------------------------------------------------------------- multi-frame layout


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float)):
        return [value]
    return list(value)


def _volume_keys(ds: Dataset, contents: list[Dataset | None]) -> list[tuple]:
    """Per frame, the dimension index values that are not spatial (time, echo, image type...)."""
    pointers = [int(item.DimensionIndexPointer) for item in ds.get("DimensionIndexSequence", []) if "DimensionIndexPointer" in item]
    values = [_as_list(c.get("DimensionIndexValues")) if c is not None else [] for c in contents]
    if pointers and all(len(v) == len(pointers) for v in values):
        return [tuple(int(x) for x, p in zip(v, pointers) if p not in _SPATIAL_POINTERS) for v in values]
    temporal = [c.get("TemporalPositionIndex") if c is not None else None for c in contents]
    if all(t is not None for t in temporal):
        return [(int(t),) for t in temporal]
    return [() for _ in contents]


def frame_layout(ds: Dataset, n: int) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(T, Z) stored-frame indices, positions along the normal of volume 0, and notes.

    Frames are split into volumes by their non-spatial dimension indices only when every
    volume holds the same set of slice positions; otherwise one volume in stored order.
    """
    stored = np.arange(n).reshape(1, n)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if n == 1 or not per_frame or len(per_frame) != n:
        return stored, None, []
    contents = [frame_group(ds, i, "FrameContentSequence") for i in range(n)]
    stacks = {c.get("StackID") for c in contents if c is not None}
    iop = image_orientation(ds, 0)
    positions = [image_position(ds, i) for i in range(n)]
    proj = None
    if iop is not None and all(p is not None for p in positions):
        proj = np.array([float(p @ slice_normal(iop)) for p in positions])
    in_stack = [c.get("InStackPositionNumber") if c is not None else None for c in contents]
    spatial: np.ndarray | None = None
    if len(stacks) <= 1:  # several stacks (e.g. a 3-plane localizer) have no common axis
        if proj is not None:
            spatial = np.round(proj, 3)
        elif all(v is not None for v in in_stack):
            spatial = np.array([float(v) for v in in_stack])
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(_volume_keys(ds, contents)):
        groups.setdefault(key, []).append(i)

    def ordered(idx: list[int]) -> list[int]:
        return sorted(idx, key=lambda i: (spatial[i], i)) if spatial is not None else idx

    if len(groups) > 1:
        members = list(groups.values())
        same_size = len({len(m) for m in members}) == 1
        if spatial is not None and same_size:
            sets = [tuple(sorted(spatial[m].tolist())) for m in members]
            unique = all(len(set(s)) == len(s) for s in sets)
            if unique and len(set(sets)) == 1:
                order = np.array([ordered(m) for _, m in sorted(groups.items())])
                return order, (proj[order[0]] if proj is not None else None), []
        return stored, None, [
            f"The {n} frames could not be grouped into complete volumes; they are shown in stored order."
        ]
    if spatial is not None and len(set(spatial.tolist())) == n:
        order = np.array([ordered(list(range(n)))])
        return order, (proj[order[0]] if proj is not None else None), []
    return stored, None, []


def _spacing_from_positions(positions: np.ndarray | None) -> float | None:
    if positions is None or len(positions) < 2:
        return None
    steps = np.abs(np.diff(np.sort(positions)))
    steps = steps[steps > 1e-4]
    return float(np.median(steps)) if steps.size else None


# --------------------------------------------------------------------------- decoding


def decode_image(inp: DicomInput) -> DecodedImage:
    """Pixels of one file in display form: modality units + windows, or RGB in [0, 1].

    Shared with the series reader, so a slice looks the same opened alone or in its series.
    """
    ds = inp.ds
    require_pixels(inp)
    raw = decode_raw(inp)
    notes: list[str] = []
    pi = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    colour = raw.rgb or pi == "PALETTE COLOR"
    n = int(raw.array.shape[0])
    photometric, invert = photometric_text(pi, converted=colour)
    if raw.by_gdcm:
        notes.append("The image was decoded with GDCM because the standard decoders could not read it.")
    if colour:
        values = to_rgb01(raw, ds)
        windows = np.full((n, 2), np.nan, dtype=np.float32)
    elif raw.by_gdcm and invert:
        # GDCM already flipped MONOCHROME1 to MONOCHROME2, so the stored window (set on the
        # unflipped values) no longer applies: show its output as is with a fresh window.
        values = raw.array.astype(np.float32)
        windows = np.full((n, 2), np.nan, dtype=np.float32)
        photometric, invert = "MONOCHROME1 (inverted by the decoder)", False
    else:
        values = raw.array.astype(np.float32) if raw.modality_applied else to_modality(raw.array, ds)
        windows = stored_windows(ds, n)
        if np.isnan(windows).all():
            voi = apply_voi_lut_sequence(values, ds)
            if voi is not None:
                values, window = voi
                windows[:] = window
                photometric += ", VOI LUT applied (values are the LUT output)"
    spacing = pixel_spacing(ds)
    slice_spacing: float | None = None
    orientation = orientation_text(ds)

    if _is_mosaic(ds) and n == 1 and not colour:
        count = _mosaic_count(ds)
        tiles = _unpack_mosaic(values[0], count) if count else None
        if tiles is None:
            notes.append("This Siemens mosaic has no readable slice count; it is shown as one tiled image.")
        else:
            values = tiles
            windows = np.repeat(windows, len(tiles), axis=0)
            slice_spacing = declared_spacing_between_slices(ds)
        pixels = values[None]
        windows = windows[None]
    else:
        order, positions, layout_notes = frame_layout(ds, n)
        notes += layout_notes
        if order.shape[0] == 1 and np.array_equal(order[0], np.arange(n)):
            pixels, windows = values[None], windows[None]  # stored order: no copy of a long cine
        else:
            pixels, windows = values[order], windows[order]
        if order.shape[1] > 1:
            slice_spacing = _spacing_from_positions(positions) or declared_spacing_between_slices(ds)
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        windows=windows.astype(np.float32),
        invert=invert,
        photometric=photometric,
        pixel_spacing=spacing,
        slice_spacing=slice_spacing,
        orientation=orientation,
        warnings=notes,
    )


def read_dicom_file(path: Path) -> Study:
    """Open one DICOM file (single-frame, multi-frame or mosaic) as a Study.

    Raises only StudyLoadError subclasses: MissingCodecError, TruncatedStudyError,
    UnsupportedStudyError (no pixel data), StudyTooLargeError, CorruptStudyError.
    """
    path = Path(path)
    inp: DicomInput | None = None
    try:
        inp = read_dataset(path)
        image = decode_image(inp)
        windows = fill_missing_windows(image.pixels, image.windows)
        multi = image.n_frames > 1
        study = Study(
            kind=StudyKind.DICOM_MULTIFRAME if multi else StudyKind.DICOM,
            modality=modality_hint(inp.ds),
            pixels=image.pixels,
            windows=windows,
            source=path,
            invert=image.invert,
            photometric=image.photometric,
            orientation=image.orientation,
            pixel_spacing=image.pixel_spacing,
            slice_spacing=image.slice_spacing if image.pixels.shape[1] > 1 else None,
            metadata=safe_metadata(inp.ds),
            identifiers=inp.identifiers,
            warnings=list(image.warnings),
        )
    except StudyLoadError as exc:
        exc.path = exc.path or str(path)
        raise
    except MemoryError:
        raise StudyTooLargeError(path=str(path)) from None
    except BaseException as exc:  # any other library failure (even a codec panic) is a damaged file
        if is_interrupt(exc):
            raise
        detail = scrub(f"{type(exc).__name__}: {exc}", inp.identifiers if inp else None)
        raise CorruptStudyError(detail=detail, path=str(path)) from None
    log.debug("read %s: %s frames of %s, %s", path.name, study.n_frames, study.shape, study.photometric)
    return study
