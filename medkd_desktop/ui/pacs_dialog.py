"""File ▸ Open from PACS…: the servers, a query form, the study and series tables, retrieval.

Why a dialog over the core's ``pacs`` package and no networking of its own: every call (echo,
find, retrieve) runs on a pool thread (:class:`BackgroundCall`) through the same client the CLI
uses, so the window keeps painting and a failure reads the same in both. Patient names and IDs
appear in the study table, because choosing the right patient is its purpose; they are never
logged, and error messages never contain them (the core's errors name the server, not the
patient).
"""
from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..pacs import PacsError, PacsServer, PacsSettings, StudyQuery, parse_date_range
from .background import BackgroundCall
from .settings import Settings

log = logging.getLogger(__name__)

STUDY_COLUMNS = ("Date", "Patient", "Patient ID", "Modalities", "Description", "Accession", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Body part", "Images")


def _item(text: Any, sort_key: Any = None) -> QTableWidgetItem:
    item = QTableWidgetItem("" if text is None else str(text))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if sort_key is not None:
        item.setData(Qt.ItemDataRole.UserRole + 1, sort_key)
    return item


def _date(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}" if len(yyyymmdd) == 8 else yyyymmdd


def message(exc: BaseException) -> str:
    """One sentence for the user: the core's own for a PACS error, a generic one otherwise."""
    if isinstance(exc, PacsError):
        return str(exc)
    return "The PACS call failed because of an unexpected error; the log has details."


class PacsDialog(QDialog):
    """Signals: ``study_retrieved(folder)`` when a retrieval has written images to open;
    ``finished_call(kind)`` after each background call (for tests: "echo", "find", "series",
    "retrieve")."""

    study_retrieved = Signal(str)
    finished_call = Signal(str)

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(1060, 700)
        self.settings = settings
        self._call: BackgroundCall | None = None
        self._studies: list[Any] = []
        self._series: list[Any] = []
        self._build()
        self._load_servers()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        servers = QGroupBox("Server")
        sl = QFormLayout(servers)
        row = QHBoxLayout()
        self.server_combo = QComboBox()
        self.server_combo.setMinimumWidth(280)
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("C-ECHO: can MedKD reach this PACS, and does it accept MedKD's AE title?")
        self.remove_button = QPushButton("Remove")
        row.addWidget(self.server_combo, 1)
        row.addWidget(self.test_button)
        row.addWidget(self.remove_button)
        sl.addRow("PACS", row)
        add = QHBoxLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name, e.g. Radiology PACS")
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("AET@HOST:PORT or http://host/dicom-web")
        self.add_button = QPushButton("Add")
        add.addWidget(self.name_edit, 1)
        add.addWidget(self.address_edit, 2)
        add.addWidget(self.add_button)
        sl.addRow("New server", add)
        ours = QHBoxLayout()
        self.aet_edit = QLineEdit(self.settings.pacs_ae_title)
        self.aet_edit.setMaxLength(16)
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(self.settings.pacs_move_port)
        self.port_spin.setToolTip("Where MedKD receives images when the PACS can only send them (C-MOVE)")
        ours.addWidget(self.aet_edit)
        ours.addWidget(QLabel("receiving port"))
        ours.addWidget(self.port_spin)
        ours.addStretch(1)
        sl.addRow("MedKD AE title", ours)

        query = QGroupBox("Search")
        ql = QHBoxLayout(query)
        self.patient_id_edit = QLineEdit()
        self.patient_name_edit = QLineEdit()
        self.patient_name_edit.setPlaceholderText("DOE^J*")
        self.date_edit = QLineEdit()
        self.date_edit.setPlaceholderText("YYYYMMDD-YYYYMMDD")
        self.modality_edit = QLineEdit()
        self.modality_edit.setMaxLength(16)
        self.modality_edit.setPlaceholderText("CR")
        self.accession_edit = QLineEdit()
        for label, edit in (("Patient ID", self.patient_id_edit), ("Name", self.patient_name_edit),
                            ("Date", self.date_edit), ("Modality", self.modality_edit),
                            ("Accession", self.accession_edit)):
            ql.addWidget(QLabel(label))
            ql.addWidget(edit, 1)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        ql.addWidget(self.search_button)

        self.study_table = self._table(STUDY_COLUMNS)
        self.series_table = self._table(SERIES_COLUMNS)
        self.series_table.setMaximumHeight(170)

        bottom = QHBoxLayout()
        self.status_label = QLabel("Choose a server, then search.")
        self.status_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.setEnabled(False)
        bottom.addWidget(self.status_label, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.retrieve_button)

        layout = QVBoxLayout(self)
        layout.addWidget(servers)
        layout.addWidget(query)
        layout.addWidget(QLabel("Studies"))
        layout.addWidget(self.study_table, 1)
        layout.addWidget(QLabel("Series of the selected study (none selected: the whole study)"))
        layout.addWidget(self.series_table)
        layout.addLayout(bottom)

        self.add_button.clicked.connect(self.add_server_from_form)
        self.remove_button.clicked.connect(self.remove_server)
        self.test_button.clicked.connect(self.test_server)
        self.search_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.aet_edit.editingFinished.connect(lambda: setattr(self.settings, "pacs_ae_title", self.aet_edit.text()))
        self.port_spin.valueChanged.connect(lambda v: setattr(self.settings, "pacs_move_port", v))

    @staticmethod
    def _table(columns: tuple[str, ...]) -> QTableWidget:
        t = QTableWidget(0, len(columns))
        t.setHorizontalHeaderLabels(list(columns))
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setSortingEnabled(True)
        t.verticalHeader().setVisible(False)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        t.horizontalHeader().setStretchLastSection(True)
        t.horizontalHeader().setMaximumSectionSize(260)  # a long name is elided rather than pushing the counts off screen
        return t

    # -- servers --------------------------------------------------------------------------
    def _load_servers(self) -> None:
        self.server_combo.clear()
        for name, address in self.settings.pacs_servers:
            self.server_combo.addItem(f"{name} ({address})", address)
        has = self.server_combo.count() > 0
        for w in (self.test_button, self.remove_button, self.search_button):
            w.setEnabled(has)

    def add_server(self, name: str, address: str) -> bool:
        """Add (or replace, by name) a server after checking its address; False with a message if bad."""
        try:
            server = PacsServer.parse(address, name=name.strip())
        except PacsError as exc:
            self._say(str(exc))
            return False
        servers = [(n, a) for n, a in self.settings.pacs_servers if n != server.name]
        self.settings.pacs_servers = [*servers, (server.name, str(server))]
        self._load_servers()
        self.server_combo.setCurrentIndex(self.server_combo.count() - 1)
        self._say(f"Added {server.name}. Press Test to check that it answers.")
        return True

    def add_server_from_form(self) -> None:
        if self.add_server(self.name_edit.text(), self.address_edit.text()):
            self.name_edit.clear()
            self.address_edit.clear()

    def remove_server(self) -> None:
        address = self.server_combo.currentData()
        self.settings.pacs_servers = [(n, a) for n, a in self.settings.pacs_servers if a != address]
        self._load_servers()

    def server(self) -> PacsServer | None:
        address = self.server_combo.currentData()
        name = self.server_combo.currentText().split(" (", 1)[0]
        return PacsServer.parse(address, name=name) if address else None

    def pacs_settings(self) -> PacsSettings:
        return PacsSettings(ae_title=self.aet_edit.text().strip() or "MEDKD", move_port=self.port_spin.value())

    def _client(self):
        from ..pacs import open_client

        server = self.server()
        if server is None:
            raise PacsError("Add a PACS server first.")
        return open_client(server, self.pacs_settings().checked())

    # -- calls ----------------------------------------------------------------------------
    def _run(self, kind: str, work, on_done, busy_text: str, *, cancellable: bool = False) -> None:
        """Run *work(client, progress, cancel)* in the background; one call at a time."""
        if self._call is not None:
            return
        try:
            client = self._client()
        except PacsError as exc:
            self._say(str(exc))
            return
        call = BackgroundCall(lambda progress, cancel: work(client, progress, cancel))
        call.signals.progress.connect(self._progress)
        call.signals.done.connect(lambda result: self._finish(kind, call, lambda: on_done(result)))
        call.signals.failed.connect(lambda exc: self._finish(kind, call, lambda: self._say(message(exc))))
        self._call = call
        self._busy(True, busy_text, cancellable)
        call.start()

    def _finish(self, kind: str, call: BackgroundCall, then) -> None:
        if call is not self._call:
            return
        self._call = None
        self._busy(False)
        then()
        self.finished_call.emit(kind)

    def _busy(self, on: bool, text: str = "", cancellable: bool = False) -> None:
        self.progress.setVisible(on)
        self.progress.setRange(0, 0)
        self.cancel_button.setVisible(on and cancellable)
        for w in (self.search_button, self.test_button, self.retrieve_button):
            w.setEnabled(not on)
        if not on:
            self.retrieve_button.setEnabled(bool(self.study_table.selectedItems()))
        if text:
            self._say(text)

    def _progress(self, done: int, total: Any) -> None:
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(done)
            self.progress.setFormat(f"{done} / {total}")
        else:
            self.progress.setFormat(f"{done}")

    def _say(self, text: str) -> None:
        self.status_label.setText(text)

    def cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._say("Cancelling…")

    def test_server(self) -> None:
        self._run("echo", lambda client, progress, cancel: client.echo(cancel=cancel),
                  lambda r: self._say(f"{r.server} answered in {r.elapsed_ms:.0f} ms: MedKD can talk to it."),
                  "Testing the connection…")

    def query(self) -> StudyQuery:
        date_from = date_to = None
        if self.date_edit.text().strip():
            date_from, date_to = parse_date_range(self.date_edit.text())
        return StudyQuery(patient_id=self.patient_id_edit.text().strip(),
                          patient_name=self.patient_name_edit.text().strip(), date_from=date_from,
                          date_to=date_to, modality=self.modality_edit.text().strip().upper(),
                          accession_number=self.accession_edit.text().strip()).checked()

    def search(self) -> None:
        try:
            query = self.query()
        except PacsError as exc:
            self._say(str(exc))
            return
        self._run("find", lambda client, progress, cancel: client.find_studies(query, progress=progress, cancel=cancel),
                  self._show_studies, "Searching…", cancellable=True)

    def _show_studies(self, studies: list) -> None:
        self._studies = list(studies)
        t = self.study_table
        t.setSortingEnabled(False)
        t.setRowCount(0)
        self.series_table.setRowCount(0)
        for study in self._studies:
            r = t.rowCount()
            t.insertRow(r)
            values = (_date(study.study_date), study.patient_name.replace("^", " ").strip(), study.patient_id,
                      ", ".join(study.modalities), study.description, study.accession_number, study.n_series,
                      study.n_instances)
            for c, v in enumerate(values):
                t.setItem(r, c, _item(v))
            t.item(r, 0).setData(Qt.ItemDataRole.UserRole, study.study_uid)
        t.setSortingEnabled(True)
        t.resizeColumnsToContents()
        self._say(f"{len(self._studies)} stud{'y' if len(self._studies) == 1 else 'ies'} found."
                  if self._studies else "No study matches these filters.")

    def selected_study_uid(self) -> str | None:
        rows = {i.row() for i in self.study_table.selectedItems()}
        return self.study_table.item(rows.pop(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def selected_series_uid(self) -> str | None:
        rows = {i.row() for i in self.series_table.selectedItems()}
        return self.series_table.item(rows.pop(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def _study_selected(self) -> None:
        uid = self.selected_study_uid()
        self.retrieve_button.setEnabled(uid is not None and self._call is None)
        self.series_table.setRowCount(0)
        if uid is None or self._call is not None:
            return
        query = StudyQuery(study_uid=uid)
        self._run("series", lambda client, progress, cancel: client.find_series(query, cancel=cancel),
                  self._show_series, "Listing the study's series…")

    def _show_series(self, series: list) -> None:
        self._series = list(series)
        t = self.series_table
        t.setSortingEnabled(False)
        t.setRowCount(0)
        for s in self._series:
            r = t.rowCount()
            t.insertRow(r)
            for c, v in enumerate((s.series_number, s.modality, s.description, s.body_part, s.n_instances)):
                t.setItem(r, c, _item(v))
            t.item(r, 0).setData(Qt.ItemDataRole.UserRole, s.series_uid)
        t.setSortingEnabled(True)
        t.resizeColumnsToContents()
        self._say(f"{len(self._series)} series. Select one to retrieve only it, or retrieve the whole study.")

    def retrieve(self) -> None:
        study_uid, series_uid = self.selected_study_uid(), self.selected_series_uid()
        if study_uid is None:
            return
        self._run("retrieve", lambda client, progress, cancel: client.retrieve(study_uid, series_uid, progress=progress,
                                                                              cancel=cancel),
                  self._retrieved, "Retrieving…", cancellable=True)

    def _retrieved(self, result) -> None:
        folders = result.series_folders
        if not folders:
            self._say(result.problem or "The PACS sent no images for this selection.")
            return
        # One series is opened: the one asked for, else the one with the most images.
        counts = {uid: sum(1 for p in result.images if p.parent.name == uid) for uid in folders}
        folder = folders[max(counts, key=counts.get)]
        note = "" if result.complete else f" {result.problem or 'Some images did not arrive.'}"
        self._say(f"Received {result.received} of {result.expected or result.received} instances.{note}")
        self.study_retrieved.emit(str(folder))


def send_result_call(settings: Settings, address: str, analysis, study, method: str, style) -> BackgroundCall:
    """File ▸ Send result to PACS: the overlay as a DICOM Secondary Capture (a new series in the
    study it came from, as ``report.export_dicom_sc`` writes it), stored by C-STORE or STOW-RS.
    Returns the call, not started: connect its signals first."""

    def work(progress, cancel):
        import tempfile
        from pathlib import Path

        from ..pacs import open_client
        from ..report import export_dicom_sc

        with tempfile.TemporaryDirectory(prefix="medkd-send-") as tmp:
            path = export_dicom_sc(analysis, study, Path(tmp) / "medkd-overlay.dcm", method, style=style)
            client = open_client(PacsServer.parse(address), PacsSettings(ae_title=settings.pacs_ae_title).checked())
            result = client.store([path], progress=progress, cancel=cancel)
        if not result.ok:
            raise PacsError(next(iter(result.failed.values())))
        return result

    return BackgroundCall(work)
