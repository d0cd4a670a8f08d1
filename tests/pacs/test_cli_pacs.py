"""`medkd pacs …` and `medkd analyze --send-to` as a user runs them: real subprocesses, a live Orthanc."""
from __future__ import annotations

import json
import os

import pydicom
import pytest
from model_factory import write_random_model
from orthanc_server import OUR_AET, assert_same_pixels, copy_as_new_series, free_port
from testdata import run_medkd

from medkd_desktop.models.preprocess import InputSpec


def run(*args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return run_medkd(*args, env=env)


def one_error_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def identifiers(item) -> list[str]:
    """The patient identifiers of an uploaded item: they must never reach stderr (the log)."""
    ds = pydicom.dcmread(item.files[0], stop_before_pixels=True)
    values = [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate")]
    return [v for v in values if len(v) >= 4]


def test_echo_and_its_failures(orthanc):
    out = run("pacs", "echo", "--server", orthanc.address())
    assert out.returncode == 0 and "answered in" in out.stdout, out.stderr
    out = run("pacs", "echo", "--server", f"WRONG@127.0.0.1:{orthanc.dicom_port}")
    assert out.returncode == 2 and "does not answer to the AE title 'WRONG'" in one_error_line(out)
    out = run("pacs", "echo", "--server", f"ORTHANC@127.0.0.1:{free_port()}", "--timeout", "2")
    assert out.returncode == 2 and "refused the connection" in one_error_line(out)


@pytest.mark.parametrize("args, message", [
    (["pacs", "find", "--server", "ORTHANC@127.0.0.1"], "AET@HOST:PORT"),
    (["pacs", "find", "--server", "ORTHANC@127.0.0.1:104", "--date", "2024-13"], "date range"),
    (["pacs", "get", "--server", "ORTHANC@127.0.0.1:104", "--study-uid", "not-a-uid"], "not a DICOM UID"),
    (["pacs", "send", "--server", "ORTHANC@127.0.0.1:104", "no-such-file.dcm"], "file not found"),
    (["pacs", "echo", "--server", "ORTHANC@127.0.0.1:104", "--aet", "MEDKD\\X"], "AE title"),
])
def test_bad_input_exits_2_with_one_line_before_any_network(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in one_error_line(out)


def test_find_prints_identifiers_on_stdout_only(orthanc):
    cr = orthanc.item("cr_chest")
    out = run("-vv", "pacs", "find", "--server", orthanc.address(), "--patient-id", cr.patient_id)
    assert out.returncode == 0, out.stderr
    assert cr.study_uid in out.stdout and cr.patient_id in out.stdout
    for secret in identifiers(cr):
        assert secret not in out.stderr  # -vv logs pynetdicom's and our debug lines: no identifiers
    out = run("pacs", "find", "--server", orthanc.address(), "--modality", "MR", "--date", "20120201-20120229",
              "--json")
    found = json.loads(out.stdout)
    assert [s["study_uid"] for s in found] == [orthanc.item("mr_series").study_uid]
    out = run("pacs", "find", "--server", orthanc.address(), "--level", "series", "--study-uid",
              orthanc.item("mr_series").study_uid, "--json")
    assert sorted(s["modality"] for s in json.loads(out.stdout)) == ["MR", "SR"]


def test_get_by_c_get_and_by_c_move(orthanc, tmp_path):
    mr = orthanc.item("mr_series")
    out = run("-vv", "pacs", "get", "--server", orthanc.address(), "--study-uid", mr.study_uid, "--out", tmp_path / "get",
              "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["received"], result["expected"], result["images"], result["non_images"]) == (7, 7, 6, 1)
    assert result["complete"] and result["folder"] == str(tmp_path / "get" / mr.study_uid)
    for secret in identifiers(mr):
        assert secret not in out.stderr
    cr = orthanc.item("cr_chest")
    out = run("pacs", "get", "--server", orthanc.address(), "--study-uid", cr.study_uid, "--series-uid", cr.series_uid,
              "--out", tmp_path / "move", "--move", "--port", orthanc.move_port, "--bind", "127.0.0.1", "--aet", OUR_AET)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("received 1 of 1 instance(s)")
    assert_same_pixels(tmp_path / "move" / cr.study_uid / cr.series_uid / f"{cr.sop_uids[0]}.dcm", cr.files[0])


def test_send_files(orthanc, tmp_path):
    mr = orthanc.item("mr_small")
    copies = copy_as_new_series(mr.files[0], tmp_path / "send", 2, study_uid=mr.study_uid)
    out = run("pacs", "send", "--server", orthanc.address(), *copies)
    assert out.returncode == 0 and out.stdout.strip() == f"stored 2 of 2 file(s) in {orthanc.address()}", out.stderr
    (tmp_path / "note.txt").write_text("not DICOM")
    out = run("pacs", "send", "--server", orthanc.address(), copies[0], tmp_path / "note.txt", "--json")
    assert out.returncode == 3 and json.loads(out.stdout)["failed"] == {str(tmp_path / "note.txt"): 
                                                                        "This file is not a DICOM file MedKD can send."}
    assert one_error_line(out).startswith(f"error: {tmp_path / 'note.txt'}: ")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=48, channels=3)
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    write_random_model(root, "brain-tumor-mri", "teacher", "timm:resnet10t", classes, spec, name="tiny teacher")
    write_random_model(root, "brain-tumor-mri", "student", "cnn5", classes, spec,
                       arch_kwargs={"channels": [8, 16, 16, 32, 32]}, name="tiny student")
    return root


def test_analyze_a_retrieved_study_and_send_the_overlay_back(orthanc, model_dir, tmp_path):
    """The round trip: retrieve from the PACS, analyse, store the Secondary Capture into the same study."""
    mr = orthanc.item("mr_small")
    out = run("pacs", "get", "--server", orthanc.address(), "--study-uid", mr.study_uid, "--out", tmp_path, "--json")
    folder = json.loads(out.stdout)["folder"]
    before = {s["MainDicomTags"]["SeriesInstanceUID"] for s in orthanc.series_of_study(mr.study_uid)}
    out = run("-v", "analyze", folder, "--out", tmp_path / "out", "--device", "cpu", "--no-pdf", "--json",
              "--send-to", orthanc.address(), "--aet", OUR_AET, env_extra={"MEDKD_MODEL_DIRS": str(model_dir)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["errors"] == {} and "dicom" in result["files"]
    sc = pydicom.dcmread(result["files"]["dicom"])
    after = {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in orthanc.series_of_study(mr.study_uid)}
    assert set(after) - before == {sc.SeriesInstanceUID}  # a new series, in the same study
    assert after[sc.SeriesInstanceUID]["Instances"] and sc.StudyInstanceUID == mr.study_uid
    for secret in identifiers(mr):
        assert secret not in out.stderr


def test_a_failed_send_is_reported_like_a_failed_export(orthanc, model_dir, tmp_path):
    out = run("analyze", orthanc.item("mr_small").files[0], "--out", tmp_path, "--device", "cpu", "--no-pdf",
              "--send-to", f"ORTHANC@127.0.0.1:{free_port()}", env_extra={"MEDKD_MODEL_DIRS": str(model_dir)})
    assert out.returncode == 3, out.stderr
    line = one_error_line(out)
    assert line.startswith("error: the pacs export failed: The PACS at 127.0.0.1:") and "refused" in line
    assert (tmp_path / "analysis.json").is_file()  # the analysis itself was written
