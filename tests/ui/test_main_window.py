"""The real review window, driven as a user would: open, analyse, compare, navigate, cancel, fail.

Every test uses the real MainWindow, worker thread, engine, registry and readers on the
bundled samples; only the model weights are tiny and random (see conftest).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from testdata import SAMPLES
from ui_driver import GatedEngine, open_and_wait
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from medkd_desktop.models.geometry import fit
from medkd_desktop.ui.viewers import DISPLAY_MAX_SIDE

CHEST = SAMPLES / "chest_xray_cr_pa_nema.dcm"
MR_SERIES = SAMPLES / "mr_brain_epi_mosaic_series"
HISTO = SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg"
DERMO = SAMPLES / "dermoscopy_melanoma_ham10000.jpg"
FMRI = SAMPLES / "fmri_amplitude_map_abide_nyu_0050957.nii.gz"


def _visible_text(window) -> str:
    """Every visible label's text in the window (what a bystander could read on the screen)."""
    return "\n".join(lb.text() for lb in window.findChildren(QLabel) if lb.isVisible())


@pytest.mark.parametrize(
    ("path", "task"),
    [(CHEST, "cxr-covid"), (MR_SERIES, "brain-tumor-mri"), (HISTO, "histo-lc25000"), (DERMO, "skin-ham10000"),
     (FMRI, "fmri-asd")],
    ids=["chest-dicom", "mr-series", "histology", "dermoscopy", "fmri-nifti"],
)
def test_each_sample_kind_is_analysed_in_the_worker_and_both_viewers_show_overlays(qtbot, window, path, task):
    analysis = open_and_wait(qtbot, window, path)
    assert analysis.task == task  # proposed from the study's metadata
    assert window.task_combo.currentData() == task
    for viewer, result in ((window.viewers.teacher, analysis.teacher), (window.viewers.student, analysis.student)):
        shown = viewer.overlay_item.image
        assert shown is not None, f"{viewer.role} viewer has no overlay"
        assert viewer.heatmap is result.heatmaps["gradcam"]
        # The map is drawn over the whole image (0 outside the box its model saw), at display size.
        grid = fit(viewer.image.shape[:2], DISPLAY_MAX_SIDE)
        np.testing.assert_array_equal(shown, result.heatmaps["gradcam"].on_grid(grid))
        assert float(shown.max()) > 0.05
        assert viewer.overlay_item.isVisible()
        assert viewer.overlay_item.mapRectToView(viewer.overlay_item.boundingRect()) == viewer.image_item.mapRectToView(
            viewer.image_item.boundingRect())
    # The predictions panel shows both models' probabilities for every class.
    bars = window.predictions.bars
    assert bars.classes == analysis.teacher.classes
    np.testing.assert_allclose(bars.teacher, analysis.teacher.probabilities)
    np.testing.assert_allclose(bars.student, analysis.student.probabilities)
    badge = window.predictions.badge.text()
    assert badge.startswith("Models agree" if analysis.same_class else "Models disagree")
    assert analysis.teacher.predicted in badge and analysis.student.predicted in badge
    # The layer strip shows one thumbnail per stage of the selected (teacher) model.
    assert len(window.strip.thumbs) == len(analysis.teacher.feature_maps) > 0
    assert not window.worker.busy


def test_fmri_viewers_show_the_glass_brain_the_models_read(qtbot, window):
    analysis = open_and_wait(qtbot, window, FMRI)
    assert window.viewers.teacher.image is analysis.image  # RGB glass brain, not an axial slice
    assert analysis.image.ndim == 3
    assert not window.viewers.slice_slider.isVisible()  # the slice does not change the models' input


def test_pan_and_zoom_of_one_viewer_moves_the_other(qtbot, window):
    open_and_wait(qtbot, window, CHEST)
    t, s = window.viewers.teacher.vb, window.viewers.student.vb
    t.setRange(xRange=(300, 700), yRange=(400, 800), padding=0)
    qtbot.waitUntil(lambda: np.allclose(s.viewRange(), t.viewRange(), atol=1.0))
    assert s.viewRange()[0][1] - s.viewRange()[0][0] < 1000  # zoomed in, not the whole 1841 px film
    s.translateBy(x=150, y=-80)  # panning the student pans the teacher
    qtbot.waitUntil(lambda: np.allclose(s.viewRange(), t.viewRange(), atol=1.0))
    s.scaleBy((2.0, 2.0))
    qtbot.waitUntil(lambda: np.allclose(s.viewRange(), t.viewRange(), atol=1.0))


