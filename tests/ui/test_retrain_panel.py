"""The retraining panel end to end, as a power user drives it: real images (some DICOM), the real
bundled teacher and student, `medkd retrain` in a QProcess, the real review window on the real
registry (user folders in a temporary XDG home)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrain"))
from retrain_data import make_folder  # noqa: E402

pytestmark = pytest.mark.slow
TASK = "brain-tumor-mri"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "retrain-panel.png"


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    for k, sub in (("XDG_DATA_HOME", "xdg-data"), ("XDG_CACHE_HOME", "xdg-cache"), ("MEDKD_AUDIT_DIR", "audit")):
        monkeypatch.setenv(k, str(tmp_path / sub))
    monkeypatch.delenv("MEDKD_MODEL_DIRS", raising=False)
    return tmp_path


@pytest.fixture
def real_window(qtbot, user_dirs):
    """The window on the installed models (bundled + the temporary user folder), fixed to the task."""
    from medkd_desktop.ui.main_window import MainWindow
    from medkd_desktop.ui.settings import Settings
    from medkd_desktop.ui.worker import Worker

    w = MainWindow(settings=Settings(user_dirs / "settings.ini"), worker=Worker(device="cpu"), forced_task=TASK)
    w.confirm_stop_training = lambda: True
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.engine_ready, timeout=120_000):
        w.show()
    yield w
    if w._retrain_panel is not None and w._retrain_panel.is_running():
        w._retrain_panel.stop_and_wait(60_000)
    w.worker.shutdown(10_000)


def _wait(qtbot, signal, timeout=240_000):
    with qtbot.waitSignal(signal, timeout=timeout) as blocker:
        pass
    return blocker.args


def test_panel_summary_train_stop_resume_compare_activate_remove(qtbot, real_window, user_dirs):
    w = real_window
    data = make_folder(user_dirs / "site")
    study = next((data / "Meningioma").glob("*.jpg"))
    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        w.open_path(str(study))
    assert w.state.pair.student.id == f"{TASK}/student"

    panel = w.show_retrain_panel()
    panel.task_combo.setCurrentText(TASK)
    with qtbot.waitSignal(panel.summary_shown, timeout=120_000) as s:
        panel.set_data(data)
        panel.check_data()
    summary = s.args[0]
    assert summary["n_images"] == 24 and panel.counts_table.rowCount() == 5  # 4 classes + patients
    notes = [panel.notes.item(i).text() for i in range(panel.notes.count())]
    assert any("Glioma/notes.txt" in n for n in notes)
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=30_000)  # once the summary's process has ended

    panel.epochs_spin.setValue(5)
    panel.name_edit.setText("panel test")
    with qtbot.waitSignal(panel.epoch_done, timeout=240_000):
        qtbot.mouseClick(panel.start_button, qtbot_button())
    assert panel.is_training() and not panel.start_button.isEnabled()
    with qtbot.waitSignal(panel.stopped, timeout=120_000):
        panel.stop()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=30_000)
    n_before = len(panel.history)
    assert 1 <= n_before < 5 and len(panel.loss_curve.getData()[0]) == n_before  # the curves show it
    assert panel.resume_button.isEnabled() and panel.finish_button.isEnabled()

    with qtbot.waitSignal(panel.finished, timeout=300_000) as done:
        qtbot.mouseClick(panel.resume_button, qtbot_button())
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=30_000)
    result = done.args[0]
    assert [h["epoch"] for h in panel.history] == [1, 2, 3, 4, 5]
    assert list(panel.acc_curve.getData()[0]) == [1, 2, 3, 4, 5]
    assert panel.compare_table.columnCount() == 3 and panel.compare_table.rowCount() == 3 + 4
    assert panel.compare_table.horizontalHeaderItem(0).text() == "New student"
    assert "New − bundled student" in panel.diff_label.text()
    # a diagonal cell lists the images behind its count
    matrix = result["comparison"]["models"]["new"]["confusion"]["matrix"]
    i = next(k for k in range(4) if matrix[k][k])
    panel.confusion.cellClicked.emit(i, i)
    assert panel.cell_images.count() == matrix[i][i] + 1
    assert panel.cell_images.item(1).text() in result["comparison"]["models"]["new"]["confusion"]["cells"][i][i]
    _screenshot(panel)

    new_id = result["model"]["id"]
    assert new_id == f"{TASK}/student-panel-test"
    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        qtbot.mouseClick(panel.use_button, qtbot_button())
    assert w.state.pair.student.id == new_id
    assert w.state.analysis.student.card_id == new_id  # the shown analysis is the new student's
    from medkd_desktop.ui.panels import card_html

    html = card_html(w.state.pair.student)
    assert "Retrained" in html and "data manifest sha256" in html and "vs the bundled student" in html

    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        qtbot.mouseClick(panel.discard_button, qtbot_button())
    assert w.state.pair.student.id == f"{TASK}/student"
    assert not Path(result["model"]["card"]).exists()


def test_closing_during_training_stops_it_and_the_next_start_offers_resume(qtbot, real_window, user_dirs):
    from medkd_desktop.retrain.run import read_state, run_dir_for
    from medkd_desktop.ui.main_window import MainWindow
    from medkd_desktop.ui.settings import Settings
    from medkd_desktop.ui.worker import Worker

    w = real_window
    panel = w.show_retrain_panel()
    panel.task_combo.setCurrentText(TASK)
    data = make_folder(user_dirs / "site", dicom=False)
    with qtbot.waitSignal(panel.summary_shown, timeout=120_000):
        panel.set_data(data)
        panel.check_data()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=30_000)
    panel.epochs_spin.setValue(50)
    with qtbot.waitSignal(panel.epoch_done, timeout=240_000):
        panel.start()
    asked = []
    w.confirm_stop_training = lambda: asked.append(1) or True
    w.close()
    assert asked and not panel.is_running()
    state = read_state(run_dir_for(TASK))
    assert state["state"] == "stopped" and state["epoch"] >= 1

    again = MainWindow(settings=Settings(user_dirs / "settings2.ini"), worker=Worker(device="cpu"))
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.engine_ready, timeout=120_000):
        again.show()
    button = again.resume_retrain_button
    assert button.isVisible() and TASK in button.text()
    button.click()
    p2 = again._retrain_panel
    assert p2.data_edit.text() == str(data) and p2.epochs_spin.value() == 50
    assert p2.resume_button.isEnabled() and len(p2.history) >= 1
    again.worker.shutdown(10_000)


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def _screenshot(panel) -> None:
    """docs/screenshots/retrain-panel.png in the app's own style (restored afterwards for the other tests)."""
    from PySide6.QtWidgets import QApplication

    from medkd_desktop.ui.app import load_style

    app = QApplication.instance()
    old = app.styleSheet()
    load_style(app)
    try:
        panel.resize(1400, 940)
        app.processEvents()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert panel.grab().save(str(SCREENSHOT))
    finally:
        app.setStyleSheet(old)
