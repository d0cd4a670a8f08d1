"""Classification metrics with their uncertainty, as written into model cards.

Why bootstrap CIs and per-source figures: test sets here hold a few hundred images, so a
one-point difference between student and baseline is often noise; and public medical
datasets mix sources with different label mixes (a shortcut risk the card must expose).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score


def _auc(y: np.ndarray, prob: np.ndarray, n_classes: int) -> float | None:
    present = np.unique(y)
    if present.size < 2:
        return None
    if n_classes == 2:
        return float(roc_auc_score(y, prob[:, 1]))
    # one-vs-rest, macro over the classes present in y
    scores = [roc_auc_score(y == c, prob[:, c]) for c in present]
    return float(np.mean(scores))


def _point(y: np.ndarray, pred: np.ndarray, prob: np.ndarray, n_classes: int) -> dict[str, float | None]:
    return {
        "accuracy": float(np.mean(y == pred)),
        "macro_f1": float(f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0)),
        "auc": _auc(y, prob, n_classes),
    }


def classification_metrics(
    y: Sequence[int],
    prob: np.ndarray,
    classes: Sequence[str],
    sources: Sequence[str] | None = None,
    subsets: dict[str, np.ndarray] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy, macro-F1, one-vs-rest AUC, per-class precision/recall, confusion matrix,
    bootstrap 95% CIs (percentile, *n_boot* resamples of images) and a per-source breakdown."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=np.float64)
    n_classes = len(classes)
    pred = prob.argmax(1)
    out: dict[str, Any] = {"n": int(y.size), **_point(y, pred, prob, n_classes)}
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=list(range(n_classes)), zero_division=0)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    out["confusion"] = {"labels": list(classes), "matrix": confusion_matrix(y, pred, labels=list(range(n_classes))).tolist()}

    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "auc": []}
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        for k, v in _point(y[idx], pred[idx], prob[idx], n_classes).items():
            if v is not None:
                boots[k].append(v)
    out["ci"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in boots.items() if v}

    out["by_source"] = {}
    if sources is not None:
        src = np.asarray(sources)
        for s in sorted(set(src.tolist())):
            m = src == s
            out["by_source"][s] = {"n": int(m.sum()), "accuracy": float(np.mean(y[m] == pred[m]))}
    for name, mask in (subsets or {}).items():
        m = np.asarray(mask, dtype=bool)
        if m.any():
            out.setdefault("subsets", {})[name] = {"n": int(m.sum()), **_point(y[m], pred[m], prob[m], n_classes)}
    return out
