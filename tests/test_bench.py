"""The benchmark plumbing behind `medkd bench inference`: what the 3x speed target reads."""
from __future__ import annotations

import json
import time

from testdata import run_medkd

from medkd_desktop.bench.timing import time_interleaved

BUNDLED_TASKS = {"brain-tumor-mri", "cxr-covid", "fmri-asd", "histo-lc25000", "skin-ham10000"}


def test_interleaved_timing_alternates_calls_and_times_each():
    order: list[str] = []

    def slow() -> None:
        order.append("slow")
        time.sleep(0.005)

    def fast() -> None:
        order.append("fast")

    timed = time_interleaved({"slow": slow, "fast": fast}, repeat=4, warmup=1)
    # one call of each per round, so a slowdown of the machine falls on both sides of the ratio
    assert order == ["slow", "fast"] * 5
    assert timed["slow"]["runs"] == timed["fast"]["runs"] == 4
    assert timed["slow"]["median_ms"] >= 5.0 > timed["fast"]["median_ms"]


def test_bench_inference_reports_every_bundled_pair_with_its_ratio():
    out = run_medkd("bench", "inference", "--json", "--repeat", "2", "--threads", "1")
    assert out.returncode == 0, out.stderr
    tasks = json.loads(out.stdout)["tasks"]
    assert set(tasks) == BUNDLED_TASKS
    for task, row in tasks.items():
        assert row["teacher_ms"] > 0 and row["student_ms"] > 0, task
        assert row["speedup"] == round(row["teacher_ms"] / row["student_ms"], 2), task
        assert row["student_params"] < row["teacher_params"], task
