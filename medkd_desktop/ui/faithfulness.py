"""The "Check faithfulness" control: deletion and insertion AUC of both shown heatmaps, on request.

Why a control of its own: the agreement figures above it say whether the student's map looks like
the teacher's; these say whether each map shows what drives its own model. The check costs a few
seconds on a CPU, so it runs only when asked, in the worker (progress, Cancel, Esc), and its
figures stay with the analysis they describe. What may run, when, and which analysis the figures
belong to is decided by the Qt-free :class:`~medkd_desktop.inference.faithfulness.FaithfulnessCheck`;
this widget only shows it and runs its job on the :class:`Worker`.
"""
from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..inference import faithfulness as fa
from ..inference.session import ReviewSession
from .labels import method_label
from .panels import STUDENT_COLOR, TEACHER_COLOR
from .worker import Worker

ARROW = {"deletion_auc": "↓", "insertion_auc": "↑"}


class FaithfulnessPanel(QWidget):
    """Title and button, a progress bar with Cancel while a check runs, then both models' figures,
    the sentence on how to read them and what the check cost.

    ``action`` is the same command for a menu ("Check faithfulness", Ctrl+Shift+F), enabled with the
    button. Signals (for tests and the headless screenshot): ``check_finished(shown)`` (shown: the
    figures are on screen), ``check_cancelled()``, ``check_failed(message)``.
    """

    check_finished = Signal(bool)
    check_cancelled = Signal()
    check_failed = Signal(str)

    def __init__(self, session: ReviewSession, worker: Worker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faithfulnessPanel")
        self.model = fa.FaithfulnessCheck(session)
        self.worker = worker
        self._job = 0

        self.action = QAction("Check &faithfulness of the heatmaps", self)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.action.triggered.connect(self.start)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)  # the side panel may be narrow: the title wraps, the button stays whole
        self.check_button = QPushButton("Check faithfulness")
        self.check_button.setObjectName("faithfulnessButton")
        self.check_button.setToolTip("Deletion and insertion AUC of both shown heatmaps, each against its own "
                                     f"model ({fa.STEPS} steps per curve, as the benchmarks)")
        self.check_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFormat("Checking… %p%")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("faithfulnessCancel")
        self.cancel_button.setToolTip("Stop the check (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        self.figures = QLabel()
        self.figures.setObjectName("faithfulnessFigures")
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.reading = QLabel(fa.HOW_TO_READ)
        self.reading.setObjectName("hint")
        self.reading.setWordWrap(True)
        self.note = QLabel()
        self.note.setObjectName("caption")
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel)
        self.escape.setContext(Qt.ShortcutContext.WindowShortcut)

        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.check_button)
        running = QHBoxLayout()
        running.setContentsMargins(0, 0, 0, 0)
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        self.running_row = QWidget()
        self.running_row.setLayout(running)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.running_row)
        layout.addWidget(self.figures)
        layout.addWidget(self.reading)
        layout.addWidget(self.note)

        self.model.events.changed.connect(lambda _m: self.refresh())
        self.model.events.abandoned.connect(lambda _m: self._drop_job())
        b = worker.bridge
        b.progress.connect(self._on_progress)
        b.task_done.connect(self._on_done)
        b.task_failed.connect(self._on_failed)
        self.refresh()

    def attach_below(self, widget: QWidget) -> None:
        """Place the panel right below *widget* in its parent's box layout (the agreement figures)."""
        layout = widget.parentWidget().layout()
        layout.insertWidget(layout.indexOf(widget) + 1, self)

    # -- actions ------------------------------------------------------------------------
    def start(self) -> int | None:
        """Check the shown heatmaps; returns the worker job id (None when no check may start)."""
        engine = self.worker.engine
        job = self.model.start() if engine is not None else None
        if job is None:
            return None
        self._job = self.worker.run_cancellable(
            lambda on_progress, cancel: fa.check(engine, job, on_progress=on_progress, cancel=cancel))
        return self._job

    def cancel(self) -> None:
        """Stop the running check; the window is usable again at once (a late result is dropped)."""
        if not self.model.running:
            return
        self._drop_job()
        self.model.cancelled()
        self.check_cancelled.emit()

    def _drop_job(self) -> None:
        if self._job:
            self.worker.cancel_job(self._job)
        self._job = 0

    # -- worker reports -----------------------------------------------------------------
    def _on_progress(self, job: int, fraction: float, step: str) -> None:
        if job == self._job and job:
            self.model.progress(fraction, step)

    def _on_done(self, job: int, result: Any) -> None:
        if job != self._job or not job:
            return
        self._job = 0
        self.check_finished.emit(self.model.finish(result))

    def _on_failed(self, job: int, exc: Exception) -> None:
        if job != self._job or not job:
            return
        self._job = 0
        from ..inference.errors import AnalysisCancelled

        if isinstance(exc, AnalysisCancelled):  # cancelled from elsewhere (the window's Cancel, shutdown)
            self.model.cancelled()
            self.check_cancelled.emit()
            return
        message = str(exc) or type(exc).__name__
        self.model.failed(message)
        self.check_failed.emit(message)

    # -- view -----------------------------------------------------------------------------
    def refresh(self) -> None:
        m = self.model
        analysis = m.session.analysis
        self.title.setText(f"<b>Faithfulness</b> ({html.escape(method_label(m.method))})")
        self.check_button.setEnabled(m.can_check)
        self.check_button.setText("Checking…" if m.running else "Checked" if m.figures is not None
                                  else "Check faithfulness")
        self.action.setEnabled(m.can_check)
        self.escape.setEnabled(m.running)
        self.running_row.setVisible(m.running)
        if m.running:
            self.progress.setValue(int(round(100 * max(0.0, m.fraction))))
        figures = m.figures
        self.figures.setVisible(figures is not None)
        self.reading.setVisible(figures is not None)
        if figures is not None:
            self.figures.setText(self._table(figures))
        note = m.message
        if not note and figures is not None:
            costs = m.costs
            if costs:
                note = ("Cost on " + analysis.device + ": " +
                        " · ".join(f"{r} {costs[r]:.0f} ms" for r in fa.ROLES if r in costs)
                        + f" ({fa.STEPS} steps per curve).")
        elif not note and analysis is not None and not m.running:
            reason = fa.unavailable(analysis, m.method)
            note = reason or "Not checked: does each map show what drives its model?"
        self.note.setText(note)
        self.note.setVisible(bool(note))

    @staticmethod
    def _table(figures: dict[str, dict[str, float]]) -> str:
        """One row per figure, one column per model (narrow enough for the side panel)."""
        cols = ((role, color) for role, color in (("teacher", TEACHER_COLOR), ("student", STUDENT_COLOR)))
        head = "".join(f"<td align=right style='padding-left:12px;color:{color.name()}'>{role.capitalize()}</td>"
                       for role, color in cols)
        rows = "".join(
            f"<tr><td>{html.escape(label)} {ARROW[key]}</td>"
            + "".join(f"<td align=right style='padding-left:12px'>{figures[role][key]:.2f}</td>" for role in fa.ROLES)
            + "</tr>"
            for key, label, _ in fa.FIGURES)
        return f"<table cellspacing=0 cellpadding=1><tr><td></td>{head}</tr>{rows}</table>"
