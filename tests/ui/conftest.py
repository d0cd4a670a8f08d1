"""Fixtures for the review-window tests: a tiny random-init model pair per task, an isolated window.

Why random weights: the tests check what the *window* does (worker, overlays, sync, cancel,
errors, export), which must not depend on trained weights being installed. The architectures
are real (002's CNN5), saved as safetensors with their sha256 in real cards, and loaded through
the real registry and engine, so everything but the weights' values is what a user runs.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from model_factory import write_random_model  # noqa: E402
from ui_driver import engine_factory  # noqa: E402

from medkd_desktop.models.preprocess import InputSpec  # noqa: E402

GRAY = dict(channels=1, mean=(0.5,), std=(0.25,))
RGB = dict(channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
#: task -> (classes, input spec kwargs)
TASKS: dict[str, tuple[list[str], dict]] = {
    "cxr-covid": (["covid", "normal", "pneumonia"], GRAY),
    "brain-tumor-mri": (["glioma", "meningioma", "notumor", "pituitary"], GRAY),
    "histo-lc25000": (["colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"], RGB),
    "skin-ham10000": (["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"], RGB),
    "fmri-asd": (["asd", "control"], dict(RGB, fmri_map="amplitude")),  # the map the bundled models read
}
SIZE = 64
CHANNELS = [8, 8, 16, 16, 32]  # CNN5, narrow: a forward pass takes a millisecond


def write_pair(root: Path, task: str) -> None:
    classes, spec_kwargs = TASKS[task]
    spec = InputSpec(size=SIZE, **spec_kwargs)
    for seed, role, name in ((1, "teacher", "Tiny CNN5 teacher"), (2, "student", "Tiny CNN5 student")):
        # Non-negative class weights: every class then has positive Grad-CAM evidence. With signed
        # random weights a class's map is often all zero after Grad-CAM's ReLU, and "the overlay
        # shows something" could not be tested.
        write_random_model(root, task, role, "cnn5", classes, spec, arch_kwargs={"channels": CHANNELS}, seed=seed,
                           prepare=lambda m: m.head.weight.abs_(), name=name,
                           metrics={"accuracy": 0.5 if role == "teacher" else 0.25},
                           caveats=["Random weights: for tests only."], target_layers={})


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for task in TASKS:
        write_pair(root, task)
    return root


@pytest.fixture
def window(qtbot, model_root, tmp_path):
    """The real main window, its worker on the tiny models, settings in a temporary INI file."""
    from medkd_desktop.ui.main_window import MainWindow
    from medkd_desktop.ui.settings import Settings
    from medkd_desktop.ui.worker import Worker

    worker = Worker(engine_factory=engine_factory(model_root))
    w = MainWindow(settings=Settings(tmp_path / "settings.ini"), worker=worker)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.engine_ready, timeout=120_000):
        w.show()
    yield w
    w.worker.shutdown(10_000)

