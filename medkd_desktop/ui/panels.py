"""Side panels: both models' predictions and agreement, the layer strip, and the model-card viewer.

Why these panels: a heatmap alone cannot tell a reader whether to trust the student. They need
the two predictions side by side (with the probabilities, not only the top class), whether the
models agree and how similar their heatmaps are (r, SSIM, top-20 % IoU), what each costs
(latency), and what each model is and is not for (the card). The layer strip (paper 002) shows
where along the network the student's attention forms.
"""
from __future__ import annotations

import html
import math

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..explain.overlay import colormap_table, lut_index
from ..inference.trust_notes import notes, withheld
from ..inference.view_state import ViewState
from .labels import method_label

TEACHER_COLOR = QColor(76, 155, 232)
STUDENT_COLOR = QColor(240, 160, 48)


def _fig(value: float) -> str:
    """An agreement figure with two decimals; NaN (undefined for a flat heatmap) as a dash."""
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


class ProbabilityBars(QWidget):
    """Per class, a teacher bar over a student bar, with the percentages written beside them."""

    ROW = 34
    NAME_W = 118

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes: list[str] = []
        self.teacher: np.ndarray | None = None
        self.student: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_data(self, classes: list[str], teacher: np.ndarray | None, student: np.ndarray | None) -> None:
        self.classes, self.teacher, self.student = list(classes), teacher, student
        self.setFixedHeight(max(1, len(self.classes)) * self.ROW + 4)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(300, max(1, len(self.classes)) * self.ROW + 4)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().windowText().color()
        track = QColor(fg)
        track.setAlpha(28)
        bar_x = self.NAME_W
        pct_w = 52
        bar_w = max(20, self.width() - bar_x - pct_w - 6)
        top_t = None if self.teacher is None else int(np.argmax(self.teacher))
        top_s = None if self.student is None else int(np.argmax(self.student))
        for i, name in enumerate(self.classes):
            y = i * self.ROW + 2
            f = QFont(self.font())
            f.setBold(i in (top_t, top_s))
            p.setFont(f)
            p.setPen(fg)
            p.drawText(QRectF(0, y, self.NAME_W - 6, self.ROW - 4),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       self.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, self.NAME_W - 8))
            for j, (probs, color) in enumerate(((self.teacher, TEACHER_COLOR), (self.student, STUDENT_COLOR))):
                by = y + 3 + j * 14
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(track)
                p.drawRoundedRect(QRectF(bar_x, by, bar_w, 11), 3, 3)
                if probs is None:
                    continue
                v = float(probs[i])
                p.setBrush(color)
                p.drawRoundedRect(QRectF(bar_x, by, max(2.0, bar_w * v), 11), 3, 3)
                p.setPen(fg)
                small = QFont(self.font())
                small.setPointSizeF(max(7.0, self.font().pointSizeF() - 1))
                small.setBold(i == (top_t if j == 0 else top_s))
                p.setFont(small)
                p.drawText(QRectF(bar_x + bar_w + 4, by - 2, pct_w, 15),
                           Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{100 * v:.1f}%")
        p.end()


class PredictionsPanel(QWidget):
    """Both predictions, the agreement badge with the heatmap-agreement figures, and latencies."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        legend = QLabel(
            f"<span style='color:{TEACHER_COLOR.name()}'>■</span> Teacher &nbsp; "
            f"<span style='color:{STUDENT_COLOR.name()}'>■</span> Student")
        legend.setTextFormat(Qt.TextFormat.RichText)
        self.bars = ProbabilityBars()
        self.badge = QLabel("No analysis yet")
        self.badge.setObjectName("agreementBadge")
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setWordWrap(True)
        self.badge.setProperty("agree", "none")
        self.trust = QLabel("")  # chance-level and uncertain labels (trust_notes)
        self.trust.setObjectName("trustNotes")
        self.trust.setWordWrap(True)
        self.figures = QLabel("")
        self.figures.setObjectName("agreementFigures")
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.figures.setWordWrap(True)
        self.latency = QLabel("")
        self.latency.setTextFormat(Qt.TextFormat.RichText)
        self.latency.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(6)
        layout.addWidget(self.badge)
        layout.addWidget(self.trust)
        layout.addWidget(legend)
        layout.addWidget(self.bars)
        layout.addWidget(self.figures)
        layout.addWidget(self.latency)
        state.events.analysis.connect(lambda _: self.refresh())
        state.events.method.connect(lambda _: self.refresh())
        state.events.reveal.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        a = self.state.analysis
        if a is None:
            self.bars.set_data([], None, None)
            self._badge("none", "No analysis yet")
            self.trust.setText("")
            self.figures.setText("")
            self.latency.setText("")
            return
        t, s = a.teacher, a.student
        hidden = withheld(a) and not self.state.reveal
        self.trust.setText("\n".join(f"⚠ {n.text}" for n in notes(a) if n.kind != "ood"))
        self.trust.setVisible(bool(self.trust.text()))
        if hidden:
            self.bars.set_data(t.classes, None, None)
        else:
            self.bars.set_data(t.classes, np.asarray(t.probabilities), np.asarray(s.probabilities))
        if hidden:
            self._badge("none", "Prediction withheld: the image does not look like the models' training images")
        elif a.same_class:
            self._badge("yes", f"Models agree: {t.predicted}")
        else:
            self._badge("no", f"Models disagree: teacher {t.predicted}, student {s.predicted}")
        m = self.state.method
        ag = a.agreement.get(m)
        label = html.escape(method_label(m))
        if ag is None:
            self.figures.setText(f"<b>Heatmap agreement</b> ({label}): not computed")
        else:
            note = ("<br><i>– : a heatmap is flat (the model highlights nothing), so this figure is undefined.</i>"
                    if any(math.isnan(v) for v in (ag.pearson, ag.ssim, ag.iou_top20)) else "")
            self.figures.setText(
                f"<b>Heatmap agreement</b> ({label})<br>"
                f"r = {_fig(ag.pearson)} &nbsp;·&nbsp; SSIM = {_fig(ag.ssim)} &nbsp;·&nbsp; "
                f"top-20 % IoU = {_fig(ag.iou_top20)}{note}")
        tiles = f" ({a.n_tiles} tiles)" if a.n_tiles > 1 else ""
        self.latency.setText(
            f"<b>Latency</b> on {html.escape(a.device)}{tiles}: "
            f"<span style='color:{TEACHER_COLOR.name()}'>teacher {t.latency_ms:.1f} ms</span> · "
            f"<span style='color:{STUDENT_COLOR.name()}'>student {s.latency_ms:.1f} ms</span>")

    def _badge(self, agree: str, text: str) -> None:
        self.badge.setText(text)
        self.badge.setProperty("agree", agree)
        self.badge.style().unpolish(self.badge)
        self.badge.style().polish(self.badge)


def heat_pixmap(data: np.ndarray, colormap: str, size: int) -> QPixmap:
    """A colour-mapped thumbnail of a [0, 1] map, aspect kept, longest side *size* pixels."""
    rgb = np.ascontiguousarray(colormap_table(colormap)[lut_index(data)][..., :3])
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(img).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)


def stage_label(stage: str) -> str:
    """A short caption for a module path: "model.features.denseblock1" -> "denseblock1", "block1.act" -> "block1"."""
    parts = [p for p in stage.split(".") if p]
    while len(parts) > 1 and parts[0] in ("model", "features", "backbone", "body"):
        parts.pop(0)
    if len(parts) > 1 and parts[-1] in ("act", "relu", "out"):
        parts.pop()
    return ".".join(parts) or stage


class LayerStrip(QWidget):
    """The selected model's average feature map at each stage, shallow to deep (paper 002)."""

    THUMB = 84

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.teacher_radio = QRadioButton("Teacher")
        self.student_radio = QRadioButton("Student")
        group = QButtonGroup(self)
        group.addButton(self.teacher_radio)
        group.addButton(self.student_radio)
        self.teacher_radio.setChecked(True)
        self.teacher_radio.toggled.connect(lambda on: setattr(state, "strip_role", "teacher" if on else "student"))
        head = QHBoxLayout()
        title = QLabel("<b>Layer by layer</b> · average feature maps")
        title.setTextFormat(Qt.TextFormat.RichText)
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.teacher_radio)
        head.addWidget(self.student_radio)
        self.cells = QWidget()
        self.cells_layout = QHBoxLayout(self.cells)
        self.cells_layout.setContentsMargins(0, 0, 0, 0)
        self.cells_layout.setSpacing(6)
        self.cells_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.cells)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFixedHeight(self.THUMB + 34)
        self.empty = QLabel("The strip appears after an analysis.")
        self.empty.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.scroll)
        self.cells_layout.insertWidget(0, self.empty)
        self.thumbs: list[QLabel] = []
        for name in ("analysis", "strip_role", "colormap"):
            getattr(state.events, name).connect(lambda _: self.refresh())
        state.events.strip_role.connect(self._sync_radio)

    def _sync_radio(self, role: str) -> None:
        (self.teacher_radio if role == "teacher" else self.student_radio).setChecked(True)

    def refresh(self) -> None:
        for w in self.thumbs:
            self.cells_layout.removeWidget(w)
            w.deleteLater()
        self.thumbs = []
        a = self.state.analysis
        result = None if a is None else (a.teacher if self.state.strip_role == "teacher" else a.student)
        maps = [] if result is None else list(result.feature_maps)
        self.empty.setVisible(not maps)
        if a is not None and not maps:
            self.empty.setText("This model's feature maps were not computed for this analysis.")
        for i, (stage, data) in enumerate(maps):
            cell = QLabel()
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setPixmap(heat_pixmap(data, self.state.colormap, self.THUMB))
            cell.setToolTip(f"{stage}: {data.shape[1]}×{data.shape[0]}")
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.setSpacing(1)
            v.addWidget(cell)
            cap = QLabel(f"{i + 1}. {stage_label(stage)}")
            cap.setToolTip(stage)
            cap.setObjectName("caption")
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            v.addWidget(cap)
            self.cells_layout.insertWidget(self.cells_layout.count() - 1, box)
            self.thumbs.append(box)


