"""The `Study`: what every reader returns and every viewer, model and report consumes.

Why one container: the GUI, the CLI and the inference engine must not care whether
the pixels came from a JPEG 2000 DICOM, a NIfTI or a TIFF tile. Readers normalise to
float32 arrays in *display orientation* (row 0 at the top of the screen, radiological
left/right for cross-sections) with a display window per frame, so that
``study.frame(t, z).display()`` is exactly what a clinician sees and what a model is fed.

Patient identifiers are kept apart in :class:`PatientIdentifiers`, whose ``repr`` is
masked, so that logging a Study (or its metadata) can never leak a name, ID or birth date.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np


class StudyKind(str, Enum):
    DICOM = "dicom"  # one single-frame DICOM file
    DICOM_MULTIFRAME = "dicom-multiframe"  # one file, several frames (Enhanced MR/CT, US, mosaic)
    DICOM_SERIES = "dicom-series"  # a folder of files of one series
    NIFTI = "nifti"  # 3-D or 4-D NIfTI volume
    IMAGE = "image"  # PNG / JPEG / TIFF that fits one model input
    TILED_IMAGE = "tiled-image"  # a large field split into model-sized tiles


#: Modality hints understood by the model registry.
MODALITIES = ("CR", "DX", "MR", "CT", "NM", "US", "PT", "XA", "fMRI", "histology", "dermoscopy", "photo", "OT")
#: How a clinician reads each modality hint in a sentence ("This is a ... study").
MODALITY_WORDS: dict[str, str] = {
    "CR": "radiograph (CR)",
    "DX": "radiograph (DX)",
    "MR": "MR",
    "CT": "CT",
    "US": "ultrasound",
    "NM": "nuclear medicine",
    "PT": "PET",
    "XA": "angiography",
    "fMRI": "fMRI map",
    "histology": "histology",
    "dermoscopy": "dermoscopy",
    "photo": "colour photograph",
    "OT": "grey-scale image",
}


def modality_words(modality: str) -> str:
    return MODALITY_WORDS.get(modality, modality or "unknown")


@dataclass(frozen=True)
class DisplayWindow:
    """Linear VOI window in modality units (DICOM PS3.3 C.11.2.1.2)."""

    center: float
    width: float

    @property
    def low(self) -> float:
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        return self.center + self.width / 2.0


@dataclass(frozen=True)
class Frame:
    """One 2-D image as a viewer shows it."""

    pixels: np.ndarray  # float32 (H, W) in modality units, or (H, W, 3) RGB in [0, 1]
    window: DisplayWindow | None  # None for RGB
    invert: bool = False  # MONOCHROME1: low values are bright

    @property
    def is_rgb(self) -> bool:
        return self.pixels.ndim == 3

    def display(self, window: DisplayWindow | None = None) -> np.ndarray:
        """Return float32 in [0, 1] (gray (H, W) or RGB (H, W, 3)) after windowing and inversion."""
        if self.is_rgb:
            return np.clip(self.pixels, 0.0, 1.0).astype(np.float32, copy=False)
        w = window or self.window
        if w is None:
            lo, hi = float(np.min(self.pixels)), float(np.max(self.pixels))
        else:
            lo, hi = w.low, w.high
        scale = 1.0 / max(hi - lo, 1e-6)
        out = np.clip((self.pixels - lo) * scale, 0.0, 1.0).astype(np.float32, copy=False)
        return 1.0 - out if self.invert else out


@dataclass(frozen=True)
class SafeMetadata:
    """Descriptive, non-identifying tags. Never add names, IDs, dates of birth or addresses."""

    study_uid: str = ""
    series_uid: str = ""
    sop_uids: tuple[str, ...] = ()
    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    series_description: str = ""
    manufacturer: str = ""
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    photometric_interpretation: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sop_uids"] = list(self.sop_uids)
        return d


@dataclass(frozen=True)
class PatientIdentifiers:
    """Identifying fields, shown only when the user asks. Masked in repr so logs stay clean."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""

    def __repr__(self) -> str:  # never leak through logging or tracebacks
        return "PatientIdentifiers(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class SeriesSummary:
    """One series found in a folder (the folder may hold several; one is opened)."""

    series_uid: str
    n_files: int
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None


@dataclass(frozen=True)
class TileGrid:
    """How a large field was cut into model-sized tiles; boxes are (y0, x0, y1, x1) pixels."""

    tile_size: int
    n_rows: int
    n_cols: int
    boxes: tuple[tuple[int, int, int, int], ...]

    def tile(self, image: np.ndarray, row: int, col: int) -> np.ndarray:
        y0, x0, y1, x1 = self.boxes[row * self.n_cols + col]
        return image[y0:y1, x0:x1]


