"""The files of `medkd explain`: one overlay PNG per model and method, and the summary JSON.

Why from an :class:`Analysis`: ``medkd explain`` used to run its own copy of the analysis, and
reported agreement figures on another grid than the window. Now the engine analyses, and this
module only writes what it found, drawn by the one overlay renderer. No patient identifier is
read or written: file names are role + method, and the summary holds only the study's kind,
modality and shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..explain import list_methods
from ..explain.overlay import OverlayStyle, blend, save_png
from ..inference.analysis import Analysis
from ..studies.study import Study
from .export_all import file_stem


def explain_files(analysis: Analysis, study: Study, roles: tuple[str, ...], out_dir: Path | None,
                  style: OverlayStyle) -> dict[str, Any]:
    """The JSON-ready summary; with *out_dir*, each map (and each of its stages) as an overlay PNG."""
    summary: dict[str, Any] = {
        "task": analysis.task,
        "study": {"kind": study.kind.value, "modality": study.modality, "shape": list(study.shape)},
        "target": analysis.target,
        "models": {},
        "methods": {},
    }
    for role in roles:
        res = analysis.result(role)
        summary["models"][role] = {
            "card": res.card_id, "name": res.name, "predicted": res.predicted,
            "probabilities": {c: float(p) for c, p in zip(res.classes, res.probabilities, strict=True)},
        }
    done = {*analysis.teacher.heatmaps, *analysis.teacher.skipped, *analysis.student.heatmaps, *analysis.student.skipped}
    methods = [m for m in list_methods() if m in done]  # the registry's (the menus') order
    for method in methods:
        entry: dict[str, Any] = {}
        for role in roles:
            res = analysis.result(role)
            if method in res.skipped:
                entry[role] = {"skipped": res.skipped[method]}
                continue
            stages = res.stages.get(method, [])
            e: dict[str, Any] = {
                "target": analysis.target or res.predicted, "predicted": res.predicted,
                "ms": res.explain_seconds[method] * 1000.0, "stage_names": [n for n, _ in stages],
                **res.faithfulness.get(method, {}),
            }
            if out_dir is not None:
                stem = f"{role}_{file_stem(method)}"
                e["png"] = str(save_png(out_dir / f"{stem}.png", blend(analysis.image, res.heatmaps[method], style)))
                e["stage_pngs"] = [str(save_png(out_dir / f"{stem}_stage{i + 1}.png", blend(analysis.image, m, style)))
                                   for i, (_, m) in enumerate(stages)]
            entry[role] = e
        if method in analysis.agreement and len(roles) == 2:
            entry["agreement"] = analysis.agreement[method].to_dict()
        summary["methods"][method] = entry
    return summary
