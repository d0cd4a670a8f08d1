"""`medkd bench inference`: teacher vs student latency for every task, in one run.

Batch 1, median of runs, on the CPU (all cores unless told), models loaded from
trained_models/ exactly as the app loads them; the ratio is what the 3x target reads.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..models.registry import ModelRegistry
from .timing import time_call


def bench_inference(repeat: int = 30, threads: int = 0, registry: ModelRegistry | None = None) -> dict[str, Any]:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    registry = registry or ModelRegistry()
    tasks: dict[str, Any] = {}
    for task in registry.tasks():
        try:
            pair = registry.pair(task)
        except Exception as exc:  # a task with only some roles trained so far
            tasks[task] = {"skipped": str(exc)}
            continue
        row: dict[str, Any] = {}
        for role, card in (("teacher", pair.teacher), ("student", pair.student)):
            model = registry.load(card)
            x = torch.randn(1, card.input.channels, card.input.size, card.input.size)
            with torch.inference_mode():
                row[f"{role}_ms"] = time_call(lambda: model(x), repeat=repeat, warmup=3)["median_ms"]
            row[f"{role}_params"] = sum(p.numel() for p in model.parameters())
        row["speedup"] = round(row["teacher_ms"] / row["student_ms"], 2)
        tasks[task] = row
    return {"device": "cpu", "threads": torch.get_num_threads(), "repeat": repeat, "tasks": tasks}
