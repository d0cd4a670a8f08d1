"""`medkd bench inference`: teacher vs student latency for every task, in one run.

Batch 1, median of runs, on the CPU (all cores unless told), models loaded from
trained_models/ exactly as the app loads them; the ratio is what the 3x target reads. Teacher and
student calls alternate (``time_interleaved``) so that both medians come from the same minutes.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..models.registry import ModelRegistry
from .timing import time_interleaved


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
        cards = {"teacher": pair.teacher, "student": pair.student}
        models = {role: registry.load(card) for role, card in cards.items()}
        calls = {
            role: (lambda m=models[role], x=torch.randn(1, c.input.channels, c.input.size, c.input.size): m(x))
            for role, c in cards.items()
        }
        with torch.inference_mode():
            timed = time_interleaved(calls, repeat=repeat, warmup=3)
        row: dict[str, Any] = {}
        for role, model in models.items():
            row[f"{role}_ms"] = timed[role]["median_ms"]
            row[f"{role}_params"] = sum(p.numel() for p in model.parameters())
        row["speedup"] = round(row["teacher_ms"] / row["student_ms"], 2)
        tasks[task] = row
    return {"device": "cpu", "threads": torch.get_num_threads(), "repeat": repeat, "tasks": tasks}
