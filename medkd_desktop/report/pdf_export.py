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
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ..inference.analysis import Analysis, ModelResult
from ..models.card import INTENDED_USE, ModelCard
from ..models.registry import ModelPair
from ..studies.study import Study
from .common import DISCLAIMER, DISCLAIMER_LONG, fmt, method_name, write_file
from .errors import ReportError
from .render import OverlayStyle, method_overlays

A4 = (8.27, 11.69)  # inches, portrait
RED = "#b00020"
METHOD_ROWS_PER_PAGE = 3


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
    fig.text(0.06, 0.965, title, fontsize=15, fontweight="bold", va="top")
    fig.text(0.94, 0.965, DISCLAIMER, fontsize=8.5, color=RED, fontweight="bold", va="top", ha="right")
    fig.text(0.06, 0.025, DISCLAIMER + ". Not a medical device.", fontsize=8.5, color=RED, fontweight="bold")
    fig.text(0.94, 0.025, f"MedKD Desktop  ·  page {page} of {pages}", fontsize=8, ha="right", color="#555555")
    return fig


class _Lines:
    """A column of text lines flowing down a page (y in figure fraction)."""

    def __init__(self, fig: Figure, x: float, y: float, width_chars: int = 100, size: float = 9.0) -> None:
        self.fig, self.x, self.y, self.width, self.size = fig, x, y, width_chars, size
        self.step = size / 72.0 / A4[1] * 1.45

    def heading(self, text: str) -> None:
        self.y -= self.step * 0.6
        self.fig.text(self.x, self.y, text, fontsize=self.size + 2.5, fontweight="bold", va="top")
        self.y -= self.step * 1.5

    def line(self, text: str, **kw: Any) -> None:
        for i, part in enumerate(textwrap.wrap(text, self.width, subsequent_indent="    ") or [""]):
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


