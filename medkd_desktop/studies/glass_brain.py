"""Glass-brain images of 3-D brain maps: what the fMRI models see and the clinician reviews.

Why a glass brain: the ASD models of paper 003 classify nilearn glass-brain renderings of a
subject's map (maximum-intensity projections over transparent brain outlines), because a
2-D image lets ImageNet-style CNNs and saliency methods work unchanged. The same function
renders the image shown in the app and the ~1000 training images, so what the model was
trained on is exactly what a user's study is turned into; that is why every visual choice
is a frozen setting and why the result is cached (memory LRU + optional .npy directory).

Rendering uses nilearn ``plot_glass_brain`` into a ``matplotlib.figure.Figure`` with an Agg
canvas created here: no pyplot figure is ever opened, so nothing leaks into (or out of) a
GUI's pyplot state and it runs headless.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import StudyLoadError, UnsupportedStudyError
from .study import MapVolume

log = logging.getLogger(__name__)

#: Bump when the drawing code changes in a way the settings do not capture (invalidates
#: on-disk caches; nilearn and matplotlib versions are part of the key as well).
RENDER_VERSION = 1
#: Rendered images kept in memory (224x224x3 float32 = 0.6 MB each).
MEMORY_CACHE_ENTRIES = 64
#: Fixed dpi: fonts and outline widths keep their pixel size, so a render larger than the
#: 224 px model input (for the viewer) shows finer detail instead of thicker lines.
_DPI = 100
_VIEWS = set("xyzlr")


@dataclass(frozen=True)
class GlassBrainSettings:
    """Every choice that changes the rendered pixels (part of the cache key).

    Defaults, and why:

    * ``display_mode="lryz"``: left and right lateral views on top, coronal and axial below,
      as a 2x2 grid. A square grid fills a square model input without distortion; nilearn's
      one-row "ortho" strip would be squeezed 3:1 or leave two thirds of the pixels empty.
      Separate left/right lateral views also keep the hemispheres apart, which a single
      sagittal projection ("x") superimposes.
    * ``normalise="zscore"``: the map is z-scored over its non-zero voxels (zero = outside
      the atlas or a region with no signal, and stays 0). Site strongly confounds signal
      scale in ABIDE (data README), so raw values would teach a model the scanner.
    * ``vmax=3.0`` (fixed, in z units, with ``vmin=-vmax``): the same colour means the same
      z in every image; nilearn's default per-image vmax would rescale every subject
      differently. 3 SD saturates only the extreme ~0.3 %. ``None`` = nilearn's per-map max.
    * ``threshold=1.0``: parcels within 1 SD of the subject's mean are transparent, so the
      outlines stay visible and the hubs / low-connectivity regions stand out.
    * ``plot_abs=False`` with ``colormap="cold_hot"``: keep the sign (high = warm, low =
      cold). cold_hot is dark at the threshold, so every coloured parcel contrasts with the
      white background (a white-centred map would fade into it).
    * ``black_bg=False``: a white background with grey outlines reads like a printed figure.
    * ``radiological=True``: patient right on image left, as in MedKD's slice viewer, so the
      two never disagree about sides; the coronal and axial views carry nilearn's R/L marks.
    * ``annotate=True``: those R/L marks; they are identical in every image, so harmless
      to a model.
    * ``interpolation="nearest"``: parcel maps are piecewise constant; smoothing would
      invent values across parcel borders.
    * ``alpha=0.7``: nilearn's default, the outlines show through the colour.
    * ``size=224``: the input size of the bundled ImageNet-style models (paper 003).
    """

    display_mode: str = "lryz"
    colormap: str = "cold_hot"
    threshold: float | None = 1.0
    vmax: float | None = 3.0
    normalise: str = "zscore"
    plot_abs: bool = False
    black_bg: bool = False
    radiological: bool = True
    annotate: bool = True
    interpolation: str = "nearest"
    alpha: float = 0.7
    size: int = 224

    def __post_init__(self) -> None:
        if not self.display_mode or not set(self.display_mode) <= _VIEWS:
            raise ValueError(f"display_mode must be letters from 'xyzlr', got {self.display_mode!r}")
        if self.normalise not in ("zscore", "none"):
            raise ValueError(f"normalise must be 'zscore' or 'none', got {self.normalise!r}")
        if self.size < 32:
            raise ValueError("size must be at least 32 pixels")
        if self.vmax is not None and self.vmax <= 0:
            raise ValueError("vmax must be positive")
        if self.threshold is not None and self.threshold < 0:
            raise ValueError("threshold must be >= 0")


class _LRU:
    """A small thread-safe LRU of rendered arrays, with counters tests and training can read."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.disk_hits = self.renders = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            arr = self._data.get(key)
            if arr is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return arr

    def put(self, key: str, arr: np.ndarray) -> None:
        with self._lock:
            self._data[key] = arr
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = self.disk_hits = self.renders = 0