def test_slice_and_volume_changes_stay_in_sync_and_reanalyse_the_shown_slice(qtbot, window):
    first = open_and_wait(qtbot, window, MR_SERIES)
    study = window.state.study
    assert first.frame_index == (0, study.n_slices // 2)
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000) as blocker:
        window.viewers.slice_slider.setValue(5)
    for viewer in window.viewers.viewers:
        np.testing.assert_array_equal(viewer.image, study.pixels[0, 5])
    assert blocker.args[0].frame_index == (0, 5)
    for viewer, result in ((window.viewers.teacher, blocker.args[0].teacher),
                           (window.viewers.student, blocker.args[0].student)):
        assert viewer.heatmap is result.heatmaps["gradcam"]
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000) as blocker:
        window.viewers.volume_slider.setValue(1)
    assert blocker.args[0].frame_index == (1, 5)
    for viewer in window.viewers.viewers:
        np.testing.assert_array_equal(viewer.image, study.pixels[1, 5])
    assert window.viewers.slice_value.text() == f"6 / {study.n_slices}"
    # Back to a slice already analysed: shown at once from the cache, no new run.
    window.viewers.volume_slider.setValue(0)
    assert window.state.analysis is not None and window.state.analysis.frame_index == (0, 5)


def test_crosshair_and_readout_follow_the_mouse_in_both_viewers(qtbot, window):
    open_and_wait(qtbot, window, MR_SERIES)
    window.state.cursor = (20.0, 30.0)
    for viewer in window.viewers.viewers:
        assert viewer.vline.isVisible() and viewer.vline.value() == pytest.approx(20.0)
        assert viewer.hline.value() == pytest.approx(30.0)
        value = float(window.state.study.pixels[0, window.state.slice, 30, 20])
        assert f"value {value:.6g}" in viewer.readout.text() and "heat" in viewer.readout.text()
    # The mouse over the student moves the teacher's crosshair.
    sv = window.viewers.student
    scene_pos = sv.vb.mapViewToScene(QPointF(40.5, 10.5))
    sv.view.scene().sigMouseMoved.emit(scene_pos)
    assert window.viewers.teacher.vline.value() == pytest.approx(40.5, abs=0.01)


def test_right_drag_changes_window_level_on_both_viewers(qtbot, window):
    open_and_wait(qtbot, window, CHEST)
    before = window.state.window
    view = window.viewers.teacher.view
    vp = view.viewport()
    start = QPoint(vp.width() // 2, vp.height() // 2)

    def send(kind, pos, button, buttons):
        QApplication.sendEvent(vp, QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))

    right = Qt.MouseButton.RightButton
    send(QMouseEvent.Type.MouseButtonPress, start, right, right)
    for i in range(1, 11):
        send(QMouseEvent.Type.MouseMove, start + QPoint(12 * i, 6 * i), Qt.MouseButton.NoButton, right)
    send(QMouseEvent.Type.MouseButtonRelease, start + QPoint(120, 60), right, Qt.MouseButton.NoButton)
    after = window.state.window
    assert after.width > before.width and after.center > before.center  # drag right widens, down raises level
    for viewer in window.viewers.viewers:
        assert tuple(viewer.image_item.levels) == pytest.approx((after.low, after.high))
    # Presets and reset: "Full range" spans the data, Reset returns to the study's own window.
    window.viewers.preset_combo.setCurrentText("Full range")
    window.viewers._preset_chosen(window.viewers.preset_combo.currentIndex())
    px = window.state.study.pixels[0, 0]
    assert window.state.window.low == pytest.approx(float(px.min())) and window.state.window.high == pytest.approx(float(px.max()))
    window.viewers.reset_button.click()
    assert window.state.window == before


def test_overlay_controls_drive_both_viewers(qtbot, window):
    open_and_wait(qtbot, window, HISTO)
    c = window.controls
    c.opacity_slider.setValue(80)
    c.threshold_slider.setValue(50)
    for viewer in window.viewers.viewers:
        assert viewer.overlay_item.opacity() == pytest.approx(0.8)
        lut = viewer.overlay_item.lut
        assert (lut[:127, 3] == 0).all() and lut[-1, 3] == 255  # below the threshold: transparent
    c.contour_check.setChecked(True)
    for viewer in window.viewers.viewers:
        assert not viewer.overlay_item.isVisible() and viewer.contour_item.isVisible()
        assert viewer.contour_item.level == pytest.approx(0.5)
    c.visible_check.setChecked(False)
    for viewer in window.viewers.viewers:
        assert not viewer.overlay_item.isVisible() and not viewer.contour_item.isVisible()
    # A target class explains that class in both models (a new run with target set).
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000) as blocker:
        c.target_combo.setCurrentIndex(c.target_combo.findData("lung_n"))
        c.target_combo.activated.emit(c.target_combo.currentIndex())
    assert blocker.args[0].target == "lung_n"


