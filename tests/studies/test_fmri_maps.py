"""CC200 degree / amplitude maps reproduce the distributed ABIDE maps; temporal mean/std maps."""
from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from testdata import shared_path

from medkd_desktop.studies.fmri_maps import (
    CC200_SHAPE,
    DEGREE_THRESHOLD,
    load_cc200_atlas,
    on_atlas_grid,
    region_timeseries,
    summary_maps,
    weighted_degree,
)

ASD = "NYU_0050952"  # the painted subject whose degree/amplitude maps are distributed
TC = "NYU_0051036"  # painted too, but its maps are not in the distributed set (held out)


def _painted(subject: str) -> nib.Nifti1Image:
    img = nib.load(shared_path("fmri-asd", "painted_4d", f"{subject}_cc200_painted_4d.nii.gz"))
    return nib.Nifti1Image(img.get_fdata(dtype=np.float32), img.affine)


def _reference(kind: str, subject: str) -> np.ndarray:
    name = {"degree": f"degree/{subject}_cc200_degree.nii.gz", "amplitude": f"amplitude/{subject}_cc200_std.nii.gz"}[kind]
    return nib.as_closest_canonical(nib.load(shared_path("fmri-asd", *name.split("/")))).get_fdata()


@pytest.fixture(scope="module")
def asd_img() -> nib.Nifti1Image:
    return _painted(ASD)


@pytest.fixture(scope="module")
def asd_maps(asd_img) -> dict:
    return summary_maps(asd_img)


def _tol(ref: np.ndarray) -> float:
    return 1e-5 * float(np.abs(ref).max())  # measured error is ~6e-8 of the map's scale


@pytest.mark.parametrize("kind", ["degree", "amplitude"])
def test_maps_reproduce_the_distributed_abide_maps(asd_maps, kind):
    ref = _reference(kind, ASD)
    got = asd_maps[kind]
    assert got.data.shape == CC200_SHAPE and got.data.dtype == np.float32
    assert np.allclose(got.affine, nib.as_closest_canonical(nib.load(shared_path("fmri-asd", "atlas", "CC200_61x73x61_3mm.nii.gz"))).affine)
    assert np.allclose(got.data, ref, rtol=0, atol=_tol(ref)), np.abs(got.data - ref).max()


def test_the_tolerance_tells_the_conventions_apart(asd_img):
    """ddof=1 or counting the diagonal would fail the reproduction test above."""
    atlas = nib.as_closest_canonical(load_cc200_atlas())
    labels = np.asarray(atlas.dataobj)
    ts = region_timeseries(np.asanyarray(nib.as_closest_canonical(asd_img).dataobj), labels)
    deg_map, amp_map = _reference("degree", ASD), _reference("amplitude", ASD)
    deg_ref = np.array([deg_map[labels == k][0] for k in range(1, 201)])
    amp_ref = np.array([amp_map[labels == k][0] for k in range(1, 201)])
    assert np.abs(weighted_degree(ts) - deg_ref).max() < _tol(deg_ref)
    assert np.abs(weighted_degree(ts) + 1.0 - deg_ref).max() > 100 * _tol(deg_ref)  # diagonal included
    assert np.abs(ts.std(axis=0, ddof=1) - amp_ref).max() > 100 * _tol(amp_ref)  # sample std
    assert np.abs(ts.std(axis=0, ddof=0) - amp_ref).max() < _tol(amp_ref)


def test_typically_developing_subject_maps_are_parcel_maps_matching_numpy():
    """NYU_0051036's maps are not distributed; check them against np.corrcoef and the atlas."""
    tc = _painted(TC)
    maps = summary_maps(tc)
    labels = np.asarray(nib.as_closest_canonical(load_cc200_atlas()).dataobj)
    deg, amp = maps["degree"].data, maps["amplitude"].data
    assert np.all(deg[labels == 0] == 0) and np.all(amp[labels == 0] == 0)
    per_region = np.array([deg[labels == k] for k in range(1, 201)], dtype=object)
    assert all(np.ptp(v) == 0 for v in per_region)  # one value painted per region
    ts = region_timeseries(np.asanyarray(nib.as_closest_canonical(tc).dataobj), labels)
    r = np.corrcoef(ts.T)
    np.fill_diagonal(r, 0)
    expected = np.where(r > DEGREE_THRESHOLD, r, 0).sum(axis=1)
    got = np.array([v[0] for v in per_region], dtype=float)
    assert np.allclose(got, expected, atol=1e-4)
    assert got.min() >= 0 and got.max() > 10  # a real connectome, not an empty one
    assert not np.allclose(deg, _reference("degree", ASD), atol=1.0)  # a different subject


