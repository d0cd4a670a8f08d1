"""The window says how far to trust a prediction: the OOD banner that withholds it, and the labels.

Runs the bundled models (their OOD statistics and test metrics are what the banner and labels
read), so it skips on a checkout whose cards carry no OOD statistics.
"""
from __future__ import annotations

import pytest
from testdata import SAMPLES
from ui_driver import engine_factory, open_and_wait

from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry

HISTO = SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg"
CHEST_JPEG = SAMPLES / "chest_xray_covid_hannover.jpg"
FMRI = SAMPLES / "fmri_amplitude_map_abide_nyu_0050957.nii.gz"


@pytest.fixture
def bundled_window(qtbot, tmp_path):
    from medkd_desktop.ui.main_window import MainWindow
    from medkd_desktop.ui.settings import Settings
    from medkd_desktop.ui.worker import Worker

    if not ModelRegistry([BUNDLED_DIR]).card("cxr-covid", "student").ood:
        pytest.skip("the bundled cards carry no OOD statistics (run scripts/fit_ood.py --write)")
    w = MainWindow(settings=Settings(tmp_path / "settings.ini"), worker=Worker(engine_factory=engine_factory(BUNDLED_DIR)))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.engine_ready, timeout=120_000):
        w.show()
    yield w
    w.worker.shutdown(10_000)


def test_a_chest_film_read_by_the_brain_models_is_withheld_until_revealed(qtbot, bundled_window):
    w = bundled_window
    with qtbot.waitSignal(w.study_opened, timeout=60_000):
        w.open_path(CHEST_JPEG)  # a grey JPEG fits two pairs: the window asks, the user picks
    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        w.set_task("cxr-covid")
    assert not w.trust_banner.isVisible()  # the chest models on a chest film: nothing to warn about
    assert w.predictions.bars.teacher is not None
    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        w.set_task("brain-tumor-mri")  # a plain grey JPEG: no gate, only the feature score can tell
    a = w.state.analysis
    assert a.teacher.ood.gate is None and a.teacher.ood.above_threshold and a.student.ood.above_threshold
    assert w.trust_banner.isVisible()
    assert "does not look like the images this model was trained on" in w.trust_banner.text.text()
    assert w.predictions.bars.teacher is None and w.predictions.bars.student is None  # withheld
    assert "withheld" in w.predictions.badge.text()
    assert "withheld" in w.viewers.teacher.title.text() and a.teacher.predicted not in w.viewers.teacher.title.text()
    w.trust_banner.button.click()
    assert w.predictions.bars.teacher is not None and "withheld" not in w.predictions.badge.text()
    assert w.trust_banner.button.text() == "Hide the prediction"


def test_a_colour_tile_for_the_grey_chest_models_is_flagged_with_the_reason(qtbot, bundled_window):
    w = bundled_window
    open_and_wait(qtbot, w, HISTO)
    with qtbot.waitSignal(w.analysis_applied, timeout=120_000):
        w.set_task("cxr-covid")
    gate = w.state.analysis.teacher.ood.gate
    assert gate and w.trust_banner.isVisible() and gate in w.trust_banner.text.text()
    assert w.predictions.bars.teacher is None


def test_the_fmri_pair_is_labelled_no_better_than_chance(qtbot, bundled_window):
    w = bundled_window
    open_and_wait(qtbot, w, FMRI)
    assert w.predictions.trust.isVisible()
    assert "no better than chance" in w.predictions.trust.text()
