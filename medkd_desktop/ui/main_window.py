"""The review window: open a study, pick the model pair, compare teacher and student side by side.

Why the window is a thin controller: what is shown, which pair fits the study, what to analyse
and the cached results live in a Qt-free :class:`ReviewSession` (the CLI drives the same object),
the pixels and heatmaps in the viewers, the heavy work in :class:`Worker`. The window builds the
widgets and wires them: user actions become session changes and worker jobs, worker results go
back into the session. It never runs torch and never blocks on the worker.

Privacy: identifiers (name, ID, birth date) appear only in the header and only while the user
has "Show patient identifiers" on; it is off at every start and is not remembered. Nothing
identifying is logged; status messages name the study by kind, not by file name.

Length: over 500 lines because it builds and wires the whole window (menus, panels,
worker signals); the decisions it used to make (pairing, caching, what to analyse) are in
``inference.session``, and the model bar and study header are widgets of their own.
"""
from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QActionGroup, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGroupBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..inference.session import ReviewSession
from ..inference.trust_notes import withheld
from ..inference.view_state import DEFAULT_METHOD, STRIP_METHOD
from ..report.common import DISCLAIMER
from ..studies.errors import StudyLoadError
from ..trust import audit
from .controls import OverlayControls
from .faithfulness import FaithfulnessPanel
from .labels import method_label
from .model_bar import ModelBar, short_name
from .panels import STUDENT_COLOR, TEACHER_COLOR, LayerStrip, ModelCardDialog, PredictionsPanel, StudyPanel
from .settings import DEVICES, Settings
from .study_header import StudyHeader
from .trust_banner import TrustBanner
from .viewers import SyncedViewers
from .worker import Worker

log = logging.getLogger(__name__)

APP_TITLE = "MedKD Desktop"
DEFAULT_SIZE = QSize(1440, 900)
SLICE_DEBOUNCE_MS = 200  # re-analyse a new slice once the user stops scrolling
ENGINE_START_DELAY_MS = 50


