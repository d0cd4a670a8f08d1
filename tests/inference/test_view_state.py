"""The Qt-free view state: one value per field, events only on real changes, a consistent new study."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medkd_desktop.studies.study import DisplayWindow, Study, StudyKind, windows_like
from medkd_desktop.inference.view_state import ViewState


def _study(t=2, z=5, window=DisplayWindow(100.0, 50.0)):
    px = np.arange(t * z * 8 * 8, dtype=np.float32).reshape(t, z, 8, 8)
    return Study(kind=StudyKind.DICOM_SERIES, modality="MR", pixels=px, windows=windows_like(px, window), source=Path(__file__))


def test_setters_emit_once_per_real_change_so_echoing_widgets_cannot_loop():
    s = ViewState()
    seen = []
    s.events.opacity.connect(seen.append)
    s.opacity = 0.7
    s.opacity = 0.7  # a widget echoing the value back
    s.opacity = 3.0  # clamped
    assert seen == [0.7, 1.0]


def test_a_new_study_resets_frame_window_and_analysis_then_announces_itself_last():
    s = ViewState()
    s.analysis = object()
    order = []
    for name in ("slice", "window", "analysis", "study"):
        getattr(s.events, name).connect(lambda v, n=name: order.append((n, s.study is not None)))
    study = _study()
    s.study = study
    assert s.frame_index == (0, 2) and s.window == DisplayWindow(100.0, 50.0) and s.analysis is None
    assert order[-1] == ("study", True)  # subscribers redrawing on "study" see every field already set
    assert all(has_study for _, has_study in order)


def test_frame_indices_are_clamped_to_the_study():
    s = ViewState()
    s.study = _study()
    s.slice = 99
    s.volume = -3
    assert s.frame_index == (0, 4)


def test_task_change_drops_a_target_class_of_the_old_task():
    s = ViewState()
    s.task = "cxr-covid"
    s.target = "pneumonia"
    s.task = "histo-lc25000"
    assert s.target is None


def test_strip_role_is_validated():
    with pytest.raises(ValueError):
        ViewState().strip_role = "baseline"


def test_the_session_loads_without_qt_or_torch():
    """The window builds on the session while it starts; torch (a second to import) loads on the
    worker thread meanwhile, so the session, the cards and the overlay colours must not need it."""
    code = ("import sys, medkd_desktop.inference.session, medkd_desktop.explain.overlay; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'PySide6', 'PyQt5', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