def test_region_without_signal_gets_zero_and_does_not_poison_the_others(asd_img):
    data = np.asanyarray(asd_img.dataobj).copy()
    labels_las = np.asarray(load_cc200_atlas().dataobj)
    data[labels_las == 5] = 0.0  # region 5 silent at every time point
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" RuntimeWarning from a 0/0 correlation
        maps = summary_maps(nib.Nifti1Image(data, asd_img.affine))
    labels = np.asarray(nib.as_closest_canonical(load_cc200_atlas()).dataobj)
    deg, amp = maps["degree"].data, maps["amplitude"].data
    assert np.all(np.isfinite(deg)) and np.all(np.isfinite(amp))
    assert np.all(deg[labels == 5] == 0) and np.all(amp[labels == 5] == 0)
    ref = _reference("degree", ASD)
    others = (labels > 0) & (labels != 5)
    assert np.all(deg[others] <= ref[others] + 1e-4)  # only region 5's contributions removed
    assert np.count_nonzero(deg[others] < ref[others] - 1e-3) > 0


def test_same_grid_stored_in_another_orientation_gives_the_same_maps(asd_img):
    short = nib.Nifti1Image(np.asanyarray(asd_img.dataobj)[..., :60], asd_img.affine)  # 60 volumes: fast
    ras = nib.as_closest_canonical(short)  # stored RAS instead of LAS
    ras = nib.Nifti1Image(np.ascontiguousarray(np.asanyarray(ras.dataobj)), ras.affine)
    assert on_atlas_grid(short) and on_atlas_grid(ras)
    a, b = summary_maps(short), summary_maps(ras)
    for key in ("mean", "std", "degree", "amplitude"):
        assert np.allclose(a[key].data, b[key].data, atol=1e-5), key
        assert np.allclose(a[key].affine, b[key].affine)


def test_off_grid_series_gets_voxelwise_mean_and_std_only():
    img = nib.load(shared_path("nifti", "fmri4d", "dcmqa_nih_ge_epi_fmri_mr0004.nii"))
    maps = summary_maps(img)
    assert set(maps) == {"mean", "std"}
    ras = nib.as_closest_canonical(img).get_fdata()
    assert maps["mean"].data.shape == (64, 64, 15)
    assert np.allclose(maps["mean"].data, ras.mean(axis=-1), rtol=1e-5)
    assert np.allclose(maps["std"].data, ras.std(axis=-1), rtol=1e-4, atol=1e-3)
    assert nib.aff2axcodes(maps["mean"].affine) == ("R", "A", "S")


def test_too_few_time_points_give_no_connectivity_maps():
    img = nib.load(shared_path("nifti", "fmri4d", "brcdata_COBRE_0040071_3mm_functional_segment.nii.gz"))
    data = img.get_fdata(dtype=np.float32)
    assert set(summary_maps(nib.Nifti1Image(data, img.affine))) == {"mean", "std", "degree", "amplitude"}
    assert set(summary_maps(nib.Nifti1Image(data[..., :2], img.affine))) == {"mean", "std"}


def test_bundled_atlas_is_the_shared_cc200():
    atlas = load_cc200_atlas()
    shared = nib.load(shared_path("fmri-asd", "atlas", "CC200_61x73x61_3mm.nii.gz"))
    assert atlas.shape == CC200_SHAPE
    assert np.array_equal(np.asarray(atlas.dataobj), np.asarray(shared.dataobj))
    assert np.allclose(atlas.affine, shared.affine)
    assert set(np.unique(np.asarray(atlas.dataobj))) == set(range(201))
