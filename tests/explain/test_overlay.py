"""The one overlay renderer: the window's colours and alpha ramp, for every colour map, without Qt.

pyqtgraph is the reference where it is installed (it is what the window paints with): its colour
tables and its float-to-table index rule must be matched exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

from medkd_desktop.explain.overlay import (
    ALPHA_RAMP,
    COLORMAPS,
    OverlayError,
    OverlayStyle,
    UnknownColormapError,
    blend,
    canonical_colormap,
    colorize,
    colormap_color,
    colormap_table,
    overlay_lut,
)
from medkd_desktop.models.geometry import Box, PlacedMap

LEVELS = np.arange(256) / 255.0


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.9])
def test_lut_alpha_is_zero_below_the_threshold_then_ramps_to_opaque(threshold):
    alpha = overlay_lut("inferno", threshold)[:, 3].astype(int)
    assert (alpha[LEVELS < threshold] == 0).all()
    assert alpha[np.searchsorted(LEVELS, threshold)] <= 4  # the ramp starts near 0 at the threshold
    assert (np.diff(alpha) >= 0).all()
    ramp = (LEVELS > threshold) & (LEVELS < threshold + ALPHA_RAMP)
    assert (alpha[ramp] > 0).all() and (alpha[ramp] < 255).all()
    assert (alpha[LEVELS >= threshold + ALPHA_RAMP] == 255).all()
    np.testing.assert_array_equal(alpha, np.round(np.clip((LEVELS - threshold) / ALPHA_RAMP, 0, 1) * 255))


def test_window_menu_order_and_labels():
    assert list(COLORMAPS) == ["inferno", "turbo", "viridis", "magma", "plasma", "heat"]
    assert COLORMAPS["heat"] == "Heat"


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_every_colormap_renders(name):
    heat = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (8, 1))
    rgba = colorize(heat, OverlayStyle(name, opacity=1.0))
    assert rgba.shape == (8, 64, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[0, -1, 3] == 255
    assert len(np.unique(rgba[0, :, :3], axis=0)) > 40  # a real gradient, not one colour
    out = blend(np.full((8, 64), 0.5), heat, OverlayStyle(name))
    assert out.shape == (8, 64, 3) and out.dtype == np.uint8
    table = colormap_table(name)
    assert table.shape == (256, 4) and (table[:, 3] == 255).all()
    assert colormap_color(name, 1.0) == tuple(int(v) for v in table[-1, :3])


def test_colormaps_differ_from_each_other():
    tables = {n: colormap_table(n)[:, :3].tobytes() for n in COLORMAPS}
    assert len(set(tables.values())) == len(COLORMAPS)


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_colours_are_the_windows_pyqtgraph_colours(name):
    pg = pytest.importorskip("pyqtgraph")
    pg_name = "CET-L3" if name == "heat" else name
    expected = pg.colormap.get(pg_name).getLookupTable(0.0, 1.0, 256, alpha=False)
    np.testing.assert_array_equal(colormap_table(name)[:, :3], expected)
    # The contour pen's colour: pyqtgraph interpolates between entries (the window asks for a QColor).
    rgb = pg.colormap.get(pg_name).map(0.85, mode="float")[:3]
    assert colormap_color(name, 0.85) == tuple(int(v) for v in np.floor(np.asarray(rgb) * 255 + 0.5))


def test_legacy_pyqtgraph_name_is_an_alias_of_heat():
    assert canonical_colormap("CET-L3") == canonical_colormap("Heat") == "heat"
    assert OverlayStyle("CET-L3") == OverlayStyle("heat")
    np.testing.assert_array_equal(overlay_lut("CET-L3", 0.2), overlay_lut("heat", 0.2))


def test_unknown_colormap_is_a_clear_typed_error():
    with pytest.raises(UnknownColormapError, match="no colour map called 'jet'.*inferno, turbo, viridis, magma, plasma, heat"):
        OverlayStyle("jet")
    with pytest.raises(ValueError):  # callers catching ValueError keep working
        overlay_lut("not-a-map", 0.0)


@pytest.mark.parametrize("kwargs", [{"opacity": 1.5}, {"opacity": -0.1}, {"threshold": float("nan")}])
def test_style_values_outside_0_1_are_refused(kwargs):
    with pytest.raises(OverlayError, match="between 0 and 1"):
        OverlayStyle(**kwargs)


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_a_cold_heatmap_leaves_the_anatomy_untouched_at_the_default_threshold(name):
    """The flat-alpha exports tinted the whole frame with the colour map's dark end at threshold 0."""
    rng = np.random.default_rng(0)
    gray = rng.random((32, 40)).astype(np.float32)
    rgb = rng.random((32, 40, 3)).astype(np.float32)
    zero = np.zeros((32, 40), dtype=np.float32)
    style = OverlayStyle(name)
    np.testing.assert_array_equal(blend(gray, zero, style), (np.repeat(gray[..., None], 3, -1) * 255 + 0.5).astype(np.uint8))
    np.testing.assert_array_equal(blend(rgb, zero, style), (rgb * 255 + 0.5).astype(np.uint8))
    # Heat below the threshold is not drawn either.
    below = np.full((32, 40), 0.29, dtype=np.float32)
    np.testing.assert_array_equal(blend(gray, below, OverlayStyle(name, threshold=0.3)), blend(gray, zero, style))


