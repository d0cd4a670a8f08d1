"""Models ▸ Check faithfulness in the real window: figures for both models, cancel, method change.

The real MainWindow, worker thread, engine and readers on a bundled sample; tiny random models (see
conftest). What a user would notice if these failed: figures that differ from the benchmarks' for
the same image, a window stuck after Cancel or half a result left on screen, figures still shown
beside a heatmap of another method, or an exported JSON without the figures on screen.
"""
from __future__ import annotations

import json
import threading

import pytest
from testdata import SAMPLES
from ui_driver import GatedEngine, open_and_wait
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from medkd_desktop.inference import faithfulness as fa

CHEST = SAMPLES / "chest_xray_cr_pa_nema.dcm"


def _check(qtbot, window, timeout=120_000) -> bool:
    panel = window.faithfulness
    with qtbot.waitSignal(panel.check_finished, timeout=timeout) as blocker:
        window.act_faithfulness.trigger()
        # Running: the action and the button are off, the progress bar and Cancel are shown.
        assert panel.model.running
        assert not window.act_faithfulness.isEnabled() and not panel.check_button.isEnabled()
        assert panel.running_row.isVisible() and panel.cancel_button.isEnabled()
    return blocker.args[0]


def test_check_shows_both_models_figures_equal_to_the_engines_and_exports_them(qtbot, window, tmp_path):
    assert not window.act_faithfulness.isEnabled()  # no analysis shown yet
    analysis = open_and_wait(qtbot, window, CHEST)
    panel = window.faithfulness
    assert window.act_faithfulness.isEnabled() and panel.check_button.isEnabled()
    assert not panel.figures.isVisible()
    assert _check(qtbot, window)

    # The same figures as Engine.analyze(faithfulness=True) on the same frame (the benchmarks' path).
    direct = window.worker.engine.analyze(**window.state.job().kwargs(), faithfulness=True, steps=fa.STEPS)
    text = panel.figures.text()
    for role in fa.ROLES:
        shown = analysis.result(role).faithfulness["gradcam"]
        assert shown == pytest.approx(direct.result(role).faithfulness["gradcam"], abs=1e-6)
        for key in ("deletion_auc", "insertion_auc"):
            assert f"{shown[key]:.2f}" in text
    assert "Teacher" in text and "Student" in text and "Deletion AUC" in text and "Insertion AUC" in text
    assert panel.figures.isVisible() and panel.reading.isVisible()
    assert panel.reading.text() == fa.HOW_TO_READ
    assert "teacher" in panel.note.text() and "ms" in panel.note.text()  # what it cost, per model
    assert not panel.running_row.isVisible()
    assert not window.act_faithfulness.isEnabled()  # checked: nothing to run again for this analysis
    # The window stays on the analysis it showed; the figures joined it (and so its cache entry).
    assert window.state.analysis is analysis and window.state.cached() is analysis

    # The JSON export carries them.
    out = tmp_path / "analysis.json"
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("json", out)
    data = json.loads(out.read_text())
    for role in fa.ROLES:
        assert data[role]["faithfulness"]["gradcam"] == {
            k: round(v, 4) for k, v in analysis.result(role).faithfulness["gradcam"].items()}


@pytest.mark.parametrize("how", ["button", "escape"])
def test_cancel_leaves_the_window_usable_with_no_figures(qtbot, window, how):
    analysis = open_and_wait(qtbot, window, CHEST)
    panel = window.faithfulness
    # The real engine, whose first progress report waits until the user has cancelled: the check
    # is then certainly still running when Cancel is pressed, however fast the machine.
    gate = threading.Event()
    engine = window.worker.engine

    window.worker.engine = GatedEngine(engine, gate)
    finished = []
    panel.check_finished.connect(finished.append)

    def cancel_on_first_progress(job, _fraction, _step):
        if job == panel._job and not gate.is_set():
            if how == "button":
                panel.cancel_button.click()
            else:
                window.activateWindow()
                QTest.keyClick(window, Qt.Key.Key_Escape)
            gate.set()

    window.worker.bridge.progress.connect(cancel_on_first_progress)
    with qtbot.waitSignal(panel.check_cancelled, timeout=60_000):
        window.act_faithfulness.trigger()
    gate.set()
    window.worker.wait_idle(30_000)
    qtbot.wait(200)
    window.worker.engine = engine
    # Nothing half-shown: no figures anywhere, the progress gone, the check can run again.
    assert finished == []
    assert not analysis.teacher.faithfulness and not analysis.student.faithfulness
    assert not panel.figures.isVisible() and not panel.running_row.isVisible()
    assert "cancelled" in panel.note.text().lower()
    assert window.state.analysis is analysis
    assert window.act_faithfulness.isEnabled() and panel.check_button.isEnabled()
    assert _check(qtbot, window)  # usable: a new check runs to the end
    assert panel.figures.isVisible()


def test_changing_the_method_clears_the_figures_and_going_back_shows_them_from_the_cache(qtbot, window):
    analysis = open_and_wait(qtbot, window, CHEST)
    panel = window.faithfulness
    assert _check(qtbot, window)
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000) as blocker:
        window.state.method = "gradcam++"
    other = blocker.args[0]
    assert other is not analysis
    assert not panel.figures.isVisible() and panel.model.figures is None
    assert "Grad-CAM++" in panel.title.text()
    assert window.act_faithfulness.isEnabled()
    # Back to Grad-CAM: the cached analysis comes back with its figures, without running anything.
    jobs = []
    window.worker.bridge.progress.connect(lambda job, *_: jobs.append(job))
    window.state.method = "gradcam"
    assert window.state.analysis is analysis
    assert panel.figures.isVisible() and not window.act_faithfulness.isEnabled()
    qtbot.wait(100)
    assert jobs == [] and not window.worker.busy


def test_a_method_change_while_a_check_runs_drops_it(qtbot, window):
    analysis = open_and_wait(qtbot, window, CHEST)
    panel = window.faithfulness
    finished = []
    panel.check_finished.connect(finished.append)
    window.act_faithfulness.trigger()
    assert panel.model.running
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000) as blocker:
        window.state.method = "gradcam++"
    assert not panel.model.running and not panel.running_row.isVisible()
    window.worker.wait_idle(30_000)
    qtbot.wait(200)
    assert finished == [] and not analysis.teacher.faithfulness  # not attached to the old analysis
    assert window.state.analysis is blocker.args[0] and not panel.figures.isVisible()
