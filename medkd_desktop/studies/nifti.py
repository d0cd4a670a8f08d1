"""NIfTI reader: 3-D volumes and 4-D fMRI series as axial frames a radiologist expects.

Why reorient: NIfTI files store voxels in whatever order the converter chose (LAS for FSL/MNI
files, LPS or oblique for scanner exports). The affine says where each voxel is in the body,
so we reorient to RAS+ (``nibabel.as_closest_canonical``) and then lay every axial slice out
in the radiological convention used by every PACS: patient right on screen left, anterior
at the top, slices ordered inferior -> superior. The same physical image therefore looks the
same however it was stored.

4-D series get the summary maps of :mod:`.fmri_maps` (temporal mean/std and, on the CC200
grid, the degree and amplitude maps the ASD models read). A 3-D parcel map on the CC200 grid
(the ABIDE degree/amplitude maps) is an fMRI input in its own right: it is returned with
``maps["input"]`` so the model can render it as a glass brain, and also under its kind when the
header's description names it (``parcel_map_kind``).
"""
from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import (
    CorruptStudyError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedStudyError,
    UnsupportedStudyError,
)
from .fmri_maps import MIN_TIMEPOINTS_FOR_CONNECTIVITY, on_atlas_grid, summary_maps
from .limits import check_size
from .study import MapVolume, SafeMetadata, Study, StudyKind, auto_window, windows_like

log = logging.getLogger(__name__)

#: Sidecar (dcm2niix / BIDS JSON) fields that describe the acquisition and never identify.
_SIDECAR_FIELDS = {"Modality": "modality", "Manufacturer": "manufacturer", "SeriesDescription": "series_description", "BodyPart": "body_part"}

ORIENTATION = "axial, radiological (patient right on screen left, anterior at top); slices inferior to superior"


def read_nifti(path: Path) -> Study:
    """Open a 3-D or 4-D NIfTI file (.nii, .nii.gz) as a :class:`Study` of axial frames.

    Raises only :class:`StudyLoadError` subclasses.
    """
    path = Path(path)
    try:
        return _read(path)
    except StudyLoadError:
        raise
    except MemoryError as exc:
        raise StudyTooLargeError(detail=f"MemoryError: {exc}", path=str(path)) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _truncated_or_corrupt(exc, path) from exc
    except FileNotFoundError as exc:
        raise StudyLoadError("The file could not be found; it may have been moved or deleted.", detail=repr(exc), path=str(path)) from exc
    except IsADirectoryError as exc:
        raise UnsupportedStudyError("This is a folder, not a NIfTI file.", detail=repr(exc), path=str(path)) from exc
    except PermissionError as exc:
        raise StudyLoadError("The file could not be read; you may not have permission to open it.", detail=repr(exc), path=str(path)) from exc
    except Exception as exc:  # noqa: BLE001 - the house rule: nothing else escapes
        log.debug("NIfTI read failed", exc_info=True)
        raise CorruptStudyError("The NIfTI file is damaged and its image could not be read.", detail=repr(exc), path=str(path)) from exc


def _truncated_or_corrupt(exc: BaseException, path: Path) -> StudyLoadError:
    text = str(exc).lower()
    short = ("ended before", "smaller than requested", "truncated", "expected")
    if isinstance(exc, EOFError) or any(word in text for word in short):
        return TruncatedStudyError(detail=repr(exc), path=str(path))
    return CorruptStudyError("The compressed NIfTI file is damaged and could not be decompressed.", detail=repr(exc), path=str(path))


