"""Summary maps of a 4-D fMRI image: what a glass brain and the ASD models look at.

Why these maps: a reader cannot show 176 volumes at once, and the bundled ABIDE models were
trained on two parcel-level maps per subject (``../shared/data/README.md``, fMRI section):

* ``degree``: CC200 region mean time series -> 200x200 Pearson correlation -> weighted degree
  (sum of r over the *other* regions with r > 0.25), painted onto each region;
* ``amplitude``: temporal standard deviation of each region's (already band-passed) signal,
  painted onto each region (ALFF-like).

Conventions, found by reproducing the distributed maps of NYU_0050952 from its painted 4-D
series (``fmri-asd/painted_4d``), max abs error 6e-6 (degree, scale ~30) and 2.4e-5
(amplitude, scale ~40), i.e. float32 rounding of the stored maps:

* standard deviation with ``ddof=0`` (population std; ``ddof=1`` is off by 0.26);
* the diagonal (r = 1 of a region with itself) is *excluded* from the degree (including it
  adds exactly 1 to every region);
* no extra band-pass or detrending here: ABIDE Preprocessed time series are already
  band-passed (0.01-0.1 Hz) and the maps were computed on them as they are;
* strict ``r > 0.25``;
* a region with no signal (constant, usually all-zero: 46 ABIDE subjects have some) has an
  undefined correlation; it is treated as r = 0 with every region, so its degree is 0 and it
  adds nothing to the others' degree; its amplitude is 0. That matches the distributed maps,
  where every zero-amplitude region also has degree 0.

All maps are returned in RAS+ voxel order (as :class:`MapVolume` requires) with the matching
affine, whatever the storage orientation of the input.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources

import nibabel as nib
import numpy as np

from .study import MapVolume

log = logging.getLogger(__name__)

#: CC200 on the MNI152 3 mm grid of ABIDE Preprocessed.
CC200_SHAPE = (61, 73, 61)
N_REGIONS = 200
#: Correlation threshold of the weighted degree (ABIDE maps of this project).
DEGREE_THRESHOLD = 0.25
#: Fewer time points than this give correlations too noisy to read: the standard error of r
#: near 0 is about 1/sqrt(T), i.e. 0.14 at T = 50, already half the 0.25 threshold.
MIN_TIMEPOINTS_FOR_CONNECTIVITY = 50

_ATLAS_FILE = "CC200_61x73x61_3mm.nii.gz"


@lru_cache(maxsize=1)
def load_cc200_atlas() -> nib.Nifti1Image:
    """The bundled CC200 label image (labels 1..200, 0 outside), fully in memory.

    Why in memory: the package may live in a zip or a PyInstaller bundle, where a lazily
    read file proxy would outlive the temporary file that ``as_file`` hands out.
    """
    ref = resources.files("medkd_desktop.studies").joinpath("atlas").joinpath(_ATLAS_FILE)
    with resources.as_file(ref) as path:
        img = nib.load(str(path))
        labels = np.asarray(img.dataobj).astype(np.int16)
        affine = img.affine.copy()
    out = nib.Nifti1Image(labels, affine)
    out.set_qform(affine, code=4)  # MNI152
    out.set_sform(affine, code=4)
    return out


def _canonical(img: nib.spatialimages.SpatialImage) -> nib.spatialimages.SpatialImage:
    return nib.as_closest_canonical(img)


def canonical_grid(shape: tuple[int, ...], affine: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine a 3-D grid has after ``as_closest_canonical``, without touching data."""
    shape3 = tuple(int(s) for s in shape[:3])
    ornt = nib.orientations.io_orientation(affine)
    new_affine = affine @ nib.orientations.inv_ornt_aff(ornt, shape3)
    # io_orientation gives, per input axis, the output axis it becomes; invert that map.
    out_shape = [0, 0, 0]
    for in_ax, (out_ax, _flip) in enumerate(ornt):
        out_shape[int(out_ax)] = shape3[in_ax]
    return (out_shape[0], out_shape[1], out_shape[2]), new_affine