def card_html(card) -> str:
    """A model card as readable HTML: ``models.card_summary``'s rows (what the PDF shows too), then
    the per-class figures, which only the dialog has room for."""
    from ..models.card_summary import card_summary

    e = html.escape
    summary = card_summary(card)
    caveat_rows = [(label, value) for label, value in summary.pairs() if label != "Caveat"]
    cut = next((i for i, (label, _) in enumerate(caveat_rows) if label in ("Training", "Data")), len(caveat_rows))
    table = lambda rows: "<table cellspacing=4>" + "".join(  # noqa: E731
        f"<tr><td valign=top><b>{e(k)}</b></td><td>{e(v)}</td></tr>" for k, v in rows) + "</table>"
    caveats = "".join(f"<li>{e(c)}</li>" for c in summary.caveats) or "<li><i>None recorded.</i></li>"
    per_class = (card.metrics or {}).get("per_class") or {}
    classes = ""
    if per_class:
        head = "<tr><th align=left>class</th><th>precision</th><th>recall</th><th>F1</th><th>n</th></tr>"
        body = "".join(
            f"<tr><td>{e(c)}</td><td align=right>{v.get('precision', float('nan')):.3f}</td>"
            f"<td align=right>{v.get('recall', float('nan')):.3f}</td><td align=right>{v.get('f1', float('nan')):.3f}</td>"
            f"<td align=right>{e(str(v.get('support', '')))}</td></tr>"
            for c, v in per_class.items() if isinstance(v, dict))
        classes = f"<h3>Per class (test)</h3><table cellspacing=4>{head}{body}</table>"
    return (f"<h2>{e(summary.title)}</h2>{table(caveat_rows[:cut])}<h3>Caveats</h3><ul>{caveats}</ul>"
            f"{table(caveat_rows[cut:])}{classes}")


