"""Read a folder of DICOM files as one series, laid out as (T, Z) for scrolling.

Why this is more than "sort by file name": exports name files arbitrarily, mix several
series (and README files, DICOMDIRs, reports) in one folder, and fMRI/perfusion series put
every time point of every slice side by side. Files are grouped by Series Instance UID,
sorted along the slice normal (Image Position projected on the cross product of the Image
Orientation rows) and split into time points where positions repeat, so that Z is
anatomy and T is time. Anything dropped or doubtful is said in ``Study.warnings``.

Which series opens by default: the one with the most image files; ties go to the lowest
Series Number, then the Series Instance UID. :func:`list_dicom_series` returns the
series in that same order, so its first entry is the one opened by default.

Each file is parsed once (pixel data is read lazily), so a 150-file series opens in
well under a second.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dicom_file import DecodedImage, decode_image
from .dicom_tags import (
    DicomInput,
    declared_frames,
    declared_spacing_between_slices,
    fill_missing_windows,
    image_orientation,
    image_position,
    is_interrupt,
    modality_hint,
    orientation_text,
    pixel_spacing,
    read_dataset,
    safe_metadata,
    slice_normal,
)
from .errors import EmptySeriesError, StudyLoadError, StudyTooLargeError, UnsupportedStudyError
from .limits import check_size
from .study import SeriesSummary, Study, StudyKind

log = logging.getLogger(__name__)

#: A folder with more files than this is almost certainly not one study.
MAX_FILES = 20_000
#: Slice positions closer than this (mm) along the normal count as the same position.
POSITION_TOLERANCE = 0.01


@dataclass
class _Entry:
    """One image file of a series: parsed header plus the keys used to sort it."""

    inp: DicomInput
    series_uid: str
    size: tuple[int, int, int]  # rows, columns, samples per pixel
    orientation: tuple[float, ...] | None
    position: np.ndarray | None
    instance: float
    temporal: tuple[float, ...]
    frames: int

    @property
    def name(self) -> str:
        return self.inp.path.name


@dataclass
class _Scan:
    entries: list[_Entry]
    n_files: int = 0
    non_dicom: int = 0
    non_image: int = 0
    unreadable: int = 0


def _number(value, default: float = 0.0) -> float:
    try:
        return float(str(value).strip()) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _seconds(tm) -> float:
    """DICOM TM (HHMMSS.frac) as seconds since midnight; 0 when absent or unreadable."""
    text = str(tm or "").strip().replace(":", "")
    match = re.match(r"^(\d{2})(\d{2})?(\d{2})?(\.\d+)?", text)
    if not match:
        return 0.0
    h, m, s, frac = match.groups()
    return int(h) * 3600 + int(m or 0) * 60 + int(s or 0) + float(frac or 0)


def _datetime(dt) -> float:
    """DICOM DT (YYYYMMDDHHMMSS.frac, maybe with a UTC offset) as a sortable number."""
    match = re.match(r"^\d+(\.\d+)?", str(dt or "").strip())
    return float(match.group(0)) if match else 0.0


def _entry(inp: DicomInput) -> _Entry:
    ds = inp.ds
    iop = image_orientation(ds)
    return _Entry(
        inp=inp,
        series_uid=str(ds.get("SeriesInstanceUID", "") or "").strip(),
        size=(int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), int(ds.get("SamplesPerPixel", 1) or 1)),
        orientation=tuple(np.round(iop, 3).ravel().tolist()) if iop is not None else None,
        position=image_position(ds),
        instance=_number(ds.get("InstanceNumber")),
        temporal=(
            _number(ds.get("TemporalPositionIdentifier")),
            _number(ds.get("AcquisitionNumber")),
            _datetime(ds.get("AcquisitionDateTime")),
            _number(ds.get("TriggerTime")),
            _seconds(ds.get("AcquisitionTime")),
            _seconds(ds.get("ContentTime")),
        ),
        frames=declared_frames(ds),
    )


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise EmptySeriesError("The folder could not be read.", detail="not a directory", path=str(folder))
    try:
        paths = sorted(
            p for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
    except OSError as exc:
        raise EmptySeriesError("The folder could not be read.", detail=type(exc).__name__, path=str(folder)) from None
    if len(paths) > MAX_FILES:
        raise StudyTooLargeError(
            f"The folder holds too many files ({len(paths)}) to open as one series; open a series folder instead.",
            path=str(folder),
        )
    return [p for p in paths if p.name.upper() != "DICOMDIR"]  # the index, not an image


def _scan(folder: Path) -> _Scan:
    """Parse every file once; count, but otherwise ignore, what is not a DICOM image."""
    scan = _Scan(entries=[])
    for path in _files(folder):
        scan.n_files += 1
        try:
            inp = read_dataset(path)
        except UnsupportedStudyError:
            scan.non_dicom += 1
            continue
        except StudyTooLargeError:
            raise
        except StudyLoadError as exc:
            scan.unreadable += 1
            log.debug("skipping unreadable file %s: %s", path.name, exc.detail[:200])
            continue
        if not inp.has_pixels:
            if inp.truncated:
                scan.unreadable += 1
            else:
                scan.non_image += 1
            continue
        try:
            scan.entries.append(_entry(inp))
        except Exception as exc:  # a header too malformed to sort by
            scan.unreadable += 1
            log.debug("skipping file with unusable header %s: %s", path.name, type(exc).__name__)
    log.debug(
        "scanned %d files in folder: %d images, %d not DICOM, %d without image, %d unreadable",
        scan.n_files, len(scan.entries), scan.non_dicom, scan.non_image, scan.unreadable,
    )
    return scan


def _summaries(entries: list[_Entry]) -> list[SeriesSummary]:
    """One summary per series, most files first; ties by Series Number, then UID."""
    groups: dict[str, list[_Entry]] = {}
    for e in entries:
        groups.setdefault(e.series_uid, []).append(e)
    out = []
    for uid, members in groups.items():
        ds = members[0].inp.ds
        number = ds.get("SeriesNumber")
        out.append(
            SeriesSummary(
                series_uid=uid,
                n_files=len(members),
                modality=str(ds.get("Modality", "") or ""),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                series_number=int(_number(number)) if number not in (None, "") else None,
            )
        )
    return sorted(out, key=lambda s: (-s.n_files, s.series_number if s.series_number is not None else 1 << 62, s.series_uid))


def _empty_error(folder: Path, scan: _Scan) -> EmptySeriesError:
    return EmptySeriesError(
        detail=(
            f"{scan.n_files} files: {scan.non_dicom} not DICOM, {scan.non_image} without image, "
            f"{scan.unreadable} unreadable"
        ),
        path=str(folder),
    )


def list_dicom_series(folder: Path) -> list[SeriesSummary]:
    """The image series in *folder*, the default one (most files) first."""
    folder = Path(folder)
    try:
        scan = _scan(folder)
    except StudyLoadError as exc:
        exc.path = exc.path or str(folder)
        raise
    except MemoryError:
        raise StudyTooLargeError(path=str(folder)) from None
    if not scan.entries:
        raise _empty_error(folder, scan)
    return _summaries(scan.entries)


# --------------------------------------------------------------------------- layout


def _keep_majority(entries: list[_Entry], key, what: str, notes: list[str]) -> list[_Entry]:
    counts = Counter(key(e) for e in entries)
    if len(counts) <= 1:
        return entries
    best = counts.most_common(1)[0][0]
    kept = [e for e in entries if key(e) == best]
    dropped = len(entries) - len(kept)
    notes.append(f"{dropped} image(s) with a different {what} from the rest of the series were left out.")
    return kept


def _gap_note(positions: np.ndarray) -> str | None:
    """Say how many slice positions seem to be missing, from gaps in the spacing."""
    if len(positions) < 3:
        return None
    steps = np.diff(np.sort(positions))
    step = float(np.median(steps))
    if step <= 1e-3:
        return None
    big = steps[steps > 1.5 * step]
    if big.size == 0:
        return None
    missing = int(sum(round(float(s) / step) - 1 for s in big))
    return f"About {max(missing, 1)} slice position(s) are missing (the slices have gaps)."


def _layout_slices(entries: list[_Entry], notes: list[str]) -> tuple[list[list[int]], float | None]:
    """(T, Z) indices into *entries* for single-frame files, plus the slice spacing."""
    n = len(entries)
    by_time = sorted(range(n), key=lambda i: (entries[i].temporal, entries[i].instance, entries[i].name))
    orientation = entries[0].orientation
    if orientation is None or any(e.position is None for e in entries):
        order = sorted(range(n), key=lambda i: (entries[i].instance, entries[i].temporal, entries[i].name))
        return [order], None
    normal = slice_normal(np.asarray(orientation, dtype=float).reshape(2, 3))
    proj = np.array([float(e.position @ normal) for e in entries])
    rank = {i: r for r, i in enumerate(by_time)}
    at: dict[float, list[int]] = {}  # position (first seen along the normal) -> files there
    here = -np.inf
    for i in sorted(range(n), key=lambda i: proj[i]):
        if proj[i] - here > POSITION_TOLERANCE:
            here = float(proj[i])
        at.setdefault(here, []).append(i)
    positions = sorted(at)
    for p in positions:
        at[p].sort(key=lambda i: rank[i])
    counts = {len(v) for v in at.values()}
    if len(counts) == 1:
        n_t = counts.pop()
        volumes = [[at[p][t] for p in positions] for t in range(n_t)]
    else:
        repeated = sum(1 for v in at.values() if len(v) > 1)
        notes.append(
            f"{repeated} slice position(s) occur more than once and the slices do not form complete "
            "time points; all images are kept in one stack, ordered by position."
        )
        volumes = [[i for p in positions for i in at[p]]]
    gap = _gap_note(np.array(positions))
    if gap:
        notes.append(gap)
    steps = np.diff(np.array(positions))
    spacing = float(np.median(steps)) if steps.size else None
    return volumes, spacing if spacing and spacing > 0 else None


def _stack_single(entries: list[_Entry], images: list[DecodedImage], notes: list[str]):
    volumes, spacing = _layout_slices(entries, notes)
    pixels = np.stack([np.stack([images[i].pixels[0, 0] for i in vol]) for vol in volumes])
    windows = np.stack([np.stack([images[i].windows[0, 0] for i in vol]) for vol in volumes])
    order = [i for vol in volumes for i in vol]
    if spacing is None and len(volumes[0]) > 1:
        spacing = declared_spacing_between_slices(entries[0].inp.ds)
    return pixels, windows, order, spacing


def _stack_volumes(entries: list[_Entry], images: list[DecodedImage], notes: list[str]):
    """Files that each hold a volume (mosaics, multi-frame): one file per time point."""
    idx = sorted(range(len(entries)), key=lambda i: (entries[i].temporal, entries[i].instance, entries[i].name))
    shapes = Counter(images[i].pixels.shape[1:] for i in idx)
    best = shapes.most_common(1)[0][0]
    kept = [i for i in idx if images[i].pixels.shape[1:] == best]
    if len(kept) < len(idx):
        notes.append(f"{len(idx) - len(kept)} volume file(s) with a different number of slices were left out.")
    pixels = np.concatenate([images[i].pixels for i in kept])
    windows = np.concatenate([images[i].windows for i in kept])
    return pixels, windows, kept, images[kept[0]].slice_spacing


def _decode_all(entries: list[_Entry], notes: list[str]) -> tuple[list[_Entry], list[DecodedImage]]:
    kept, images, errors = [], [], []
    for e in entries:
        try:
            images.append(decode_image(e.inp))
            kept.append(e)
        except StudyTooLargeError:
            raise
        except StudyLoadError as exc:
            errors.append(exc)
            log.debug("could not decode %s: %s", e.name, exc.detail[:200])
    if not kept:
        raise errors[0]
    if errors:
        notes.append(f"{len(errors)} image(s) could not be decoded and were left out ({errors[0]})")
    for image in images[:1]:
        notes.extend(image.warnings)
    return kept, images


def read_dicom_folder(folder: Path, series_uid: str | None = None) -> Study:
    """Open one series of *folder*: *series_uid*, or by default the one with most files.

    Other series found are listed in ``Study.series`` and counted in a warning.
    """
    folder = Path(folder)
    try:
        return _read(folder, series_uid)
    except StudyLoadError as exc:
        exc.path = exc.path or str(folder)
        raise
    except MemoryError:
        raise StudyTooLargeError(path=str(folder)) from None
    except BaseException as exc:  # a layout bug, odd header or codec panic: still a typed error
        if is_interrupt(exc):
            raise
        raise StudyLoadError(
            "The series could not be assembled from the files in this folder.",
            detail=f"{type(exc).__name__}", path=str(folder),
        ) from None


def _read(folder: Path, series_uid: str | None) -> Study:
    scan = _scan(folder)
    if not scan.entries:
        raise _empty_error(folder, scan)
    summaries = _summaries(scan.entries)
    chosen = series_uid if series_uid is not None else summaries[0].series_uid
    if chosen not in {s.series_uid for s in summaries}:
        raise EmptySeriesError("The chosen series is not in this folder.", path=str(folder))
    summary = next(s for s in summaries if s.series_uid == chosen)
    notes: list[str] = []
    if len(summaries) > 1:
        label = f"series {summary.series_number}" if summary.series_number is not None else "one series"
        desc = f" ({summary.series_description})" if summary.series_description else ""
        notes.append(
            f"The folder holds {len(summaries)} series; showing {label}{desc} with {summary.n_files} image(s). "
            "The others are in the series list."
        )
    if scan.non_dicom:
        notes.append(f"{scan.non_dicom} file(s) in the folder are not DICOM and were skipped.")
    if scan.non_image:
        notes.append(f"{scan.non_image} DICOM file(s) without an image (reports, presentation states) were skipped.")
    if scan.unreadable:
        notes.append(f"{scan.unreadable} damaged file(s) could not be read and were skipped.")

    entries = [e for e in scan.entries if e.series_uid == chosen]
    entries = _keep_majority(entries, lambda e: e.size, "image size", notes)
    entries = _keep_majority(entries, lambda e: e.orientation, "orientation", notes)
    rows, cols, _ = entries[0].size
    check_size((sum(max(e.frames, 1) for e in entries), rows, cols), "series")

    entries, images = _decode_all(entries, notes)
    single = [i for i, im in enumerate(images) if im.n_frames == 1]
    multi = [i for i, im in enumerate(images) if im.n_frames > 1]
    if single and multi:  # e.g. a mosaic series with a stray single-frame image
        keep, drop = (single, multi) if len(single) >= len(multi) else (multi, single)
        notes.append(f"{len(drop)} file(s) of a different kind (single- vs multi-frame) were left out.")
        entries, images = [entries[i] for i in keep], [images[i] for i in keep]
    stack = _stack_volumes if images[0].n_frames > 1 else _stack_single
    pixels, windows, order, spacing = stack(entries, images, notes)

    first = entries[order[0]]
    ds = first.inp.ds
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    study = Study(
        kind=StudyKind.DICOM_SERIES,
        modality=modality_hint(ds),
        pixels=pixels,
        windows=fill_missing_windows(pixels, windows.astype(np.float32)),
        source=folder,
        invert=images[0].invert,
        photometric=images[0].photometric,
        orientation=orientation_text(ds),
        pixel_spacing=pixel_spacing(ds),
        slice_spacing=spacing if pixels.shape[1] > 1 else None,
        metadata=safe_metadata(ds, tuple(str(entries[i].inp.ds.get("SOPInstanceUID", "")) for i in order)),
        identifiers=first.inp.identifiers,
        warnings=notes,
        series=[s for s in summaries if s.series_uid != chosen],
    )
    log.debug("series with %d volumes of %d slices of %s", study.n_volumes, study.n_slices, study.shape)
    return study
