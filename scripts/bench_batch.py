#!/usr/bin/env python
"""Throughput of `medkd analyze --batch` against a loop of single `medkd analyze` calls, one run.

Why both in one run: this 2-core machine is shared (other engineers, training runs, the host's
CPU steal), so a throughput figure only means something as a ratio against a baseline measured
under the same load. Both sides are timed as a user runs them: whole processes, from start to
exit, on the same N test images of one task (the first N `test` rows of its manifest in
../shared/data), with the bundled models on the same device:

* ``batch``: one ``medkd analyze --batch DIR --task T --out OUT --json`` (triage only: the JSON
  lines and summary.csv, no per-study files; its default);
* ``singles``: N ``medkd analyze IMAGE --task T --out OUT_i --json --no-pdf`` processes, one after
  the other. ``--no-pdf`` makes it the cheapest single loop that gives the same figures (a single
  analysis always writes its PNG overlay and analysis.json);
* ``batch_exports``: ``--batch … --exports --no-pdf``, which writes those same PNG + JSON files
  per study: the like-for-like comparison with ``singles``.

The batch and single results must agree (same engine, same pair): the predictions and the largest
probability difference between them are reported. Audit entries go to a throwaway folder.

Usage (low priority on the shared machine):
``nice -n 19 .venv/bin/python scripts/bench_batch.py [--task cxr-covid] [--n 100] [--device cpu]``
Prints the figures as JSON, saves them in docs/bench/batch.json and rewrites the measured section
of docs/TRIAGE.md (``--no-doc``: print only; ``--from-json docs/bench/batch.json``: only rewrite
the section from saved figures, after a change of wording).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medkd_desktop.bench.timing import CpuSteal  # noqa: E402
from medkd_desktop.paths import shared_data_dir  # noqa: E402

DOC = ROOT / "docs" / "TRIAGE.md"
RAW = ROOT / "docs" / "bench" / "batch.json"
BEGIN, END = "<!-- bench_batch:begin -->", "<!-- bench_batch:end -->"
MEDKD = [sys.executable, "-m", "medkd_desktop.cli"]


def test_images(task: str, n: int) -> list[Path]:
    folder = shared_data_dir() / task
    with open(folder / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    if len(rows) < n:
        raise SystemExit(f"error: {task} has only {len(rows)} test images")
    return [folder / r["path"] for r in rows[:n]]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[3:6])} … exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return seconds, proc


def run(task: str, n: int, device: str) -> dict[str, Any]:
    images = test_images(task, n)
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp_name:
        tmp = Path(tmp_name)
        inputs = tmp / "inputs"
        inputs.mkdir()
        names = []
        for i, src in enumerate(images):  # numbered: two classes may hold the same file name
            names.append(f"{i:04d}_{src.name}")
            (inputs / names[-1]).symlink_to(src)
        env = {k: v for k, v in os.environ.items() if k != "MEDKD_MODEL_DIRS"}  # the bundled pair
        env["MEDKD_AUDIT_DIR"] = str(tmp / "audit")  # keep the user's audit log clean
        load_before = os.getloadavg()
        with CpuSteal() as steal:
            batch_s, batch = timed([*MEDKD, "analyze", "--batch", str(inputs), "--task", task, "--out",
                                    str(tmp / "batch"), "--json", "--device", device], env)
            singles: list[float] = []
            single_lines = []
            for i, name in enumerate(names):
                s, proc = timed([*MEDKD, "analyze", str(inputs / name), "--task", task, "--out",
                                 str(tmp / "singles" / str(i)), "--json", "--no-pdf", "--device", device], env)
                singles.append(s)
                single_lines.append(json.loads(proc.stdout))
            exports_s, _ = timed([*MEDKD, "analyze", "--batch", str(inputs), "--task", task, "--out",
                                  str(tmp / "batch_exports"), "--json", "--exports", "--no-pdf", "--device", device], env)
        batch_lines = [json.loads(x) for x in batch.stdout.splitlines()]
    assert [x["path"] for x in batch_lines] == names, "the batch did not analyse every image once"
    same = sum(b[r]["predicted"] == s[r]["predicted"] for b, s in zip(batch_lines, single_lines)
               for r in ("teacher", "student"))
    max_diff = max(abs(b[r]["probabilities"][c] - s[r]["probabilities"][c])
                   for b, s in zip(batch_lines, single_lines) for r in ("teacher", "student")
                   for c in b[r]["probabilities"])
    singles_s = sum(singles)
    ordered = sorted(singles)
    return {
        "task": task,
        "n_studies": n,
        "device": device,
        "batch": {"seconds": round(batch_s, 2), "studies_per_s": round(n / batch_s, 3)},
        "batch_exports": {"seconds": round(exports_s, 2), "studies_per_s": round(n / exports_s, 3)},
        "singles": {"seconds": round(singles_s, 2), "studies_per_s": round(n / singles_s, 3),
                    "median_call_s": round(ordered[n // 2], 2), "min_call_s": round(ordered[0], 2),
                    "max_call_s": round(ordered[-1], 2)},
        "ratio": round(singles_s / batch_s, 2),
        "ratio_exports": round(singles_s / exports_s, 2),
        "same_predictions": f"{same}/{2 * n}",
        "max_probability_difference": max_diff,
        "batch_summary_line": batch.stderr.strip().splitlines()[-1].split("; summary:")[0],
        "cpu_steal_pct": steal.pct,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "niceness": os.nice(0),
        "date": dt.date.today().isoformat(),
    }


def section(r: dict[str, Any]) -> str:
    b, e, s = r["batch"], r["batch_exports"], r["singles"]
    per_study = b["seconds"] / r["n_studies"]
    overhead = s["median_call_s"] - per_study
    return f"""{BEGIN}
