"""DICOM plumbing shared by the single-file and the series reader.

Why one module: a file opened on its own and the same file opened as one slice of a
series must give the same modality values, window, colour handling and metadata; if the
two readers each had their own copy, they would drift apart. Everything here wraps
pydicom (and SimpleITK as a fallback decoder) and turns their exceptions into the
:class:`StudyLoadError` hierarchy, so no library exception leaves a reader.

Patient identifiers are read in exactly one place (:func:`patient_identifiers`); every
text that could reach a log or an error detail goes through :func:`scrub` first.

Length: over 500 lines on purpose: see "Why one module" above.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import (
    CorruptStudyError,
    MissingCodecError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedStudyError,
    UnsupportedStudyError,
)
from .limits import check_size
from .study import MODALITIES, PatientIdentifiers, SafeMetadata, auto_window

log = logging.getLogger(__name__)


class _ToDebugLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        log.debug("%s: %s%s", record.name, record.getMessage(), f" ({type(exc).__name__})" if exc else "")


# pydicom's warnings quote file paths, and file names can hold patient names. Its errors (each
# pixel decoder that fails logs one, traceback included, before the next is tried) are about a
# file these readers have already judged: whatever matters to the user is turned into
# Study.warnings or a StudyLoadError, so the rest goes to the debug log, never to the console.
_pydicom_log = logging.getLogger("pydicom")
_pydicom_log.setLevel(logging.ERROR)
_pydicom_log.addHandler(_ToDebugLog())
_pydicom_log.propagate = False
#: The file descriptor 2 is the whole process's; one fallback decode at a time redirects it.
_STDERR_LOCK = threading.Lock()

#: Values larger than this (pixel data, big private blobs) are read from disk only when
#: used, so a series header pass parses each file once and never holds every slice.
DEFER_BYTES = 16 * 1024

_IDENTIFIER_TAGS = ("PatientName", "PatientID", "PatientBirthDate")
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class DicomInput:
    """A parsed data set plus what parsing revealed about the file."""

    path: Path
    ds: Dataset
    truncated: bool  # pydicom reached the end of the file before the data set ended
    identifiers: PatientIdentifiers

    @property
    def has_pixels(self) -> bool:
        return any(t in self.ds for t in _PIXEL_TAGS)


# --------------------------------------------------------------------------- reading


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def patient_identifiers(ds: Dataset) -> PatientIdentifiers:
    """The only place identifiers are read; the result's repr is masked.

    Value validation is switched off meanwhile: pydicom's validation warnings quote the
    offending value and are also logged, which would put a malformed name in the log.
    """
    try:
        with quiet_values():
            return PatientIdentifiers(
                name=_text(ds.get("PatientName", "")),
                patient_id=_text(ds.get("PatientID", "")),
                birth_date=_text(ds.get("PatientBirthDate", "")),
            )
    except Exception:  # a malformed PN/DA value must not stop the image from opening
        return PatientIdentifiers()


@contextmanager
def quiet_values() -> Iterator[None]:
    """pydicom's value validation off, and its warnings dropped, while values are read: those
    warnings quote the malformed value (and are logged), which for a name or a date must not happen."""
    settings = pydicom.config.settings
    mode = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode = mode


def scrub(text: str, ids: PatientIdentifiers | None) -> str:
    """Remove identifier strings from *text* (library messages can quote element values)."""
    if not ids:
        return text[:500]
    for value in (ids.name, ids.patient_id, ids.birth_date, *ids.name.split("^")):
        value = value.strip()
        if len(value) >= 2:
            text = text.replace(value, "<hidden>")
    return text[:500]  # library messages can quote whole values; keep details readable


def _encoding_syntax(ds: Dataset) -> UID:
    """The transfer syntax pydicom detected while reading a file that declares none."""
    encoding = getattr(ds, "original_encoding", (True, True))
    if encoding == (False, True):
        return ExplicitVRLittleEndian
    if encoding == (False, False):
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian  # the DICOM default when nothing says otherwise


def ensure_transfer_syntax(ds: Dataset) -> bool:
    """Give a file written without File Meta a transfer syntax so its pixels can be decoded.

    Returns True when one had to be assumed (old ACR-NEMA style or raw exports).
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        meta = ds.file_meta
    if meta.get("TransferSyntaxUID"):
        return False
    meta.TransferSyntaxUID = _encoding_syntax(ds)
    return True


