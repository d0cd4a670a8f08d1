"""The PDF report: what a reviewer files or forwards after looking at an analysis.

Why matplotlib's PDF backend: it needs no Qt, so ``medkd analyze`` on a server and the GUI's
Export produce the same file; figures are bare ``Figure`` objects (no pyplot state), which
makes it safe on a worker thread. Every page carries the research-use disclaimer. Patient
identifiers (and the file name, which often contains them) appear only when the user
enabled "show identifiers".

Pages: 1 summary (study, predictions with bars, agreement, timings, warnings); 2 the
heatmaps, teacher | student, the chosen method first, then any other method computed;
3 the two model cards (metrics, training, caveats, intended use).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ..explain import method_label
from ..explain.overlay import DEFAULT_STYLE, OverlayStyle
from ..inference.analysis import Analysis, ModelResult
from ..inference.trust_notes import notes
from ..models.card import ModelCard
from ..models.card_summary import card_summary
from ..models.registry import ModelPair
from ..studies.study import Study
from .common import DISCLAIMER, DISCLAIMER_LONG, fmt, write_file
from .errors import ReportError
from .render import method_overlays, require_method
from .text_fit import shorten, wrap

A4 = (8.27, 11.69)  # inches, portrait
RED = "#b00020"
METHOD_ROWS_PER_PAGE = 3
LEFT, RIGHT = 0.06, 0.94  # page margins, figure fraction
#: Text is fitted to 98% of its measured room, for the small differences between renderers.
FIT = 0.98


def _points(width: float) -> float:
    """A width in figure fraction of an A4 page, in points (what text_fit measures in)."""
    return width * A4[0] * 72.0 * FIT


def _height(points: float) -> float:
    """A height in points, in figure fraction of an A4 page."""
    return points / 72.0 / A4[1]


def _cards(cards: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard]) -> tuple[ModelCard, ModelCard]:
    """Teacher and student card from a ModelPair, a {role: card} mapping or a sequence of cards."""
    if isinstance(cards, ModelPair):
        return cards.teacher, cards.student
    items = list(cards.values()) if isinstance(cards, Mapping) else list(cards)
    by_role = {c.role: c for c in items}
    if "teacher" not in by_role or "student" not in by_role:
        raise ReportError("The report needs the teacher's and the student's model cards.")
    return by_role["teacher"], by_role["student"]


def _page(title: str, page: int, pages: int) -> Figure:
    fig = Figure(figsize=A4, dpi=100, facecolor="white")
    fig.text(LEFT, 0.965, title, fontsize=15, fontweight="bold", va="top")
    fig.text(RIGHT, 0.965, DISCLAIMER, fontsize=8.5, color=RED, fontweight="bold", va="top", ha="right")
    fig.text(LEFT, 0.025, DISCLAIMER + ". Not a medical device.", fontsize=8.5, color=RED, fontweight="bold")
    fig.text(RIGHT, 0.025, f"MedKD Desktop  ·  page {page} of {pages}", fontsize=8, ha="right", color="#555555")
    return fig


class _Lines:
    """A column of text lines flowing down a page (x, y and width in figure fraction).

    Lines are wrapped to the column's measured width, so no line runs off the page or into
    another column, whatever a model or class is called.
    """

    def __init__(self, fig: Figure, x: float, y: float, width: float = RIGHT - LEFT, size: float = 9.0) -> None:
        self.fig, self.x, self.y, self.width, self.size = fig, x, y, width, size
        self.step = _height(size * 1.45)

    def heading(self, text: str) -> None:
        size = self.size + 2.5
        self.y -= self.step * 0.6
        for part in wrap(text, _points(self.width), size, "bold"):
            self.fig.text(self.x, self.y, part, fontsize=size, fontweight="bold", va="top")
            self.y -= _height(size * 1.3)
        self.y -= self.step * 0.5

    def line(self, text: str, **kw: Any) -> None:
        family = kw.get("family")
        for part in wrap(text, _points(self.width), self.size, family=family, indent="    "):
            self.fig.text(self.x, self.y, part, fontsize=self.size, va="top", **kw)
            self.y -= self.step

    def pairs(self, rows: Iterable[tuple[str, str]]) -> None:
        for key, value in rows:
            self.line(f"{key}: {value}")

    def gap(self, n: float = 0.5) -> None:
        self.y -= self.step * n


def _study_rows(study: Study, analysis: Analysis, show_identifiers: bool) -> list[tuple[str, str]]:
    s = study.summary()
    meta = s["metadata"]
    rows = [("Kind", f"{s['kind']} ({s['modality']})")]
    shape = " x ".join(str(v) for v in s["shape"])
    rows.append(("Frames", f"{s['n_frames']} ({s['n_volumes']} volume(s) x {s['n_slices']} slice(s)), each {shape}"))
    vol, z = analysis.frame_index
    if study.n_frames > 1:
        rows.append(("Analysed frame", f"volume {vol + 1}, slice {z + 1}"))
    if analysis.n_tiles > 1:
        rows.append(("Tiles", f"{analysis.n_tiles} tiles analysed, probabilities averaged over the field"))
    cal = [f"{r.role} T = {r.temperature:.2f}" for r in (analysis.teacher, analysis.student) if r.calibrated]
    rows.append(("Probabilities", "calibrated by temperature scaling on the validation split ("
                 + ", ".join(cal) + ")" if cal else "not calibrated (the model cards hold no temperature)"))
    for key, label in (("body_part", "Body part"), ("view_position", "View"), ("series_description", "Series"),
                       ("manufacturer", "Manufacturer")):
        if meta.get(key):
            rows.append((label, str(meta[key])))
    if s["photometric"]:
        rows.append(("Photometric", s["photometric"]))
    rows.append(("Orientation", s["orientation"]))
    if show_identifiers:
        ids = study.identifiers
        rows += [("Patient name", ids.name or "-"), ("Patient ID", ids.patient_id or "-"),
                 ("Birth date", ids.birth_date or "-"), ("File", study.source.name)]
    else:
        rows.append(("Patient identifiers", "hidden (enable 'show identifiers' to include them)"))
    return rows


BAR_TITLE_SIZE = 9.0
CAPTION_SIZE = 8.5
HEADING_SIZE = 10.5
TITLE_PAD = 6.0  # points between an axes and its title (matplotlib's axes.titlepad)


def _bar_title(res: ModelResult, width: float) -> str:
    """The chart title, fitted to *width* (figure fraction): the model's name on at most two
    lines (the whole name is in the Analysis rows above), then the prediction and latency."""
    room = _points(width)
    name = wrap(f"{res.role.capitalize()}: {res.name}", room, BAR_TITLE_SIZE, max_lines=2, indent="  ")
    last = shorten(f"predicted {res.predicted}  ·  {res.latency_ms:.1f} ms", room, BAR_TITLE_SIZE)
    return "\n".join([*name, last])


def _bars(fig: Figure, rect: Sequence[float], res: ModelResult, title: str) -> None:
    ax = fig.add_axes(rect)
    probs = np.asarray(res.probabilities, dtype=float)
    y = np.arange(len(res.classes))
    colours = ["#1f77b4"] * len(res.classes)
    colours[res.predicted_index] = "#d62728"
    ax.barh(y, probs, color=colours)
    ax.set_yticks(y, res.classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.18)
    ax.set_xticks([0, 0.5, 1.0], ["0", "0.5", "1"], fontsize=7)
    for yi, p in zip(y, probs):
        ax.text(min(p, 1.0) + 0.02, yi, f"{p:.1%}", va="center", fontsize=7.5)
    ax.set_title(title, fontsize=BAR_TITLE_SIZE, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _ood_line(res: ModelResult) -> str:
    """One model's out-of-distribution figure (trust.ood), as the PDF states it."""
    ood = res.ood
    if ood is None or ood.score is None:
        where = "no out-of-distribution score (the model card holds no statistics)"
    else:
        where = (f"OOD score {ood.score:.1f}, threshold {ood.threshold:.1f} "
                 f"({'ABOVE: not like its training images' if ood.above_threshold else 'like its training images'})")
    return where + ("; the study itself is not of the kind it was trained on" if ood is not None and ood.gate else "")


