"""Preferences survive a restart (same INI file, new Settings), and bad stored values fall back."""
from __future__ import annotations

from testdata import SAMPLES
from ui_driver import engine_factory, open_and_wait

from medkd_desktop.ui.settings import MAX_RECENT, Settings


def test_overlay_preferences_set_in_the_window_are_there_at_the_next_start(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg")
    window.controls.opacity_slider.setValue(70)
    i = window.controls.colormap_combo.findData("viridis")
    window.controls.colormap_combo.setCurrentIndex(i)
    window.controls.colormap_combo.activated.emit(i)
    window.settings.sync()
    again = Settings(tmp_path / "settings.ini")
    assert again.opacity == 0.7 and again.colormap == "viridis"
    assert again.recent[0].endswith("histology_lung_adenocarcinoma_lc25000.jpg")


def test_recent_files_are_most_recent_first_without_duplicates_and_bounded(tmp_path):
    s = Settings(tmp_path / "s.ini")
    for i in range(MAX_RECENT + 3):
        s.add_recent(tmp_path / f"f{i}.dcm")
    s.add_recent(tmp_path / "f5.dcm")
    s.sync()
    recent = Settings(tmp_path / "s.ini").recent
    assert len(recent) == MAX_RECENT and recent[0].endswith("f5.dcm") and len(set(recent)) == len(recent)


def test_invalid_stored_values_fall_back_to_defaults(qtbot, model_root, tmp_path):
    path = tmp_path / "s.ini"
    path.write_text("[General]\ndevice=tpu\n[overlay]\nopacity=lots\ncolormap=nope\nmethod=magic\n")
    s = Settings(path)
    assert (s.device, s.opacity, s.colormap) == ("auto", 0.45, "inferno")
    # The method is checked against the engine's explainers once it has started (they import torch).
    from medkd_desktop.ui.main_window import MainWindow
    from medkd_desktop.ui.worker import Worker

    window = MainWindow(settings=s, worker=Worker(engine_factory=engine_factory(model_root)))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.engine_ready, timeout=120_000):
        window.show()
    assert window.state.method == "gradcam" and window.controls.method_combo.currentData() == "gradcam"
    window.worker.shutdown(10_000)


def test_a_colour_map_saved_by_an_older_version_still_reads(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text("[overlay]\ncolormap=CET-L3\n")
    assert Settings(path).colormap == "heat"