def looks_like_dicom(ds: Dataset) -> bool:
    """Whether a data set read with ``force=True`` is DICOM rather than parsed noise."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID"):
        return True
    return any(t in ds for t in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")) or (
        "Rows" in ds and "Columns" in ds
    )


def _has_preamble(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def sop_class_name(ds: Dataset) -> str:
    """Name of the SOP class (from the data set, else the File Meta), '' when unknown."""
    meta = getattr(ds, "file_meta", None)
    uid = _text(ds.get("SOPClassUID", "")) or (_text(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else "")
    return UID(uid).name if uid else ""


def _cut_short(ds: Dataset, path: Path, eof_warned: bool) -> bool:
    """Whether an image data set lost its pixel data because the file ends too early.

    Pydicom stops quietly (or only warns) when a file ends inside a value, so the signs
    are: an end-of-file warning, a deferred value reaching past the end of the file, or
    an image header (Rows, Columns, an image SOP class) with no Pixel Data after it.
    """
    if any(t in ds for t in _PIXEL_TAGS):
        return False
    if eof_warned or ("Rows" in ds and "Columns" in ds) or "Image Storage" in sop_class_name(ds):
        return True
    try:
        size = path.stat().st_size
    except OSError:
        return False
    for elem in ds.elements():
        length = getattr(elem, "length", 0)
        tell = getattr(elem, "value_tell", None)
        if getattr(elem, "value", b"") is None and tell is not None and length != 0xFFFFFFFF and tell + length > size:
            return True
    return False


def read_dataset(path: Path) -> DicomInput:
    """Parse *path* once; large values (pixel data) stay on disk until decoded.

    Raises UnsupportedStudyError when the bytes are not DICOM, TruncatedStudyError when the
    header itself is cut short, CorruptStudyError when pydicom cannot parse it.
    """
    try:
        preamble = _has_preamble(path)
    except OSError as exc:
        raise StudyLoadError(
            "The file could not be read (check that it exists and you may open it).",
            detail=type(exc).__name__, path=str(path),
        ) from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, force=True, defer_size=DEFER_BYTES)
    except MemoryError:
        raise StudyTooLargeError(path=str(path)) from None
    except EOFError as exc:
        raise TruncatedStudyError(detail=f"EOFError: {exc}", path=str(path)) from None
    except Exception as exc:
        if preamble:
            raise CorruptStudyError(
                "The file is damaged: its DICOM header could not be read.",
                detail=scrub(f"{type(exc).__name__}: {exc}", None), path=str(path),
            ) from None
        raise UnsupportedStudyError(
            "This file is not a DICOM image.", detail=type(exc).__name__, path=str(path)
        ) from None
    ids = patient_identifiers(ds)
    messages = [scrub(str(w.message), ids) for w in caught]
    eof_warned = any("end of file" in m.lower() or "delimiter" in m.lower() for m in messages)
    if messages:
        log.debug("pydicom reported %d warning(s) reading %s: %s", len(messages), path.name, messages[0][:200])
    if not looks_like_dicom(ds):
        raise UnsupportedStudyError("This file is not a DICOM image.", path=str(path))
    try:
        if ensure_transfer_syntax(ds):
            log.debug("%s has no transfer syntax; assuming %s", path.name, ds.file_meta.TransferSyntaxUID.name)
    except Exception as exc:  # pydicom refused to set the meta: nothing can be decoded
        raise CorruptStudyError(detail=type(exc).__name__, path=str(path)) from None
    return DicomInput(path=path, ds=ds, truncated=_cut_short(ds, path, eof_warned), identifiers=ids)


def require_pixels(inp: DicomInput) -> None:
    """Refuse data sets without an image (reports, presentation states, key objects)."""
    if inp.has_pixels:
        return
    if inp.truncated:
        raise TruncatedStudyError(detail="the file ends before its pixel data", path=str(inp.path))
    raise UnsupportedStudyError(
        "This DICOM file holds no image (it is a report, presentation state or other non-image object).",
        detail=f"no Pixel Data; SOP class {sop_class_name(inp.ds) or 'unknown'}", path=str(inp.path),
    )


# --------------------------------------------------------------------------- metadata


def modality_hint(ds: Dataset) -> str:
    modality = _text(ds.get("Modality", "")).upper()
    return modality if modality in MODALITIES else "OT"


def transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(uid)) if uid else None


def shared_group(ds: Dataset, keyword: str) -> Dataset | None:
    """First item of *keyword* in the Shared Functional Groups (Enhanced IODs)."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(keyword)
        if seq:
            return seq[0]
    return None


