"""Glass-brain rendering: deterministic, correct sides, cached, headless, scale-invariant."""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pytest
from testdata import shared_path

from medkd_desktop.studies import MapVolume, UnsupportedStudyError
from medkd_desktop.studies.glass_brain import (
    GlassBrainSettings,
    cache_info,
    clear_cache,
    glass_brain_key,
    render_glass_brain,
)


@pytest.fixture(scope="module")
def degree() -> MapVolume:
    img = nib.as_closest_canonical(nib.load(shared_path("fmri-asd", "degree", "NYU_0050952_cc200_degree.nii.gz")))
    return MapVolume("degree", img.get_fdata(dtype=np.float32), img.affine)


#: One axial view: a quarter of the drawing work, for tests about caching rather than layout.
AXIAL = GlassBrainSettings(display_mode="z")


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _coloured(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the colour map (outlines, text and background are grey levels)."""
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3


def _left_hemisphere_only(m: MapVolume) -> MapVolume:
    i = np.arange(m.data.shape[0])
    x_mm = m.affine[0, 0] * i + m.affine[0, 3]  # RAS+: x < 0 is the patient's left
    data = m.data.copy()
    data[x_mm >= -3.0] = 0.0  # also clear the midline parcels' right part
    return MapVolume("left", data, m.affine)


def test_render_is_deterministic_rgb_of_the_configured_size(degree):
    full = render_glass_brain(degree)
    assert full.shape == (224, 224, 3) and full.dtype == np.float32
    assert 0.0 <= full.min() and full.max() <= 1.0
    assert _coloured(full).mean() > 0.05  # the map is visible
    a = render_glass_brain(degree, AXIAL)
    clear_cache()
    b = render_glass_brain(degree, AXIAL)
    assert cache_info()["renders"] == 1  # the cache was cleared: this call really rendered
    assert np.array_equal(a, b)
    small = render_glass_brain(degree, GlassBrainSettings(display_mode="z", size=128))
    assert small.shape == (128, 128, 3)


def test_left_hemisphere_signal_lights_the_correct_side(degree):
    rgb = render_glass_brain(_left_hemisphere_only(degree))  # default: radiological
    c = _coloured(rgb)
    h = 112  # 2x2 panels: [left lateral, right lateral] / [coronal, axial]
    lateral_l, lateral_r = c[:h, :h], c[:h, h:]
    assert lateral_l.sum() > 200 and lateral_r.sum() == 0
    for panel in (c[h:, :h], c[h:, h:]):  # coronal, axial: patient left on screen right
        screen_left, screen_right = panel[:, : h // 2].sum(), panel[:, h // 2 :].sum()
        assert screen_right > 200 and screen_left < 0.05 * screen_right, (screen_left, screen_right)


def test_neurological_setting_puts_the_left_hemisphere_on_screen_left(degree):
    c = _coloured(render_glass_brain(_left_hemisphere_only(degree), GlassBrainSettings(display_mode="z", radiological=False)))
    screen_left, screen_right = c[:, :112].sum(), c[:, 112:].sum()
    assert screen_left > 500 and screen_right < 0.05 * screen_left, (screen_left, screen_right)


def test_memory_cache_hit_returns_the_same_image_without_rendering(degree):
    t0 = time.perf_counter()
    first = render_glass_brain(degree, AXIAL)
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = render_glass_brain(degree, AXIAL)
    t_hit = time.perf_counter() - t0
    info = cache_info()
    assert info["renders"] == 1 and info["hits"] == 1
    assert np.array_equal(first, second)
    assert t_hit < t_render / 10, (t_hit, t_render)
    second[:] = 0  # callers get a copy: the cached image is unharmed
    assert np.array_equal(render_glass_brain(degree, AXIAL), first)


def test_disk_cache_survives_a_cleared_memory_cache(degree, tmp_path):
    first = render_glass_brain(degree, AXIAL, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0].stem == glass_brain_key(degree, AXIAL)
    clear_cache()
    again = render_glass_brain(degree, AXIAL, cache_dir=tmp_path)
    assert cache_info()["disk_hits"] == 1 and cache_info()["renders"] == 0
    assert np.array_equal(first, again)
    files[0].write_bytes(b"broken")  # a damaged cache file is re-rendered, not trusted
    clear_cache()
    assert np.array_equal(render_glass_brain(degree, AXIAL, cache_dir=tmp_path), first)
    assert cache_info()["renders"] == 1


def test_zscore_normalisation_removes_a_site_scale_factor(degree):
    scaled = MapVolume("scaled", degree.data * 10.0, degree.affine)
    assert glass_brain_key(scaled, AXIAL) != glass_brain_key(degree, AXIAL)
    assert np.array_equal(render_glass_brain(scaled, AXIAL), render_glass_brain(degree, AXIAL))
    raw = GlassBrainSettings(display_mode="z", normalise="none", vmax=60.0, threshold=5.0)
    assert not np.array_equal(render_glass_brain(scaled, raw), render_glass_brain(degree, raw))


def test_no_pyplot_figure_is_left_open(degree):
    before = plt.get_fignums()
    render_glass_brain(degree, AXIAL)
    empty = render_glass_brain(nib.Nifti1Image(np.zeros((10, 12, 10), np.float32), np.diag([3, 3, 3, 1.0])), AXIAL)
    assert not _coloured(empty).any()  # an empty map draws outlines only
    assert plt.get_fignums() == before == []


def test_time_series_is_refused_and_settings_are_validated(degree):
    series = nib.Nifti1Image(np.zeros((10, 12, 10, 4), np.float32), np.eye(4))
    with pytest.raises(UnsupportedStudyError):
        render_glass_brain(series)
    with pytest.raises(ValueError):
        GlassBrainSettings(display_mode="q")
    with pytest.raises(ValueError):
        GlassBrainSettings(normalise="minmax")
    assert glass_brain_key(degree) != glass_brain_key(degree, GlassBrainSettings(threshold=0.5))
