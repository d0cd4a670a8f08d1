"""Analyses the report tests export: the real engine on real samples with small random-weight models.

Session-scoped: building the models and running the engine is the slow part, and every export
test only reads the analyses (a test that needs other names or maps makes a modified copy).
"""
from __future__ import annotations

import pytest
import torch
from model_factory import write_random_model
from testdata import SAMPLES

from medkd_desktop.inference.engine import Engine
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.studies import open_study

METHOD = "gradcam++"


def _write(root, task, role, arch, kwargs, classes, spec, seed):
    write_random_model(root, task, role, arch, classes, spec, arch_kwargs=kwargs, seed=seed, parameters=1000,
                       metrics={"n": 378, "accuracy": 0.912, "macro_f1": 0.905, "auc": 0.97,
                                "ci": {"accuracy": [0.88, 0.94]}},
                       caveats=["Trained on public research tiles; augmentation groups, not patients."])


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=48, channels=3)
    for task, classes in (("cxr-covid", ["covid", "pneumonia", "normal"]),
                          ("brain-tumor-mri", ["glioma", "meningioma", "notumor", "pituitary"]),
                          ("histo-lc25000", ["lung_aca", "lung_scc", "lung_n", "colon_aca", "colon_n"])):
        _write(root, task, "teacher", "timm:resnet10t", {}, classes, spec, 0)
        _write(root, task, "student", "cnn5", {"channels": [8, 16, 16, 32, 32]}, classes, spec, 1)
    return ModelRegistry([root])


@pytest.fixture(scope="session")
def engine(registry):
    return Engine(registry, "cpu")


@pytest.fixture(scope="session")
def histology(engine):
    study = open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg")
    return study, engine.analyze(study, "histo-lc25000", [METHOD, "eigencam"])


@pytest.fixture(scope="session")
def chest(engine):
    study = open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm")
    return study, engine.analyze(study, "cxr-covid", [METHOD])


@pytest.fixture(scope="session")
def small_mr(engine):
    """A small real DICOM MR slice (64 x 64): every DICOM export of it is quick."""
    from testdata import shared_path

    study = open_study(shared_path("dicom/misc/single/pydicom_MR_small.dcm"))
    return study, engine.analyze(study, "brain-tumor-mri", [METHOD])


@pytest.fixture(scope="session")
def bare_mr(engine, tmp_path_factory):
    """The same slice without preamble and File Meta header: it opens and is analysed."""
    from testdata import shared_path, strip_preamble_and_meta

    bare = tmp_path_factory.mktemp("bare") / "mr_without_meta"
    strip_preamble_and_meta(shared_path("dicom/misc/single/pydicom_MR_small.dcm"), bare)
    study = open_study(bare)
    return study, engine.analyze(study, "brain-tumor-mri", [METHOD])