def frame_group(ds: Dataset, index: int, keyword: str) -> Dataset | None:
    """First item of *keyword* for frame *index*: per-frame groups first, shared as fallback."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        seq = per_frame[index].get(keyword)
        if seq:
            return seq[0]
    return shared_group(ds, keyword)


def body_part(ds: Dataset) -> str:
    part = _text(ds.get("BodyPartExamined", ""))
    if part:
        return part
    anatomy = shared_group(ds, "FrameAnatomySequence") or frame_group(ds, 0, "FrameAnatomySequence")
    region = anatomy.get("AnatomicRegionSequence") if anatomy is not None else None
    return _text(region[0].get("CodeMeaning", "")) if region else ""


def safe_metadata(ds: Dataset, sop_uids: tuple[str, ...] | None = None) -> SafeMetadata:
    """Descriptive tags that identify no patient (see SafeMetadata)."""
    ts = transfer_syntax(ds)
    sop_class = _text(ds.get("SOPClassUID", ""))
    if sop_uids is None:
        sop_uids = (_text(ds.get("SOPInstanceUID", "")),)
    return SafeMetadata(
        study_uid=_text(ds.get("StudyInstanceUID", "")),
        series_uid=_text(ds.get("SeriesInstanceUID", "")),
        sop_uids=tuple(u for u in sop_uids if u),
        modality=_text(ds.get("Modality", "")),
        body_part=body_part(ds),
        view_position=_text(ds.get("ViewPosition", "")),
        series_description=_text(ds.get("SeriesDescription", "")),
        manufacturer=_text(ds.get("Manufacturer", "")),
        sop_class_uid=sop_class,
        transfer_syntax=ts.name if ts else "",
        photometric_interpretation=_text(ds.get("PhotometricInterpretation", "")),
    )


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """The first *n* values of a (multi-valued) numeric element, or None if unusable."""
    items = [value] if isinstance(value, (str, bytes, int, float)) else value
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(out) < n or not all(math.isfinite(v) for v in out[:n]):
        return None
    return out[:n]


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: Pixel Measures, Pixel Spacing, then Imager Pixel Spacing.

    Zero or negative spacings (written by some converters) count as unknown.
    """
    candidates = []
    measures = frame_group(ds, 0, "PixelMeasuresSequence")
    if measures is not None:
        candidates.append(measures.get("PixelSpacing"))
    candidates += [ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")]
    for value in candidates:
        pair = _floats(value, 2) if value is not None else None
        if pair and pair[0] > 0 and pair[1] > 0:
            return (pair[0], pair[1])
    return None


def declared_spacing_between_slices(ds: Dataset) -> float | None:
    measures = frame_group(ds, 0, "PixelMeasuresSequence")
    for value in ((measures.get("SpacingBetweenSlices") if measures is not None else None), ds.get("SpacingBetweenSlices")):
        one = _floats(value, 1) if value is not None else None
        if one and one[0] > 0:
            return abs(one[0])
    return None


def image_orientation(ds: Dataset, frame: int = 0) -> np.ndarray | None:
    """Image Orientation (Patient) as a (2, 3) array of unit row/column directions."""
    value = ds.get("ImageOrientationPatient")
    if value is None:
        group = frame_group(ds, frame, "PlaneOrientationSequence")
        value = group.get("ImageOrientationPatient") if group is not None else None
    six = _floats(value, 6) if value is not None else None
    if not six:
        return None
    iop = np.asarray(six, dtype=float).reshape(2, 3)
    norms = np.linalg.norm(iop, axis=1)
    if np.any(norms < 1e-6):
        return None
    return iop / norms[:, None]


def image_position(ds: Dataset, frame: int | None = None) -> np.ndarray | None:
    value = None
    if frame is not None:
        group = frame_group(ds, frame, "PlanePositionSequence")
        value = group.get("ImagePositionPatient") if group is not None else None
    if value is None:
        value = ds.get("ImagePositionPatient")
    three = _floats(value, 3) if value is not None else None
    return np.asarray(three, dtype=float) if three else None


def slice_normal(iop: np.ndarray) -> np.ndarray:
    normal = np.cross(iop[0], iop[1])
    return normal / max(float(np.linalg.norm(normal)), 1e-9)


_LPS_NAMES = (("right", "left"), ("anterior", "posterior"), ("feet", "head"))
_PLANES = ("sagittal", "coronal", "axial")


def _toward(v: np.ndarray) -> tuple[str, str, float]:
    """(from, to, degrees off the nearest patient axis) for a direction in LPS coordinates."""
    k = int(np.argmax(np.abs(v)))
    neg, pos = _LPS_NAMES[k]
    off = math.degrees(math.acos(min(1.0, abs(float(v[k])))))
    return (neg, pos, off) if v[k] > 0 else (pos, neg, off)


def orientation_text(ds: Dataset, iop: np.ndarray | None = None) -> str:
    """Say in words what screen left/right and top/bottom mean for the patient."""
    iop = image_orientation(ds) if iop is None else iop
    if iop is not None:
        normal = slice_normal(iop)
        k = int(np.argmax(np.abs(normal)))
        tilt = math.degrees(math.acos(min(1.0, abs(float(normal[k])))))
        r_from, r_to, r_off = _toward(iop[0])
        c_from, c_to, _ = _toward(iop[1])
        plane = _PLANES[k] if tilt <= 5 else f"oblique {_PLANES[k]} (tilted {tilt:.0f}°)"
        text = f"{plane}: screen left to right runs patient {r_from} to {r_to}, top to bottom runs {c_from} to {c_to}"
        if tilt <= 5 and r_off > 5:
            text += f", rotated {r_off:.0f}° in plane"
        if k in (1, 2) and r_from == "right":
            text += " (radiological: patient right on screen left)"
        elif k in (1, 2) and r_from == "left":
            text += " (patient left on screen left)"
        return text
    po = ds.get("PatientOrientation")
    letters = {"L": "left", "R": "right", "A": "anterior", "P": "posterior", "H": "head", "F": "feet"}
    if po is not None and len(po) == 2 and all(str(p) for p in po):
        words = [" ".join(letters.get(ch, ch) for ch in str(p)) for p in po]
        return f"projection: screen right toward patient {words[0]}, screen bottom toward {words[1]}"
    return "as stored"


# --------------------------------------------------------------------------- pixels


def declared_frames(ds: Dataset) -> int:
    """Number of Frames (1 when absent); 0 or less is left for check_size to refuse."""
    try:
        return int(float(_text(ds.get("NumberOfFrames", "")) or 1))
    except ValueError:
        raise CorruptStudyError(
            "The file is damaged: its frame count is not a number.", detail="NumberOfFrames unreadable"
        ) from None


def declared_shape(ds: Dataset) -> tuple[int, int, int]:
    """(frames, rows, columns) from the header; checked against the limits before decoding."""
    try:
        rows = int(ds.get("Rows", 0) or 0)
        cols = int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        raise CorruptStudyError("The file is damaged: its image size is unreadable.") from None
    return (declared_frames(ds), rows, cols)


@dataclass
class RawPixels:
    """Decoded pixels, one axis per stored frame: (F, H, W) gray or (F, H, W, 3) colour."""

    array: np.ndarray
    modality_applied: bool = False  # True when the fallback decoder already rescaled
    rgb: bool = False  # colour already converted to RGB (palette / YBR expanded)
    by_gdcm: bool = False  # decoded by the fallback, which also turns MONOCHROME1 into MONOCHROME2


def is_interrupt(exc: BaseException) -> bool:
    """Exceptions that must keep propagating (the user or interpreter is stopping us)."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def _is_missing_codec(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or "missing dependencies" in text or "no pixel data decoders" in text or "is not supported" in text


def _is_truncated(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "less than expected" in text or "end of file" in text or isinstance(exc, EOFError)


@contextmanager
def _stderr_to_debug_log(what: str) -> Iterator[None]:
    """Whatever C code prints to the process's stderr meanwhile goes to the debug log.

    GDCM's JPEG codecs print each failed attempt ("Unsupported JPEG data precision 12") from C
    straight to file descriptor 2 before the one that works, and no SimpleITK switch silences
    them; the user should see only the Study's one warning. The descriptor is process-wide, so
    anything another thread writes to stderr during the decode lands in the debug log as well.
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a windowed app on Windows): nothing to hide
            saved = None
        if saved is not None:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            printed = sink.read().decode(errors="replace").split("\n")
            lines = [line.strip() for line in printed if line.strip()]
            if lines:
                log.debug("%s printed: %s", what, " | ".join(dict.fromkeys(lines))[:1000])