Measured {r['date']} by `scripts/bench_batch.py` ({r['n_studies']} `test` images of `{r['task']}`, bundled
models, `--device {r['device']}`, {r['machine']}, niceness {r['niceness']}; CPU steal {r['cpu_steal_pct']} %,
load average {r['load_average_before'][0]} before and {r['load_average_after'][0]} after). Whole processes,
start to exit, in one run:

| run | what it writes per study | wall time | studies/s |
|---|---|---|---|
| `medkd analyze --batch` | a JSON line and a summary.csv row | {b['seconds']:.1f} s | **{b['studies_per_s']:.2f}** |
| `medkd analyze --batch --exports --no-pdf` | + overlay PNG and analysis.json | {e['seconds']:.1f} s | {e['studies_per_s']:.2f} |
| {r['n_studies']} × `medkd analyze --no-pdf` | overlay PNG and analysis.json | {s['seconds']:.1f} s | {s['studies_per_s']:.2f} |

The batch is **{r['ratio']:.1f}×** the throughput of the loop of single calls ({r['ratio_exports']:.1f}× with the same
files written). A single call took {s['median_call_s']:.1f} s (median; {s['min_call_s']:.1f}–{s['max_call_s']:.1f} s), {overhead:.1f} s more than a
study costs inside the batch ({per_study:.1f} s): starting Python, importing torch, loading and warming up
the two models, which the batch does once. Batch and
single calls gave the same predicted class in {r['same_predictions']} model results (largest probability
difference {r['max_probability_difference']:.1e}). The batch's own line: `{r['batch_summary_line'].split('; summary:')[0]}`
(its rate excludes start-up and model loading). Raw figures: `docs/bench/batch.json`.
{END}"""


def write_doc(r: dict[str, Any]) -> None:
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps(r, indent=2) + "\n")
    text = DOC.read_text() if DOC.exists() else "# Batch triage\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section(r) + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Throughput\n\n" + section(r) + "\n"
    DOC.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cxr-covid")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-doc", dest="doc", action="store_false", help="print the JSON only")
    p.add_argument("--from-json", dest="from_json", type=Path,
                   help="measure nothing: rewrite the doc from saved figures (e.g. docs/bench/batch.json)")
    args = p.parse_args()
    result = json.loads(args.from_json.read_text()) if args.from_json else run(args.task, args.n, args.device)
    print(json.dumps(result, indent=2))
    if args.doc:
        write_doc(result)


if __name__ == "__main__":
    main()
