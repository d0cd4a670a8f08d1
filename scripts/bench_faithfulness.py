#!/usr/bin/env python
"""What the review window's "Check faithfulness" costs, per task and model: JSON on stdout.

Why: the check re-runs the shown analysis with the engine's ``faithfulness=True`` path (deletion
and insertion AUC, ``explain.metrics``, 20 steps each: 2 x 21 perturbed images per model, batches
of 32). This times it as the window runs it: each task's demo study (the bundled sample; for the
brain-tumour pair, whose bundled sample is an EPI loader series, the first glioma ``test`` image of
the shared data, as ``scripts/make_screenshots.sh``), opened and paired by a ``ReviewSession``,
checked by ``inference.faithfulness.check`` on the models in the registry (the bundled pairs).

Per task and model, medians over ``--repeat`` checks (after one warm-up):

* ``faithfulness_ms``: the faithfulness step alone (the engine's explain step with faithfulness on,
  minus the explanation's own time: ``inference.faithfulness.step_ms``);
* ``explain_ms``: the explanation the check computes again;
* ``check_ms``: the whole check (models are cached: preprocess, two forwards, two maps, two
  faithfulness steps, agreement), against ``analysis_ms``, the same analysis without faithfulness
  (layer strip off in both);
* the figures themselves and whether the check reproduced the analysis' maps.

Usage: ``.venv/bin/python scripts/bench_faithfulness.py [--tasks cxr-covid,...] [--method gradcam]
[--repeat 3] [--device cpu] [--threads 1] > docs/bench/faithfulness.json`` (``--threads``: torch
threads; the window uses every core but one). The 1-minute load average at the start is recorded:
on a shared machine it says how much of the time other programs took.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "resources" / "samples"
SHARED_DATA = Path(os.environ.get("MEDKD_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEMO = {
    "cxr-covid": SAMPLES / "chest_xray_cr_pa_nema.dcm",
    "histo-lc25000": SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg",
    "skin-ham10000": SAMPLES / "dermoscopy_melanoma_ham10000.jpg",
    "fmri-asd": SAMPLES / "fmri_amplitude_map_abide_nyu_0050957.nii.gz",
}


def brain_demo() -> Path | None:
    """The first glioma test image of the shared brain-tumour data (None without the data)."""
    manifest = SHARED_DATA / "brain-tumor-mri" / "manifest.csv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["label"] == "glioma" and row["split"] == "test":
                return manifest.parent / row["path"]
    return None


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def bench_task(engine: Any, registry: Any, task: str, path: Path, method: str, repeat: int) -> dict[str, Any]:
    from medkd_desktop.inference import faithfulness as fa
    from medkd_desktop.inference.session import ReviewSession
    from medkd_desktop.studies import open_study

    session = ReviewSession(registry, forced_task=task)
    session.method = method
    session.study = open_study(path)
    session.propose()
    job = session.job()
    if job is None:
        return {"skipped": f"no installed pair for {task}"}
    shown = engine.analyze(**job.kwargs(), strip=False)  # what the window shows (and the warm-up)
    fa.check(engine, job)  # warm-up of the faithfulness path
    runs: dict[str, list[float]] = {}
    reproduced = True
    checked = shown
    for _ in range(repeat):
        t0 = time.perf_counter()
        plain = engine.analyze(**job.kwargs(), strip=False)
        runs.setdefault("analysis_ms", []).append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        checked = fa.check(engine, job)
        runs.setdefault("check_ms", []).append((time.perf_counter() - t0) * 1000)
        for role, ms in fa.step_ms(checked, method).items():
            runs.setdefault(f"{role}_faithfulness_ms", []).append(ms)
            runs.setdefault(f"{role}_explain_ms", []).append(1000 * checked.result(role).explain_seconds[method])
        reproduced &= fa.merge(plain, checked, method)
    out: dict[str, Any] = {
        "study": path.name, "frame_index": list(checked.frame_index), "n_tiles": checked.n_tiles,
        "check_ms": _median(runs["check_ms"]), "analysis_ms": _median(runs["analysis_ms"]),
        "maps_reproduced": reproduced,
    }
    for role in fa.ROLES:
        res = checked.result(role)
        out[role] = {
            "card": res.card_id,
            "faithfulness_ms": _median(runs.get(f"{role}_faithfulness_ms", [float("nan")])),
            "explain_ms": _median(runs.get(f"{role}_explain_ms", [float("nan")])),
            "forward_ms": round(res.latency_ms, 1),
            **{k: round(v, 4) for k, v in res.faithfulness.get(method, {}).items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", help="comma-separated tasks (default: every task with a demo study)")
    p.add_argument("--method", default="gradcam")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from medkd_desktop.inference.engine import Engine
    from medkd_desktop.inference.faithfulness import STEPS
    from medkd_desktop.models.registry import ModelRegistry

    torch.set_num_threads(args.threads)
    demo = dict(DEMO)
    brain = brain_demo()
    if brain is not None:
        demo["brain-tumor-mri"] = brain
    tasks = args.tasks.split(",") if args.tasks else sorted(demo)
    registry = ModelRegistry()
    engine = Engine(registry=registry, device=args.device)
    result: dict[str, Any] = {
        "method": args.method, "steps": STEPS, "repeat": args.repeat, "device": engine.device,
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "tasks": {},
    }
    if engine.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
    for task in tasks:
        path = demo.get(task)
        if path is None or not path.exists():
            result["tasks"][task] = {"skipped": "no demo study"}
            continue
        print(f"{task}…", file=sys.stderr, flush=True)
        result["tasks"][task] = bench_task(engine, registry, task, path, args.method, args.repeat)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
