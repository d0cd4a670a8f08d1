"""Preferences survive a restart (same INI file, new Settings), and bad stored values fall back."""
from __future__ import annotations

from testdata import SAMPLES
from ui_driver import open_and_wait

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


def test_invalid_stored_values_fall_back_to_defaults(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text("[General]\ndevice=tpu\n[overlay]\nopacity=lots\ncolormap=nope\nmethod=magic\n")
    s = Settings(path)
    assert (s.device, s.opacity, s.colormap, s.method) == ("auto", 0.45, "inferno", "gradcam")