def on_atlas_grid(img: nib.spatialimages.SpatialImage, atlas: nib.spatialimages.SpatialImage | None = None) -> bool:
    """True when *img* samples exactly the atlas's voxels (in any storage orientation).

    Why compare after reorientation: the same MNI 3 mm grid stored RAS instead of LAS is the
    same set of voxels, and the atlas applies to it unchanged once both are in RAS order.
    Only headers are read, so a 4-D series is not loaded to answer.
    """
    atlas = load_cc200_atlas() if atlas is None else atlas
    if len(img.shape) < 3 or (len(img.shape) > 3 and any(int(d) != 1 for d in img.shape[4:])):
        return False
    try:
        i_shape, i_aff = canonical_grid(img.shape, img.affine)
    except Exception:  # noqa: BLE001 - a degenerate affine is simply "not on the grid"
        return False
    a_shape, a_aff = canonical_grid(atlas.shape, atlas.affine)
    return i_shape == a_shape and bool(np.allclose(i_aff, a_aff, atol=1e-3))


def _atlas_labels_ras(atlas: nib.spatialimages.SpatialImage) -> np.ndarray:
    return np.asarray(_canonical(atlas).dataobj).astype(np.int32)


def region_timeseries(data: np.ndarray, labels: np.ndarray, n_regions: int = N_REGIONS) -> np.ndarray:
    """Mean signal of each region, shape (T, n_regions) float64; column k-1 is label k.

    *data* is (X, Y, Z, T) and *labels* (X, Y, Z) on the same voxels. A label with no voxel
    gives a zero column (a region with no signal).
    """
    if data.ndim != 4 or data.shape[:3] != labels.shape:
        raise ValueError(f"data {data.shape} and labels {labels.shape} are not on the same grid")
    flat = labels.reshape(-1)
    inside = (flat >= 1) & (flat <= n_regions)
    lab = flat[inside]
    x = data.reshape(-1, data.shape[3])[inside].astype(np.float64)
    order = np.argsort(lab, kind="stable")
    lab, x = lab[order], x[order]
    present, starts, counts = np.unique(lab, return_index=True, return_counts=True)
    out = np.zeros((data.shape[3], n_regions), dtype=np.float64)
    if present.size:
        sums = np.add.reduceat(x, starts, axis=0)  # (n_present, T)
        out[:, present - 1] = (sums / counts[:, None]).T
    return out


def _has_signal(ts: np.ndarray) -> np.ndarray:
    """Columns whose temporal variation is more than float rounding of their level."""
    std = ts.std(axis=0)
    scale = np.maximum(np.abs(ts).max(axis=0), 1.0)
    return std > 1e-9 * scale


def correlation_matrix(ts: np.ndarray) -> np.ndarray:
    """Pearson correlation of the columns of *ts* (T, R); r = 0 for regions with no signal.

    Why not ``np.corrcoef``: it returns NaN (and warns) for a constant column; an undefined
    correlation must count as "not connected", not poison the degree sums.
    """
    centred = ts - ts.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    ok = _has_signal(ts)
    z = np.zeros_like(centred)
    z[:, ok] = centred[:, ok] / norms[ok]
    r = z.T @ z
    np.clip(r, -1.0, 1.0, out=r)
    return r


def weighted_degree(ts: np.ndarray, threshold: float = DEGREE_THRESHOLD) -> np.ndarray:
    """Sum of r over the other regions with r > *threshold*, one value per region (R,)."""
    r = correlation_matrix(ts)
    np.fill_diagonal(r, 0.0)
    return np.where(r > threshold, r, 0.0).sum(axis=1)


def region_amplitude(ts: np.ndarray) -> np.ndarray:
    """Temporal standard deviation (ddof=0) of each region's signal (R,)."""
    return ts.std(axis=0, ddof=0)