class ModelCardDialog(QDialog):
    """Teacher and student cards side by side, read-only."""

    def __init__(self, cards: list, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model cards")
        self.resize(900, 620)
        grid = QGridLayout()
        self.browsers: list[QTextBrowser] = []
        for i, card in enumerate(cards):
            b = QTextBrowser()
            b.setOpenExternalLinks(False)
            b.setHtml(card_html(card))
            grid.addWidget(b, 0, i)
            self.browsers.append(b)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addWidget(buttons)


class StudyPanel(QWidget):
    """What was opened and how it is displayed (orientation, photometric, spacing), no identifiers.

    Why: a reader must know which side is the patient's right and whether gray values were
    inverted before trusting any overlay; the readers record it, this panel shows it.
    """

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.text = QLabel("")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.text)
        state.events.study.connect(lambda _: self.refresh())
        state.events.show_identifiers.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        study = self.state.study
        if study is None:
            self.text.setText("<i>No study open.</i>")
            return
        e = html.escape
        rows = [("Kind", study.kind.value), ("Orientation", study.orientation)]
        if self.state.show_identifiers:
            # Exported folders and files are often named after the patient: shown with the identifiers only.
            rows.insert(0, ("File", study.source.name))
        if study.photometric:
            rows.append(("Gray/colour", study.photometric))
        if study.metadata.manufacturer:
            rows.append(("Manufacturer", study.metadata.manufacturer))
        if len(study.series) > 1:
            rows.append(("Series in folder", f"{len(study.series)} (largest opened)"))
        body = "".join(f"<tr><td style='color:#8a919c;padding-right:6px'>{e(k)}</td><td>{e(str(v))}</td></tr>"
                       for k, v in rows)
        warn = "".join(f"<p style='color:#ffcf7a'>⚠ {e(w)}</p>" for w in study.warnings)
        self.text.setText(f"<table>{body}</table>{warn}")