def test_cancel_stops_a_run_and_no_result_is_applied(qtbot, window):
    # The real engine, whose first progress report waits until the window has pressed Cancel:
    # the run is then certainly still going when the user cancels, however fast the machine.
    gate = threading.Event()
    engine = window.worker.engine

    window.worker.engine = GatedEngine(engine, gate)
    applied = []
    window.analysis_applied.connect(applied.append)

    def on_progress(job, fraction, step):
        if not gate.is_set():
            window.cancel_button.click()
            gate.set()

    window.worker.bridge.progress.connect(on_progress)
    worker_done, worker_cancelled, fractions = [], [], []
    window.worker.bridge.analysis_done.connect(lambda job, a, meta: worker_done.append(job))
    window.worker.bridge.analysis_cancelled.connect(worker_cancelled.append)
    window.worker.bridge.progress.connect(lambda job, f, step: fractions.append(f))
    with qtbot.waitSignal(window.analysis_cancelled, timeout=120_000):
        window.open_path(HISTO)
    assert window.cancel_button.isVisible() is False
    # The engine itself stopped between steps: the worker reports cancelled, never a finished run.
    # (The worker's report is a queued cross-thread signal: it may land after the window's.)
    qtbot.waitUntil(lambda: bool(worker_cancelled or worker_done), timeout=30_000)
    assert worker_cancelled and not worker_done
    assert max(fractions) < 0.5
    window.worker.wait_idle(30_000)
    qtbot.wait(200)
    assert applied == [] and window.state.analysis is None
    for viewer in window.viewers.viewers:
        assert viewer.heatmap is None and viewer.overlay_item.image is None
    assert "cancelled" in window.status_label.text().lower()


def test_corrupt_file_shows_a_one_sentence_error_dialog(qtbot, window, tmp_path, monkeypatch):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(CHEST.read_bytes()[:4000])  # a copy that stops inside the header
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a, **k: shown.append((title, text)))
    with qtbot.waitSignal(window.open_failed, timeout=60_000):
        window.open_path(broken)
    assert len(shown) == 1
    title, text = shown[0]
    assert "Traceback" not in text and "File \"" not in text
    assert text.endswith(".") and text.count(". ") == 0  # one sentence
    assert window.state.study is None


def test_privacy_toggle_is_off_by_default_and_shows_the_name_when_on(qtbot, window):
    open_and_wait(qtbot, window, CHEST)
    ids = window.state.study.identifiers
    assert ids.name  # the NEMA sample carries a placeholder name
    name = ids.name.replace("^", " ").strip()  # DICOM PN components, as shown
    assert not window.privacy_button.isChecked() and not window.identifiers_label.isVisible()
    assert name not in _visible_text(window) and ids.name not in _visible_text(window)
    window.privacy_button.click()
    assert window.identifiers_label.isVisible() and name in window.identifiers_label.text()
    assert window.act_identifiers.isChecked()
    window.act_identifiers.trigger()  # the menu action turns it off again
    assert not window.identifiers_label.isVisible() and name not in _visible_text(window)


def test_mismatch_is_warned_when_the_user_picks_another_task(qtbot, window):
    open_and_wait(qtbot, window, MR_SERIES)
    assert not window.banner.isVisible()
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000):
        window.set_task("cxr-covid")
    # The study is not the chest models' kind: the red OOD banner says why, and withholds the prediction.
    assert window.trust_banner.isVisible() and "cxr-covid" in window.trust_banner.text.text()
    assert "cxr-covid" not in window.banner.text()  # said once, not in both banners
    assert window.predictions.bars.teacher is None
    assert window.controls.target_combo.findData("pneumonia") > 0  # the chest classes are offered now


def test_drop_opens_the_study_and_recent_files_remember_it(qtbot, window):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(DERMO))])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000):
        window.dropEvent(event)
    assert window.state.study.modality == "dermoscopy"
    assert window.settings.recent[0] == str(DERMO.resolve())
    assert [a.text() for a in window.recent_menu.actions()][0] == DERMO.name