def _decode_with_simpleitk(path: Path) -> np.ndarray:
    """GDCM (through SimpleITK) reads a few real-world streams pydicom's plugins reject."""
    import SimpleITK as sitk

    with _stderr_to_debug_log("GDCM"):
        image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image)


def decode_raw(inp: DicomInput) -> RawPixels:
    """Decode every stored frame, after checking the declared size against the limits.

    YBR data comes back as RGB (pydicom's default in v3); PALETTE COLOR stays indices
    (see :func:`to_rgb01`). Errors map to MissingCodecError / TruncatedStudyError /
    CorruptStudyError with the library text, scrubbed, in ``detail``.
    """
    ds, path = inp.ds, inp.path
    frames, rows, cols = declared_shape(ds)
    check_size((frames, rows, cols))
    ts = transfer_syntax(ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except MemoryError:
        raise StudyTooLargeError(path=str(path)) from None
    except BaseException as exc:  # Rust codecs (pylibjpeg-rle) raise PanicException, a BaseException
        if is_interrupt(exc):
            raise
        detail = scrub(f"{type(exc).__name__}: {exc}", inp.identifiers)
        if _is_truncated(exc):
            raise TruncatedStudyError(detail=detail, path=str(path)) from None
        missing = _is_missing_codec(exc)
        try:  # a second decoder before giving up
            arr = _decode_with_simpleitk(path)
        except MemoryError:
            raise StudyTooLargeError(path=str(path)) from None
        except BaseException as exc2:
            if is_interrupt(exc2):
                raise
            detail += scrub(f"; SimpleITK: {type(exc2).__name__}: {exc2}", inp.identifiers)
            if missing:
                name = ts.name if ts else "unknown"
                raise MissingCodecError(detail=f"transfer syntax {name}; {detail}", path=str(path)) from None
            raise CorruptStudyError(detail=detail, path=str(path)) from None
        log.debug("pydicom could not decode %s (%s); GDCM could", path.name, detail[:200])
        arr = np.asarray(arr)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.shape[:3] != (frames, rows, cols) or arr.ndim > 4:
            raise CorruptStudyError(detail=f"GDCM decoded {arr.shape}, header says {(frames, rows, cols)}", path=str(path))
        return RawPixels(arr, modality_applied=True, rgb=arr.ndim == 4, by_gdcm=True)
    arr = np.asarray(arr)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1 and arr.ndim == (2 if samples == 1 else 3):
        arr = arr[None]
    expected = (frames, rows, cols) if samples == 1 else (frames, rows, cols, samples)
    if arr.shape != expected:
        raise CorruptStudyError(
            detail=f"decoded shape {arr.shape} does not match the header {expected}", path=str(path)
        )
    return RawPixels(arr, rgb=samples == 3)


def to_modality(raw: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values -> modality units (Rescale / Modality LUT), per frame for Enhanced IODs.

    Frame-by-frame keeps the float64 intermediates of pydicom small.
    """
    from pydicom.pixels import apply_modality_lut

    out = np.empty(raw.shape, dtype=np.float32)
    per_frame = [frame_group(ds, i, "PixelValueTransformationSequence") for i in range(raw.shape[0])]
    for i in range(raw.shape[0]):
        source = per_frame[i] if per_frame[i] is not None else ds
        out[i] = apply_modality_lut(raw[i], source)
    return out


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple, MultiValue)):
            value = value[0]
        f = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return f if math.isfinite(f) else None


def stored_windows(ds: Dataset, n_frames: int) -> np.ndarray:
    """(F, 2) window (center, width) per stored frame; NaN where the file gives none.

    The first of several windows is used (the one the modality chose as default);
    frame-level windows (Frame VOI LUT) win over the top-level ones.
    """
    out = np.full((n_frames, 2), np.nan, dtype=np.float32)
    top = (_first(ds.get("WindowCenter")), _first(ds.get("WindowWidth")))
    for i in range(n_frames):
        group = frame_group(ds, i, "FrameVOILUTSequence")
        c, w = top
        if group is not None:
            gc, gw = _first(group.get("WindowCenter")), _first(group.get("WindowWidth"))
            if gc is not None and gw is not None:
                c, w = gc, gw
        if c is not None and w is not None and w > 0:
            out[i] = (c, w)
    return out


def apply_voi_lut_sequence(values: np.ndarray, ds: Dataset) -> tuple[np.ndarray, tuple[float, float]] | None:
    """If the file's VOI is a LUT (and no window), map through it and window its output range."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    from pydicom.pixels import apply_voi_lut

    out = np.empty(values.shape, dtype=np.float32)
    for i in range(values.shape[0]):  # LUT inputs are integers (pydicom mis-indexes floats)
        out[i] = apply_voi_lut(np.rint(values[i]).astype(np.int64), ds, index=0, prefer_lut=True)
    try:  # the LUT's own output range: pass every input it maps through it
        n_entries, first = (int(v) for v in list(seq[0].LUTDescriptor)[:2])
        ramp = apply_voi_lut(np.arange(first, first + (n_entries or 65536), dtype=np.int64), ds, prefer_lut=True)
        lo, hi = float(np.min(ramp)), float(np.max(ramp))
    except Exception:  # malformed descriptor: fall back to what the image uses
        lo, hi = float(out.min()), float(out.max())
    return out, ((lo + hi) / 2.0, max(hi - lo, 1.0))


def photometric_text(pi: str, *, converted: bool) -> tuple[str, bool]:
    """(description, invert) for a Photometric Interpretation."""
    if pi == "MONOCHROME1":
        return "MONOCHROME1 (inverted for display)", True
    if pi == "MONOCHROME2" or not pi:
        return "MONOCHROME2", False
    if converted and pi != "RGB":
        return f"{pi} (converted to RGB)", False
    return pi, False


def to_rgb01(raw: RawPixels, ds: Dataset) -> np.ndarray:
    """Colour pixels -> float32 RGB in [0, 1]: palette through its LUT, others by bits stored."""
    pi = _text(ds.get("PhotometricInterpretation", "")).upper()
    arr = raw.array
    if pi == "PALETTE COLOR" and not raw.rgb:
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds)
        desc = ds.get("RedPaletteColorLookupTableDescriptor")
        bits = int(desc[2]) if desc is not None and len(desc) == 3 else 16
        top = float(2**bits - 1)
        if float(rgb.max(initial=0)) > top:  # descriptor claims 8 bits but LUT holds 16-bit values
            top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else float(rgb.max())
        return (rgb.astype(np.float32) / top).clip(0.0, 1.0)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise UnsupportedStudyError(
            "The image's colour encoding is not supported.", detail=f"photometric {pi}, shape {arr.shape}"
        )
    if raw.modality_applied and arr.dtype.kind in "ui":
        top = float(np.iinfo(arr.dtype).max)
    else:
        bits = int(ds.get("BitsStored", 8) or 8)
        top = float(2 ** min(bits, 32) - 1)
    return (arr.astype(np.float32) / top).clip(0.0, 1.0)


def fill_missing_windows(pixels: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Frames without a stored window get one robust window computed over all of them.

    One window for the whole stack (not per frame) keeps brightness steady while scrolling.
    """
    if pixels.ndim == 5:
        return np.full(windows.shape, np.nan, dtype=np.float32)
    missing = np.isnan(windows[..., 0]) | np.isnan(windows[..., 1])
    if missing.any():
        w = auto_window(pixels[missing])
        windows = windows.copy()
        windows[missing] = (w.center, w.width)
    return windows.astype(np.float32, copy=False)
