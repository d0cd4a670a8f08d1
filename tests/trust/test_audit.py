"""The audit trail: the chain holds, every kind of tampering is caught at the right seq, rotation
and two concurrent writers keep it whole, and no identifier of the study ever reaches the file."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pydicom
import pytest
from testdata import SAMPLES, run_medkd

from medkd_desktop.trust import audit
from medkd_desktop.trust.audit_chain import GENESIS, AuditChain, line_hash


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDKD_AUDIT_DIR", str(tmp_path / "audit"))
    monkeypatch.delenv("MEDKD_AUDIT_MAX_BYTES", raising=False)
    return tmp_path / "audit"


def fill(n: int) -> None:
    for i in range(n):
        assert audit.record("open", study_uid=f"1.2.3.{i}", outcome={"kind": "dicom-file"}) is not None


def lines(folder: Path) -> list[bytes]:
    return (folder / "audit.jsonl").read_bytes().splitlines(keepends=True)


def rewrite(folder: Path, new: list[bytes]) -> None:
    (folder / "audit.jsonl").write_bytes(b"".join(new))


def test_appends_chain_and_verify(folder):
    fill(5)
    entries = audit.read()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    raw = lines(folder)
    assert entries[0]["prev"] == GENESIS
    assert all(json.loads(raw[i])["prev"] == line_hash(raw[i - 1]) for i in range(1, 5))
    head = json.loads((folder / "head.json").read_text())
    assert head == {"seq": 5, "hash": line_hash(raw[-1])}
    e = entries[0]
    assert e["event"] == "open" and e["result"] == "ok" and e["version"] and e["user"]
    assert e["time"].endswith("Z") and len(e["study"]) == 64 and "1.2.3.0" not in raw[0].decode()
    assert audit.study_hash("1.2.3.0") == e["study"]  # the same study: the same hash on this machine
    assert audit.record("open").get("study") is None  # no UID: null, not a hash of something else
    result = audit.verify()
    assert result.ok and result.entries == 6, result.line()


def test_the_salt_makes_hashes_local(folder, tmp_path):
    h1 = audit.study_hash("1.2.3")
    other = audit.study_hash("1.2.3", tmp_path / "elsewhere")
    assert h1 != other and h1 != __import__("hashlib").sha256(b"1.2.3").hexdigest()


def _edit_line3(raw):
    e = json.loads(raw[2])
    e["result"] = "error"
    raw[2] = (json.dumps(e, separators=(",", ":")) + "\n").encode()
    return raw


@pytest.mark.parametrize("tamper, seq, words", [
    (_edit_line3, 3, "altered"),
    (lambda raw: raw[:1] + raw[2:], 2, "missing"),
    (lambda raw: [raw[0], raw[2], raw[1], *raw[3:]], 2, "out of order"),
    (lambda raw: raw[:-1], 5, "truncated"),
    (lambda raw: raw[:2] + [raw[1]] + raw[2:], 2, "inserted"),
    (lambda raw: raw[:2] + [raw[2][: len(raw[2]) // 2] + b"\n"] + raw[3:], 3, "not valid JSON"),
])
def test_tampering_is_caught_at_its_seq(folder, tamper, seq, words):
    fill(5)
    rewrite(folder, tamper(lines(folder)))
    result = audit.verify()
    assert not result.ok and result.seq == seq and words in result.problem, result.line()


def test_an_edited_last_line_and_a_deleted_head_are_caught(folder):
    fill(4)
    raw = lines(folder)
    rewrite(folder, raw[:-1] + [raw[-1].replace(b'"ok"', b'"error"')])
    assert audit.verify().seq == 4 and "head" in audit.verify().problem
    rewrite(folder, raw)
    assert audit.verify().ok
    (folder / "head.json").unlink()
    result = audit.verify()
    assert not result.ok and result.seq == 4 and "head file" in result.problem


def test_after_truncation_the_next_entry_does_not_hide_the_gap(folder):
    fill(4)
    rewrite(folder, lines(folder)[:-1])
    fill(1)  # continues from the head: seq 5 after seq 3
    result = audit.verify()
    assert not result.ok and result.seq == 4, result.line()


def test_a_head_left_behind_by_a_crash_is_caught_up(folder):
    fill(3)
    head = (folder / "head.json").read_bytes()
    fill(1)
    (folder / "head.json").write_bytes(head)  # as if the process died between line and head
    fill(1)
    assert [e["seq"] for e in audit.read()] == [1, 2, 3, 4, 5] and audit.verify().ok


def test_rotation_keeps_the_chain_and_tampering_in_a_rotated_file_shows(folder, monkeypatch):
    monkeypatch.setenv("MEDKD_AUDIT_MAX_BYTES", "1500")
    fill(20)
    files = AuditChain(folder).files()
    assert len(files) > 2 and files[-1].name == "audit.jsonl" and files[0].name.startswith("audit-1-")
    assert [e["seq"] for e in audit.read()] == list(range(1, 21))
    assert audit.verify().ok, audit.verify().line()
    first = files[0].read_bytes().splitlines(keepends=True)
    e = json.loads(first[1])
    e["user"] = "someone-else"
    files[0].write_bytes(first[0] + (json.dumps(e, separators=(",", ":")) + "\n").encode() + b"".join(first[2:]))
    result = audit.verify()
    assert not result.ok and result.seq == 2, result.line()
    files[0].write_bytes(b"".join(first))
    assert audit.verify().ok
    files[1].unlink()  # a whole rotated file removed
    result = audit.verify()
    assert not result.ok and "missing" in result.problem


def _writer(folder: str, n: int, barrier) -> None:
    os.environ["MEDKD_AUDIT_DIR"] = folder
    barrier.wait(60)  # both processes start appending together, so their appends really interleave
    for i in range(n):
        assert audit.record("analysis", study_uid=str(i)) is not None


def test_two_processes_appending_leave_one_chain(folder):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(folder), 50, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = audit.read()
    assert [e["seq"] for e in entries] == list(range(1, 101))
    assert audit.verify().ok, audit.verify().line()
    assert len({e["study"] for e in entries}) == 50  # each process wrote studies "0".."49"


def test_a_failed_append_warns_and_goes_on(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MEDKD_AUDIT_DIR", str(blocker / "audit"))  # under a file: cannot be made
    assert audit.record("open", error=OSError("/home/x/secret.dcm")) is None
    assert "audit" in caplog.text and "secret" not in caplog.text


def test_errors_keep_only_their_class_name(folder):
    entry = audit.record("export", error=OSError("/home/doe/study.dcm"))
    assert entry["result"] == "error" and entry["error"] == "OSError"
    assert "doe" not in (folder / "audit.jsonl").read_text()


def test_read_since_and_describe(folder):
    fill(2)
    assert len(audit.read(since=__import__("datetime").date(2000, 1, 1))) == 2
    assert audit.read(since=__import__("datetime").date(2999, 1, 1)) == []
    assert "open" in audit.describe(audit.read()[0])


# ---------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from model_factory import write_random_model

    from medkd_desktop.models.preprocess import InputSpec

    root = tmp_path_factory.mktemp("models")
    spec = InputSpec(size=64, channels=1, mean=(0.5,), std=(0.25,))
    for role in ("teacher", "student"):
        write_random_model(root, "cxr-covid", role, "cnn5", ["covid", "normal", "pneumonia"], spec,
                           arch_kwargs={"channels": [8, 8, 8, 8, 8]}, name=f"tiny {role}")
    return root


def test_cli_analyze_audits_without_identifiers_and_verify_exit_codes(model_dir, tmp_path):
    sample = SAMPLES / "chest_xray_cr_pa_nema.dcm"
    ds = pydicom.dcmread(sample, stop_before_pixels=True)
    name, pid, birth = str(ds.PatientName), str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", ""))
    assert name
    audit_folder = tmp_path / "audit"
    env = {**os.environ, "MEDKD_MODEL_DIRS": str(model_dir), "OMP_NUM_THREADS": "1",
           "MEDKD_AUDIT_DIR": str(audit_folder)}
    out = run_medkd("analyze", sample, "--task", "cxr-covid", "--out", tmp_path / "out", "--no-pdf",
                    "--device", "cpu", env=env)
    assert out.returncode == 0, out.stderr
    text = (audit_folder / "audit.jsonl").read_text()
    for secret in (name, name.replace("^", " "), pid, birth, str(sample), sample.name, str(tmp_path)):
        if secret:
            assert secret not in text, secret
    entries = [json.loads(line) for line in text.splitlines()]
    analysis = next(e for e in entries if e["event"] == "analysis")
    shas = {json.loads(p.read_text())["sha256"] for p in model_dir.rglob("*.json")}
    assert {analysis["models"]["teacher"]["sha256"], analysis["models"]["student"]["sha256"]} == shas
    assert analysis["study"] == audit.study_hash(str(ds.StudyInstanceUID), audit_folder)
    assert analysis["outcome"]["teacher"] in ("covid", "normal", "pneumonia")
    exports = {e["outcome"]["format"] for e in entries if e["event"] == "export"}
    assert exports == {"png", "json", "dicom"}

    ok = run_medkd("audit", "verify", env=env)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    listing = run_medkd("audit", "--json", env=env)
    assert [json.loads(line)["seq"] for line in listing.stdout.splitlines()] == [e["seq"] for e in entries]
    readable = run_medkd("audit", "--since", "2000-01-01", env=env)
    assert readable.returncode == 0 and "analysis" in readable.stdout
    assert run_medkd("audit", "--since", "2999-01-01", env=env).stdout == ""
    bad_date = run_medkd("audit", "--since", "yesterday", env=env)
    assert bad_date.returncode == 2 and bad_date.stderr.startswith("error: --since")
    (audit_folder / "head.json").unlink()
    bad = run_medkd("audit", "verify", env=env)
    assert bad.returncode == 1 and len(bad.stdout.strip().splitlines()) == 1 and "seq" in bad.stdout