def test_export_writes_a_pdf_and_a_dicom_sc_that_pydicom_reads_back(qtbot, window, tmp_path):
    import pydicom

    analysis = open_and_wait(qtbot, window, CHEST)
    study = window.state.study
    with qtbot.waitSignal(window.exported, timeout=120_000) as pdf:
        window.export("pdf", tmp_path / "report.pdf")
    assert pdf.args[0] == "pdf" and (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("dicom", tmp_path / "overlay.dcm")
    ds = pydicom.dcmread(tmp_path / "overlay.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert ds.StudyInstanceUID == study.metadata.study_uid  # same study ...
    assert ds.SeriesInstanceUID != study.metadata.series_uid  # ... new series
    assert ds.PhotometricInterpretation == "RGB" and ds.pixel_array.ndim == 3
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("json", tmp_path / "analysis.json")
    import json

    data = json.loads((tmp_path / "analysis.json").read_text())
    assert data["teacher"]["predicted"] == analysis.teacher.predicted
    window.export("png", tmp_path / "view.png")
    assert (tmp_path / "view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dicom_export_of_a_non_dicom_study_is_refused_with_a_sentence(qtbot, window, tmp_path, monkeypatch):
    open_and_wait(qtbot, window, HISTO)
    assert not window.act_export_dicom.isEnabled()
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a, **k: shown.append(text))
    with qtbot.waitSignal(window.export_failed, timeout=60_000):
        window.export("dicom", tmp_path / "x.dcm")
    assert shown and "DICOM" in shown[0] and not (tmp_path / "x.dcm").exists()


def test_model_card_viewer_shows_metrics_caveats_and_intended_use(qtbot, window):
    from medkd_desktop.ui.panels import ModelCardDialog

    open_and_wait(qtbot, window, HISTO)
    dialog = ModelCardDialog([window.state.pair.teacher, window.state.pair.student], window)
    qtbot.addWidget(dialog)
    teacher_text = dialog.browsers[0].toPlainText()
    assert "Test accuracy" in teacher_text and "0.500" in teacher_text  # the card's figure, as the PDF shows it
    assert "Random weights: for tests only." in teacher_text  # its caveat
    assert "Research use only" in teacher_text  # intended use
    assert "test acc." in window.pair_label.text() and "50.0 %" in window.pair_label.text()


def test_the_window_and_the_cli_make_the_same_proposal(qtbot, window, model_root, tmp_path, monkeypatch, capsys):
    """A grey JPEG fits the chest and the brain pairs: neither the window nor ``medkd analyze``
    guesses, and both say the same sentence."""
    grey_jpeg = SAMPLES / "chest_xray_covid_hannover.jpg"
    with qtbot.waitSignal(window.analysis_failed, timeout=60_000) as blocker:
        window.open_path(grey_jpeg)
    note = blocker.args[0]
    assert "Choose a task" in note and note in window.banner.text() and window.state.analysis is None
    from medkd_desktop.cli import main

    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_root))
    assert main(["analyze", str(grey_jpeg), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {note}"
    with qtbot.waitSignal(window.analysis_applied, timeout=60_000):  # the user's pick then analyses it
        window.set_task("cxr-covid")


def test_the_reports_overlay_is_the_windows_overlay_pixel_for_pixel(qtbot, window):
    """One renderer: what the viewer paints and what the PDF / PNG / DICOM exports draw agree."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    from medkd_desktop.report.render import overlay_rgb

    analysis = open_and_wait(qtbot, window, HISTO)  # 224 x 224 RGB: drawn 1:1, no resampling on either side
    window.state.colormap, window.state.opacity, window.state.threshold = "heat", 0.7, 0.2
    viewer = window.viewers.teacher
    h, w = viewer.image.shape[:2]
    shot = QImage(w, h, QImage.Format.Format_RGB32)
    painter = QPainter(shot)
    viewer.view.scene().render(painter, QRectF(0, 0, w, h),
                               viewer.image_item.mapRectToScene(viewer.image_item.boundingRect()))
    painter.end()
    screen = np.frombuffer(shot.constBits(), np.uint8).reshape(h, shot.bytesPerLine() // 4, 4)[:, :w, 2::-1]
    report = overlay_rgb(analysis.image, analysis.teacher.heatmaps[window.state.method], window.state.overlay_style)
    diff = np.abs(screen.astype(int) - report.astype(int))
    assert diff.max() <= 2, f"{(diff > 2).mean():.1%} of pixels differ by up to {diff.max()}"
    heat = analysis.teacher.heatmaps[window.state.method].on_grid()
    assert (heat < 0.2).any() and (heat > 0.5).any()  # the comparison covers hidden and drawn heat
