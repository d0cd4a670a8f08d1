"""No text of a report page runs into another, whatever the models are called.

Regression: with long model names the PDF's chart titles and heatmap captions overlapped (the
teacher's caption ran on under the student's). The pages are laid out and measured with
matplotlib's own renderer: every pair of texts on a page must have disjoint bounding boxes.
"""
from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from medkd_desktop.report import report_figures
from medkd_desktop.report.png_export import render_png_figure
from medkd_desktop.report.text_fit import ELLIPSIS, shorten, text_width, wrap

METHOD = "gradcam++"  # as in conftest.py
LONG_TEACHER = "DenseNet-121 teacher trained with focal binary cross-entropy on six public sources v2"
LONG_STUDENT = "S" * 80  # no space to break at


def renamed(analysis, teacher: str, student: str):
    return dataclasses.replace(analysis, teacher=dataclasses.replace(analysis.teacher, name=teacher),
                               student=dataclasses.replace(analysis.student, name=student))


def page_texts(fig) -> list[Text]:
    """Every visible text: figure texts, axes titles, texts in the axes and their tick labels."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [c for c in ax.get_children() if isinstance(c, Text)]
        if ax.axison:  # an image's axes are hidden, with their tick labels
            texts += ax.get_xticklabels() + ax.get_yticklabels()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def assert_no_overlap(fig) -> int:
    FigureCanvasAgg(fig).draw()  # places the axes titles
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in page_texts(fig)]
    width = fig.bbox.width
    for text, box in boxes:
        assert box.x0 >= 0 and box.x1 <= width, f"off the page: {text!r}"
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"{a!r} overlaps {b!r}"
    return len(boxes)


@pytest.mark.parametrize("names", [(LONG_TEACHER, LONG_STUDENT), (LONG_STUDENT, LONG_TEACHER),
                                   ("ResNet-10-T teacher", "CNN-5 student")])
def test_titles_and_captions_never_overlap(histology, registry, names):
    study, analysis = histology
    figures = report_figures(renamed(analysis, *names), study, registry.pair("histo-lc25000"), METHOD)
    assert len(figures) == 4  # summary, one heatmap page (two methods), two model cards
    for fig in figures:
        assert assert_no_overlap(fig) > 3


def test_a_single_method_page_with_long_names(small_mr, registry):
    study, analysis = small_mr
    fig = report_figures(renamed(analysis, LONG_TEACHER, LONG_TEACHER), study, registry.pair("brain-tumor-mri"),
                         METHOD)[1]
    assert_no_overlap(fig)


def test_the_full_names_stay_readable_on_the_summary_page(histology, registry):
    study, analysis = histology
    summary = report_figures(renamed(analysis, LONG_TEACHER, "CNN-5 student"), study,
                             registry.pair("histo-lc25000"), METHOD)[0]
    text = " ".join(t.get_text() for t in summary.texts)
    assert re.sub(r"\s+", " ", text).count(LONG_TEACHER) == 1  # the Analysis rows; the chart title is fitted
    captions = [ax.get_title() for ax in summary.axes]
    assert all(len(c.split("\n")) <= 3 for c in captions)


def test_png_titles_do_not_run_into_each_other(histology):
    _study, analysis = histology
    assert_no_overlap(render_png_figure(renamed(analysis, LONG_STUDENT, LONG_TEACHER), METHOD))


def test_text_fitting_keeps_within_the_width():
    assert shorten("short", 100, 9) == "short"
    cut = shorten(LONG_TEACHER, 120, 9)
    assert cut.endswith(ELLIPSIS) and text_width(cut, 9) <= 120
    lines = wrap(LONG_TEACHER, 150, 9, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith(ELLIPSIS) and all(text_width(x, 9) <= 150 for x in lines)
    assert " ".join(wrap(LONG_TEACHER, 150, 9)) == LONG_TEACHER
    assert wrap("a    b", 100, 9) == ["a    b"]  # aligned columns keep their spaces
