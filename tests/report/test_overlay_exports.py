"""Every export draws the overlay with the window's renderer, for every colour map the window offers.

Regression: choosing the window's "Heat" map and exporting a PDF or a DICOM SC failed (the name
was a pyqtgraph map matplotlib does not know), and the exports' flat alpha darkened the whole
image at threshold 0 while the screen left the anatomy visible.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image

from medkd_desktop.explain.overlay import COLORMAPS, OverlayStyle, blend
from medkd_desktop.models.geometry import Box, PlacedMap
from medkd_desktop.report import export_dicom_sc, export_pdf, export_png, overlay_rgb, side_by_side
from medkd_desktop.report.png_export import HEADER, PAD
from medkd_desktop.report.render import method_overlays

METHOD = "gradcam++"  # as in conftest.py


@pytest.mark.parametrize("name", [*COLORMAPS, "CET-L3"])
def test_png_pdf_and_dicom_sc_export_with_every_colormap(name, small_mr, registry, tmp_path):
    study, analysis = small_mr
    style = OverlayStyle(name, opacity=0.6, threshold=0.1)
    teacher, student = method_overlays(analysis, METHOD, style)

    png = export_png(analysis, study, tmp_path / "o.png", METHOD, style=style)
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB"))
    ph, pw = teacher.shape[:2]
    np.testing.assert_array_equal(pixels[HEADER:HEADER + ph, PAD:PAD + pw], teacher)

    pdf = export_pdf(analysis, study, registry.pair("brain-tumor-mri"), tmp_path / "r.pdf", METHOD, style=style)
    assert pdf.read_bytes()[:5] == b"%PDF-"

    sc = pydicom.dcmread(export_dicom_sc(analysis, study, tmp_path / "o.dcm", METHOD, style=style))
    np.testing.assert_array_equal(sc.pixel_array, side_by_side(analysis, METHOD, style))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.dcm", "o.png", "r.pdf"]  # no .part left


def test_the_colormap_chosen_is_the_colormap_drawn(small_mr):
    _study, analysis = small_mr
    panels = {n: method_overlays(analysis, METHOD, OverlayStyle(n))[0].tobytes() for n in COLORMAPS}
    assert len(set(panels.values())) == len(COLORMAPS)
    assert method_overlays(analysis, METHOD, OverlayStyle("CET-L3"))[0].tobytes() == panels["heat"]


def test_export_pixels_are_the_renderers_blend_of_the_displayed_frame(histology):
    _study, analysis = histology
    style = OverlayStyle("turbo", 0.3, 0.2)
    heat = analysis.teacher.heatmaps[METHOD]
    np.testing.assert_array_equal(overlay_rgb(analysis.image, heat, style), blend(analysis.image, heat, style))


def test_a_cold_heatmap_leaves_the_exported_anatomy_as_it_is(histology):
    """At the default threshold 0 a zero heatmap must not tint the image (the flat-alpha defect)."""
    _study, analysis = histology
    cold = np.zeros(analysis.image.shape[:2], dtype=np.float32)
    np.testing.assert_array_equal(overlay_rgb(analysis.image, cold),
                                  (np.clip(analysis.image, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_exports_draw_placed_maps_as_well_as_frame_maps(histology):
    """The engine is moving to PlacedMap heatmaps; the exports draw either kind the same way."""
    _study, analysis = histology
    shape = analysis.image.shape[:2]
    placed = PlacedMap(np.linspace(0, 1, 56 * 56, dtype=np.float32).reshape(56, 56), Box(0, 0, *shape), shape)
    np.testing.assert_array_equal(overlay_rgb(analysis.image, placed), overlay_rgb(analysis.image, placed.on_grid()))
