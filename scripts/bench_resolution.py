"""Would a larger input keep the student >= 3x faster than its teacher? (issue #20, progressive resizing)

    .venv/bin/python scripts/bench_resolution.py [--threads 2] [--repeat 30] [--json docs/bench/resolution.json]

Fine-tuning the last epochs at a higher resolution only makes sense where the student, run at that
size, still meets the speed target against its teacher at the teacher's own size. Per task: the
bundled teacher at its card's size and the bundled student at 128, 144 and 160 px, batch 1, the
calls alternating so that machine load hits every size alike; the median of ``--repeat`` calls.
Two threads by default, as ``medkd bench inference`` measures the speed target. Run it on an idle
machine: under load the ratios move by a third (two training jobs running: cxr 128 px 4.4x, against
3.5x idle), so the 1-minute load average at the start is recorded with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry, load_model

SIZES = (128, 144, 160)
TASKS = ("cxr-covid", "histo-lc25000", "skin-ham10000", "brain-tumor-mri")


def measure(task: str, registry: ModelRegistry, repeat: int) -> dict:
    teacher_card, student_card = registry.card(task, "teacher"), registry.card(task, "student")
    teacher, student = load_model(teacher_card), load_model(student_card)
    channels, teacher_px = teacher_card.input.channels, teacher_card.input.size
    calls = {"teacher": (teacher, teacher_px), **{f"student_{px}": (student, px) for px in SIZES}}
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for model, px in calls.values():  # warm-up: oneDNN picks its kernels per shape
            for _ in range(3):
                model(torch.rand(1, channels, px, px))
        for _ in range(repeat):
            for name, (model, px) in calls.items():
                x = torch.rand(1, channels, px, px)
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * statistics.median(v) for name, v in times.items()}
    return {"teacher_px": teacher_px, "ms": {k: round(v, 2) for k, v in ms.items()},
            "speedup": {px: round(ms["teacher"] / ms[f"student_{px}"], 2) for px in SIZES}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    registry = ModelRegistry([BUNDLED_DIR])
    result = {"threads": args.threads, "batch": 1, "repeat": args.repeat, "load_average": os.getloadavg()[0],
              "tasks": {task: measure(task, registry, args.repeat) for task in TASKS}}
    for task, r in result["tasks"].items():
        print(task, " ".join(f"{px} px {s}x" for px, s in r["speedup"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