class MainWindow(QMainWindow):
    """The application window.

    Signals (for tests, the benchmark and the headless screenshot): ``engine_ready()``,
    ``study_opened(study)``, ``open_failed(message)``, ``analysis_applied(analysis)``,
    ``analysis_cancelled()``, ``analysis_failed(message)``, ``exported(kind, path)``,
    ``export_failed(message)``.
    """

    engine_ready = Signal()
    study_opened = Signal(object)
    open_failed = Signal(str)
    analysis_applied = Signal(object)
    analysis_cancelled = Signal()
    analysis_failed = Signal(str)
    exported = Signal(str, str)  # kind, path
    sent_to_pacs = Signal(object)  # the core's StoreResult
    export_failed = Signal(str)

    def __init__(self, *, settings: Settings | None = None, worker: Worker | None = None,
                 device: str | None = None, forced_task: str | None = None, method: str | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.state = ReviewSession(forced_task=forced_task)
        self.state.method = method or self.settings.method
        self.state.colormap = self.settings.colormap
        self.state.opacity = self.settings.opacity
        dev = device or self.settings.device
        self.worker = worker or Worker(self, device=dev)
        if self.worker.parent() is None:
            self.worker.setParent(self)
        self.error_sink: Callable[[str, str], None] | None = None
        self._load_job = 0
        self._analysis_job = 0
        self._analysis_key: tuple | None = None
        self._exports: dict[int, str] = {}  # worker job id -> export kind
        self._pacs_dialog = None
        self._retrain_panel = None
        self._models_watch = None
        self._send_call = None
        self._analysis_started = 0.0
        self._slice_timer = QTimer(self)
        self._slice_timer.setSingleShot(True)
        self._slice_timer.setInterval(SLICE_DEBOUNCE_MS)
        self._slice_timer.timeout.connect(self.request_analysis)

        self.setWindowTitle(f"{APP_TITLE} — {DISCLAIMER}")
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(1024, 680)
        self.setAcceptDrops(True)
        self._build_ui()
        self._build_menus()
        self._connect()
        self._update_actions()
        self._engine_started = False

    # ======================================================================================
    # construction
    # ======================================================================================
    def _build_ui(self) -> None:
        s = self.state
        self.model_bar = ModelBar(s)
        for name in ("open_button", "task_combo", "pair_label", "card_button", "privacy_button"):
            setattr(self, name, getattr(self.model_bar, name))

        # header + banner ----------------------------------------------------------------------
        self.study_header = StudyHeader(s)
        self.identifiers_label = self.study_header.identifiers_label
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.trust_banner = TrustBanner(s)

        # centre: viewers + strip | side panel ------------------------------------------------
        self.viewers = SyncedViewers(s)
        self.strip = LayerStrip(s)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(6, 0, 0, 0)
        lv.setSpacing(4)
        lv.addWidget(self.viewers, 1)
        strip_frame = QFrame()
        strip_frame.setObjectName("stripFrame")
        sf = QVBoxLayout(strip_frame)
        sf.setContentsMargins(0, 0, 0, 0)
        sf.addWidget(self.strip)
        lv.addWidget(strip_frame)

        self.controls = OverlayControls(s)
        self.predictions = PredictionsPanel(s)
        self.faithfulness = FaithfulnessPanel(s, self.worker)  # "Check faithfulness", under the agreement figures
        self.faithfulness.attach_below(self.predictions.figures)
        self.study_panel = StudyPanel(s)
        side = QWidget()
        side.setObjectName("sidePanel")
        sv = QVBoxLayout(side)
        sv.setContentsMargins(4, 0, 6, 0)
        for title, widget in (("Predictions", self.predictions), ("Overlay", self.controls),
                              ("Study", self.study_panel)):
            box = QGroupBox(title)
            bl = QVBoxLayout(box)
            bl.setContentsMargins(2, 6, 2, 2)
            bl.addWidget(widget)
            sv.addWidget(box)
        sv.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(356)  # 340 for the panels + a vertical scroll bar (Predictions may be long)
        scroll.setMaximumWidth(440)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([DEFAULT_SIZE.width() - 370, 370])
        splitter.setChildrenCollapsible(False)

        central = QWidget()
        cv = QVBoxLayout(central)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.setSpacing(2)
        cv.addWidget(self.model_bar)
        cv.addWidget(self.study_header)
        cv.addWidget(self.banner)
        cv.addWidget(self.trust_banner)
        cv.addWidget(splitter, 1)
        self.setCentralWidget(central)

        # status bar --------------------------------------------------------------------------
        sb = self.statusBar()
        self.status_label = QLabel("Starting the analysis engine…")
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 100)
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setVisible(False)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = f.addAction("&Open file…", self.open_file_dialog, QKeySequence.StandardKey.Open)
        self.act_open_folder = f.addAction("Open &folder (DICOM series)…", self.open_folder_dialog,
                                           QKeySequence("Ctrl+Shift+O"))
        self.act_open_pacs = f.addAction("Open from &PACS…", self.open_pacs_dialog, QKeySequence("Ctrl+Shift+P"))
        self.recent_menu = f.addMenu("Open &recent")
        self._rebuild_recent()
        f.addSeparator()
        self.act_export_pdf = f.addAction("Export &PDF report…", lambda: self.export("pdf"), QKeySequence("Ctrl+E"))
        self.act_export_png = f.addAction("Export P&NG of the view…", lambda: self.export("png"))
        self.act_export_json = f.addAction("Export &JSON of the analysis…", lambda: self.export("json"))
        self.act_export_dicom = f.addAction("Export &DICOM Secondary Capture…", lambda: self.export("dicom"))
        self.act_send_pacs = f.addAction("&Send result to PACS…", self.send_to_pacs)
        f.addSeparator()
        f.addAction("&Quit", self.close, QKeySequence.StandardKey.Quit)

        v = mb.addMenu("&View")
        self.act_identifiers = v.addAction("Show patient &identifiers")
        self.act_identifiers.setCheckable(True)
        self.act_identifiers.setShortcut(QKeySequence("Ctrl+I"))
        v.addSeparator()
        v.addAction("&Reset view", self.viewers.reset_view, QKeySequence("R"))
        self.act_invert = v.addAction("&Invert gray", lambda: setattr(self.state, "invert", not self.state.invert),
                                      QKeySequence("I"))
        self.act_overlay = v.addAction("Show/hide &overlay",
                                       lambda: setattr(self.state, "overlay_visible", not self.state.overlay_visible),
                                       QKeySequence("H"))
        v.addAction("&Contour mode", lambda: setattr(self.state, "contour", not self.state.contour), QKeySequence("C"))
        v.addSeparator()
        v.addAction("Next slice", lambda: self._step_slice(1), QKeySequence("PgDown"))
        v.addAction("Previous slice", lambda: self._step_slice(-1), QKeySequence("PgUp"))

        m = mb.addMenu("&Models")
        self.act_cards = m.addAction("Model &cards…", self.show_model_cards)
        self.act_reanalyse = m.addAction("&Analyse again", lambda: self.request_analysis(force=True), QKeySequence("F5"))
        self.act_faithfulness = self.faithfulness.action
        m.addAction(self.act_faithfulness)
        self.act_retrain = m.addAction("&Retrain…", self.show_retrain_panel)
        dev = m.addMenu("&Device (applies at next start)")
        group = QActionGroup(self)
        for d in DEVICES:
            a = dev.addAction({"auto": "Automatic (GPU if present)", "cpu": "CPU", "cuda": "GPU (CUDA)"}[d])
            a.setCheckable(True)
            a.setChecked(d == self.settings.device)
            a.triggered.connect(lambda _=False, d=d: setattr(self.settings, "device", d))
            group.addAction(a)

        h = mb.addMenu("&Help")
        h.addAction("&About", self._about)
        self.act_audit = h.addAction("Audit &log…", self.show_audit_log)
        for key, step in (("Up", -1), ("Down", 1)):
            QShortcut(QKeySequence(key), self.viewers, lambda step=step: self._step_slice(step))

    def _connect(self) -> None:
        s, b = self.state, self.worker.bridge
        self.open_button.clicked.connect(self.open_file_dialog)
        self.card_button.clicked.connect(self.show_model_cards)
        self.privacy_button.toggled.connect(lambda on: setattr(s, "show_identifiers", on))
        self.act_identifiers.toggled.connect(lambda on: setattr(s, "show_identifiers", on))
        self.cancel_button.clicked.connect(self.cancel_analysis)

        b.ready.connect(self._on_engine_ready)
        b.startup_failed.connect(self._on_startup_failed)
        b.study_loaded.connect(self._on_study_loaded)
        b.study_failed.connect(self._on_study_failed)
        b.models_failed.connect(self._on_models_failed)
        b.models_loaded.connect(self._on_models_loaded)
        b.progress.connect(self._on_progress)
        b.analysis_done.connect(self._on_analysis_done)
        b.analysis_cancelled.connect(self._on_analysis_cancelled)
        b.analysis_failed.connect(self._on_analysis_failed)
        b.task_done.connect(self._on_task_done)
        b.task_failed.connect(self._on_task_failed)

        s.events.show_identifiers.connect(self._sync_privacy_toggles)
        s.events.study.connect(lambda _: self._update_actions())
        s.events.analysis.connect(lambda _: (self._update_titles(), self._update_actions()))
        s.events.reveal.connect(lambda _: self._update_titles())
        for name in ("slice", "volume"):
            getattr(s.events, name).connect(lambda _: self._frame_changed())
        s.events.method.connect(lambda m: self._overlay_request_changed(method=m))
        s.events.target.connect(lambda _: self._overlay_request_changed())
        s.events.task.connect(self._on_task)
        s.events.messages.connect(lambda lines: self._show_banner("\n".join(f"⚠ {w}" for w in lines)))
        s.events.colormap.connect(lambda c: setattr(self.settings, "colormap", c))
        s.events.opacity.connect(lambda o: setattr(self.settings, "opacity", o))

    # ======================================================================================
    # engine and models
    # ======================================================================================
    def _on_engine_ready(self, engine: Any, registry: Any) -> None:
        self.state.set_registry(registry)
        if self.worker.methods:
            offered = [m for m in self.worker.methods if m != STRIP_METHOD]
            if self.state.method not in offered:  # a setting from another version, or a removed method
                self.state.method = DEFAULT_METHOD
            self.controls.set_methods(offered)
        device = getattr(engine, "device", "cpu")
        self._status(f"Ready · models run on {device}. Open a study (Ctrl+O) or drop a file on the window.")
        self.engine_ready.emit()
        forced = self.state.forced_task
        if forced and forced not in self.state.pairs:
            self._show_banner(f"No model pair is installed for task {forced!r}; "
                              f"installed: {', '.join(self.state.pairs) or 'none'}.")
        if self.state.study is not None:
            self._choose_task_for()
        from .retrain_panel import watch_models

        watch_models(self)

    def _on_startup_failed(self, message: str) -> None:
        self._status(message)
        self.show_error("The analysis engine could not start", message)

    def _on_models_loaded(self, _job: int, task: str, seconds: float, methods: list[str]) -> None:
        """Offer only the methods both models support (attention maps need a transformer, etc.)."""
        if task != self.state.task:
            return
        offered = [m for m in methods if m != STRIP_METHOD]
        if offered:
            self.controls.set_methods(offered)
            if self.state.method not in offered:
                wanted = self.state.method
                self.state.method = "gradcam" if "gradcam" in offered else offered[0]
                self._status(f"{method_label(wanted)} does not apply to these models; "
                             f"showing {method_label(self.state.method)}.")
        log.info("models for %s loaded in %.1f s", task, seconds)

    def _on_models_failed(self, _job: int, message: str) -> None:
        self._show_banner(message)
        self._status("The models could not be loaded.")
        self.analysis_failed.emit(message)

    def _choose_task_for(self) -> None:
        """The session's pairing rule picks the pair (or none, and the banner says why)."""
        before = self.state.task
        proposal = self.state.propose()
        if proposal.task is None:
            self.analysis_failed.emit(proposal.note or "No model pair fits this study.")
        elif proposal.task == before:
            self.request_analysis()  # same pair, new study: _on_task does not fire

    def set_task(self, task: str) -> None:
        """The user's choice of pair (the task menu); it wins over --task and the proposal."""
        self.state.choose_task(task)

    def _on_task(self, _task: str | None) -> None:
        """Load the selected pair's models and analyse the shown frame with them (the model bar
        shows the pair itself)."""
        pair = self.state.pair
        if pair is None:
            return
        self.controls.set_classes(pair.teacher.classes)
        self.viewers.set_use_analysis_image(self.state.reads_whole_map)
        self._update_region()
        self.worker.load_models(pair)
        self.request_analysis()

    def _update_region(self) -> None:
        """Outline the box the models saw when it is not the whole frame (not for tiles or fMRI)."""
        box = self.state.input_region()
        self.viewers.set_model_region(None if box is None else box.as_tuple())

    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # ======================================================================================
    # opening studies
    # ======================================================================================
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open study", "",
            "Studies (*.dcm *.DCM *.dicom *.nii *.nii.gz *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)")
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM series folder")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Open a study in the background (the window stays responsive while JPEG 2000 decodes)."""
        p = Path(path)
        self.cancel_analysis()
        self._open_started = time.perf_counter()
        self._load_job = self.worker.open_study(p)
        self._status("Opening study…")
        self._busy(True, "Opening…")

    def _on_study_loaded(self, job: int, study) -> None:
        if job != self._load_job:
            return
        self._busy(False)
        self.settings.add_recent(study.source)
        self._rebuild_recent()
        self.state.study = study
        self._update_region()
        log.info("opened %s study (%d frames)", study.kind.value, study.n_frames)
        audit.record_open(study)
        for w in study.warnings:
            self._status(w)
        self.study_opened.emit(study)
        if self.state.registry is not None:
            self._choose_task_for()
        else:
            self._status("Study open; waiting for the analysis engine to start…")

    def _on_study_failed(self, job: int, exc: Exception) -> None:
        if job != self._load_job:
            return
        self._busy(False)
        if isinstance(exc, StudyLoadError):
            message = str(exc)
        else:
            message = "The study could not be opened because of an unexpected error; the log has details."
            log.warning("unexpected error opening a study: %s", type(exc).__name__)
        self._status("The study could not be opened.")
        audit.record_open(error=exc)
        self.open_failed.emit(message)
        self.show_error("Cannot open the study", message)

    def show_error(self, title: str, message: str) -> None:
        """A modal message with one plain sentence (no traceback: details are in the log).

        ``error_sink`` replaces the dialog in headless runs (``--screenshot``), where nobody
        could close it.
        """
        if self.error_sink is not None:
            self.error_sink(title, message)
            return
        QMessageBox.critical(self, title, message)

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent
        for path in recent:
            a = self.recent_menu.addAction(Path(path).name or path)
            a.setToolTip(path)
            a.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.settings.clear_recent(), self._rebuild_recent()))
        self.recent_menu.setEnabled(bool(recent))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        urls: list[QUrl] = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())

    # ======================================================================================
    # analysis
    # ======================================================================================
    def request_analysis(self, force: bool = False) -> None:
        """Analyse the shown frame with the chosen pair, method and target (cached per frame)."""
        self._slice_timer.stop()
        job = self.state.job()
        if job is None or self.worker.engine is None:
            return
        cached = None if force else self.state.cached()
        if cached is not None:
            self._apply(cached)
            return
        if not force and job.key == self._analysis_key and self.worker.busy:
            return  # this very analysis is already running
        self.state.analysis = None
        self._analysis_key = job.key
        self._analysis_started = time.perf_counter()
        self._analysis_job = self.worker.analyze(job)
        for v in self.viewers.viewers:
            v.set_placeholder("")
        self._status(f"Analysing with {method_label(self.state.method)}…")
        self._busy(True, "Analysing…", cancellable=True)

    def _frame_changed(self) -> None:
        if self.state.reads_whole_map:
            return  # the fMRI models read the whole map; the slice does not change their input
        cached = self.state.cached()
        if cached is not None:
            self._apply(cached)
        else:
            self.state.analysis = None
            self._slice_timer.start()

    def _overlay_request_changed(self, method: str | None = None) -> None:
        if method:
            self.settings.method = method
        self.request_analysis()

    def _on_progress(self, job: int, fraction: float, step: str) -> None:
        if job != self._analysis_job:
            return
        if fraction >= 0:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(round(100 * fraction)))
        else:
            self.progress.setRange(0, 0)  # busy indicator
        if step:
            self.progress.setFormat(f"{step} %p%" if fraction >= 0 else step)

    def _on_analysis_done(self, job: int, analysis, meta: dict) -> None:
        key = meta.get("key")
        if not self.worker.is_current(job):
            # Superseded or cancelled: never applied. A result that raced past the user's Cancel
            # is reported as the cancellation it is.
            if job == self._analysis_job:
                self._on_analysis_cancelled(job)
            return
        self._busy(False)
        audit.record_analysis(analysis, self.state.pair, self.state.study)
        if key is not None:
            self.state.remember(key, analysis)
        if key != self.state.key:
            return  # the user moved on while it ran; the slice timer asks for the new frame
        self._apply(analysis)
        ms = (time.perf_counter() - self._analysis_started) * 1000.0
        self._status(f"Analysis done in {ms:.0f} ms on {analysis.device}"
                     + (f" · {analysis.n_tiles} tiles" if analysis.n_tiles > 1 else ""))

    def _apply(self, analysis) -> None:
        self.state.analysis = analysis  # the banner follows: the session's messages include its warnings
        self.analysis_applied.emit(analysis)

    def _on_analysis_cancelled(self, job: int) -> None:
        if job != self._analysis_job:
            return
        self._busy(False)
        self._status("Analysis cancelled.")
        self.analysis_cancelled.emit()

    def _on_analysis_failed(self, job: int, message: str) -> None:
        if job != self._analysis_job:
            return
        self._busy(False)
        audit.record_analysis(None, self.state.pair, self.state.study, error="AnalysisError")
        self._status(f"Analysis failed: {message}")
        self.analysis_failed.emit(message)

    def cancel_analysis(self) -> None:
        self._slice_timer.stop()
        if self._analysis_job:
            self.worker.cancel()
            self._analysis_key = None
            self.cancel_button.setEnabled(False)
            self._status("Cancelling…")

    def _busy(self, on: bool, text: str = "", *, cancellable: bool = False) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on and cancellable)
        self.cancel_button.setEnabled(on and cancellable)
        if on:
            self.progress.setRange(0, 0)
            self.progress.setFormat(text)

    def _status(self, text: str) -> None:
        self.status_label.setText(text)

    def _step_slice(self, step: int) -> None:
        if self.state.study is not None and not self.state.reads_whole_map:
            self.state.slice = self.state.slice + step

    # ======================================================================================
    # header, titles, privacy
    # ======================================================================================
    def _sync_privacy_toggles(self, on: bool) -> None:
        for w in (self.privacy_button, self.act_identifiers):
            w.blockSignals(True)
            w.setChecked(on)
            w.blockSignals(False)
        self.privacy_button.setText("Hide identifiers" if on else "Show identifiers")

    def _update_titles(self) -> None:
        """Role and prediction first (what a reader scans for), then the model's name, shortened."""
        a = self.state.analysis
        for viewer, role, color in ((self.viewers.teacher, "teacher", TEACHER_COLOR),
                                    (self.viewers.student, "student", STUDENT_COLOR)):
            card = None if self.state.pair is None else getattr(self.state.pair, role)
            text = f"<span style='color:{color.name()}'><b>{role.capitalize()}</b></span>"
            if a is not None and withheld(a) and not self.state.reveal:
                text += " &nbsp;<i>prediction withheld</i>"
            elif a is not None:
                r = getattr(a, role)
                text += (f" &nbsp;<b>{html.escape(r.predicted)}</b> "
                         f"{100 * float(r.probabilities[r.predicted_index]):.1f} %")
            if card is not None:
                text += f" &nbsp;<span style='color:#8a919c'>{html.escape(short_name(card, 36))}</span>"
                viewer.title.setToolTip(card.name or card.id)
            viewer.title.setText(text)

    def _update_actions(self) -> None:
        has = self.state.analysis is not None
        study = self.state.study
        for a in (self.act_export_pdf, self.act_export_json, self.act_export_png):
            a.setEnabled(has)
        dicom = has and study is not None and study.kind.value.startswith("dicom")
        self.act_export_dicom.setEnabled(dicom)
        self.act_send_pacs.setEnabled(dicom)

    def _about(self) -> None:
        QMessageBox.about(self, f"About {APP_TITLE}",
                          f"<b>{APP_TITLE}</b><p>Compares a compact distilled student model with its teacher, "
                          f"with synchronized explanation heatmaps.</p><p><b>{DISCLAIMER}.</b></p>")

    def show_audit_log(self):
        """Help ▸ Audit log…: the entries, newest first, with the chain's status (read-only)."""
        from .audit_dialog import AuditDialog

        dialog = AuditDialog(self)
        dialog.setModal(False)
        dialog.show()
        return dialog

    def show_retrain_panel(self, unfinished: dict | None = None):
        """Models ▸ Retrain…: the panel (one per window; closing it hides it, a run goes on)."""
        from .retrain_panel import RetrainPanel, retrain_tasks

        if self._retrain_panel is None:
            self._retrain_panel = RetrainPanel(retrain_tasks(), self, task=self.state.task)
            self._retrain_panel.models_changed.connect(self.models_changed)
        if unfinished:
            self._retrain_panel.offer_resume(unfinished)
        self._retrain_panel.show()
        self._retrain_panel.raise_()
        return self._retrain_panel

    def models_changed(self) -> None:
        """A student was activated or removed (here or by `medkd models`): re-read the registry and
        analyse again with the pair now in use."""
        before = {t: (p.teacher.id, p.student.id) for t, p in self.state.pairs.items()}
        self.state.refresh_pairs(rescan=True)
        if before == {t: (p.teacher.id, p.student.id) for t, p in self.state.pairs.items()}:
            return  # e.g. the watcher seeing the panel's own change again
        self._update_titles()
        if self.state.study is not None:
            self.request_analysis()

    def confirm_stop_training(self) -> bool:
        return QMessageBox.question(
            self, "Training in progress",
            "A student is still training. Stop it and close? It keeps its last finished epoch and can be "
            "resumed at the next start (Models ▸ Retrain…).") == QMessageBox.StandardButton.Yes

    def show_model_cards(self) -> None:
        pair = self.state.pair
        if pair is not None:
            ModelCardDialog([pair.teacher, pair.student], self).exec()

    # ======================================================================================
    # export
    # ======================================================================================
    def export(self, kind: str, path: str | Path | None = None) -> int | None:
        """Export the shown analysis as pdf, png, json or dicom; *path* skips the file dialog.

        The PNG is the view as shown (a Qt grab, so it needs the GUI thread and is instant);
        PDF, JSON and DICOM are written by ``report/`` on the worker thread, the same files
        ``medkd analyze`` writes, drawn with the overlay settings now on screen. Returns the
        worker job id (None for the PNG or when nothing was exported); ``exported(kind, path)``
        or ``export_failed(message)`` follows.
        """
        a, study, s = self.state.analysis, self.state.study, self.state
        if a is None or study is None or self.state.pair is None:
            return None
        suffix = {"pdf": ".pdf", "png": ".png", "json": ".json", "dicom": ".dcm"}[kind]
        if path is None:
            stem = f"medkd-{a.task}-{s.method.replace('+', 'p')}"
            chosen, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", stem + suffix)
            if not chosen:
                return None
            path = chosen
        out = Path(path)
        if kind == "png":
            if self.grab_view().save(str(out), "PNG"):
                self._export_finished(kind, out)
            else:
                self._export_error(kind, OSError(f"could not write {out.name}"))
            return None
        from ..report import export_dicom_sc, export_json, export_pdf

        style = s.overlay_style
        method, pair, show_ids = s.method, s.pair, s.show_identifiers
        writers = {
            "pdf": lambda: export_pdf(a, study, pair, out, method, show_identifiers=show_ids, style=style),
            "json": lambda: export_json(a, study, out),
            "dicom": lambda: export_dicom_sc(a, study, out, method, style=style),
        }
        job = self.worker.run_task(writers[kind])
        self._exports[job] = kind
        self._status(f"Writing the {kind.upper()} file…")
        return job

    def _on_task_done(self, job: int, result: Any) -> None:
        kind = self._exports.pop(job, None)
        if kind is not None:
            self._export_finished(kind, Path(result))

    def _on_task_failed(self, job: int, exc: Exception) -> None:
        kind = self._exports.pop(job, None)
        if kind is not None:
            self._export_error(kind, exc)

    def _export_finished(self, kind: str, path: Path) -> None:
        self._status(f"Exported {kind.upper()}: {path.name}")
        audit.record_export(kind, self.state.pair, self.state.study)
        self.exported.emit(kind, str(path))

    def _export_error(self, kind: str, exc: Exception) -> None:
        from ..report import ReportError

        if isinstance(exc, ReportError):
            message = str(exc)
        else:
            log.warning("export %s failed: %s", kind, type(exc).__name__)  # the text may hold the path
            message = f"The {kind.upper()} file could not be written; the log has details."
        self._status("Export failed.")
        audit.record_export(kind, self.state.pair, self.state.study, error=exc)
        self.export_failed.emit(message)
        self.show_error("Export failed", message)

    def open_pacs_dialog(self):
        """File ▸ Open from PACS…: a retrieved study opens here, like a file."""
        from .pacs_dialog import PacsDialog

        if self._pacs_dialog is None:
            self._pacs_dialog = PacsDialog(self.settings, self)
            self._pacs_dialog.study_retrieved.connect(self._pacs_study_arrived)
        self._pacs_dialog.show()
        self._pacs_dialog.raise_()
        return self._pacs_dialog

    def _pacs_study_arrived(self, folder: str) -> None:
        self._pacs_dialog.hide()
        audit.record_transfer("retrieve", audit.dicom_study_uid(folder))
        self.open_path(folder)

    def send_to_pacs(self, address: str | None = None) -> None:
        """Store the shown overlay as a Secondary Capture into its study on a PACS (the only one
        configured, or the one the user picks)."""
        from PySide6.QtWidgets import QInputDialog

        from .pacs_dialog import message, send_result_call

        a, study, s = self.state.analysis, self.state.study, self.state
        if a is None or study is None or self._send_call is not None:
            return
        servers = dict((f"{n} ({addr})", addr) for n, addr in self.settings.pacs_servers)
        if address is None:
            if not servers:
                self.show_error("No PACS configured", "Add a PACS server in File ▸ Open from PACS… first.")
                return
            label = next(iter(servers))
            if len(servers) > 1:
                label, ok = QInputDialog.getItem(self, "Send result to PACS", "PACS", list(servers), 0, False)
                if not ok:
                    return
            address = servers[label]
        call = send_result_call(self.settings, address, a, study, s.method, s.overlay_style)
        call.signals.done.connect(lambda result: self._sent(result, None))
        call.signals.failed.connect(lambda exc: self._sent(None, message(exc)))
        self._send_call = call.start()
        self._status("Sending the result to the PACS…")

    def _sent(self, result, error: str | None) -> None:
        self._send_call = None
        uid = self.state.study.metadata.study_uid if self.state.study is not None else None
        audit.record_transfer("send", uid, None if result is None else len(result.stored),
                              error="PacsError" if error else "StoreFailed" if not result.ok else None)
        if error:
            self._status("Sending to the PACS failed.")
            self.show_error("Send result to PACS", error)
            return
        self._status("The result was stored in the PACS as a new series of the study.")
        self.sent_to_pacs.emit(result)

    def grab_view(self):
        """The viewers as shown (both overlays, window/level, zoom) as a QPixmap."""
        return self.viewers.grab()

    # ======================================================================================
    def showEvent(self, event) -> None:  # noqa: N802
        """Start the engine (torch import, card scan) just after the window first appears.

        Importing torch in the worker thread still competes with the GUI thread for the
        interpreter; starting it a moment after the first paint lets the window appear at once.
        """
        super().showEvent(event)
        if not self._engine_started:
            QTimer.singleShot(ENGINE_START_DELAY_MS, self.start_engine)

    def start_engine(self) -> None:
        if not self._engine_started:
            self._engine_started = True
            self.worker.start()

    def closeEvent(self, event) -> None:  # noqa: N802
        panel = self._retrain_panel
        if panel is not None and panel.is_training():
            if not self.confirm_stop_training():
                event.ignore()
                return
            panel.stop_and_wait()
        self.worker.shutdown(3000)
        self.settings.sync()
        super().closeEvent(event)
