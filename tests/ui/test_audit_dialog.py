"""The window's audit hooks and Help ▸ Audit log: opening a study and analysing it are recorded,
without identifiers, and the dialog lists the entries newest first under the chain's status."""
from __future__ import annotations

import json

from testdata import SAMPLES
from ui_driver import open_and_wait

from medkd_desktop.pacs.records import StoreResult


def test_open_and_analysis_are_audited_and_shown_in_the_dialog(qtbot, window, tmp_path, monkeypatch):
    folder = tmp_path / "audit"
    monkeypatch.setenv("MEDKD_AUDIT_DIR", str(folder))
    sample = SAMPLES / "chest_xray_cr_pa_nema.dcm"
    open_and_wait(qtbot, window, sample)
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("json", tmp_path / "out.json")
    window._sent(StoreResult(stored=("1.2.3",)), None)  # what a finished Send result to PACS calls
    text = (folder / "audit.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in entries][:2] == ["open", "analysis"]
    assert entries[0]["study"] and entries[0]["study"] == entries[1]["study"]
    pair = window.state.pair
    assert entries[1]["models"]["student"] == {"id": pair.student.id, "sha256": pair.student.sha256}
    export = next(e for e in entries if e["event"] == "export")
    assert export["outcome"] == {"format": "json"} and export["models"] == entries[1]["models"]
    sent = next(e for e in entries if e["event"] == "pacs-send")
    assert sent["outcome"] == {"instances": 1} and sent["study"] == entries[0]["study"] and sent["result"] == "ok"
    assert "CompressedSamples" not in text and "9RG1" not in text and sample.name not in text

    action = next(a for a in window.menuBar().actions() if a.text() == "&Help").menu().actions()
    assert any(a.text() == "Audit &log…" for a in action)
    dialog = window.show_audit_log()
    qtbot.addWidget(dialog)
    assert "intact" in dialog.status.text()
    n = len(entries)
    assert dialog.table.rowCount() == n
    assert dialog.table.item(0, 0).text() == str(n)  # newest first
    assert dialog.table.item(n - 1, 3).text() == "open"
    (folder / "head.json").unlink()
    dialog.refresh()
    assert "broken" in dialog.status.text()
