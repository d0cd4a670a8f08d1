"""`medkd explain` and `medkd bench explain` as a user runs them: real images, a small
teacher/student pair written to a temporary model folder ($MEDKD_MODEL_DIRS).

The main path runs as a real subprocess; the other cases call the same ``main(argv)`` in
process (a subprocess costs ~15 s of imports on the shared 2-core machine).
"""
from __future__ import annotations

import csv
import json
import os
import subprocess

import numpy as np
import pytest
import torch
from testdata import run_medkd, shared_path
from model_factory import write_random_model
from PIL import Image

from medkd_desktop.cli import main
from medkd_desktop.models.preprocess import InputSpec

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
TASK = "demo-mri"  # not a bundled task, so trained models on disk never interfere
SMALL = {"channels": [8, 16, 16], "stem_stride": 2}
ARCHS = {
    "teacher": ("hdkd_teacher", {**SMALL, "depths": [1, 1, 1]}),
    "student": ("hdkd_student", {**SMALL, "depths": [1, 1, 1], "embed_dim": 16, "dflt_depth": 1, "num_heads": 2,
                                 "head_dim": 8, "img_size": 64}),
}


def _write_card(folder, task: str, role: str) -> None:
    arch, kwargs = ARCHS[role]
    write_random_model(folder.parent, task, role, arch, CLASSES, InputSpec(size=64, channels=1, mean=(0.5,), std=(0.25,)),
                       arch_kwargs=kwargs, name=f"tiny {role}", training={"manifest": "brain-tumor-mri/manifest.csv"})


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    _write_card(root / TASK, TASK, "teacher")
    _write_card(root / TASK, TASK, "student")
    _write_card(root / "half-task", "half-task", "teacher")  # no student: must be reported as skipped
    return root


@pytest.fixture(scope="module")
def mri_image():
    manifest = shared_path("brain-tumor-mri", "manifest.csv")
    with open(manifest, newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["split"] == "test")
    return manifest.parent / row["path"]


def run(models_dir, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDKD_MODEL_DIRS": str(models_dir), "OMP_NUM_THREADS": "1"}
    return run_medkd(*args, env=env)


@pytest.fixture
def run_inproc(models_dir, monkeypatch, capsys):
    """``main(argv)`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(models_dir))
    threads = torch.get_num_threads()

    def call(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        finally:
            torch.set_num_threads(threads)
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_explain_writes_overlays_at_frame_size_and_agreement_json(models_dir, mri_image, tmp_path):
    out = tmp_path / "out"
    r = run(models_dir, "explain", mri_image, "--task", TASK, "--method", "gradcam,feature_maps,attention",
            "--model", "both", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert json.loads((out / "explain.json").read_text()) == summary
    assert set(summary["models"]) == {"teacher", "student"}
    assert summary["models"]["student"]["predicted"] in CLASSES
    frame_size = Image.open(mri_image).size
    gc = summary["methods"]["gradcam"]
    assert set(gc["agreement"]) == {"pearson", "ssim", "iou_top20"}
    for role in ("teacher", "student"):
        png = Image.open(gc[role]["png"])
        assert png.size == frame_size and png.mode == "RGB"
        assert gc[role]["target"] == summary["models"][role]["predicted"]  # default: own prediction
    fm = summary["methods"]["feature_maps"]["student"]
    assert len(fm["stage_pngs"]) == len(fm["stage_names"]) == 4  # 3 conv stages + the DFLT stage
    att = summary["methods"]["attention"]
    assert "skipped" in att["teacher"] and "png" in att["student"] and "agreement" not in att
    # The overlay is the frame plus colour: where the map is cold, the anatomy shows through.
    assert np.asarray(png).std() > 5


def test_explain_a_named_class_for_the_student_only(run_inproc, mri_image, tmp_path):
    code, out, err = run_inproc("explain", mri_image, "--task", TASK, "--method", "gradcam++", "--model", "student",
                                "--target", "pituitary", "--out", tmp_path, "--json")
    assert code == 0, err
    entry = json.loads(out)["methods"]["gradcam++"]
    assert entry["student"]["target"] == "pituitary" and "teacher" not in entry
    assert (tmp_path / "student_gradcampp.png").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (("--method", "shap"), "Unknown explanation method"),
    (("--method", "gradcam", "--target", "tumour"), "no class 'tumour'"),
    (("--method", "gradcam", "--target", "7"), "Unknown class '7'"),
    (("--method", "gradcam", "--task", "no-such-task"), "No models are installed for task 'no-such-task'"),
    (("--method", "gradcam", "--task", "half-task"), "No models are installed for task 'half-task'"),
])
def test_bad_requests_exit_2_with_one_line(run_inproc, mri_image, tmp_path, args, message):
    argv = ["explain", mri_image, "--task", TASK, "--out", tmp_path, *args]
    if "--task" in args:  # the parametrised task replaces the default one
        i = argv.index("--task")
        del argv[i:i + 2]
    code, _, err = run_inproc(*argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_bench_explain_reports_times_agreement_faithfulness_and_skips(run_inproc):
    code, out, err = run_inproc("bench", "explain", "--json", "--images", "2", "--threads", "1",
                                "--methods", "gradcam,scorecam,feature_maps", "--tasks", f"{TASK},half-task",
                                "--steps", "5", "--data", shared_path())
    assert code == 0, err
    result = json.loads(out)
    assert result["threads"] == 1 and result["batch"] == 1
    assert "No student model" in result["tasks"]["half-task"]["skipped"]
    task = result["tasks"][TASK]
    assert task["n_images"] == 2
    for method in ("gradcam", "scorecam", "feature_maps"):
        m = task[method]
        assert m["teacher_ms"] > 0 and m["student_ms"] > 0
        assert set(m["agreement"]) == {"pearson", "ssim", "iou_top20"}
        for key in ("deletion_auc", "insertion_auc"):
            assert set(m[key]) == {"teacher", "student"}
            assert all(0.0 <= v <= 1.0 for v in m[key].values())
    assert task["scorecam_batching"]["unbatched_ms"] > 0 and task["scorecam_batching"]["ratio"] > 0
    assert any("student gradcam" in t["target"] for t in task["targets"])


def test_bench_explain_on_val_reads_val_rows_only_and_every_class():
    """Levers are judged on val (`--split val`); a test row there would leak the test split into a choice."""
    from medkd_desktop.bench.explain import pick_rows
    from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry

    card = ModelRegistry([BUNDLED_DIR]).card("brain-tumor-mri", "student")
    manifest = shared_path("brain-tumor-mri") / "manifest.csv"
    with manifest.open() as fh:
        split_of = {str(manifest.parent / r["path"]): r["split"] for r in csv.DictReader(fh)}
    rows = pick_rows(manifest, card, 8, "val")
    assert len(rows) == 8 and {split_of[str(r.path)] for r in rows} == {"val"}
    assert {r.label for r in rows} == set(card.classes)  # round-robin: every class, 2 each
    assert not {str(r.path) for r in rows} & {str(r.path) for r in pick_rows(manifest, card, 8)}
