"""File ▸ Open from PACS… against a live Orthanc, driven as a radiologist would: add the server,
test it, search, pick the study, retrieve it into the window, analyse it and send the result back.

The Orthanc fixture (tests/orthanc_server.py) starts a real server on loopback for the session and
skips these tests where Orthanc is not installed.
"""
from __future__ import annotations

import pytest

TIMEOUT_MS = 120_000


@pytest.fixture
def dialog(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # retrievals land in this test's cache
    return window.open_pacs_dialog()


def call(qtbot, dialog, action) -> None:
    """Run a dialog action that starts a background PACS call and wait for it to end."""
    with qtbot.waitSignal(dialog.finished_call, timeout=TIMEOUT_MS):
        action()


def test_search_retrieve_open_analyse_and_send_back(qtbot, window, dialog, orthanc):
    assert dialog.add_server("Test PACS", orthanc.address())
    call(qtbot, dialog, dialog.test_button.click)
    assert "answered" in dialog.status_label.text()

    cr = orthanc.item("cr_chest")
    dialog.patient_id_edit.setText(cr.patient_id)
    call(qtbot, dialog, dialog.search_button.click)
    assert dialog.study_table.rowCount() == 1 and dialog.study_table.item(0, 2).text() == cr.patient_id
    call(qtbot, dialog, lambda: dialog.study_table.selectRow(0))  # lists the study's series
    assert dialog.series_table.rowCount() == 1 and dialog.series_table.item(0, 1).text() == "CR"

    with qtbot.waitSignal(window.analysis_applied, timeout=TIMEOUT_MS) as blocker:
        dialog.retrieve_button.click()
    assert window.state.study.metadata.study_uid == cr.study_uid
    assert blocker.args[0].task == "cxr-covid"  # proposed from the retrieved study's modality
    assert not dialog.isVisible()

    before = len(orthanc.series_of_study(cr.study_uid))
    assert window.act_send_pacs.isEnabled()
    with qtbot.waitSignal(window.sent_to_pacs, timeout=TIMEOUT_MS):
        window.send_to_pacs(orthanc.address())
    series = orthanc.series_of_study(cr.study_uid)
    assert len(series) == before + 1  # the Secondary Capture is a new series of the same study
    assert any(s["MainDicomTags"].get("Modality") == "OT" for s in series)


def test_a_wrong_ae_title_and_a_closed_port_say_what_to_fix(qtbot, dialog, orthanc):
    from orthanc_server import free_port

    assert dialog.add_server("Wrong title", f"NOTORTHANC@127.0.0.1:{orthanc.dicom_port}")
    call(qtbot, dialog, dialog.test_button.click)
    wrong_title = dialog.status_label.text()
    assert "AE title" in wrong_title, wrong_title
    assert dialog.add_server("Nobody home", f"ORTHANC@127.0.0.1:{free_port()}")
    call(qtbot, dialog, dialog.test_button.click)
    closed = dialog.status_label.text()
    assert closed != wrong_title and ("port" in closed.lower() or "refused" in closed.lower()), closed
    assert not dialog.add_server("Typo", "ORTHANC@127.0.0.1")  # no port: refused before any network call
    assert "AET@HOST:PORT" in dialog.status_label.text()
