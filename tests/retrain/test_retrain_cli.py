"""`medkd retrain` and `medkd models` as a user runs them: real subprocesses, real brain MRI images
(some as DICOM files with a PatientID), the real bundled teacher and student, 1-3 short epochs."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from retrain_data import CLASSES, PATIENT_ID, PATIENT_NAME, make_folder
from testdata import MEDKD, run_medkd

pytestmark = pytest.mark.slow


def retrain(data: Path, *extra: object, epochs: int = 2) -> subprocess.CompletedProcess[str]:
    return run_medkd("retrain", "--task", "brain-tumor-mri", "--data", data, "--epochs", epochs, "--threads", 1,
                     "--json", *extra, env=dict(os.environ))


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_dir(user_dirs) -> Path:
    return Path(user_dirs["XDG_CACHE_HOME"]) / "medkd-desktop" / "retrain" / "brain-tumor-mri"


def test_retrain_installs_a_compared_version_that_activate_and_remove_switch(tmp_path, user_dirs):
    data = make_folder(tmp_path / "site")
    r = retrain(data, "--name", "Site A")
    assert r.returncode == 0, r.stderr
    ev = events(r.stdout)
    kinds = [e["event"] for e in ev]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert {"summary", "progress", "epoch", "calibrated"} <= set(kinds)

    summary = next(e for e in ev if e["event"] == "summary")
    assert summary["skipped"] == [{"path": "Glioma/notes.txt", "reason": summary["skipped"][0]["reason"]}]
    assert "not a study" in summary["skipped"][0]["reason"]
    assert sum(sum(c.values()) for c in summary["counts"].values()) == summary["n_images"] == 24
    assert all(summary["counts"][s][c] > 0 for s in ("train", "val", "test") for c in CLASSES)
    epoch = next(e for e in ev if e["event"] == "epoch")
    assert {"accuracy", "macro_f1"} <= set(epoch["val"]) and "eta_s" in epoch

    done = ev[-1]
    cmp_ = done["comparison"]
    assert set(cmp_["models"]) == {"new", "bundled", "teacher"}
    for row in cmp_["models"].values():
        assert set(row["recall"]) == set(CLASSES)
        cells = row["confusion"]["cells"]
        assert sum(len(c) for line in cells for c in line) == cmp_["n"]
        assert [[len(c) for c in line] for line in cells] == row["confusion"]["matrix"]
    lo, hi = cmp_["new_minus_bundled"]["accuracy_ci"]
    assert lo <= cmp_["new_minus_bundled"]["accuracy"] <= hi

    # the version: in the user's model folder, with its provenance; bundled untouched
    model_id = done["model"]["id"]
    assert model_id == "brain-tumor-mri/student-site-a"
    card = json.loads(Path(done["model"]["card"]).read_text())
    assert Path(done["model"]["card"]).is_relative_to(user_dirs["XDG_DATA_HOME"])
    rd = run_dir(user_dirs)
    splits = (rd / "splits.csv").read_bytes()
    assert card["training"]["retrain"]["data_manifest_sha256"] == hashlib.sha256(splits).hexdigest()
    assert card["training"]["retrain"]["counts"] == summary["counts"]
    assert card["training"]["command"].startswith("medkd retrain --task brain-tumor-mri")
    assert "cells" not in json.dumps(card["training"]["retrain"]["comparison"])  # no file names in a card
    assert card["calibration"]["fitted_on"] == "val" and card["calibration"]["temperature"] > 0
    # its own OOD statistics beside the weights, named and hashed by the card (what the window's banner reads)
    stats = Path(done["model"]["card"]).with_name(card["ood"]["file"])
    assert hashlib.sha256(stats.read_bytes()).hexdigest() == card["ood"]["sha256"]
    assert card["ood"]["score"] == "mahalanobis" and card["ood"]["fitted_on"] == "train"

    # the two DICOM files of one patient are one group, in one split; the ID is nowhere in clear
    rows = list(csv.DictReader(splits.decode().splitlines()))
    dicom_rows = [r for r in rows if r["path"].endswith(".dcm")]
    assert len(dicom_rows) == 2 and len({(r["patient_group"], r["split"]) for r in dicom_rows}) == 1
    written = [p for p in list(rd.rglob("*")) + list(Path(user_dirs["MEDKD_AUDIT_DIR"]).rglob("*")) if p.is_file()]
    for p in [*written, Path(done["model"]["card"])]:
        blob = p.read_bytes()
        assert PATIENT_ID.encode() not in blob and b"Doe" not in blob, p.name
    assert PATIENT_ID not in r.stdout + r.stderr and PATIENT_NAME not in r.stdout

    # installed, not active: the bundled student is still the one in use
    listed = json.loads(run_medkd("models", "list", "--json").stdout)
    mine = next(m for m in listed if m["id"] == model_id)
    bundled = next(m for m in listed if m["id"] == "brain-tumor-mri/student")
    assert (mine["source"], mine["active"], bundled["active"]) == ("user", False, True)

    from medkd_desktop.models.registry import ModelRegistry

    registry = ModelRegistry()
    assert registry.card("brain-tumor-mri", "student").id == "brain-tumor-mri/student"
    a = run_medkd("models", "activate", model_id)
    assert a.returncode == 0, a.stderr
    registry.refresh()
    assert registry.card("brain-tumor-mri", "student").id == model_id  # the registry sees it at once
    assert registry.pair("brain-tumor-mri").student.id == model_id

    bad = run_medkd("models", "remove", "brain-tumor-mri/student")
    assert bad.returncode == 2 and "bundled" in bad.stderr
    rm = run_medkd("models", "remove", model_id)
    assert rm.returncode == 0, rm.stderr
    registry.refresh()
    assert registry.card("brain-tumor-mri", "student").id == "brain-tumor-mri/student"
    assert not Path(done["model"]["card"]).exists()

    from medkd_desktop.trust import audit

    log = [e for e in audit.read() if e["event"] in ("retrain", "model-activation", "model-removal")]
    assert [e["event"] for e in log] == ["retrain", "model-activation", "model-removal"]
    assert log[0]["models"]["student"]["id"] == model_id and log[0]["outcome"]["images"] == 24
    assert log[1]["models"]["now"]["id"] == model_id and log[2]["models"]["now"]["id"] == "brain-tumor-mri/student"
    assert audit.verify().ok


def test_a_killed_run_resumes_and_a_stopped_run_keeps_its_best_epoch(tmp_path, user_dirs):
    data = make_folder(tmp_path / "site", dicom=False)
    args = [*MEDKD, "retrain", "--task", "brain-tumor-mri", "--data", str(data), "--epochs", "3", "--threads", "1",
            "--json", "--batch-size", "8"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    for line in proc.stdout:  # kill -9 once the first epoch's checkpoint is written
        if '"event": "epoch"' in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    state = json.loads((run_dir(user_dirs) / "run.json").read_text())
    assert state["state"] == "running"  # what the panel finds at start-up

    # the same command resumes after the killed epoch; stopped through the stop file in epoch 2
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "progress" and seen[-1]["epoch"] == 2:
            (run_dir(user_dirs) / "STOP").touch()
    proc.wait(120)
    assert proc.returncode == 4, proc.stderr.read()
    assert {"event": "resume", "epoch": 1} in seen
    stopped = seen[-1]
    assert stopped["event"] == "stopped" and stopped["epoch"] in (1, 2) and stopped["best_epoch"] >= 1
    assert not (run_dir(user_dirs) / "STOP").exists()

    # --finish installs the best epoch so far without training further
    r = run_medkd(*args[3:], "--finish", env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    ev = events(r.stdout)
    assert not [e for e in ev if e["event"] == "epoch"]
    card = json.loads(Path(ev[-1]["model"]["card"]).read_text())
    assert card["training"]["retrain"]["stopped_early"] and card["training"]["epochs_done"] == stopped["epoch"]


def test_sigterm_stops_cleanly_with_the_checkpoint_kept(tmp_path, user_dirs):
    data = make_folder(tmp_path / "site", dicom=False)
    proc = subprocess.Popen([*MEDKD, "retrain", "--task", "brain-tumor-mri", "--data", str(data), "--epochs", "6",
                             "--threads", "1", "--json", "--batch-size", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    last = None
    for line in proc.stdout:
        last = json.loads(line)
        if last["event"] == "epoch":
            proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    assert proc.returncode == 4 and last["event"] == "stopped" and last["epoch"] >= 1
    assert (run_dir(user_dirs) / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------ bad input
def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_bad_inputs_exit_2_with_one_error_line_and_write_no_model(tmp_path, user_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no class subfolders" in one_error_line(retrain(empty))

    site = make_folder(tmp_path / "site", dicom=False)
    one = tmp_path / "one"
    one.mkdir()
    os.symlink(site / "Glioma", one / "glioma")
    assert "only one class" in one_error_line(retrain(one))

    wrong = tmp_path / "wrong"
    (wrong / "tumour").mkdir(parents=True)
    (wrong / "healthy").mkdir()
    line = one_error_line(retrain(wrong))
    assert "'healthy'" in line and "expected: glioma, meningioma, notumor, pituitary" in line

    junk = tmp_path / "junk"
    for c in ("glioma", "notumor"):
        (junk / c).mkdir(parents=True)
        for k in range(4):
            (junk / c / f"scan{k}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 10)
    assert "none of the 8 files could be read" in one_error_line(retrain(junk))

    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\nx.png,Tumour\n")
    assert "expected: glioma" in one_error_line(retrain(csv_path))

    assert "does not exist" in one_error_line(retrain(tmp_path / "nowhere"))
    models = Path(user_dirs["XDG_DATA_HOME"]) / "medkd-desktop" / "models"
    assert not list(models.rglob("*.json")) if models.exists() else True


def test_two_runs_of_one_task_at_once_are_refused(tmp_path, user_dirs):
    from medkd_desktop.retrain.lock import TaskLock
    from medkd_desktop.retrain.run import runs_root

    site = make_folder(tmp_path / "site", dicom=False)
    with TaskLock(runs_root() / "brain-tumor-mri.lock", "brain-tumor-mri"):  # a panel is training this task
        assert "another retraining of task brain-tumor-mri is running" in one_error_line(retrain(site))


def _mount(path: Path, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}): needs root")


@pytest.mark.parametrize("options,words", [(("size=64k",), "is full"), (("size=1m", "ro"), "is read-only")])
def test_a_full_or_read_only_model_folder_is_refused_before_training(tmp_path, user_dirs, options, words):
    site = make_folder(tmp_path / "site", dicom=False)
    models = Path(user_dirs["XDG_DATA_HOME"]) / "medkd-desktop" / "models"
    _mount(models, *options)
    try:
        t0 = time.perf_counter()
        line = one_error_line(retrain(site))
        assert words in line and str(models) in line
        assert not (run_dir(user_dirs) / "checkpoint.pt").exists()  # refused before any epoch
        assert time.perf_counter() - t0 < 120
    finally:
        subprocess.run(["umount", str(models)], check=False)