_CACHE = _LRU(MEMORY_CACHE_ENTRIES)
_RENDER_LOCK = threading.Lock()  # matplotlib's text/font machinery is not thread-safe


def clear_cache() -> None:
    """Empty the in-memory cache and reset its counters (on-disk caches are left alone)."""
    _CACHE.clear()


def cache_info() -> dict[str, int]:
    """Counters: memory hits and misses, disk hits, actual renders, entries held."""
    return {
        "hits": _CACHE.hits,
        "misses": _CACHE.misses,
        "disk_hits": _CACHE.disk_hits,
        "renders": _CACHE.renders,
        "entries": len(_CACHE._data),
    }


def _as_map(map_img: nib.spatialimages.SpatialImage | MapVolume) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) float32 data and affine of a 3-D map (a 4-D image with one volume is fine)."""
    if isinstance(map_img, MapVolume):
        data, affine = np.asarray(map_img.data), np.asarray(map_img.affine, dtype=np.float64)
    else:
        # dataobj applies NIfTI scl_slope/scl_inter, like get_fdata, without a float64 copy
        data, affine = np.asanyarray(map_img.dataobj), np.asarray(map_img.affine, dtype=np.float64)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UnsupportedStudyError(
            "A glass-brain image can only be drawn from a single 3-D map, not a time series.",
            detail=f"shape={data.shape}",
        )
    data = np.ascontiguousarray(data, dtype=np.float32)
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), affine


def normalise_map(data: np.ndarray, how: str = "zscore") -> np.ndarray:
    """Per-subject normalisation before rendering (see :class:`GlassBrainSettings`).

    ``zscore``: (v - mean) / std over the non-zero voxels; zero voxels (outside the atlas,
    regions with no signal) stay 0, i.e. "average", so they are never coloured. A map whose
    non-zero voxels are all equal has no contrast to show and becomes all zero.
    """
    if how == "none":
        return data.astype(np.float32, copy=True)
    out = np.zeros_like(data, dtype=np.float32)
    nz = data != 0
    if np.count_nonzero(nz) < 2:
        return out
    vals = data[nz].astype(np.float64)
    sd = vals.std()
    if sd <= 1e-12 * max(1.0, float(np.abs(vals).max())):
        return out
    out[nz] = ((vals - vals.mean()) / sd).astype(np.float32)
    return out


def glass_brain_key(map_img: nib.spatialimages.SpatialImage | MapVolume, settings: GlassBrainSettings = GlassBrainSettings()) -> str:
    """The cache key: a hash of the map's voxels, affine, the settings and the renderer versions."""
    data, affine = _as_map(map_img)
    return _key(data, affine, settings)


def _key(data: np.ndarray, affine: np.ndarray, settings: GlassBrainSettings) -> str:
    import matplotlib
    import nilearn

    h = hashlib.sha256()
    h.update(f"v{RENDER_VERSION}|nilearn {nilearn.__version__}|mpl {matplotlib.__version__}|{settings!r}|{data.shape}".encode())
    h.update(np.ascontiguousarray(affine, dtype=np.float64).tobytes())
    h.update(data.tobytes())
    return h.hexdigest()


