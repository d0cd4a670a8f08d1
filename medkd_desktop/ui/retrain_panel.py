"""Models ▸ Retrain…: distil a student on the site's own images, watch it learn, compare, install.

Why a QProcess over ``medkd retrain`` and never a thread: training holds the CPU for minutes to
hours; in its own process it cannot freeze the viewer (no GIL shared), a crash in it cannot take
the window down, and it is exactly the command a terminal runs (same events, same resume, same
lock). The panel only reads its JSON lines: ``summary`` fills the data table, ``epoch`` the curves,
``progress`` the bar and ETA, ``done`` the comparison, ``stopped`` offers Resume and Finish.
The data summary (``--dry-run``) runs the same way, since reading a folder of DICOM series can
take long too. Stop writes the run folder's ``STOP`` file (SIGTERM does not reach a console
process on Windows); the run drops the epoch in progress and keeps its checkpoint.

On a CPU the run gets one core fewer than the machine has, so the window keeps one for itself.
"""
from __future__ import annotations

import html
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..paths import REPO_DIR
from .panels import STUDENT_COLOR, TEACHER_COLOR

log = logging.getLogger(__name__)


def read_only_table(name: str, row_height: int, rows_shown: int, header: int) -> QTableWidget:
    """A table the user reads but cannot edit, tall enough for *rows_shown* rows."""
    table = QTableWidget(0, 0)
    table.setObjectName(name)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().setDefaultSectionSize(row_height)
    table.setMinimumHeight(row_height * rows_shown + header)
    return table

NEW_COLOR = QColor("#3fb950")
SMALL_TEST = 50  # test images under which the comparison says it cannot tell much
ROLE_NAMES = {"new": "New student", "bundled": "Bundled student", "teacher": "Bundled teacher"}


def medkd_command() -> list[str]:
    """How to start ``medkd``: this interpreter's module; in a frozen app, the ``medkd`` program
    installed beside it."""
    if getattr(sys, "frozen", False):
        exe = Path(sys.executable).with_name("medkd" + (".exe" if os.name == "nt" else ""))
        return [str(exe)]
    return [sys.executable, "-m", "medkd_desktop.cli"]


