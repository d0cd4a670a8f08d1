"""`medkd` as a user runs it: a real subprocess, real files, exit codes and output."""
from __future__ import annotations

import json

import pytest
from testdata import run_medkd as run
from testdata import shared_path


def test_info_json_describes_a_dicom_series():
    out = run("info", shared_path("dicom/series/ge_mr_epi_fmri_nih_15sl_x10"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert {"kind", "modality", "n_frames", "shape", "warnings"} <= info.keys()
    assert (info["kind"], info["modality"], info["n_volumes"], info["n_slices"]) == ("dicom-series", "MR", 10, 15)


def test_info_text_for_a_chest_radiograph():
    out = run("info", shared_path("dicom/chest/cr_chest_pa_nema_RG1_J2KI.dcm"))
    assert out.returncode == 0, out.stderr
    assert "MONOCHROME1" in out.stdout and "CR" in out.stdout
    assert "RG1" not in out.stdout  # patient name stays hidden


@pytest.mark.parametrize("content", [b"", b"not a medical image at all" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 30])
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content):
    bad = tmp_path / "study.dcm"
    bad.write_bytes(content)
    out = run("info", bad)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in out.stderr


def test_missing_file_exits_2(tmp_path):
    out = run("info", tmp_path / "missing.dcm", "--json")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stdout == ""


def test_bench_load_prints_medians(tmp_path):
    data = shared_path()
    out = run("bench", "load", "--json", "--repeat", "1", "--data", data)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    results = payload["results"]
    # the host's share of the CPU during the run, so a reader can tell an inflated timing
    assert 0.0 <= payload["cpu_steal_pct"] <= 100.0
    timed = {k: v for k, v in results.items() if "median_ms" in v}
    assert "dicom_series_ge_epi_150_files" in timed and timed["dicom_series_ge_epi_150_files"]["n_frames"] == 150
    assert all(v["median_ms"] > 0 for v in timed.values())
    assert not any("error" in v for v in results.values())


def test_truncated_dicom_gives_one_line_without_the_path(tmp_path):
    src = shared_path("dicom/chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm").read_bytes()
    bad = tmp_path / "Doe^Jane_chest.dcm"  # file names can hold patient names
    bad.write_bytes(src[: len(src) // 2])
    out = run("info", bad)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: ")
    assert "Doe" not in out.stderr


def test_a_file_only_the_gdcm_fallback_decodes_shows_one_warning_and_no_decoder_noise():
    """12-bit JPEG Extended: pydicom's decoders each log a traceback and GDCM prints its failed
    attempts from C before it succeeds. The user sees the summary and one warning; the noise
    belongs in the debug log (``-vv``)."""
    path = shared_path("dicom/misc/single/pydicom_JPEG-lossy.dcm")
    out = run("info", path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    warnings = [line for line in out.stdout.splitlines() if line.strip().startswith("warning:")]
    assert len(warnings) == 1 and "GDCM" in warnings[0]
    verbose = run("-vv", "info", path)
    assert verbose.returncode == 0
    assert "Traceback" not in verbose.stderr and "ERROR" not in verbose.stderr
    assert "DEBUG medkd_desktop.studies.dicom_tags: GDCM printed: Unsupported JPEG data precision 12" in verbose.stderr
