"""New student vs bundled student vs bundled teacher on the user's own test split.

Why on the user's test split and paired: the question a site asks is "is the new student better
than what we have, on our images?". The same images go through all three models, so the
difference new - bundled is measured on identical cases with a paired bootstrap CI
(``distill.metrics.paired_difference``), which is far tighter than comparing two unpaired CIs.
Probabilities are the calibrated ones each card's temperature gives (what the window would show);
a temperature never changes a prediction, so accuracy and F1 are those of the raw models.

The confusion matrix of each model carries, per cell, the images that landed there (paths as the
user's folder names them): the panel lists them when a cell is clicked. The card stores the
comparison without those paths (``without_paths``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..distill.data import CachedSplit
from ..distill.evaluate import predict_logits, softmax_t
from ..distill.metrics import classification_metrics, paired_difference
from ..models.preprocess import InputSpec

ROLES = ("new", "bundled", "teacher")


@dataclass(frozen=True)
class Contender:
    role: str  # new | bundled | teacher
    card_id: str
    model: torch.nn.Module
    temperature: float


def _model_row(card_id: str, y: np.ndarray, prob: np.ndarray, classes: list[str], paths: list[str]) -> dict[str, Any]:
    m = classification_metrics(y, prob, classes, n_boot=1000)
    pred = prob.argmax(1)
    k = len(classes)
    cells = [[[] for _ in range(k)] for _ in range(k)]
    for t, p, path in zip(y, pred, paths):
        cells[int(t)][int(p)].append(path)
    return {"card": card_id, "n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ci": m["ci"],
            "recall": {c: m["per_class"][c]["recall"] for c in classes},
            "confusion": {"labels": list(classes), "matrix": m["confusion"]["matrix"], "cells": cells}}


def compare(contenders: list[Contender], test: CachedSplit, spec: InputSpec, device: torch.device,
            paths: list[str]) -> dict[str, Any]:
    y = test.y.numpy()
    probs = {c.role: softmax_t(predict_logits(c.model, test.x, spec, device), c.temperature) for c in contenders}
    out: dict[str, Any] = {"split": "test", "n": int(y.size), "classes": list(test.classes),
                           "models": {c.role: _model_row(c.card_id, y, probs[c.role], test.classes, paths)
                                      for c in contenders}}
    if "new" in probs and "bundled" in probs:
        out["new_minus_bundled"] = paired_difference(y, probs["new"], probs["bundled"])
    return out


def without_paths(comparison: dict[str, Any]) -> dict[str, Any]:
    """The comparison for the model card: counts only, no file names (a card may be shared)."""
    models = {}
    for role, row in comparison["models"].items():
        conf = {k: v for k, v in row["confusion"].items() if k != "cells"}
        models[role] = {**row, "confusion": conf}
    return {**comparison, "models": models}


def display_paths(items, root: Path) -> list[str]:
    return [it.display(root) for it in items]