def training_threads() -> int:
    """All cores but one: the window keeps one to stay responsive."""
    return max(1, (os.cpu_count() or 2) - 1)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(int(seconds), 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {s:02d} s"


class RetrainPanel(QDialog):
    """Signals: ``summary_shown(dict)``, ``epoch_done(dict)``, ``stopped(dict)``, ``finished(dict)``
    (the ``done`` event), ``failed(str)`` (the error line), ``models_changed()`` (a student was
    activated or removed: the window re-reads the registry)."""

    summary_shown = Signal(dict)
    epoch_done = Signal(dict)
    stopped = Signal(dict)
    finished = Signal(dict)
    failed = Signal(str)
    models_changed = Signal()

    def __init__(self, tasks: list[str], parent: QWidget | None = None, *, task: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Retrain a student on your own images")
        self.setAcceptDrops(True)
        self.resize(1400, 940)
        self.process: QProcess | None = None
        self._mode = ""  # "summary" | "train"
        self._buffer = b""
        self._stderr = b""
        self.run_dir: Path | None = None
        self.result: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.last_summary: dict[str, Any] | None = None
        self._build(tasks, task)
        self._update_buttons()

    # ------------------------------------------------------------------ construction
    def _build(self, tasks: list[str], task: str | None) -> None:
        top = QGroupBox("1 · Data")
        form = QGridLayout(top)
        self.task_combo = QComboBox()
        self.task_combo.addItems(tasks)
        if task in tasks:
            self.task_combo.setCurrentText(task)
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("A folder with one subfolder per class, or a CSV path,label[,patient_id][,split]"
                                          " — or drop it here")
        self.folder_button = QPushButton("Folder…")
        self.csv_button = QPushButton("CSV…")
        self.check_button = QPushButton("Check data")
        form.addWidget(QLabel("Task"), 0, 0)
        form.addWidget(self.task_combo, 0, 1)
        form.addWidget(QLabel("Images"), 0, 2)
        form.addWidget(self.data_edit, 0, 3)
        form.addWidget(self.folder_button, 0, 4)
        form.addWidget(self.csv_button, 0, 5)
        form.addWidget(self.check_button, 0, 6)
        form.setColumnStretch(3, 1)

        self.counts_table = read_only_table("countsTable", row_height=24, rows_shown=5, header=30)
        self.notes = QListWidget()
        self.notes.setObjectName("dataNotes")
        self.notes.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.counts_table, 3)
        row.addWidget(self.notes, 4)
        form.addLayout(row, 1, 0, 1, 7)

        settings = QGroupBox("2 · Settings")
        sf = QFormLayout(settings)
        self.loss_combo = QComboBox()
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 500)
        self.epochs_spin.setValue(10)
        self.init_bundled = QRadioButton("the bundled student (fine-tune, fast)")
        self.init_scratch = QRadioButton("random weights (from scratch)")
        self.init_bundled.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.init_bundled)
        group.addButton(self.init_scratch)
        init_row = QHBoxLayout()
        init_row.addWidget(self.init_bundled)
        init_row.addWidget(self.init_scratch)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (GPU if present)", "auto")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("GPU (CUDA)", "cuda")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("optional, e.g. site-a-2026")
        sf.addRow("Loss", self.loss_combo)
        sf.addRow("Epochs", self.epochs_spin)
        sf.addRow("Start from", init_row)
        sf.addRow("Device", self.device_combo)
        sf.addRow("Version name", self.name_edit)
        self._fill_losses()

        run = QGroupBox("3 · Training")
        rv = QVBoxLayout(run)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.finish_button = QPushButton("Finish with best epoch")
        self.finish_button.setToolTip("Train no further: compare and install the best epoch so far")
        for b in (self.start_button, self.stop_button, self.resume_button, self.finish_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QLabel("Choose the task and your images, then Check data.")
        self.status.setObjectName("retrainStatus")
        self.status.setWordWrap(True)
        rv.addLayout(buttons)
        rv.addWidget(self.progress)
        rv.addWidget(self.status)

        pg.setConfigOptions(antialias=True)
        self.loss_plot = pg.PlotWidget(title="Train loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(TEACHER_COLOR, width=2), symbol="o", symbolSize=6)
        self.val_plot = pg.PlotWidget(title="Validation (your val split)")
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.setYRange(0, 1.05)
        self.val_plot.addLegend(offset=(-10, -30))  # bottom right, under curves that climb
        self.acc_curve = self.val_plot.plot([], [], pen=pg.mkPen(STUDENT_COLOR, width=2), symbol="o", symbolSize=6,
                                            name="accuracy")
        self.f1_curve = self.val_plot.plot([], [], pen=pg.mkPen(NEW_COLOR, width=2, style=Qt.PenStyle.DashLine),
                                           symbol="t", symbolSize=6, name="macro-F1")
        for plot in (self.loss_plot, self.val_plot):
            plot.setMinimumHeight(150)
            plot.showGrid(x=True, y=True, alpha=0.2)
        curves = QHBoxLayout()
        curves.addWidget(self.loss_plot)
        curves.addWidget(self.val_plot)
        rv.addLayout(curves, 1)

        result = QGroupBox("4 · Comparison on your test split (held-out patients)")
        res = QHBoxLayout(result)
        self.compare_table = QTableWidget(0, 0)
        self.compare_table.setObjectName("compareTable")
        self.compare_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.compare_table.verticalHeader().setDefaultSectionSize(26)
        self.compare_table.setMinimumHeight(26 * 7 + 34)
        self.diff_label = QLabel("")
        self.diff_label.setWordWrap(True)
        self.diff_label.setTextFormat(Qt.TextFormat.RichText)
        self.confusion_model = QComboBox()
        for role, name in ROLE_NAMES.items():
            self.confusion_model.addItem(name, role)
        self.confusion_model.setToolTip("Whose predictions the matrix shows")
        self.confusion = read_only_table("confusionTable", row_height=26, rows_shown=5, header=34)
        self.cell_images = QListWidget()
        self.cell_images.setObjectName("cellImages")
        self.use_button = QPushButton("Use this student")
        self.use_button.setObjectName("useButton")
        self.use_button.setToolTip("The window analyses with the new student from now on (rollback: Discard, or "
                                   "`medkd models activate <task>/student`)")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Delete the new student; the bundled one stays in use")

        table_col = QVBoxLayout()
        table_col.addWidget(self.compare_table, 1)
        table_col.addWidget(self.diff_label)
        conf_col = QVBoxLayout()
        conf_head = QHBoxLayout()
        conf_head.addWidget(QLabel("Confusion matrix of"))
        conf_head.addWidget(self.confusion_model, 1)
        conf_col.addLayout(conf_head)
        conf_col.addWidget(self.confusion, 1)
        conf_col.addWidget(QLabel("rows: true class · columns: predicted · click a cell for its images"))
        img_col = QVBoxLayout()
        img_col.addWidget(self.cell_images, 1)
        decide = QHBoxLayout()
        decide.addStretch(1)
        decide.addWidget(self.discard_button)
        decide.addWidget(self.use_button)
        img_col.addLayout(decide)
        res.addLayout(table_col, 6)
        res.addLayout(conf_col, 5)
        res.addLayout(img_col, 3)

        upper = QHBoxLayout()
        upper.addWidget(top, 3)
        upper.addWidget(settings, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(upper)
        layout.addWidget(run, 3)
        layout.addWidget(result, 5)

        self.folder_button.clicked.connect(self._pick_folder)
        self.csv_button.clicked.connect(self._pick_csv)
        self.check_button.clicked.connect(self.check_data)
        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button.clicked.connect(lambda: self.start())
        self.finish_button.clicked.connect(lambda: self.start(finish=True))
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self.use_student)
        self.discard_button.clicked.connect(self.discard)
        self.task_combo.currentTextChanged.connect(lambda _t: (self._fill_losses(), self._reset_summary()))
        self.data_edit.textChanged.connect(lambda _t: self._reset_summary())
        self.confusion_model.currentIndexChanged.connect(lambda _i: self._show_confusion())
        self.confusion.cellClicked.connect(self._show_cell)

    def _fill_losses(self) -> None:
        from ..distill.losses import list_losses
        from ..models.registry import BUNDLED_DIR, ModelRegistry

        self.loss_combo.clear()
        default = ""
        try:
            default = ModelRegistry([BUNDLED_DIR]).card(self.task, "student").training.get("method", "")
        except Exception:  # noqa: BLE001 - a task without a bundled student: no default to name
            pass
        self.loss_combo.addItem(f"the task's paper loss ({default})" if default else "the task's paper loss", None)
        for name in list_losses():
            self.loss_combo.addItem(name, name)

    # ------------------------------------------------------------------ inputs
    @property
    def task(self) -> str:
        return self.task_combo.currentText()

    def set_data(self, path: str | Path) -> None:
        self.data_edit.setText(str(path))

    def _pick_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder with one subfolder per class")
        if chosen:
            self.set_data(chosen)
            self.check_data()

    def _pick_csv(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "CSV with path,label[,patient_id][,split]", "", "CSV (*.csv)")
        if chosen:
            self.set_data(chosen)
            self.check_data()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.set_data(urls[0].toLocalFile())
            self.check_data()

    def _args(self, *, finish: bool = False, dry_run: bool = False) -> list[str]:
        args = ["retrain", "--task", self.task, "--data", self.data_edit.text().strip(), "--json",
                "--epochs", str(self.epochs_spin.value()), "--init", "bundled" if self.init_bundled.isChecked() else "scratch"]
        loss = self.loss_combo.currentData()
        if loss:
            args += ["--loss", loss]
        device = self.device_combo.currentData()
        if device != "auto":
            args += ["--device", device]
        if device != "cuda":
            args += ["--threads", str(training_threads())]
        if self.name_edit.text().strip():
            args += ["--name", self.name_edit.text().strip()]
        if finish:
            args.append("--finish")
        if dry_run:
            args.append("--dry-run")
        return args

    # ------------------------------------------------------------------ the process
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def is_training(self) -> bool:
        return self.is_running() and self._mode == "train"

    def check_data(self) -> None:
        """Read the data (a ``--dry-run``) and show the summary; nothing trains."""
        if not self.data_edit.text().strip() or self.is_running():
            return
        self._reset_summary()
        self._launch(self._args(dry_run=True), "summary")
        self.status.setText("Reading your images…")

    def start(self, *, finish: bool = False) -> None:
        """Start, resume (the same command finds its checkpoint) or finish the run."""
        if self.is_running() or not self.data_edit.text().strip():
            return
        if not finish and not self.history:
            self._clear_curves()
        self.result = None
        self._clear_result()
        self._launch(self._args(finish=finish), "train")
        self.status.setText("Finishing with the best epoch…" if finish else "Starting…")

    def stop(self) -> None:
        """Ask the run to stop after its current step (it keeps the last finished epoch)."""
        if not self.is_training():
            return
        if self.run_dir is not None:
            try:
                (self.run_dir / "STOP").touch()
            except OSError:
                self.process.terminate()
        else:
            self.process.terminate()
        self.status.setText("Stopping after the current step…")
        self.stop_button.setEnabled(False)

    def stop_and_wait(self, timeout_ms: int = 30_000) -> bool:
        """Stop, then wait for the process to end (closing the window). True when it ended."""
        self.stop()
        if self.process is None:
            return True
        ok = self.process.waitForFinished(timeout_ms)
        if not ok:
            self.process.kill()
            self.process.waitForFinished(5000)
        return ok

    def _launch(self, args: list[str], mode: str) -> None:
        cmd = medkd_command()
        p = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        if mode == "train" and self.device_combo.currentData() != "cuda":
            env.insert("OMP_NUM_THREADS", str(training_threads()))
        p.setProcessEnvironment(env)
        p.setWorkingDirectory(str(REPO_DIR))  # `-m medkd_desktop.cli` imports this very copy
        p.readyReadStandardOutput.connect(self._read_stdout)
        p.readyReadStandardError.connect(lambda: self._read_stderr())
        p.finished.connect(self._process_finished)
        self._buffer, self._stderr, self._mode = b"", b"", mode
        self.process = p
        p.start(cmd[0], [*cmd[1:], *args])
        self._update_buttons()

    def _read_stderr(self) -> None:
        if self.process is not None:
            self._stderr += bytes(self.process.readAllStandardError())

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                log.debug("not an event line from medkd retrain")
                continue
            self.handle_event(event)

    def _process_finished(self, code: int, _status: Any) -> None:
        self._read_stdout()
        self._read_stderr()
        mode = self._mode
        self._mode = ""
        errors = [line for line in self._stderr.decode(errors="replace").splitlines() if line.startswith("error:")]
        if code == 2 or (code not in (0, 4) and errors):
            message = errors[-1][len("error: "):] if errors else "the run ended with an error; see the log"
            self.status.setText(f"<b>Cannot {'read the data' if mode == 'summary' else 'train'}:</b> {html.escape(message)}")
            if mode == "summary":
                self.last_summary = None  # the table still shows what was found; Start stays off
            self.failed.emit(message)
        elif code not in (0, 4):
            self.status.setText("The training process ended unexpectedly. Resume continues from the last finished epoch.")
            self.failed.emit(f"exit status {code}")
        self._update_buttons()

    # ------------------------------------------------------------------ events
    def handle_event(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "start":
            self.run_dir = Path(e["run_dir"])
        elif kind == "reading":
            self.progress.setValue(int(100 * e["done"] / max(1, e["total"])))
            self.status.setText(f"Reading your images: {e['done']} of {e['total']}")
        elif kind == "summary":
            self.show_summary(e)
        elif kind == "resume":
            self.status.setText(f"Resuming after epoch {e['epoch']}…")
        elif kind == "progress":
            frac = ((e["epoch"] - 1) * e["steps"] + e["step"]) / max(1, e["epochs"] * e["steps"])
            self.progress.setValue(int(round(100 * frac)))
            self.status.setText(f"Epoch {e['epoch']} of {e['epochs']} · step {e['step']}/{e['steps']} · "
                                f"loss {e['loss']:.4f} · about {_eta(e.get('eta_s'))} left")
        elif kind == "epoch":
            self.history = [h for h in self.history if h["epoch"] < e["epoch"]] + [e]
            self._draw_curves()
            self.status.setText(f"Epoch {e['epoch']} of {e['epochs']} done: val accuracy {e['val']['accuracy']:.3f}, "
                                f"macro-F1 {e['val']['macro_f1']:.3f} · about {_eta(e.get('eta_s'))} left")
            self.epoch_done.emit(e)
        elif kind == "calibrated":
            self.status.setText("Comparing on your test split…")
        elif kind == "stopped":
            self.status.setText(f"Stopped after epoch {e['epoch']} (best so far: epoch {e.get('best_epoch')}). "
                                "Resume continues; Finish installs the best epoch.")
            self.stopped.emit(e)
        elif kind == "done":
            self.result = e
            self.progress.setValue(100)
            self.show_comparison(e)
            self.status.setText(f"Installed as {e['model']['id']} — not in use until you click “Use this student”.")
            self.finished.emit(e)
        self._update_buttons()

    # ------------------------------------------------------------------ summary
    def _reset_summary(self) -> None:
        self.last_summary = None
        self.counts_table.clear()
        self.counts_table.setRowCount(0)
        self.counts_table.setColumnCount(0)
        self.notes.clear()
        self._update_buttons()

    def show_summary(self, s: dict[str, Any]) -> None:
        self.last_summary = s
        classes, splits = s["classes"], list(s["counts"])
        t = self.counts_table
        t.setColumnCount(len(splits) + 1)
        t.setRowCount(len(classes) + 1)
        t.setHorizontalHeaderLabels([*splits, "all"])
        t.setVerticalHeaderLabels([*classes, "patients"])
        for i, c in enumerate(classes):
            for j, sp in enumerate(splits):
                t.setItem(i, j, _cell(s["counts"][sp][c]))
            t.setItem(i, len(splits), _cell(sum(s["counts"][sp][c] for sp in splits)))
        for j, sp in enumerate(splits):
            t.setItem(len(classes), j, _cell(s["patients"][sp]))
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.notes.clear()
        for w in s["warnings"]:
            self.notes.addItem(f"⚠ {w}")
        for d in s.get("near_duplicates", []):
            self.notes.addItem(f"≈ {d['a']} ({d['splits'][0]}) ~ {d['b']} ({d['splits'][1]})")
        for sk in s["skipped"]:
            self.notes.addItem(f"✕ {sk['path']}: {sk['reason']}")
        if not self.notes.count():
            self.notes.addItem("✓ No warnings.")
        self.status.setText(f"{s['n_images']} images of {sum(s['patients'].values())} patients ready "
                            f"({len(s['skipped'])} skipped). Choose the settings and Start.")
        self.summary_shown.emit(s)

    # ------------------------------------------------------------------ curves
    def _clear_curves(self) -> None:
        self.history = []
        self._draw_curves()

    def _draw_curves(self) -> None:
        ep = [h["epoch"] for h in self.history]
        step = max(1, -(-len(ep) // 10))  # whole epochs on the axis, at most ten labels
        for plot in (self.loss_plot, self.val_plot):
            plot.getAxis("bottom").setTickSpacing(major=step, minor=step)
        self.loss_curve.setData(ep, [h["train_loss"] for h in self.history])
        self.acc_curve.setData(ep, [h["val"]["accuracy"] for h in self.history])
        self.f1_curve.setData(ep, [h["val"]["macro_f1"] for h in self.history])

    # ------------------------------------------------------------------ comparison
    def _clear_result(self) -> None:
        self.compare_table.clear()
        self.compare_table.setRowCount(0)
        self.confusion.clear()
        self.confusion.setRowCount(0)
        self.cell_images.clear()
        self.diff_label.setText("")

    def show_comparison(self, done: dict[str, Any]) -> None:
        c = done["comparison"]
        classes, models = c["classes"], c["models"]
        t = self.compare_table  # one column per model, one row per figure: narrow enough for 7 classes
        rows = ["accuracy", "95% CI", "macro-F1", *[f"recall {k}" for k in classes]]
        t.setColumnCount(len(models))
        t.setRowCount(len(rows))
        t.setHorizontalHeaderLabels([ROLE_NAMES[r] for r in models])
        t.setVerticalHeaderLabels(rows)
        for j, row in enumerate(models.values()):
            ci = row["ci"].get("accuracy")
            t.setItem(0, j, _cell(f"{100 * row['accuracy']:.1f} %"))
            t.setItem(1, j, _cell(f"{100 * ci[0]:.1f} – {100 * ci[1]:.1f} %" if ci else "—"))
            t.setItem(2, j, _cell(f"{row['macro_f1']:.3f}"))
            for i, k in enumerate(classes):
                t.setItem(3 + i, j, _cell(f"{100 * row['recall'][k]:.0f} %"))
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        d = c.get("new_minus_bundled")
        if d:
            lo, hi = d["accuracy_ci"]
            verdict = ("better" if lo > 0 else "worse" if hi < 0 else "not clearly different (the interval includes 0)")
            if c["n"] < SMALL_TEST:
                verdict += f"; only {c['n']} test images: too few to tell models apart"
            self.diff_label.setText(
                f"<b>New − bundled student</b> on the same {c['n']} test images: accuracy "
                f"<b>{100 * d['accuracy']:+.1f} points</b> [{100 * lo:+.1f}, {100 * hi:+.1f}], macro-F1 "
                f"{d['macro_f1']:+.3f} [{d['macro_f1_ci'][0]:+.3f}, {d['macro_f1_ci'][1]:+.3f}] — {verdict}.")
        self._show_confusion()

    def _confusion_row(self) -> dict[str, Any] | None:
        if not self.result:
            return None
        return self.result["comparison"]["models"].get(self.confusion_model.currentData())

    def _show_confusion(self) -> None:
        row = self._confusion_row()
        self.cell_images.clear()
        if row is None:
            return
        labels, matrix = row["confusion"]["labels"], row["confusion"]["matrix"]
        t = self.confusion
        t.setRowCount(len(labels))
        t.setColumnCount(len(labels))
        t.setHorizontalHeaderLabels([f"→ {x}" for x in labels])
        t.setVerticalHeaderLabels(labels)
        peak = max(1, max(max(r) for r in matrix))
        for i, r in enumerate(matrix):
            for j, n in enumerate(r):
                item = _cell(n)
                shade = int(40 + 150 * n / peak)
                item.setBackground(QColor(46, 160, 67, shade) if i == j else QColor(248, 81, 73, shade) if n else QColor(0, 0, 0, 0))
                t.setItem(i, j, item)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _show_cell(self, i: int, j: int) -> None:
        row = self._confusion_row()
        self.cell_images.clear()
        if row is None:
            return
        labels = row["confusion"]["labels"]
        paths = row["confusion"]["cells"][i][j]
        self.cell_images.addItem(f"true {labels[i]}, predicted {labels[j]}: {len(paths)} image(s)")
        for p in paths:
            self.cell_images.addItem(p)

    # ------------------------------------------------------------------ decision
    def use_student(self) -> None:
        self._decide("activate")

    def discard(self) -> None:
        self._decide("remove")

    def _decide(self, action: str) -> None:
        from ..retrain import manage
        from ..retrain.errors import RetrainError

        if not self.result:
            return
        model_id = self.result["model"]["id"]
        try:
            card = getattr(manage, action)(model_id)
        except RetrainError as exc:
            self.status.setText(html.escape(str(exc)))
            return
        if action == "activate":
            self.status.setText(f"{card.task} now uses {card.id}. Models ▸ Retrain… or `medkd models activate "
                                f"{card.task}/student` rolls back.")
        else:
            self.status.setText(f"Discarded {model_id}; {card.task} uses {card.id}.")
            self.result = None
        self.models_changed.emit()
        self._update_buttons()

    # ------------------------------------------------------------------ state
    def _update_buttons(self) -> None:
        running, training = self.is_running(), self.is_training()
        has_data = bool(self.data_edit.text().strip())
        resumable = self.run_dir is not None and (self.run_dir / "checkpoint.pt").exists() and self.result is None
        self.check_button.setEnabled(has_data and not running)
        self.start_button.setEnabled(has_data and not running and self.last_summary is not None)
        self.stop_button.setEnabled(training)
        self.resume_button.setEnabled(has_data and not running and resumable and bool(self.history))
        self.finish_button.setEnabled(has_data and not running and resumable and bool(self.history))
        decided = self.result is None
        self.use_button.setEnabled(not running and not decided)
        self.discard_button.setEnabled(not running and not decided)
        for w in (self.task_combo, self.data_edit, self.folder_button, self.csv_button, self.loss_combo,
                  self.epochs_spin, self.init_bundled, self.init_scratch, self.device_combo, self.name_edit):
            w.setEnabled(not running)

    def offer_resume(self, state: dict[str, Any]) -> None:
        """Fill the panel from an unfinished run's ``run.json`` (its command line) so Resume repeats it."""
        argv = list(state.get("argv") or [])

        def value(flag: str) -> str | None:
            return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None

        if value("--task"):
            self.task_combo.setCurrentText(value("--task"))
        if value("--data"):
            self.set_data(value("--data"))
        if value("--epochs"):
            self.epochs_spin.setValue(int(value("--epochs")))
        if value("--loss"):
            i = self.loss_combo.findData(value("--loss"))
            if i >= 0:
                self.loss_combo.setCurrentIndex(i)
        self.init_scratch.setChecked(value("--init") == "scratch")
        self.init_bundled.setChecked(value("--init") != "scratch")
        if value("--name"):
            self.name_edit.setText(value("--name"))
        self.run_dir = Path(state["run_dir"]) if state.get("run_dir") else None
        self.last_summary = {"resumed": True}
        self._load_history()
        self.status.setText(f"An unfinished retraining of {self.task} stopped after epoch {state.get('epoch', '?')}. "
                            "Resume continues it; Finish installs its best epoch.")
        self._update_buttons()

    def _load_history(self) -> None:
        if self.run_dir is None:
            return
        try:
            lines = (self.run_dir / "events.jsonl").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "epoch":
                self.history = [h for h in self.history if h["epoch"] < e["epoch"]] + [e]
        self._draw_curves()

    def closeEvent(self, event) -> None:  # noqa: N802
        """Closing the panel hides it; a run goes on (the main window asks when it closes)."""
        event.accept()


def _cell(value: Any) -> QTableWidgetItem:
    item = QTableWidgetItem(str(value))
    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
    return item


def unfinished_runs() -> list[dict[str, Any]]:
    from ..retrain.run import unfinished_runs as core

    return core()


def retrain_tasks() -> list[str]:
    """Tasks with a bundled teacher and student: the ones `medkd retrain` can distil for."""
    from ..models.registry import BUNDLED_DIR, ModelRegistry

    return ModelRegistry([BUNDLED_DIR]).paired_tasks()


def watch_models(window) -> None:
    """Once the engine is up: follow the user model folder (an activation by `medkd models` in a
    terminal reaches the window at once), and offer an unfinished run for resume in the status bar."""
    from PySide6.QtCore import QFileSystemWatcher, QTimer

    from ..models.registry import user_models_dir

    if window._models_watch is None:
        folder = user_models_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        watch = QFileSystemWatcher([str(folder)], window)
        settle = QTimer(window)  # one refresh for the burst of changes an install or activation makes
        settle.setSingleShot(True)
        settle.setInterval(300)
        settle.timeout.connect(window.models_changed)
        watch.directoryChanged.connect(lambda _p: settle.start())
        watch.fileChanged.connect(lambda _p: settle.start())
        window._models_watch = (watch, settle)
    runs = unfinished_runs()
    if runs:
        state = runs[0]
        button = QPushButton(f"Resume retraining of {state.get('task', '?')}…")
        button.setObjectName("resumeRetrainButton")
        button.clicked.connect(lambda: (window.show_retrain_panel(state), button.setVisible(False)))
        window.statusBar().addPermanentWidget(button)
        window.resume_retrain_button = button
