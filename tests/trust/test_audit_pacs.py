"""PACS transfers in the audit trail, against a live Orthanc (skips without one): retrieve, analyse,
send back and send files all leave entries for the same hashed study, and none of its identifiers."""
from __future__ import annotations

import json
import os

import pydicom
from orthanc_server import copy_as_new_series
from testdata import run_medkd

from medkd_desktop.trust import audit


def test_retrieve_analyse_send_are_audited(orthanc, tmp_path):
    from model_factory import write_random_model

    from medkd_desktop.models.preprocess import InputSpec

    models = tmp_path / "models"
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    for role in ("teacher", "student"):
        write_random_model(models, "brain-tumor-mri", role, "cnn5", classes, InputSpec(size=64, channels=3),
                           arch_kwargs={"channels": [8, 8, 8, 8, 8]})
    folder = tmp_path / "audit"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDKD_AUDIT_DIR": str(folder), "MEDKD_MODEL_DIRS": str(models)}
    mr = orthanc.item("mr_small")
    out = run_medkd("pacs", "get", "--server", orthanc.address(), "--study-uid", mr.study_uid, "--out", tmp_path,
                    "--json", env=env)
    assert out.returncode == 0, out.stderr
    study = json.loads(out.stdout)["folder"]
    out = run_medkd("analyze", study, "--out", tmp_path / "out", "--device", "cpu", "--no-pdf",
                    "--send-to", orthanc.address(), env=env)
    assert out.returncode == 0, out.stderr
    copies = copy_as_new_series(mr.files[0], tmp_path / "send", 2, study_uid=mr.study_uid)
    out = run_medkd("pacs", "send", "--server", orthanc.address(), *copies, env=env)
    assert out.returncode == 0, out.stderr

    text = (folder / "audit.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    events = [e["event"] for e in entries]
    assert events[0] == "pacs-retrieve" and events[1] == "analysis" and events.count("pacs-send") == 2
    assert entries[0]["result"] == "ok" and entries[0]["outcome"]["instances"] >= 1
    assert entries[1]["models"]["teacher"]["sha256"] and entries[1]["models"]["student"]["sha256"]
    uid_hash = audit.study_hash(mr.study_uid, folder)
    assert {e["study"] for e in entries} == {uid_hash}
    assert entries[-1]["outcome"] == {"instances": 2} and entries[-1]["result"] == "ok"
    ds = pydicom.dcmread(mr.files[0], stop_before_pixels=True)
    for secret in (str(ds.PatientName), str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", "")), str(tmp_path)):
        assert not secret or secret not in text
    assert run_medkd("audit", "verify", env=env).returncode == 0
