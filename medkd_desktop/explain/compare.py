"""Teacher vs student explanations of one study: the work behind `medkd explain`.

Why a module and not code in the CLI: the command, the documentation generator
(``scripts/make_explanations_doc.py``) and any batch tool need the same steps — the card's
input image and preprocessing for each model, each requested method, the maps placed back on
the displayed frame, overlays, and the agreement figures — and must produce the same numbers.
No patient identifier is read or written: file names are role + method, and the summary
holds only the study's kind, modality and shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.card import ModelCard
from ..models.preprocess import model_input_image, preprocess
from ..models.registry import ModelPair, ModelRegistry
from .base import ExplainError, Heatmap, explain, list_methods
from .metrics import deletion_auc, insertion_auc, pair_agreement, road
from .overlay import OverlayStyle, blend, save_png


@dataclass
class Prepared:
    """One model ready to explain one study: its card, network, the [0, 1] image it sees
    (the displayed frame, or the glass-brain rendering for fMRI cards) and its input tensor."""

    role: str
    card: ModelCard
    model: torch.nn.Module
    image: np.ndarray
    tensor: torch.Tensor
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


def prepare(registry: ModelRegistry, card: ModelCard, role: str, study: Any, volume: int = 0,
            slice_: int | None = None) -> Prepared:
    """Load the card's model (verified) and run it once on the study's frame."""
    model = registry.load(card)
    try:
        image = model_input_image(study, card.input, volume, slice_)
    except ValueError as exc:  # e.g. an fMRI card given a study without the map it reads
        raise ExplainError(str(exc)) from None
    x = preprocess(image, card.input)
    with torch.inference_mode():
        probs = torch.softmax(model(x[None].to(next(model.parameters()).device)).float(), dim=-1)[0].cpu().numpy()
    return Prepared(role, card, model, image, x, probs)


def parse_methods(spec: str) -> list[str]:
    """``"gradcam"``, ``"gradcam,scorecam"`` or ``"all"`` -> method names (validated)."""
    names = list_methods() if spec.strip() == "all" else [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in list_methods()]
    if unknown or not names:
        raise ExplainError(f"Unknown explanation method {', '.join(unknown) or spec!r}; choose from: "
                           f"{', '.join(list_methods())} (or 'all').")
    return names


def parse_target(target: str | None, classes: list[str]) -> int | None:
    """A class name (``pneumonia``) or index (``1``) -> index; None -> each model's prediction."""
    if target is None:
        return None
    if target in classes:
        return classes.index(target)
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    raise ExplainError(f"Unknown class {target!r}; this task's classes are: {', '.join(classes)}.")


def file_stem(method: str) -> str:
    return method.replace("+", "p")


def _entry(p: Prepared, h: Heatmap) -> dict[str, Any]:
    classes = p.card.classes
    d = h.to_dict()
    d["target"] = classes[h.target] if 0 <= h.target < len(classes) else h.target
    d["predicted"] = classes[h.predicted] if h.predicted is not None else None
    d["ms"] = round(h.seconds * 1000, 2)
    return d


def compare_on_study(
    study: Any,
    pair: ModelPair,
    registry: ModelRegistry,
    methods: list[str],
    roles: tuple[str, ...] = ("teacher", "student"),
    target: str | None = None,
    out_dir: Path | None = None,
    *,
    volume: int = 0,
    slice_: int | None = None,
    style: OverlayStyle | None = None,
    faithfulness: bool = False,
    steps: int = 20,
) -> tuple[dict[str, Any], dict[str, dict[str, Heatmap]], dict[str, Prepared]]:
    """Explain the study with every method for each role; optionally write overlay PNGs (drawn by the
    window's renderer with *style*, its defaults unless given).

    Returns (JSON-ready summary, heatmaps on the frame by method and role, prepared models).
    A method that does not apply to one model (``attention`` on a pure CNN) is reported as
    skipped for it; agreement is given whenever both maps exist. With *faithfulness*, each
    map also gets deletion/insertion AUC and ROAD against its own model.
    """
    cards = {"teacher": pair.teacher, "student": pair.student}
    classes = pair.student.classes
    if pair.teacher.classes != pair.student.classes and len(roles) == 2:
        raise ExplainError(f"The {pair.task} teacher and student do not predict the same classes.")
    target_index = parse_target(target, classes)
    prepared = {r: prepare(registry, cards[r], r, study, volume, slice_) for r in roles}
    summary: dict[str, Any] = {
        "task": pair.task,
        "study": {"kind": study.kind.value, "modality": study.modality, "shape": list(study.shape)},
        "target": target,
        "models": {
            r: {"card": p.card.id, "name": p.card.name, "architecture": p.card.architecture,
                "predicted": p.card.classes[p.predicted],
                "probabilities": {c: round(float(v), 4) for c, v in zip(p.card.classes, p.probabilities, strict=True)}}
            for r, p in prepared.items()
        },
        "methods": {},
    }
    maps: dict[str, dict[str, Heatmap]] = {}
    for method in methods:
        entry: dict[str, Any] = {}
        maps[method] = {}
        on_input: dict[str, Heatmap] = {}
        for role, p in prepared.items():
            if method not in list_methods(p.model):
                entry[role] = {"skipped": f"{method} does not apply to {p.card.architecture}"}
                continue
            h = explain(p.model, p.tensor, method, target_index, card=p.card)
            on_input[role] = h
            e = _entry(p, h)
            if faithfulness:
                e["deletion_auc"] = round(deletion_auc(p.model, p.tensor, h, h.target, steps=steps), 4)
                e["insertion_auc"] = round(insertion_auc(p.model, p.tensor, h, h.target, steps=steps), 4)
                e["road"] = round(road(p.model, p.tensor, h, h.target), 4)
            on_frame = h.to_frame(p.image.shape[:2], p.card.input)
            maps[method][role] = on_frame
            if out_dir is not None:
                stem = f"{role}_{file_stem(method)}"
                e["png"] = str(save_png(Path(out_dir) / f"{stem}.png", blend(p.image, on_frame, style)))
                e["stage_pngs"] = [
                    str(save_png(Path(out_dir) / f"{stem}_stage{i + 1}.png", blend(p.image, s, style)))
                    for i, s in enumerate(on_frame.stages)
                ]
            entry[role] = e
        if len(on_input) == 2:
            t, s = prepared["teacher"], prepared["student"]
            entry["agreement"] = pair_agreement(on_input["teacher"], on_input["student"], t.card.input, s.card.input,
                                                t.image.shape[:2])
        summary["methods"][method] = entry
    return summary, maps, prepared
