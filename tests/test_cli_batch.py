"""`medkd analyze --batch`: a folder of real studies with bad files among them, tiny random models.

One real subprocess run over a mixed folder (images of two tasks, a DICOM series, a DICOM file,
a truncated JPEG and DICOM, a README) carries most checks; the exit codes, the exports and the
interrupted batch run in-process; discovery and the summary rows are checked on their own.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from model_factory import write_random_model
from testdata import run_medkd, shared_path

from medkd_desktop.models.preprocess import InputSpec

TASKS = {"cxr-covid": ["covid", "pneumonia", "normal"],
         "brain-tumor-mri": ["glioma", "meningioma", "notumor", "pituitary"]}
SERIES = ("dicom", "series", "siemens_mr_memprage_babymri_6sl")
CHEST = ("dicom", "chest", "cr_chest_pa_siim_nih_jpeg_baseline.dcm")
BAD = {"bad/truncated.jpg", "bad/truncated.dcm"}


def test_images(task: str, n: int) -> list[Path]:
    """The first *n* test-split images of a task in ../shared/data."""
    folder = shared_path(task)
    with open(folder / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    return [folder / r["path"] for r in rows[:n]]


test_images.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=48, channels=3)
    for task, classes in TASKS.items():
        for role, arch, kwargs in (("teacher", "timm:resnet10t", {}), ("student", "cnn5", {"channels": [8, 16, 16, 32, 32]})):
            write_random_model(root, task, role, arch, classes, spec, arch_kwargs=kwargs, name=f"tiny {role}")
    return root


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    """Two chest and two brain test images, a 6-file MR series, a chest DICOM, a truncated JPEG and
    DICOM, and a README (a document: skipped, not a failure)."""
    root = tmp_path_factory.mktemp("batch")
    for sub, task in (("cxr", "cxr-covid"), ("brain", "brain-tumor-mri")):
        (root / sub).mkdir()
        for src in test_images(task, 2):
            shutil.copy(src, root / sub / src.name)
    shutil.copytree(shared_path(*SERIES), root / "series" / "t1")
    shutil.copy(shared_path(*CHEST), root / "chest.dcm")
    (root / "bad").mkdir()
    jpeg = next((root / "cxr").iterdir())
    (root / "bad" / "truncated.jpg").write_bytes(jpeg.read_bytes()[:2000])
    (root / "bad" / "truncated.dcm").write_bytes(shared_path("dicom", "chest", "dx_chest_nih_gcp_no_finding.dcm")
                                                 .read_bytes()[:3000])
    (root / "bad" / "README.txt").write_text("exported by the PACS\n")
    return root


def env_for(model_dir, audit_dir=None):
    env = {**os.environ, "MEDKD_MODEL_DIRS": str(model_dir), "OMP_NUM_THREADS": "1"}
    if audit_dir is not None:
        env["MEDKD_AUDIT_DIR"] = str(audit_dir)
    return env


@pytest.fixture(scope="module")
def batch_run(model_dir, batch_dir, tmp_path_factory):
    """`medkd analyze --batch` over the mixed folder, as a user runs it."""
    work = tmp_path_factory.mktemp("run")
    out, audit_dir = work / "out", work / "audit"
    proc = run_medkd("analyze", "--batch", batch_dir, "--task", "cxr-covid", "--out", out, "--json", "--device", "cpu",
                     env=env_for(model_dir, audit_dir))
    return proc, out, audit_dir


def read_summary(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_corrupt_file_is_reported_and_the_batch_goes_on(batch_run, batch_dir):
    proc, out, _ = batch_run
    assert proc.returncode == 3, proc.stderr  # some failed, others analysed
    assert "Traceback" not in proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    images = {f"{sub}/{p.name}" for sub in ("cxr", "brain") for p in (batch_dir / sub).iterdir()}
    assert [x["path"] for x in lines] == sorted(images | BAD | {"series/t1", "chest.dcm"})  # the series is one study
    for line in lines:
        if line["path"] in BAD:
            assert line["teacher"] is None and line["student"] is None and set(line["errors"]) == {"open"}
            assert f"error: {line['path']}: {line['errors']['open']}" in proc.stderr.splitlines()
            continue
        assert line["errors"] == {} and line["task"] == "cxr-covid"
        for role in ("teacher", "student"):
            r = line[role]
            assert set(r["probabilities"]) == set(TASKS["cxr-covid"]) and abs(sum(r["probabilities"].values()) - 1) < 1e-6
            assert r["predicted"] == max(r["probabilities"], key=r["probabilities"].get)
            assert r["card"] == f"cxr-covid/{role}" and "calibrated" in r
        assert line["same_class"] == (line["teacher"]["predicted"] == line["student"]["predicted"])
        assert {"pearson", "ssim", "iou_top20"} <= line["agreement"].keys()
    assert any("chest radiographs" in w for w in next(x for x in lines if x["path"] == "series/t1")["warnings"])
    assert sum(1 for x in proc.stderr.splitlines() if x.startswith("error: ")) == len(BAD)
    assert "6 of 8 studies analysed" in proc.stderr and "1 document(s) skipped" in proc.stderr


def test_the_summary_has_one_sortable_row_per_study(batch_run):
    proc, out, _ = batch_run
    lines = {x["path"]: x for x in map(json.loads, proc.stdout.splitlines())}
    rows = read_summary(out / "summary.csv")
    assert [r["path"] for r in rows] == list(lines)
    assert list(rows[0])[:10] == ["path", "series", "status", "disagree", "heatmap_disagreement", "teacher_ood_score",
                                  "student_ood_score", "out_of_distribution", "teacher_uncertainty",
                                  "student_uncertainty"]
    assert {f"{role}_p_{c}" for role in ("teacher", "student") for c in TASKS["cxr-covid"]} <= rows[0].keys()
    for row in rows:
        line = lines[row["path"]]
        if line["teacher"] is None:
            assert row["status"] == "error" and row["error"] == line["errors"]["open"] and row["teacher_predicted"] == ""
            assert row["disagree"] == row["teacher_uncertainty"] == ""
            continue
        t, s = line["teacher"], line["student"]
        assert row["status"] == "ok" and row["error"] == ""
        assert row["disagree"] == ("0" if line["same_class"] else "1")
        pearson = line["agreement"]["pearson"]  # None for a flat map (a random model may give one)
        assert row["heatmap_disagreement"] == ("" if pearson is None else f"{1 - pearson:.4f}")
        assert float(row["teacher_uncertainty"]) == pytest.approx(1 - max(t["probabilities"].values()), abs=1e-4)
        assert float(row["student_p_covid"]) == pytest.approx(s["probabilities"]["covid"], abs=1e-4)
        assert (row["teacher_predicted"], row["student_predicted"]) == (t["predicted"], s["predicted"])
        # The OOD columns are read from the results' `ood` entry, and stay empty while it is absent.
        ood = t.get("ood") or {}
        assert row["teacher_ood_score"] == ("" if ood.get("score") is None else f"{ood['score']:.4f}")
    assert not [p for p in out.iterdir() if p.name != "summary.csv"]  # no per-study files by default


def test_every_analysis_is_audited_without_identifiers(batch_run):
    proc, out, audit_dir = batch_run
    entries = [json.loads(x) for x in (audit_dir / "audit.jsonl").read_text().splitlines()]
    analyses = [e for e in entries if e["event"] == "analysis"]
    assert sorted(e["result"] for e in analyses) == ["error"] * 2 + ["ok"] * 6
    assert {e["error"] for e in analyses if e["result"] == "error"} <= {"TruncatedStudyError", "CorruptStudyError"}
    assert all(e["models"]["teacher"]["id"] == "cxr-covid/teacher" for e in analyses)
    assert run_medkd("audit", "verify", env={**os.environ, "MEDKD_AUDIT_DIR": str(audit_dir)}).returncode == 0
    ds = pydicom.dcmread(shared_path(*CHEST), stop_before_pixels=True)
    secrets = [str(ds.PatientName), str(ds.PatientID), str(ds.StudyInstanceUID)]
    texts = [proc.stdout, proc.stderr, (out / "summary.csv").read_text(), (audit_dir / "audit.jsonl").read_text()]
    assert not [s for s in secrets for t in texts if s and s in t]
    assert "truncated" not in texts[3] and "chest.dcm" not in texts[3]  # no file paths in the audit log


# ------------------------------------------------------------------------------ in-process


@pytest.fixture
def medkd(model_dir, monkeypatch, capsys):
    """`medkd ARGS` in this process: (exit code, stdout, stderr)."""
    from medkd_desktop.cli import main

    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_dir))

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_a_clean_folder_exits_0_and_exports_write_a_folder_per_study(medkd, tmp_path):
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    image = test_images("brain-tumor-mri", 1)[0]
    shutil.copy(image, src / "a" / "scan.jpg")
    shutil.copy(image, src / "b" / "scan.jpg")  # same name in another folder: its own output folder
    code, stdout, stderr = medkd("analyze", "--batch", src, "--task", "brain-tumor-mri", "--out", tmp_path / "out",
                                 "--json", "--exports", "--no-pdf", "--device", "cpu")
    assert code == 0, stderr
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert [x["path"] for x in lines] == ["a/scan.jpg", "b/scan.jpg"]
    for line, folder in zip(lines, ("a__scan.jpg", "b__scan.jpg")):
        assert set(line["files"]) == {"png", "json"} and line["errors"] == {}
        assert Path(line["files"]["png"]).parent == tmp_path / "out" / folder
        assert json.loads(Path(line["files"]["json"]).read_text())["student"]["predicted"] == line["student"]["predicted"]
    assert lines[0]["teacher"] == lines[1]["teacher"]  # the same image gives the same result
    assert "error" not in stderr


def test_a_folder_of_bad_files_exits_2_and_still_writes_the_summary(medkd, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    (src / "IM0001").write_bytes(b"not an image at all" * 20)  # no name says "document": a failed study
    code, stdout, stderr = medkd("analyze", "--batch", src, "--task", "cxr-covid", "--out", tmp_path / "out")
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: none of the 2 studies")
    assert [r["status"] for r in read_summary(tmp_path / "out" / "summary.csv")] == ["error", "error"]
    assert stdout.splitlines() == ["failed  IM0001", "failed  scan.jpg"]


@pytest.mark.parametrize("args, message", [
    (["--batch", "{tmp}/missing", "--task", "cxr-covid"], "does not exist"),
    (["--batch", "{tmp}/docs", "--task", "cxr-covid"], "no studies found under"),
    (["--batch", "{tmp}/docs"], "--batch needs --task"),
    (["{tmp}/docs/README.md", "--batch", "{tmp}/docs", "--task", "cxr-covid"], "not both"),
    (["--batch", "{tmp}/docs", "--task", "cxr-covid", "--slice", "3"], "--slice applies to one study"),
    (["--batch", "{tmp}/docs", "--task", "nope"], "No models are installed for task 'nope'"),
    (["{tmp}/docs/README.md", "--exports"], "--exports applies to --batch"),
    (["--batch", "{tmp}/out", "--task", "cxr-covid"], "--out must not be the batch folder"),
    (["--task", "cxr-covid"], "give a study PATH, or --batch DIR"),
])
def test_bad_batch_requests_exit_2_with_one_line(medkd, tmp_path, args, message):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("# nothing to analyse\n")
    if "{tmp}/out" in args:
        (tmp_path / "out").mkdir()
    code, stdout, stderr = medkd("analyze", *[a.format(tmp=tmp_path) for a in args], "--out", tmp_path / "out")
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


def test_a_study_the_pair_cannot_analyse_is_an_error_row(medkd, tmp_path, monkeypatch):
    """An analysis failure (the pair cannot read the study) and an unexpected error while opening
    one study each fail that study only; both are audited by class name."""
    from medkd_desktop.inference import batch
    from medkd_desktop.inference.engine import Engine, IncompatibleStudyError

    src = tmp_path / "in"
    src.mkdir()
    for name, image in zip(("a.jpg", "b.jpg", "c.jpg"), test_images("cxr-covid", 3)):
        shutil.copy(image, src / name)
    real_analyze, real_open = Engine.analyze, batch.open_study

    def analyze(self, study, *args, **kwargs):
        if study.source.name == "b.jpg":
            raise IncompatibleStudyError("The chest models cannot read this study.")
        return real_analyze(self, study, *args, **kwargs)

    def open_study(path, **kwargs):
        if Path(path).name == "c.jpg":
            raise RuntimeError(f"reader bug at {path}")
        return real_open(path, **kwargs)

    monkeypatch.setattr(Engine, "analyze", analyze)
    monkeypatch.setattr(batch, "open_study", open_study)
    monkeypatch.setenv("MEDKD_AUDIT_DIR", str(tmp_path / "audit"))
    code, stdout, stderr = medkd("analyze", "--batch", src, "--task", "cxr-covid", "--out", tmp_path / "out", "--json")
    assert code == 3
    lines = {x["path"]: x for x in map(json.loads, stdout.splitlines())}
    assert lines["a.jpg"]["errors"] == {} and lines["a.jpg"]["teacher"] is not None
    assert lines["b.jpg"]["errors"] == {"analysis": "The chest models cannot read this study."}
    assert set(lines["c.jpg"]["errors"]) == {"analysis"} and "unexpected error" in lines["c.jpg"]["errors"]["analysis"]
    assert "reader bug" not in stdout + stderr  # the library's text stays out of the outputs
    assert "error: b.jpg: The chest models cannot read this study." in stderr.splitlines()
    entries = [json.loads(x) for x in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
    assert [(e["result"], e.get("error")) for e in entries if e["event"] == "analysis"] == [
        ("ok", None), ("error", "IncompatibleStudyError"), ("error", "RuntimeError")]


def test_an_interrupted_batch_leaves_a_readable_partial_summary(medkd, tmp_path, monkeypatch):
    from medkd_desktop.inference import batch

    src = tmp_path / "in"
    src.mkdir()
    for i, image in enumerate(test_images("cxr-covid", 4)):
        shutil.copy(image, src / f"{i}.jpg")
    real_run, calls = batch.BatchRunner.run, []

    def run_then_interrupt(self, item):
        calls.append(item.rel)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(self, item)

    monkeypatch.setattr(batch.BatchRunner, "run", run_then_interrupt)
    code, stdout, stderr = medkd("analyze", "--batch", src, "--task", "cxr-covid", "--out", tmp_path / "out", "--json")
    assert code == 130 and "interrupted" in stderr
    assert [json.loads(x)["path"] for x in stdout.splitlines()] == ["0.jpg", "1.jpg"]
    assert [r["path"] for r in read_summary(tmp_path / "out" / "summary.csv")] == ["0.jpg", "1.jpg"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["summary.csv"]  # no temporary file left


# ------------------------------------------------------------------------------ core pieces


def test_discovery_groups_dicom_series_and_skips_what_is_no_study(tmp_path):
    from medkd_desktop.inference.batch import discover, export_names

    mixed = tmp_path / "in" / "mixed"
    mixed.mkdir(parents=True)
    for src, n in ((shared_path(*SERIES), 3), (shared_path("dicom", "series", "canon_mr_dti_ax_vol1_40sl"), 4)):
        for f in sorted(src.iterdir())[:n]:
            shutil.copy(f, mixed / f.name)
    nested = tmp_path / "in" / "nested"
    for i, f in enumerate(sorted(shared_path("dicom", "series", "siemens_mr_epi_mosaic_2vol").iterdir())):
        # one series across two sub-folders
        (nested / f"part{i}").mkdir(parents=True)
        shutil.copy(f, nested / f"part{i}" / f.name)
    report = pydicom.dcmread(shared_path(*CHEST))  # a DICOM object without an image: not a study
    for kw in ("PixelData", "Rows", "Columns"):
        delattr(report, kw)
    report.save_as(tmp_path / "in" / "report.dcm")
    (tmp_path / "in" / ".hidden.jpg").write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "in" / "out"  # the batch's own output, inside the folder: never read
    out.mkdir()
    shutil.copy(test_images("cxr-covid", 1)[0], out / "old.jpg")
    shutil.copy(test_images("cxr-covid", 1)[0], tmp_path / "in" / "x.jpg")

    found = discover(tmp_path / "in", exclude=[out])
    got = [(s.rel, s.series_label, s.n_files, s.kind) for s in found.studies]
    assert got == [("mixed", "series-4", 3, "dicom"), ("mixed", "series-8006", 4, "dicom"),
                   ("nested", "", 2, "dicom"), ("x.jpg", "", 1, "image")]
    assert found.skipped == {"DICOM file(s) without an image": 1}
    assert list(export_names(found.studies).values()) == ["mixed__series-4", "mixed__series-8006", "nested", "x.jpg"]
    assert "1.3." not in repr(found.studies)  # no UIDs in reprs, so none in a log


def test_a_row_reads_ood_from_the_result_and_leaves_it_empty_without(tmp_path):
    from medkd_desktop.inference.batch import SummaryTable, TriageRow

    def result(p, ood=None):
        return {"probabilities": {"a": p, "b": 1 - p}, "predicted": "a" if p >= 0.5 else "b",
                **({"ood": ood} if ood is not None else {})}

    line = {"path": "x/1.png", "series": None, "teacher": result(0.9, {"score": 7.5, "threshold": 5.0,
                                                                         "in_distribution": False}),
            "student": result(0.3, {"score": None}), "same_class": False, "agreement": {"pearson": -0.25},
            "warnings": [], "errors": {}}
    row = TriageRow.from_line(line)
    assert (row.disagree, row.heatmap_disagreement, row.teacher_ood_score, row.student_ood_score) == (True, 1.25, 7.5, None)
    assert row.out_of_distribution is True
    assert row.teacher_uncertainty == pytest.approx(0.1) and row.student_uncertainty == pytest.approx(0.3)
    plain = TriageRow.from_line({**line, "teacher": result(0.6), "student": result(0.6), "agreement": {"pearson": None}})
    assert (plain.teacher_ood_score, plain.out_of_distribution, plain.heatmap_disagreement) == (None, None, None)

    table = SummaryTable(tmp_path / "summary.csv", ["a", "b"], interval=0)
    table.add(row)
    table.add(plain)
    rows = read_summary(tmp_path / "summary.csv")
    assert [r["teacher_ood_score"] for r in rows] == ["7.5000", ""]
    assert [r["out_of_distribution"] for r in rows] == ["1", ""] and rows[0]["disagree"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]