def _bars(fig: Figure, rect: Sequence[float], res: ModelResult) -> None:
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
    ax.set_title(f"{res.role.capitalize()}: {res.name}\npredicted {res.predicted}  ·  {res.latency_ms:.1f} ms",
                 fontsize=9, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _summary_page(fig: Figure, analysis: Analysis, study: Study, show_identifiers: bool) -> None:
    fig.text(0.06, 0.935, f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')}", fontsize=8.5, color="#555555")
    fig.text(0.06, 0.905, "\n".join(textwrap.wrap(DISCLAIMER_LONG, 105)), fontsize=8.5, color=RED, va="top",
             bbox={"boxstyle": "round,pad=0.5", "facecolor": "#fdecee", "edgecolor": RED})
    col = _Lines(fig, 0.06, 0.855, width_chars=105)
    col.heading("Study")
    col.pairs(_study_rows(study, analysis, show_identifiers))
    col.heading("Analysis")
    col.pairs([
        ("Task", analysis.task),
        ("Explained class", analysis.target or "each model's own prediction"),
        ("Device", analysis.device),
        ("Result", "teacher and student predict the SAME class" if analysis.same_class
         else "teacher and student predict DIFFERENT classes"),
    ])
    n = max(len(analysis.teacher.classes), len(analysis.student.classes))
    height = min(0.22, 0.035 * n + 0.05)
    top = col.y - 0.045
    _bars(fig, [0.17, top - height, 0.30, height], analysis.teacher)
    _bars(fig, [0.64, top - height, 0.30, height], analysis.student)
    col.y = top - height - 0.03
    col.heading("Heatmap agreement (teacher vs student)")
    if analysis.agreement:
        for m, a in analysis.agreement.items():
            col.line(f"{method_name(m):<20} Pearson r {fmt(a.pearson, '+.2f'):>5}   SSIM {fmt(a.ssim, '+.2f'):>5}   "
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
                f"{method_name(m)} {s * 1000:.0f} ms" for m, s in res.explain_seconds.items()))
    warnings = list(dict.fromkeys([*study.warnings, *analysis.warnings]))
    if warnings:
        col.heading("Warnings")
        for w in warnings:
            col.line(f"• {w}")


def _heatmap_pages(analysis: Analysis, method: str) -> list[list[str]]:
    methods = [method] + [m for m in analysis.teacher.heatmaps if m != method]
    return [methods[i:i + METHOD_ROWS_PER_PAGE] for i in range(0, len(methods), METHOD_ROWS_PER_PAGE)]


def _heatmap_page(fig: Figure, analysis: Analysis, methods: list[str], style: OverlayStyle | None) -> None:
    rows = len(methods)
    band = 0.86 / METHOD_ROWS_PER_PAGE if rows > 1 else 0.8
    top = 0.92
    for r, m in enumerate(methods):
        teacher, student = method_overlays(analysis, m, style)
        a = analysis.agreement.get(m)
        fig.text(0.06, top - r * band, f"{method_name(m)}" + (
            f"  —  r {fmt(a.pearson)}, SSIM {fmt(a.ssim)}, top-20% IoU {fmt(a.iou_top20)}" if a else ""),
            fontsize=10.5, fontweight="bold", va="top")
        for i, (res, img) in enumerate(((analysis.teacher, teacher), (analysis.student, student))):
            ax = fig.add_axes([0.06 + i * 0.45, top - (r + 1) * band + 0.01, 0.43, band - 0.06])
            ax.imshow(img, interpolation="antialiased")
            ax.set_axis_off()
            p = float(res.probabilities[res.predicted_index])
            ax.set_title(f"{res.role.capitalize()}: {res.name}\n{res.predicted} ({p:.1%})", fontsize=8.5)


def _card_block(col: _Lines, card: ModelCard) -> None:
    col.heading(f"{card.role.capitalize()}: {card.name or card.id}")
    m = card.metrics or {}
    ci = m.get("ci", {})

    def metric(key: str, label: str) -> str:
        value = m.get(key)
        if value is None:
            return f"{label} n/a"
        text = f"{label} {value:.3f}"
        if key in ci:
            text += f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"
        return text

    col.pairs([
        ("Model", f"{card.id}  ·  {card.architecture}"),
        ("Size", (f"{card.parameters / 1e6:.2f} M parameters" if card.parameters else "parameters n/a")
         + (f", {card.flops / 1e9:.2f} GFLOPs" if card.flops else "")
         + (f", CPU latency {card.cpu_latency_ms:.1f} ms (batch 1)" if card.cpu_latency_ms else "")),
        ("Input", f"{card.input.size} px, {card.input.channels} channel(s), crop {card.input.crop}"
         + (f", {card.input.fmri_map} map glass brain" if card.input.fmri_map else "")),
        ("Classes", ", ".join(card.classes)),
        ("Test metrics" + (f" (n = {m['n']})" if "n" in m else ""),
         ", ".join([metric("accuracy", "accuracy"), metric("macro_f1", "macro-F1"), metric("auc", "AUC")])
         + ("  (95% bootstrap CI)" if ci else "")),
    ])
    training = card.training or {}
    if training:
        parts = [f"{k} {training[k]}" for k in ("method", "epochs", "teacher") if training.get(k)]
        col.line("Training: " + (", ".join(parts) or "see the card"))
    if card.provenance:
        col.line(f"Data: {card.provenance}")
    if card.license:
        col.line(f"Licence: {card.license}")
    if card.caveats:
        col.line("Caveats:")
        for c in card.caveats:
            col.line(f"  • {c}")
    col.line(f"Intended use: {card.intended_use or INTENDED_USE}", style="italic")
    col.gap()


def report_figures(analysis: Analysis, study: Study, cards: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard],
                   method: str, show_identifiers: bool = False, style: OverlayStyle | None = None) -> list[Figure]:
    """The report's pages as bare figures (the PDF saves them; tests and previews can rasterise them)."""
    teacher_card, student_card = _cards(cards)
    method_overlays(analysis, method, style)  # fail early on a missing method, before a file exists
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
        _card_block(_Lines(fig, 0.06, 0.93, width_chars=100), card)
        figures.append(fig)
    return figures


def export_pdf(analysis: Analysis, study: Study, cards: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard],
               path: str | os.PathLike[str], method: str, show_identifiers: bool = False, *,
               style: OverlayStyle | None = None) -> Path:
    """Write the multi-page report; *method* is the heatmap shown first. Returns the path."""
    figures = report_figures(analysis, study, cards, method, show_identifiers, style)

    def write(tmp: Path) -> None:
        with PdfPages(tmp, metadata={"Title": f"MedKD analysis report ({analysis.task})",
                                     "Subject": DISCLAIMER_LONG, "Keywords": DISCLAIMER,
                                     "Creator": "MedKD Desktop"}) as pdf:
            for fig in figures:
                pdf.savefig(fig)

    return write_file(path, write)