def paint(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Write value k-1 onto every voxel of label k; 0 outside the atlas. float32 (X, Y, Z)."""
    lut = np.zeros(len(values) + 1, dtype=np.float64)
    lut[1:] = values
    idx = np.where((labels >= 1) & (labels <= len(values)), labels, 0)
    return lut[idx].astype(np.float32)


def _ras_data_4d(img: nib.spatialimages.SpatialImage) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z, T) float32 data and affine in RAS+ order; a 3-D image counts as T = 1."""
    can = _canonical(img)
    data = np.asanyarray(can.dataobj)
    if data.ndim == 3:
        data = data[..., None]
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    return data, can.affine.copy()


def _check_atlas_grid(img: nib.spatialimages.SpatialImage, atlas: nib.spatialimages.SpatialImage) -> None:
    if not on_atlas_grid(img, atlas):
        raise ValueError(
            f"image grid {tuple(img.shape[:3])} is not the atlas grid {tuple(atlas.shape[:3])} "
            "(same shape and affine needed; resample to MNI 3 mm first)"
        )


def degree_map(img: nib.spatialimages.SpatialImage, atlas: nib.spatialimages.SpatialImage | None = None) -> MapVolume:
    """CC200 weighted-degree map of a 4-D image on the atlas grid (see module docstring)."""
    atlas = load_cc200_atlas() if atlas is None else atlas
    _check_atlas_grid(img, atlas)
    data, affine = _ras_data_4d(img)
    labels = _atlas_labels_ras(atlas)
    ts = region_timeseries(data, labels)
    return MapVolume("degree", paint(weighted_degree(ts), labels), affine)


def amplitude_map(img: nib.spatialimages.SpatialImage, atlas: nib.spatialimages.SpatialImage | None = None) -> MapVolume:
    """CC200 amplitude (temporal std of each region's mean signal) of a 4-D image on the atlas grid."""
    atlas = load_cc200_atlas() if atlas is None else atlas
    _check_atlas_grid(img, atlas)
    data, affine = _ras_data_4d(img)
    labels = _atlas_labels_ras(atlas)
    ts = region_timeseries(data, labels)
    return MapVolume("amplitude", paint(region_amplitude(ts), labels), affine)


def temporal_mean_std(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-wise temporal mean and std (ddof=0) of (X, Y, Z, T) data, as float32 volumes.

    Why slice by slice: a float64 copy of a whole 4-D series can be several GB; one slab at a
    time keeps the extra memory to one slice's worth.
    """
    mean = np.empty(data.shape[:3], dtype=np.float32)
    std = np.empty(data.shape[:3], dtype=np.float32)
    for z in range(data.shape[2]):
        slab = data[:, :, z, :].astype(np.float64)
        mean[:, :, z] = slab.mean(axis=-1)
        std[:, :, z] = slab.std(axis=-1)
    return mean, std


def summary_maps(
    img: nib.spatialimages.SpatialImage, atlas: nib.spatialimages.SpatialImage | None = None
) -> dict[str, MapVolume]:
    """Summary maps of a 4-D image: "mean", "std" and, on the atlas grid, "degree", "amplitude".

    *atlas* defaults to the bundled CC200. The degree and amplitude maps need at least 3 time
    points (a Pearson r of 2 points is always +-1); below that they are left out.
    """
    atlas = load_cc200_atlas() if atlas is None else atlas
    data, affine = _ras_data_4d(img)
    mean, std = temporal_mean_std(data)
    maps = {"mean": MapVolume("mean", mean, affine), "std": MapVolume("std", std, affine)}
    if data.shape[3] >= 3 and on_atlas_grid(img, atlas):
        labels = _atlas_labels_ras(atlas)
        ts = region_timeseries(data, labels)
        maps["degree"] = MapVolume("degree", paint(weighted_degree(ts), labels), affine)
        maps["amplitude"] = MapVolume("amplitude", paint(region_amplitude(ts), labels), affine)
    return maps