def _summary_page(fig: Figure, analysis: Analysis, study: Study, show_identifiers: bool) -> None:
    fig.text(LEFT, 0.935, f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')}", fontsize=8.5, color="#555555")
    fig.text(LEFT, 0.905, "\n".join(wrap(DISCLAIMER_LONG, _points(RIGHT - LEFT - 0.02), 8.5)), fontsize=8.5,
             color=RED, va="top", bbox={"boxstyle": "round,pad=0.5", "facecolor": "#fdecee", "edgecolor": RED})
    col = _Lines(fig, LEFT, 0.855)
    col.heading("Study")
    col.pairs(_study_rows(study, analysis, show_identifiers))
    col.heading("Analysis")
    col.pairs([
        ("Task", analysis.task),
        ("Teacher", analysis.teacher.name),
        ("Student", analysis.student.name),
        ("Explained class", analysis.target or "each model's own prediction"),
        ("Device", analysis.device),
        ("Result", "teacher and student predict the SAME class" if analysis.same_class
         else "teacher and student predict DIFFERENT classes"),
    ])
    col.heading("How far to trust these predictions")
    for res in (analysis.teacher, analysis.student):
        col.line(f"{res.role.capitalize()}: {_ood_line(res)}", color=RED if res.out_of_distribution else None)
    for note in notes(analysis):
        col.line(f"• {note.text}", color=RED)
    n = max(len(analysis.teacher.classes), len(analysis.student.classes))
    height = min(0.22, 0.035 * n + 0.05)
    left, right, gap = (0.17, 0.64), 0.30, 0.02
    # The teacher's title may run on to just before the student's chart; the student's to the margin.
    titles = (_bar_title(analysis.teacher, left[1] - gap - left[0]), _bar_title(analysis.student, RIGHT - left[1]))
    lines = max(t.count("\n") + 1 for t in titles)
    top = col.y - _height(lines * BAR_TITLE_SIZE * 1.3 + TITLE_PAD + 6)
    for x, res, title in zip(left, (analysis.teacher, analysis.student), titles):
        _bars(fig, [x, top - height, right, height], res, title)
    col.y = top - height - 0.03
    col.heading("Heatmap agreement (teacher vs student)")
    if analysis.agreement:
        pad = max(len(method_label(m)) for m in analysis.agreement)
        for m, a in analysis.agreement.items():
            col.line(f"{method_label(m):<{pad}} Pearson r {fmt(a.pearson, '+.2f'):>5}   SSIM {fmt(a.ssim, '+.2f'):>5}   "
                     f"top-20% IoU {fmt(a.iou_top20):>4}", family="monospace")
    else:
        col.line("No heatmaps were computed.")
    col.heading("Timings")
    t = analysis.timings_ms
    col.line(f"Teacher forward {analysis.teacher.latency_ms:.1f} ms, student forward {analysis.student.latency_ms:.1f} ms"
             + (f" (speed-up {analysis.teacher.latency_ms / analysis.student.latency_ms:.1f}x)"
                if analysis.student.latency_ms > 0 else "")
             + (f"; whole analysis {t['total'] / 1000:.1f} s" if "total" in t else ""))
    for res in (analysis.teacher, analysis.student):
        if res.explain_seconds:
            col.line(f"{res.role.capitalize()} explanations: " + ", ".join(
                f"{method_label(m)} {s * 1000:.0f} ms" for m, s in res.explain_seconds.items()))
    warnings = list(dict.fromkeys([*study.warnings, *analysis.warnings]))
    if warnings:
        col.heading("Warnings")
        for w in warnings:
            col.line(f"• {w}")


def _heatmap_pages(analysis: Analysis, method: str) -> list[list[str]]:
    methods = [method] + [m for m in analysis.teacher.heatmaps if m != method]
    return [methods[i:i + METHOD_ROWS_PER_PAGE] for i in range(0, len(methods), METHOD_ROWS_PER_PAGE)]


def _caption(res: ModelResult, width: float) -> str:
    """A heatmap's caption in two lines, each fitted to its panel's *width* (figure fraction);
    a long model name is shortened here and given whole on the summary page and its card page."""
    p = float(res.probabilities[res.predicted_index])
    room = _points(width)
    return "\n".join((shorten(f"{res.role.capitalize()}: {res.name}", room, CAPTION_SIZE),
                      shorten(f"{res.predicted} ({p:.1%})", room, CAPTION_SIZE)))


def _heatmap_page(fig: Figure, analysis: Analysis, methods: list[str], style: OverlayStyle) -> None:
    rows = len(methods)
    band = 0.86 / METHOD_ROWS_PER_PAGE if rows > 1 else 0.8
    top = 0.92
    width, gap = 0.43, 0.02
    # Above each pair of images: the method's heading, then the two-line captions over the panels.
    above = _height(HEADING_SIZE * 1.4 + 2 * CAPTION_SIZE * 1.3 + TITLE_PAD + 2)
    for r, m in enumerate(methods):
        teacher, student = method_overlays(analysis, m, style)
        a = analysis.agreement.get(m)
        y = top - r * band
        heading = method_label(m) + (
            f"  —  r {fmt(a.pearson)}, SSIM {fmt(a.ssim)}, top-20% IoU {fmt(a.iou_top20)}" if a else "")
        fig.text(LEFT, y, shorten(heading, _points(RIGHT - LEFT), HEADING_SIZE, "bold"),
                 fontsize=HEADING_SIZE, fontweight="bold", va="top")
        bottom = y - band + 0.01
        for i, (res, img) in enumerate(((analysis.teacher, teacher), (analysis.student, student))):
            ax = fig.add_axes([LEFT + i * (width + gap), bottom, width, y - above - bottom])
            ax.imshow(img, interpolation="antialiased")
            ax.set_axis_off()
            ax.set_title(_caption(res, width), fontsize=CAPTION_SIZE)


def _card_block(col: _Lines, card: ModelCard) -> None:
    """The card as the window's card dialog shows it (models.card_summary decides what is shown)."""
    summary = card_summary(card)
    col.heading(f"{card.role.capitalize()}: {summary.title}")
    caveats_started = False
    for label, value in summary.pairs():
        if label == "Model":
            continue  # the heading
        if label == "Caveat":
            if not caveats_started:
                col.line("Caveats:")
                caveats_started = True
            col.line(f"  • {value}")
        elif label == "Intended use":
            col.line(f"Intended use: {value}", style="italic")
        elif label == "Near chance":
            col.line(f"Near chance: {value}", color=RED)
        else:
            col.line(f"{label}: {value}", color="#555555" if label == "Card" else None)
    col.gap()


def report_figures(analysis: Analysis, study: Study, cards: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard],
                   method: str, show_identifiers: bool = False, style: OverlayStyle = DEFAULT_STYLE) -> list[Figure]:
    """The report's pages as bare figures (the PDF saves them; tests and previews can rasterise them)."""
    teacher_card, student_card = _cards(cards)
    require_method(analysis, method)  # fail early, before a file exists
    groups = _heatmap_pages(analysis, method)
    pages = 3 + len(groups)  # summary, heatmaps, one page per model card
    fig = _page("MedKD Desktop — analysis report", 1, pages)
    _summary_page(fig, analysis, study, show_identifiers)
    figures = [fig]
    for i, group in enumerate(groups):
        fig = _page("Heatmaps: teacher | student", 2 + i, pages)
        _heatmap_page(fig, analysis, group, style)
        figures.append(fig)
    for i, card in enumerate((teacher_card, student_card)):
        fig = _page("Model card", pages - 1 + i, pages)
        _card_block(_Lines(fig, LEFT, 0.93), card)
        figures.append(fig)
    return figures


def export_pdf(analysis: Analysis, study: Study, cards: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard],
               path: str | os.PathLike[str], method: str, show_identifiers: bool = False, *,
               style: OverlayStyle = DEFAULT_STYLE) -> Path:
    """Write the multi-page report; *method* is the heatmap shown first. Returns the path."""
    figures = report_figures(analysis, study, cards, method, show_identifiers, style)

    def write(tmp: Path) -> None:
        with PdfPages(tmp, metadata={"Title": f"MedKD analysis report ({analysis.task})",
                                     "Subject": DISCLAIMER_LONG, "Keywords": DISCLAIMER,
                                     "Creator": "MedKD Desktop"}) as pdf:
            for fig in figures:
                pdf.savefig(fig)

    return write_file(path, write)