def _read(path: Path) -> Study:
    img = _load_image(path)  # header checked (size, dtype) before the voxels are decoded
    vol_shape = _volume_shape(tuple(int(d) for d in img.header.get_data_shape()), path)  # (X, Y, Z, T)

    warnings: list[str] = []
    data = _load_data(img, path).reshape(vol_shape)
    bad = data.size - int(np.count_nonzero(np.isfinite(data)))
    if bad:
        np.nan_to_num(data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        warnings.append(f"{bad} voxels had no numeric value (NaN or infinite) and are shown as 0.")
        log.warning("NIfTI: %d non-finite voxels set to 0", bad)

    affine = img.affine.copy()
    kind = parcel_map_kind(img.header)
    del img  # drop the file's bytes before the copies below
    ras_data, ras_affine, known = _to_ras(data, affine)  # (X, Y, Z, T): X -> right, Y -> anterior, Z -> superior
    zooms = np.sqrt((ras_affine[:3, :3] ** 2).sum(axis=0))
    n_t = ras_data.shape[3]

    maps: dict[str, MapVolume] = {}
    grid_img = nib.Nifti1Image(ras_data[..., 0], ras_affine)
    modality = "MR"
    if n_t > 1:
        modality = "fMRI"
        maps = summary_maps(nib.Nifti1Image(ras_data, ras_affine))
        if "degree" in maps and n_t < MIN_TIMEPOINTS_FOR_CONNECTIVITY:
            warnings.append(
                f"Only {n_t} time points: the connectivity (degree) map is too noisy to interpret "
                f"(at least {MIN_TIMEPOINTS_FOR_CONNECTIVITY} are needed)."
            )
    elif known and on_atlas_grid(grid_img):
        modality = "fMRI"
        volume = MapVolume(kind or "input", np.ascontiguousarray(ras_data[..., 0], dtype=np.float32), ras_affine.copy())
        maps = {"input": volume, **({kind: volume} if kind else {})}

    # Display order: (T, Z, H=A->P, W=R->L): rows run anterior to posterior, columns patient
    # right to left (radiological), slices inferior to superior.
    pixels = np.ascontiguousarray(np.transpose(ras_data, (3, 2, 1, 0))[:, :, ::-1, ::-1], dtype=np.float32)
    del data, ras_data, grid_img
    window = auto_window(pixels)  # one window for every frame, so slices and volumes compare

    orientation = ORIENTATION
    if not known:
        orientation = "as stored (the file's orientation information is missing or invalid)"
        warnings.append("The file does not say how the patient was oriented; left/right and top/bottom may be wrong.")
    elif _is_oblique(affine):
        orientation += "; oblique acquisition shown along the nearest anatomical axes"
        warnings.append("The volume was acquired obliquely; it is shown along the nearest anatomical axes without resampling.")

    fields = _sidecar_metadata(path)
    fields.setdefault("modality", "MR")  # NIfTI has no modality tag; every NIfTI we read is MR
    return Study(
        kind=StudyKind.NIFTI,
        modality=modality,
        pixels=pixels,
        windows=windows_like(pixels, window),
        source=path,
        photometric="grayscale (modality units; NIfTI scale factors applied)",
        orientation=orientation,
        pixel_spacing=_spacing(zooms[1], zooms[0]) if known else None,
        slice_spacing=_positive(zooms[2]) if known else None,
        metadata=SafeMetadata(**fields),
        warnings=warnings,
        maps=maps,
    )


def parcel_map_kind(header) -> str | None:
    """"degree" or "amplitude" when the header's description names the map, else None.

    Why: a 3-D parcel map does not say by its voxels which summary it is, and a model trained on
    amplitude maps says nothing useful about a degree map. ABIDE-derived maps carry it in
    ``descrip`` ("... CC200 parcel degree" / "... parcel std"); only the kind is kept, never the
    rest of the text (it may hold a subject identifier).
    """
    try:
        text = np.asarray(header["descrip"]).tobytes().split(b"\0")[0].decode("ascii", "replace").lower()
    except (KeyError, TypeError, ValueError):
        return None
    words = set(text.replace("_", " ").split())
    if "degree" in words:
        return "degree"
    if words & {"std", "amplitude"}:
        return "amplitude"
    return None


def _to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reorient (X, Y, Z, T) *data* to RAS+ with ``nib.as_closest_canonical`` (views only).

    Returns the data, its new affine and whether the affine could be trusted; a singular or
    non-finite affine leaves the data as stored (the caller warns the user).
    """
    try:
        if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("singular affine")
        ras = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
        return np.asanyarray(ras.dataobj), ras.affine.copy(), True
    except (ValueError, np.linalg.LinAlgError, nib.spatialimages.HeaderDataError):
        log.warning("NIfTI affine unusable; showing the voxels as stored")
        return data, np.eye(4), False


def _load_image(path: Path) -> nib.spatialimages.SpatialImage:
    """Read the file (decompressing it completely) and return the image with data in memory.

    Why not ``nib.load``: it reads a .nii.gz lazily and stops at the last voxel, so gzip's CRC
    is never checked and silently corrupted data would be shown as if it were real; it also
    refuses files without a .nii name, which the content-sniffing dispatcher may hand us
    (a PACS export called ``IM0001``). The header is checked against the size limits before
    the voxels are read. Analyze-style .hdr/.img pairs still go through ``nib.load``.
    """
    if path.name.lower().endswith((".hdr", ".img", ".hdr.gz", ".img.gz")):
        img = nib.load(str(path))
        _check_header(img.header, path)
        return img
    is_gz = _is_gzip(path)
    opener = gzip.open if is_gz else open
    with opener(path, "rb") as fh:
        head = fh.read(540)
    klass = _nifti_class(head, path)
    _check_header(klass.header_class(binaryblock=head[: klass.header_class.sizeof_hdr]), path)
    with opener(path, "rb") as fh:
        raw = fh.read()  # for gzip: reads to the end, so a CRC mismatch raises here
    try:
        return klass.from_bytes(raw)
    except (ValueError, nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError) as exc:
        raise CorruptStudyError("The NIfTI header is damaged and the image could not be read.", detail=repr(exc), path=str(path)) from exc


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _nifti_class(head: bytes, path: Path) -> type[nib.Nifti1Image]:
    if not head:
        raise CorruptStudyError("The file is empty and holds no image.", detail="0 bytes", path=str(path))
    if len(head) < 348:
        raise TruncatedStudyError(detail=f"header is only {len(head)} bytes", path=str(path))
    for order in ("little", "big"):
        sizeof_hdr = int.from_bytes(head[:4], order)
        if sizeof_hdr == 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
            return nib.Nifti1Image
        if sizeof_hdr == 540 and len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
            return nib.Nifti2Image
    raise UnsupportedStudyError("This file is not a NIfTI image MedKD can open.", detail="no NIfTI-1/2 magic", path=str(path))


def _check_header(header: nib.spatialimages.SpatialHeader, path: Path) -> None:
    """Refuse colour/complex voxels and oversized images from the header alone."""
    dtype = header.get_data_dtype()
    if dtype.fields is not None or dtype.kind == "c":
        raise UnsupportedStudyError(
            "This NIfTI file holds colour or complex values per voxel, which MedKD cannot display.",
            detail=f"dtype={dtype}", path=str(path),
        )
    x, y, z, t = _volume_shape(tuple(int(d) for d in header.get_data_shape()), path)
    check_size((t, z, y, x), what="NIfTI image")


def _volume_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int, int]:
    """(X, Y, Z, T) from the header shape; 2-D is one slice, trailing length-1 axes drop."""
    if len(shape) > 4 and all(d == 1 for d in shape[4:]):
        shape = shape[:4]
    if len(shape) == 2:
        return shape[0], shape[1], 1, 1
    if len(shape) == 3:
        return shape[0], shape[1], shape[2], 1
    if len(shape) == 4:
        return shape[0], shape[1], shape[2], shape[3]
    if len(shape) > 4:
        raise UnsupportedStudyError(
            "This NIfTI file holds several values per voxel (e.g. a vector or deformation field), "
            "which MedKD cannot display.",
            detail=f"shape={shape}", path=str(path),
        )
    raise UnsupportedStudyError("This NIfTI file holds no image (fewer than two dimensions).", detail=f"shape={shape}", path=str(path))


def _load_data(img: nib.spatialimages.SpatialImage, path: Path) -> np.ndarray:
    """Decode the voxels as float32 with scl_slope/scl_inter applied; map I/O errors."""
    try:
        return np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except MemoryError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _truncated_or_corrupt(exc, path) from exc
    except ValueError as exc:  # numpy: "buffer is smaller than requested size" (short .nii)
        raise _truncated_or_corrupt(exc, path) from exc
    except OSError as exc:  # nibabel: "Expected N bytes, got M bytes" (short .nii)
        raise _truncated_or_corrupt(exc, path) from exc


def _is_oblique(affine: np.ndarray) -> bool:
    """True when the voxel axes are tilted more than ~1 degree from the anatomical axes."""
    rot = affine[:3, :3] / np.maximum(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)), 1e-12)
    return bool(np.abs(rot).max(axis=0).min() < np.cos(np.deg2rad(1.0)))


def _positive(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) and v > 0 else None


def _spacing(row: float, col: float) -> tuple[float, float] | None:
    r, c = _positive(row), _positive(col)
    return (r, c) if r is not None and c is not None else None


def _sidecar_metadata(path: Path) -> dict[str, str]:
    """Safe descriptive fields from a dcm2niix/BIDS JSON sidecar, if one sits beside the file.

    Only the whitelisted fields are read: sidecars can carry names or birth dates when the
    converter was told to keep them.
    """
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem
    sidecar = path.with_name(stem + ".json")
    if not sidecar.is_file():
        return {}
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        log.debug("unreadable JSON sidecar ignored")
        return {}
    if not isinstance(info, dict):
        return {}
    return {ours: str(info[theirs]) for theirs, ours in _SIDECAR_FIELDS.items() if isinstance(info.get(theirs), (str, int, float))}
