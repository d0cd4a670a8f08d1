"""The model bar: open, the task menu, the pair's names and accuracies, model cards, privacy.

Why a widget of its own, bound to the session: the task menu lists the session's installed
pairs (``pairs`` event) and shows the session's task (``task`` event); a pick goes back through
``ReviewSession.choose_task``. The bar never decides which pair fits a study.
A plain row rather than a QToolBar: a toolbar hides what does not fit behind a "»" button, and
the pair's names and accuracies must always be readable.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy

from ..inference.pairing import describe
from ..inference.session import ReviewSession
from .panels import STUDENT_COLOR, TEACHER_COLOR


def short_name(card, limit: int = 44) -> str:
    """A card's name cut to fit a title bar (the full name is in the tooltip and the card viewer)."""
    name = card.name or card.architecture
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def accuracy(card) -> str:
    acc = card.test_accuracy
    return "not measured" if acc is None else f"{100 * acc:.1f} %"


class ModelBar(QFrame):
    def __init__(self, session: ReviewSession) -> None:
        super().__init__()
        self.session = session
        self.setObjectName("modelBar")
        bar = QHBoxLayout(self)
        bar.setContentsMargins(6, 3, 6, 3)
        bar.setSpacing(8)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a DICOM file or series folder, NIfTI, PNG, JPEG or TIFF (or drop it here)")
        bar.addWidget(self.open_button)
        bar.addWidget(QLabel("Task"))
        self.task_combo = QComboBox()
        self.task_combo.setObjectName("taskCombo")
        self.task_combo.setMinimumWidth(170)
        self.task_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.task_combo.addItem("Loading models…", None)
        bar.addWidget(self.task_combo)
        self.pair_label = QLabel("")
        self.pair_label.setObjectName("pairLabel")
        self.pair_label.setTextFormat(Qt.TextFormat.RichText)
        self.pair_label.setWordWrap(True)
        self.pair_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar.addWidget(self.pair_label, 1)
        self.card_button = QPushButton("Model cards…")
        self.card_button.setEnabled(False)
        bar.addWidget(self.card_button)
        self.privacy_button = QPushButton("Show identifiers")
        self.privacy_button.setObjectName("privacyButton")
        self.privacy_button.setCheckable(True)
        self.privacy_button.setToolTip("Show the patient's name, ID and birth date in the header (off at every start)")
        bar.addWidget(self.privacy_button)

        self.task_combo.activated.connect(self._picked)
        session.events.pairs.connect(self._on_pairs)
        session.events.task.connect(self._on_task)

    def _picked(self, index: int) -> None:
        task = self.task_combo.itemData(index)
        if task is not None:
            self.session.choose_task(task)

    def _on_pairs(self, pairs: dict) -> None:
        self.task_combo.blockSignals(True)
        self.task_combo.clear()
        if not pairs:
            self.task_combo.addItem("No models installed", None)
        for task in pairs:
            self.task_combo.addItem(task, task)
            self.task_combo.setItemData(self.task_combo.count() - 1, describe(self.session.registry, task),
                                        Qt.ItemDataRole.ToolTipRole)
        self.task_combo.blockSignals(False)

    def _on_task(self, task: str | None) -> None:
        pair = self.session.pair
        if pair is None:
            return
        i = self.task_combo.findData(task)
        if i >= 0 and i != self.task_combo.currentIndex():
            self.task_combo.blockSignals(True)
            self.task_combo.setCurrentIndex(i)
            self.task_combo.blockSignals(False)
        t, st = pair.teacher, pair.student
        self.pair_label.setText(
            f"<span style='color:{TEACHER_COLOR.name()}'><b>Teacher</b></span> {html.escape(short_name(t))}"
            f" · test acc. <b>{accuracy(t)}</b> &nbsp;&nbsp; <span style='color:{STUDENT_COLOR.name()}'><b>Student</b>"
            f"</span> {html.escape(short_name(st))} · test acc. <b>{accuracy(st)}</b><br>"
            f"<span style='color:#8a919c'>Classes: {html.escape(', '.join(t.classes))}</span>")
        self.pair_label.setToolTip(f"Teacher: {t.name or t.id}\nStudent: {st.name or st.id}")
        self.card_button.setEnabled(True)
