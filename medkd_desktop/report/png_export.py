"""A PNG of the two overlays, side by side, with titles a reader needs to interpret them.

Why pixel-exact layout (``figimage``, no axes): the overlays are placed unresampled, so the
PNG shows exactly the pixels of the DICOM Secondary Capture and the PDF, and its size is
predictable: width ``2 * panel + GAP + 2 * PAD``, height ``HEADER + panel + FOOTER``
(panel from :func:`~medkd_desktop.report.render.panel_shape`). Drawn with matplotlib's Agg
canvas on a bare ``Figure`` (no pyplot state), so it runs headless and off the GUI thread.
"""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..explain import method_label
from ..explain.overlay import DEFAULT_STYLE, OverlayStyle
from ..inference.analysis import Analysis, ModelResult
from ..studies.study import Study
from .common import DISCLAIMER, fmt, write_file
from .render import GAP, side_by_side
from .text_fit import shorten

DPI = 100
PAD = 12
HEADER = 60
FOOTER = 50


def png_size(analysis: Analysis) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`export_png` writes for *analysis*."""
    from .render import panel_shape

    ph, pw = panel_shape(analysis.image.shape)
    return 2 * pw + GAP + 2 * PAD, HEADER + ph + FOOTER


def _title(res: ModelResult, target: str | None) -> tuple[str, str]:
    p = float(res.probabilities[res.predicted_index])
    line1 = f"{res.role.capitalize()}: {res.name}"
    line2 = f"predicted {res.predicted} ({p:.1%})  ·  {res.latency_ms:.1f} ms"
    if target is not None:
        idx = res.classes.index(target) if target in res.classes else None
        if idx is not None:
            line2 += f"  ·  explains {target} ({float(res.probabilities[idx]):.1%})"
    return line1, line2


def render_png_figure(analysis: Analysis, method: str, style: OverlayStyle = DEFAULT_STYLE) -> Figure:
    """The figure :func:`export_png` saves (also used by the PDF's heatmap page)."""
    composite = side_by_side(analysis, method, style)
    ph, total_w = composite.shape[:2]
    pw = (total_w - GAP) // 2
    width, height = total_w + 2 * PAD, HEADER + ph + FOOTER
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.figimage(composite, xo=PAD, yo=FOOTER, origin="upper")
    room = pw * 72.0 / DPI * 0.98  # a title may not run past its panel into the other's
    for i, res in enumerate((analysis.teacher, analysis.student)):
        x = (PAD + i * (pw + GAP)) / width
        line1, line2 = _title(res, analysis.target)
        fig.text(x, 1 - 10 / height, shorten(line1, room, 11, "bold"), ha="left", va="top", fontsize=11,
                 fontweight="bold")
        fig.text(x, 1 - 34 / height, shorten(line2, room, 9.5), ha="left", va="top", fontsize=9.5)
    agreement = analysis.agreement.get(method)
    badge = "same class" if analysis.same_class else "DIFFERENT classes"
    line = f"{method_label(method)}  ·  {analysis.task}  ·  {badge}"
    if agreement is not None:
        line += (f"  ·  agreement r = {fmt(agreement.pearson)}, SSIM = {fmt(agreement.ssim)}, "
                 f"top-20% IoU = {fmt(agreement.iou_top20)}")
    fig.text(PAD / width, (FOOTER - 8) / height, shorten(line, total_w * 72.0 / DPI * 0.98, 9), ha="left", va="top",
             fontsize=9)
    fig.text(PAD / width, 14 / height, DISCLAIMER, ha="left", va="center", fontsize=9, color="#b00020",
             fontweight="bold")
    return fig


def export_png(analysis: Analysis, study: Study, path: str | os.PathLike[str], method: str, *,
               style: OverlayStyle = DEFAULT_STYLE) -> Path:
    """Write the teacher | student overlays of *method* with titles, probabilities and agreement.

    *study* is accepted for symmetry with the other exports; nothing identifying is drawn.
    """
    del study  # the PNG shows no study details (no identifiers, no file name)
    fig = render_png_figure(analysis, method, style)
    return write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, facecolor="white"))
