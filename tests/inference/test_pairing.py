"""Which pair a study gets, and what the user is told: one rule for the window and the CLI.

What a user would notice if these failed: a chest model silently run on a brain slice, the
window and ``medkd analyze`` choosing differently for the same file, or a model distilled for a
new kind of study that never gets proposed.
"""
from __future__ import annotations

import pytest
from model_factory import write_random_model
from testdata import SAMPLES, shared_path

from medkd_desktop.inference.pairing import describe, propose
from medkd_desktop.models.card import TaskInfo
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.studies import open_study

GREY = InputSpec(size=32, channels=1, mean=(0.5,), std=(0.25,))
RGB = InputSpec(size=32, channels=3)
TINY = {"channels": [4, 4, 8, 8, 8]}
TASKS = {"cxr-covid": (["covid", "normal", "pneumonia"], GREY), "brain-tumor-mri": (["glioma", "notumor"], GREY),
         "histo-lc25000": (["lung_aca", "lung_n"], RGB), "fmri-asd": (["ASD", "TC"], InputSpec(size=32, fmri_map="amplitude"))}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for task, (classes, spec) in TASKS.items():
        for role in ("teacher", "student"):
            write_random_model(root, task, role, "cnn5", classes, spec, arch_kwargs=TINY)
    return ModelRegistry([root])


def test_the_study_modality_proposes_its_pair(registry):
    assert propose(open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm"), registry).task == "cxr-covid"
    mr = propose(open_study(SAMPLES / "mr_brain_epi_mosaic_series"), registry)
    assert mr.task == "brain-tumor-mri" and mr.messages == []
    assert propose(open_study(SAMPLES / "fmri_amplitude_map_abide_nyu_0050957.nii.gz"), registry).task == "fmri-asd"


def test_a_users_choice_wins_but_a_mismatch_is_said(registry):
    mr = open_study(SAMPLES / "mr_brain_epi_mosaic_series")
    p = propose(mr, registry, chosen="cxr-covid")
    assert p.task == "cxr-covid" and "MR" in p.warning and "chest radiographs" in p.warning
    grey_jpeg = open_study(SAMPLES / "chest_xray_covid_hannover.jpg")
    assert propose(grey_jpeg, registry, chosen="cxr-covid").warning is None
    assert "grey-scale" in propose(grey_jpeg, registry, chosen="histo-lc25000").warning
    missing = propose(mr, registry, chosen="skin-ham10000")
    assert missing.task is None and "No models are installed for task 'skin-ham10000'" in missing.note


def test_a_grey_jpeg_fits_two_pairs_so_none_is_guessed(registry):
    grey_jpeg = open_study(SAMPLES / "chest_xray_covid_hannover.jpg")  # no modality in a JPEG
    p = propose(grey_jpeg, registry)
    assert p.task is None and "brain-tumor-mri, cxr-covid" in p.note and "Choose a task" in p.note
    # The pair already on screen is kept when it fits, and the user is told to check it.
    kept = propose(grey_jpeg, registry, current="cxr-covid")
    assert kept.task == "cxr-covid" and "check that they fit" in kept.note


def test_a_study_no_installed_model_is_meant_for_gets_none(registry):
    derm = open_study(SAMPLES / "dermoscopy_melanoma_ham10000.jpg")  # no skin models in this registry
    p = propose(derm, registry)
    assert p.task is None and "dermoscopy" in p.note and "cxr-covid" in p.note


def test_a_card_for_a_new_task_is_proposed_and_described_with_no_code_change(registry, tmp_path):
    info = TaskInfo(display_name="Abdominal CT: demo", trained_on="abdominal CT slices", modalities=("CT",),
                    colour=False)
    for role in ("teacher", "student"):
        write_random_model(tmp_path, "ct-demo", role, "cnn5", ["normal", "lesion"], GREY, arch_kwargs=TINY,
                           task_info=info)
    both = ModelRegistry([*registry.roots, tmp_path])
    ct = open_study(shared_path("dicom", "misc", "single", "pydicom_CT_small.dcm"))
    assert propose(ct, both).task == "ct-demo"
    assert describe(both, "ct-demo") == "Abdominal CT: demo — trained on abdominal CT slices"
    assert "CT" in propose(ct, both, chosen="cxr-covid").warning
    assert "abdominal CT slices" in propose(open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm"), both,
                                            chosen="ct-demo").warning
