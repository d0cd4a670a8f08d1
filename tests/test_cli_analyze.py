"""`medkd analyze` as a user runs it: a real subprocess, real studies, models found via MEDKD_MODEL_DIRS."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pydicom
import pytest
import torch
from conftest import SAMPLES

from medkd_desktop.models.architectures import create_arch
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.weights import save_weights

MEDKD = [sys.executable, "-m", "medkd_desktop.cli"]
TASKS = {"cxr-covid": ["covid", "pneumonia", "normal"],
         "histo-lc25000": ["lung_aca", "lung_scc", "lung_n", "colon_aca", "colon_n"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=48, channels=3)
    for task, classes in TASKS.items():
        for role, arch, kwargs in (("teacher", "timm:resnet10t", {}), ("student", "cnn5", {"channels": [8, 16, 16, 32, 32]})):
            folder = root / task
            folder.mkdir(exist_ok=True)
            torch.manual_seed(0)
            model = create_arch(arch, num_classes=len(classes), in_chans=3, **kwargs)
            sha = save_weights(model, folder / f"{role}.safetensors")
            ModelCard(id=f"{task}/{role}", task=task, role=role, architecture=arch, arch_kwargs=kwargs,
                      classes=classes, input=spec, weights_file=f"{role}.safetensors", sha256=sha,
                      name=f"tiny {role}").save(folder / f"{role}.json")
    return root


def run(model_dir, *args):
    env = {**os.environ, "MEDKD_MODEL_DIRS": str(model_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*MEDKD, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def test_analyze_a_chest_dicom_writes_every_file_and_prints_json(model_dir, tmp_path):
    out = run(model_dir, "analyze", SAMPLES / "chest_xray_cr_pa_nema.dcm", "--task", "cxr-covid",
              "--method", "gradcam++", "--out", tmp_path / "out", "--json", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["task"] == "cxr-covid"
    for role in ("teacher", "student"):
        r = result[role]
        assert set(r["probabilities"]) == set(TASKS["cxr-covid"])
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-6
        assert r["predicted"] in TASKS["cxr-covid"] and r["latency_ms"] > 0
    assert {"pearson", "ssim", "iou_top20"} <= result["agreement"]["gradcam++"].keys()
    assert set(result["files"]) == {"png", "pdf", "json", "dicom"}
    for path in result["files"].values():
        assert os.path.getsize(path) > 1000
    assert json.loads(open(result["files"]["json"]).read())["teacher"] == result["teacher"]
    assert pydicom.dcmread(result["files"]["dicom"]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert "RG1" not in out.stdout + out.stderr  # patient name and ID stay out of the output


def test_without_task_the_proposed_pair_is_used_and_no_pdf_is_skipped(model_dir, tmp_path):
    out = run(model_dir, "analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--out", tmp_path,
              "--no-pdf", "--method", "eigencam")
    assert out.returncode == 0, out.stderr
    assert "teacher:" in out.stdout and "student:" in out.stdout and "agreement:" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json", "overlay_eigencam.png"]
    assert json.loads((tmp_path / "analysis.json").read_text())["task"] == "histo-lc25000"


def test_a_mismatched_task_warns_but_runs(model_dir, tmp_path):
    out = run(model_dir, "analyze", SAMPLES / "mr_brain_epi_mosaic_series", "--task", "cxr-covid",
              "--out", tmp_path, "--no-pdf", "--method", "eigencam", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("warning: This is a MR study") and "chest radiographs" in out.stderr
    assert any("chest radiographs" in w for w in json.loads(out.stdout)["warnings"])


@pytest.mark.parametrize("args, message", [
    (["analyze", SAMPLES / "chest_xray_covid_hannover.jpg"], "choose a task"),  # grey JPEG: modality unknown
    (["analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--method", "magic"], "Unknown explanation method"),
    (["analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--target", "melanoma"], "no class 'melanoma'"),
    (["analyze", SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg", "--task", "nope"], "No models are installed for task 'nope'"),
])
def test_bad_requests_exit_2_with_one_line(model_dir, tmp_path, args, message):
    out = run(model_dir, *args, "--out", tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "cxr-covid" in lines[0] or "choose a task" not in message  # the message lists the installed tasks
    assert "Traceback" not in out.stderr


def test_a_corrupt_study_exits_2(model_dir, tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes((SAMPLES / "chest_xray_cr_pa_nema.dcm").read_bytes()[:5000])
    out = run(model_dir, "analyze", bad, "--task", "cxr-covid", "--out", tmp_path / "o")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