@dataclass(frozen=True)
class MapVolume:
    """A 3-D map in RAS voxel order with its affine (fMRI summary maps, statistical maps)."""

    name: str
    data: np.ndarray  # float32 (X, Y, Z), RAS+
    affine: np.ndarray  # 4x4 voxel -> mm

    def to_nifti(self):
        import nibabel as nib

        return nib.Nifti1Image(self.data.astype(np.float32), self.affine)


@dataclass
class Study:
    """An opened study: frames in display orientation plus what is safe to show about them.

    ``pixels`` has shape (T, Z, H, W) for gray or (T, Z, H, W, 3) for RGB, where T counts
    volumes / time points and Z slices / frames; a plain 2-D image has T = Z = 1.
    ``windows`` has shape (T, Z, 2) holding (center, width), NaN for RGB frames.
    """

    kind: StudyKind
    modality: str
    pixels: np.ndarray
    windows: np.ndarray
    source: Path
    invert: bool = False
    photometric: str = ""  # how colour/polarity was handled, in words
    orientation: str = "as stored"  # e.g. "axial, radiological (patient right on screen left)"
    pixel_spacing: tuple[float, float] | None = None  # (row, column) mm
    slice_spacing: float | None = None
    metadata: SafeMetadata = field(default_factory=SafeMetadata)
    identifiers: PatientIdentifiers = field(default_factory=PatientIdentifiers)
    warnings: list[str] = field(default_factory=list)
    series: list[SeriesSummary] = field(default_factory=list)
    tiles: TileGrid | None = None
    maps: dict[str, MapVolume] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pixels.dtype != np.float32:
            raise TypeError("Study.pixels must be float32")
        if self.pixels.ndim not in (4, 5) or (self.pixels.ndim == 5 and self.pixels.shape[-1] != 3):
            raise ValueError(f"Study.pixels must be (T,Z,H,W) or (T,Z,H,W,3), got {self.pixels.shape}")
        if self.windows.shape != (*self.pixels.shape[:2], 2):
            raise ValueError("Study.windows must be (T, Z, 2)")

    def __repr__(self) -> str:
        return (
            f"Study(kind={self.kind.value}, modality={self.modality}, shape={self.shape}, "
            f"n_frames={self.n_frames}, source={self.source.name!r})"
        )

    @property
    def n_volumes(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def n_slices(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def n_frames(self) -> int:
        return self.n_volumes * self.n_slices

    @property
    def shape(self) -> tuple[int, ...]:
        """Frame shape: (H, W) or (H, W, 3)."""
        return tuple(int(s) for s in self.pixels.shape[2:])

    @property
    def is_rgb(self) -> bool:
        return self.pixels.ndim == 5

    def frame(self, volume: int = 0, slice_: int | None = None) -> Frame:
        """Frame at (volume, slice); the slice defaults to the middle one, as a viewer opens."""
        z = self.n_slices // 2 if slice_ is None else slice_
        c, w = self.windows[volume, z]
        window = None if self.is_rgb or np.isnan(c) else DisplayWindow(float(c), float(w))
        return Frame(self.pixels[volume, z], window, self.invert)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description with no patient identifiers (for `medkd info`, reports, logs)."""
        first = self.frame()
        return {
            "kind": self.kind.value,
            "modality": self.modality,
            "n_frames": self.n_frames,
            "n_volumes": self.n_volumes,
            "n_slices": self.n_slices,
            "shape": list(self.shape),
            "photometric": self.photometric,
            "invert": self.invert,
            "orientation": self.orientation,
            "window": None if first.window is None else {"center": first.window.center, "width": first.window.width},
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_spacing": self.slice_spacing,
            "warnings": list(self.warnings),
            "metadata": self.metadata.to_dict(),
            "series": [asdict(s) for s in self.series],
            "tiles": None if self.tiles is None else {"tile_size": self.tiles.tile_size, "rows": self.tiles.n_rows, "cols": self.tiles.n_cols},
            "maps": sorted(self.maps),
            "source": self.source.name,
        }


def windows_like(pixels: np.ndarray, window: DisplayWindow | None) -> np.ndarray:
    """Fill a (T, Z, 2) window array with one window (NaN when None, i.e. RGB)."""
    t, z = pixels.shape[:2]
    out = np.full((t, z, 2), np.nan, dtype=np.float32)
    if window is not None:
        out[..., 0] = window.center
        out[..., 1] = window.width
    return out


def auto_window(values: np.ndarray) -> DisplayWindow:
    """A robust default window (0.5–99.5 percentile) for data without a stored VOI window."""
    flat = values.reshape(-1)
    sample = flat[:: max(1, flat.size // 2_000_000)]  # percentiles of a subsample are plenty
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return DisplayWindow(0.0, 1.0)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    return DisplayWindow(float((lo + hi) / 2.0), float(hi - lo))