def test_blend_is_source_over_with_the_lut_alpha_times_the_opacity():
    image = np.full((2, 2), 0.5, dtype=np.float32)
    heat = np.ones((2, 2), dtype=np.float32)
    style = OverlayStyle("viridis", opacity=0.45)
    top = overlay_lut("viridis", 0.0)[255]
    expected = np.round(0.5 * (1 - 0.45) * 255 + top[:3] * 0.45)
    np.testing.assert_allclose(blend(image, heat, style)[0, 0], expected, atol=1)


@pytest.mark.parametrize("threshold,opacity", [(0.0, 1.0), (0.37, 1.0), (0.1, 0.45)])
def test_colorize_indexes_the_table_exactly_as_pyqtgraph_does(threshold, opacity):
    fn = pytest.importorskip("pyqtgraph.functions")
    edges = np.arange(257, dtype=np.float32) / 256
    ramp = np.concatenate([np.linspace(-0.2, 1.2, 20001, dtype=np.float32), edges,
                           np.nextafter(edges, np.float32(0)), np.float32([0.5, 1.0])])[None, :]
    for name in COLORMAPS:
        lut = overlay_lut(name, threshold)
        argb, _ = fn.makeARGB(ramp, lut=lut, levels=(0.0, 1.0))
        expected = argb[..., [2, 1, 0, 3]]  # makeARGB writes BGRA
        expected[..., 3] = np.round(expected[..., 3] * np.float32(opacity))  # the item's opacity
        np.testing.assert_array_equal(colorize(ramp, OverlayStyle(name, opacity, threshold)), expected)


def test_nan_heat_is_transparent_as_on_screen():
    heat = np.array([[np.nan, 1.0]], dtype=np.float32)
    assert colorize(heat, OverlayStyle(opacity=1.0))[0, 0, 3] == 0
    np.testing.assert_array_equal(blend(np.full((1, 2), 0.25), heat)[0, 0], [64, 64, 64])


def test_a_placed_map_is_drawn_on_the_images_grid_and_nowhere_outside_its_box():
    image = np.full((40, 60), 0.5, dtype=np.float32)
    placed = PlacedMap(np.ones((8, 8), dtype=np.float32), Box(0, 10, 40, 50), (40, 60))
    out = blend(image, placed)
    np.testing.assert_array_equal(out, blend(image, placed.on_grid((40, 60))))
    untouched = blend(image, np.zeros((40, 60), dtype=np.float32))
    np.testing.assert_array_equal(out[:, :10], untouched[:, :10])
    np.testing.assert_array_equal(out[:, 50:], untouched[:, 50:])
    assert (out[:, 10:50] != untouched[:, 10:50]).any(axis=-1).all()
    assert colorize(placed).shape == (40, 60, 4)


def test_a_heatmap_off_the_images_grid_is_refused_rather_than_guessed():
    with pytest.raises(OverlayError, match="not on the image's grid"):
        blend(np.zeros((40, 60)), np.zeros((20, 30)))
    with pytest.raises(OverlayError, match="2-D"):
        colorize(np.zeros((2, 3, 4)))
