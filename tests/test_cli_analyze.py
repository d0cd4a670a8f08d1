"""`medkd analyze` as a user runs it: a real subprocess, real studies, models found via MEDKD_MODEL_DIRS."""
from __future__ import annotations

import json
import os

import pydicom
import pytest
from testdata import SAMPLES, run_medkd, shared_path, strip_preamble_and_meta
from model_factory import write_random_model

from medkd_desktop.models.preprocess import InputSpec

TASKS = {"cxr-covid": ["covid", "pneumonia", "normal"],
         "brain-tumor-mri": ["glioma", "meningioma", "notumor", "pituitary"],
         "histo-lc25000": ["lung_aca", "lung_scc", "lung_n", "colon_aca", "colon_n"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=48, channels=3)
    for task, classes in TASKS.items():
        for role, arch, kwargs in (("teacher", "timm:resnet10t", {}), ("student", "cnn5", {"channels": [8, 16, 16, 32, 32]})):
            write_random_model(root, task, role, arch, classes, spec, arch_kwargs=kwargs, name=f"tiny {role}")
    return root


def run(model_dir, *args):
    env = {**os.environ, "MEDKD_MODEL_DIRS": str(model_dir), "OMP_NUM_THREADS": "1"}
    return run_medkd(*args, env=env)


def test_analyze_a_dicom_series_writes_every_file_and_prints_json(model_dir, tmp_path):
    # No --task: the MR modality proposes the brain MR pair; the middle slice is analysed.
    out = run(model_dir, "analyze", SAMPLES / "mr_brain_epi_mosaic_series", "--method", "gradcam++",
              "--out", tmp_path / "out", "--json", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["task"] == "brain-tumor-mri" and result["frame_index"] == [0, 17]
    for role in ("teacher", "student"):
        r = result[role]
        assert set(r["probabilities"]) == set(TASKS["brain-tumor-mri"])
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-6
        assert r["predicted"] in TASKS["brain-tumor-mri"] and r["latency_ms"] > 0
    assert {"pearson", "ssim", "iou_top20"} <= result["agreement"]["gradcam++"].keys()
    assert set(result["files"]) == {"png", "pdf", "json", "dicom"}
    for path in result["files"].values():
        assert os.path.getsize(path) > 1000
    assert json.loads(open(result["files"]["json"]).read())["teacher"] == result["teacher"]
    sc = pydicom.dcmread(result["files"]["dicom"])
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and sc.StudyInstanceUID == result["study"]["metadata"]["study_uid"]
    patient = str(sc.PatientName)
    assert patient and patient not in out.stdout + out.stderr  # the patient name stays out of the output


def test_a_mismatched_task_warns_but_runs_and_no_pdf_skips_the_report(model_dir, tmp_path):
    out = run(model_dir, "analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--task", "cxr-covid",
              "--out", tmp_path, "--no-pdf", "--method", "eigencam")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("warning: This is a histology study") and "chest radiographs" in out.stderr
    assert "teacher:" in out.stdout and "student:" in out.stdout and "agreement:" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json", "overlay_eigencam.png"]  # no DICOM input
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["task"] == "cxr-covid" and any("chest radiographs" in w for w in saved["warnings"])


@pytest.mark.parametrize("args, message", [
    # A grey JPEG carries no modality and fits two installed pairs: none is guessed, both are named.
    (["analyze", SAMPLES / "chest_xray_covid_hannover.jpg"], "Choose a task (brain-tumor-mri, cxr-covid fit it)"),
    (["analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--target", "melanoma"], "no class 'melanoma'"),
    (["analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--task", "nope"], "No models are installed for task 'nope'"),
])
def test_bad_requests_exit_2_with_one_line(model_dir, tmp_path, args, message):
    out = run(model_dir, *args, "--out", tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_file_that_is_not_a_study_exits_2(model_dir, tmp_path):
    bad = tmp_path / "study.dcm"
    bad.write_bytes(b"not a medical image at all" * 10)
    out = run(model_dir, "analyze", bad, "--out", tmp_path / "o")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr and not (tmp_path / "o").exists()


def test_explain_and_analyze_report_the_same_agreement(model_dir, tmp_path, monkeypatch, capsys):
    """One engine, one agreement grid: the two commands give equal figures, unrounded."""
    from medkd_desktop.cli import main

    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_dir))
    study = SAMPLES / "chest_xray_cr_pa_nema.dcm"  # not square: the centre-square box matters
    assert main(["analyze", str(study), "--task", "cxr-covid", "--method", "gradcam++", "--out",
                 str(tmp_path / "a"), "--json", "--no-pdf"]) == 0
    analyzed = json.loads(capsys.readouterr().out)["agreement"]["gradcam++"]
    assert main(["explain", str(study), "--task", "cxr-covid", "--method", "gradcam++", "--model", "both",
                 "--out", str(tmp_path / "e"), "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)["methods"]["gradcam++"]["agreement"]
    assert explained == analyzed and analyzed["pearson"] is not None
    assert analyzed["pearson"] != round(analyzed["pearson"], 4)  # full precision, not a display rounding


def test_overlay_options_take_the_windows_names_and_a_bad_one_exits_2(model_dir, tmp_path):
    ok = run(model_dir, "analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--no-pdf", "--colormap",
             "heat", "--opacity", "0.8", "--threshold", "0.3", "--out", tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    bad = run(model_dir, "analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--colormap", "jet",
              "--out", tmp_path / "bad")
    assert bad.returncode == 2 and "invalid choice: 'jet'" in bad.stderr and "heat" in bad.stderr


def test_a_dicom_without_file_meta_gets_every_file_and_a_failed_export_is_partial(model_dir, tmp_path):
    """The Secondary Capture of a header-less DICOM is written; when one export fails anyway (its
    path is taken), the others are written, the JSON says so and the exit status is 3 (partial)."""
    bare = strip_preamble_and_meta(shared_path("dicom", "misc", "single", "pydicom_MR_small.dcm"), tmp_path / "bare")
    ok = run(model_dir, "analyze", bare, "--task", "brain-tumor-mri", "--out", tmp_path / "ok", "--json")
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads(ok.stdout)["files"]) == {"png", "pdf", "dicom", "json"}
    out = tmp_path / "partial"
    (out / "overlay_gradcam.dcm").mkdir(parents=True)  # a folder where the DICOM SC should go
    partial = run(model_dir, "analyze", bare, "--task", "brain-tumor-mri", "--out", out, "--json")
    assert partial.returncode == 3
    result = json.loads(partial.stdout)
    assert set(result["files"]) == {"png", "pdf", "json"} and set(result["errors"]) == {"dicom"}
    assert partial.stderr.strip().startswith("error: the dicom export failed")
    assert json.loads((out / "analysis.json").read_text())["errors"] == result["errors"]
