"""Help ▸ Audit log: the audit entries, newest first, under the chain's verify status.

Why read-only and in the window: a reviewer (or an auditor at the reviewer's desk) should see
what was recorded and whether the record is intact without a terminal; changing it is exactly
what the chain is there to reveal. The log holds no identifiers, so showing it needs no toggle.
"""
from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..trust import audit

COLUMNS = ("Seq", "Time (UTC)", "User", "Event", "Study (hash)", "Result", "Models", "Outcome")


def _cells(entry: dict) -> list[str]:
    models = entry.get("models") or {}
    ids = ", ".join(f"{m.get('id')} ({str(m.get('sha256') or '-')[:8]})" for m in models.values() if isinstance(m, dict))
    outcome = ", ".join(f"{k}={v}" for k, v in (entry.get("outcome") or {}).items() if v is not None)
    result = entry.get("result", "") + (f" ({entry['error']})" if entry.get("error") else "")
    return [str(entry.get("seq", "")), str(entry.get("time", "")), str(entry.get("user", "")),
            str(entry.get("event", "")), (entry.get("study") or "-")[:16], result, ids, outcome]


class AuditDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audit log")
        self.resize(1000, 520)
        layout = QVBoxLayout(self)
        self.status = QLabel()
        self.status.setObjectName("auditStatus")
        self.status.setWordWrap(True)
        self.folder = QLabel()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole).clicked.connect(self.refresh)
        for w in (self.status, self.folder, self.table, buttons):
            layout.addWidget(w)
        self.refresh()

    def refresh(self) -> None:
        try:
            result, entries = audit.verify(), audit.read()
            text, ok = result.line(), result.ok
        except OSError as exc:  # an unreadable folder: say so, show nothing
            text, ok, entries = f"The audit log could not be read ({type(exc).__name__}).", False, []
        self.status.setText(("✔ " if ok else "✖ ") + text)
        self.status.setStyleSheet("" if ok else "color: #c62828; font-weight: bold;")
        self.folder.setText(f"Folder: {audit.audit_dir()}")
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(reversed(entries)):
            for col, value in enumerate(_cells(entry)):
                self.table.setItem(row, col, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