def render_glass_brain(
    map_img: nib.spatialimages.SpatialImage | MapVolume,
    settings: GlassBrainSettings = GlassBrainSettings(),
    *,
    cache_dir: Path | str | None = None,
) -> np.ndarray:
    """Render *map_img* as a glass brain: float32 RGB (size, size, 3) in [0, 1].

    Deterministic (same map + settings -> identical array) and cached: first in memory, then
    in *cache_dir* (``<sha256>.npy`` files, written atomically so parallel training workers
    can share one directory). Raises :class:`UnsupportedStudyError` for a non-3-D map and
    :class:`StudyLoadError` if nilearn cannot draw it.
    """
    data, affine = _as_map(map_img)
    key = _key(data, affine, settings)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit.copy()
    disk = Path(cache_dir) / f"{key}.npy" if cache_dir is not None else None
    if disk is not None and disk.is_file():
        arr = _read_cached(disk, settings.size)
        if arr is not None:
            _CACHE.disk_hits += 1
            _CACHE.put(key, arr)
            return arr.copy()
    arr = _render(data, affine, settings)
    _CACHE.renders += 1
    _CACHE.put(key, arr)
    if disk is not None:
        _write_cached(disk, arr)
    return arr.copy()


def _read_cached(path: Path, size: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        log.warning("unreadable glass-brain cache file ignored: %s", path.name)
        return None
    if arr.shape != (size, size, 3) or arr.dtype != np.float32:
        return None
    return arr


def _write_cached(path: Path, arr: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        log.warning("could not write glass-brain cache file %s", path.name, exc_info=True)


def _render(data: np.ndarray, affine: np.ndarray, s: GlassBrainSettings) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn import plotting

    img = nib.Nifti1Image(normalise_map(data, s.normalise), affine)
    n = len(s.display_mode)
    ncol = int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    with _RENDER_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn warns on empty maps; an empty glass brain is the honest answer
        try:
            fig = Figure(figsize=(s.size / _DPI, s.size / _DPI), dpi=_DPI, facecolor="k" if s.black_bg else "w")
            canvas = FigureCanvasAgg(fig)
            for i, view in enumerate(s.display_mode):
                row, col = divmod(i, ncol)
                ax = fig.add_axes((col / ncol, 1.0 - (row + 1) / nrow, 1.0 / ncol, 1.0 / nrow))
                plotting.plot_glass_brain(
                    img,
                    display_mode=view,
                    axes=ax,
                    colorbar=False,
                    threshold=s.threshold,
                    annotate=s.annotate,
                    black_bg=s.black_bg,
                    cmap=s.colormap,
                    alpha=s.alpha,
                    vmax=s.vmax,
                    vmin=None if s.vmax is None or s.plot_abs else -s.vmax,
                    plot_abs=s.plot_abs,
                    resampling_interpolation=s.interpolation,
                    radiological=s.radiological,
                )
            canvas.draw()
            rgba = np.asarray(canvas.buffer_rgba())
            out = rgba[..., :3].astype(np.float32) / np.float32(255.0)
        except Exception as exc:  # noqa: BLE001 - nilearn/matplotlib failures become one typed error
            raise StudyLoadError("The glass-brain image of this map could not be drawn.", detail=repr(exc)) from exc
        # The Figure is not owned by pyplot: it is freed with its last reference, nothing to close.
    if out.shape != (s.size, s.size, 3):  # Agg rounds figure inches * dpi; keep the contract exact
        from PIL import Image

        out = np.asarray(
            Image.fromarray((out * 255).round().astype(np.uint8)).resize((s.size, s.size), Image.Resampling.BILINEAR),
            dtype=np.float32,
        ) / np.float32(255.0)
    return np.ascontiguousarray(out, dtype=np.float32)
