"""`medkd bench explain`: per task and method, how fast, how alike and how faithful the maps are.

Why a benchmark and not a test: the figures the app quotes about its explanations — the
student's explanation time against the teacher's, how often the two look at the same place,
how faithful each map is to its model — must be measured on real test images with the real
trained models, and they take minutes. Models come from the registry exactly as the app loads
them; images are ``test``-split rows of the task's manifest, opened through ``open_study`` and
analysed by the engine exactly as the window analyses them (each model explains its own
prediction), so the agreement figures here are the ones the window and ``medkd explain`` show. Tasks without a trained teacher/student pair are reported as skipped.
"""
from __future__ import annotations

import logging
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..explain import ExplainError, explain, list_methods
from ..inference.engine import AnalysisError, Engine, IncompatibleStudyError
from ..models.card import ModelCard
from ..models.preprocess import model_input_image, preprocess
from ..models.registry import ModelRegistry
from ..models.weights import ModelLoadError
from ..studies import StudyLoadError, open_study

log = logging.getLogger(__name__)

#: The issue's CPU targets: (method, role) -> upper limit of the median time in ms.
TIME_TARGETS_MS = {("gradcam", "student"): 50.0, ("feature_maps", "student"): 20.0, ("scorecam", "student"): 1500.0}
#: Score-CAM batched must be at least this many times faster than one image per pass.
SCORECAM_BATCH_SPEEDUP_TARGET = 4.0


def manifest_for(card: ModelCard, data_root: Path) -> Path:
    """The task's manifest: the one the card was trained from, else ``<data>/<task>/manifest.csv``."""
    rel = (card.training or {}).get("manifest")
    if rel and (data_root / rel).is_file():
        return data_root / rel
    return data_root / card.task / "manifest.csv"


def pick_rows(manifest: Path, card: ModelCard, n: int, split: str = "test") -> list[Any]:
    """*n* rows of *split*, taken round-robin over the classes in manifest order (deterministic, and
    every class is represented even when the first rows of the file are all one class)."""
    from ..distill.data import read_manifest

    by_label: dict[str, list[Any]] = {}
    for s in read_manifest(manifest, card.input, split=split):
        by_label.setdefault(s.label, []).append(s)
    picked: list[Any] = []
    queues = [list(v) for _, v in sorted(by_label.items())]
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    return picked


def _median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return round(float(statistics.median(vals)), 4) if vals else None


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return round(float(statistics.fmean(vals)), 4) if vals else None


def _scorecam_batching(model: torch.nn.Module, x: torch.Tensor, card: ModelCard) -> dict[str, Any]:
    """One student Score-CAM with the measured batch size vs one image per forward pass (the
    batch size is measured by a first, untimed call, as the app's first Score-CAM does)."""
    from ..explain.cam import tuned_batch_size

    explain(model, x, "scorecam", card=card)
    batched = explain(model, x, "scorecam", card=card)
    t0 = time.perf_counter()
    explain(model, x, "scorecam", card=card, batch_size=1)
    unbatched = time.perf_counter() - t0
    ratio = unbatched / batched.seconds if batched.seconds > 0 else None
    with torch.inference_mode():
        batch_size = tuned_batch_size(model, x[None].to(next(model.parameters()).device))
    return {
        "batch_size": batch_size,
        "batched_ms": round(batched.seconds * 1000, 2),
        "unbatched_ms": round(unbatched * 1000, 2),
        "ratio": round(ratio, 2) if ratio else None,
        "target_ratio": SCORECAM_BATCH_SPEEDUP_TARGET,
    }


def bench_task(engine: Engine, task: str, data_root: Path, n_images: int, methods: Sequence[str] | None,
               steps: int, batching: bool, split: str = "test") -> dict[str, Any]:
    """Every *split* image through the engine, as the window analyses it (each model explains its own
    prediction), with faithfulness on: the agreement figures are the ones the window shows."""
    try:
        pair = engine.registry.pair(task)
        engine.load_pair(pair)
    except (ModelLoadError, AnalysisError) as exc:
        return {"skipped": str(exc)}
    manifest = manifest_for(pair.student, data_root)
    if not manifest.is_file():
        return {"skipped": f"no manifest at {manifest}"}
    rows = pick_rows(manifest, pair.student, n_images, split)
    if not rows:
        return {"skipped": f"no {split} rows in {manifest.name}"}
    wanted = list(methods) if methods else list_methods()
    acc: dict[str, dict[str, list]] = {m: {} for m in wanted}
    applicable: dict[str, set[str]] = {m: set() for m in wanted}
    same_prediction = []
    processed = 0
    batching_result = None
    for i, row in enumerate(rows):
        try:
            study = open_study(row.path)
            analysis = engine.analyze(study, pair, wanted, strip=False, skip_inapplicable=True, faithfulness=True,
                                      steps=steps)
        except (StudyLoadError, IncompatibleStudyError) as exc:
            log.warning("skipping %s image %s: %s", split, Path(row.path).name, exc)
            continue
        log.info("%s: image %d/%d", task, i + 1, len(rows))
        processed += 1
        same_prediction.append(analysis.same_class)
        for method in wanted:
            a = acc[method]
            for res in (analysis.teacher, analysis.student):
                if method in res.skipped:
                    continue
                applicable[method].add(res.role)
                a.setdefault(f"{res.role}_s", []).append(res.explain_seconds[method])
                a.setdefault(f"{res.role}_del", []).append(res.faithfulness[method]["deletion_auc"])
                a.setdefault(f"{res.role}_ins", []).append(res.faithfulness[method]["insertion_auc"])
            if method in analysis.agreement:
                for key, value in analysis.agreement[method].to_dict().items():
                    acc[method].setdefault(f"agree_{key}", []).append(value)
        if batching and batching_result is None and "scorecam" in wanted:
            card = pair.student
            x = preprocess(model_input_image(study, card.input), card.input)
            batching_result = _scorecam_batching(engine.load_pair(pair)[1], x, card)
    result: dict[str, Any] = {
        "teacher": pair.teacher.id, "student": pair.student.id, "n_images": processed,
        "same_prediction": _mean([float(s) for s in same_prediction]),
    }
    for method in wanted:
        a = acc[method]
        roles = [r for r in ("teacher", "student") if r in applicable[method]]
        if not roles:
            result[method] = {"skipped": "applies to neither model"}
            continue
        entry: dict[str, Any] = {}
        for role in roles:
            entry[f"{role}_ms"] = _median([s * 1000 for s in a.get(f"{role}_s", [])])
            entry[f"{role}_met_ms"] = _mean([s * 1000 for s in a.get(f"{role}_s", [])])
        entry["agreement"] = {k[len("agree_"):]: _median(v) for k, v in a.items() if k.startswith("agree_")} or None
        entry["deletion_auc"] = {r: _median(a.get(f"{r}_del", [])) for r in roles}
        entry["insertion_auc"] = {r: _median(a.get(f"{r}_ins", [])) for r in roles}
        if entry.get("teacher_ms") and entry.get("student_ms"):
            entry["speedup"] = round(entry["teacher_ms"] / entry["student_ms"], 2)
        result[method] = entry
    result["targets"] = _targets(result, batching_result)
    if batching_result:
        result["scorecam_batching"] = batching_result
    return result


def _targets(result: dict[str, Any], batching: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's CPU targets, each with the measured figure and whether it was met."""
    out = []
    for (method, role), limit in TIME_TARGETS_MS.items():
        measured = (result.get(method) or {}).get(f"{role}_ms")
        if measured is not None:
            out.append({"target": f"{role} {method} <= {limit:g} ms", "measured_ms": measured,
                        "ratio_to_target": round(measured / limit, 2), "met": measured <= limit})
    for method, entry in result.items():
        if isinstance(entry, dict) and entry.get("speedup") is not None:
            out.append({"target": f"student {method} faster than teacher", "speedup": entry["speedup"],
                        "met": entry["speedup"] > 1.0})
    if batching and batching.get("ratio") is not None:
        out.append({"target": f"scorecam batched >= {SCORECAM_BATCH_SPEEDUP_TARGET:g}x unbatched",
                    "speedup": batching["ratio"], "met": batching["ratio"] >= SCORECAM_BATCH_SPEEDUP_TARGET})
    return out


def bench_explain(
    registry: ModelRegistry | None = None,
    data_root: Path | None = None,
    n_images: int = 20,
    methods: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    threads: int = 0,
    steps: int = 20,
    batching: bool = True,
    split: str = "test",
) -> dict[str, Any]:
    """Run the benchmark on *split* (``val`` to choose a training lever: test is read once, to
    report); ``{"tasks": {TASK: {METHOD: {...}}}}`` plus the settings used."""
    from ..paths import shared_data_dir

    torch.set_num_threads(threads or os.cpu_count() or 1)
    engine = Engine(registry or ModelRegistry(), "cpu")
    data_root = Path(data_root) if data_root else shared_data_dir()
    unknown = [m for m in methods or [] if m not in list_methods()]
    if unknown:
        raise ExplainError(f"Unknown explanation method(s) {', '.join(unknown)}; choose from {', '.join(list_methods())}.")
    out: dict[str, Any] = {}
    for task in tasks or engine.registry.tasks():
        out[task] = bench_task(engine, task, data_root, n_images, methods, steps, batching, split)
    return {
        "device": "cpu", "threads": torch.get_num_threads(), "batch": 1, "n_images_per_task": n_images,
        "split": split, "deletion_insertion_steps": steps, "tasks": out,
    }


def jsonable(obj: Any) -> Any:
    """NaN/inf (an undefined correlation) become null, so the output is strict JSON."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
