"""Classification metrics with their uncertainty, as written into model cards.

Why bootstrap CIs and per-source figures: test sets here hold a few hundred images, so a
one-point difference between student and baseline is often noise; and public medical
datasets mix sources with different label mixes (a shortcut risk the card must expose).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

# Plain numpy formulas (checked against scikit-learn in the tests): the bootstrap calls them
# thousands of times, where scikit-learn's input validation would dominate the run time.


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(0))
        recall = np.nan_to_num(tp / cm.sum(1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return precision, recall, f1


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg), ties counted half: the ROC AUC."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auc(y: np.ndarray, prob: np.ndarray, n_classes: int) -> float | None:
    present = np.unique(y)
    if present.size < 2:
        return None
    if n_classes == 2:
        return _binary_auc(y == 1, prob[:, 1])
    # one-vs-rest, macro over the classes present in y
    return float(np.mean([_binary_auc(y == c, prob[:, c]) for c in present]))


def _point(y: np.ndarray, pred: np.ndarray, prob: np.ndarray, n_classes: int) -> dict[str, float | None]:
    return {
        "accuracy": float(np.mean(y == pred)),
        "macro_f1": float(_prf(confusion(y, pred, n_classes))[2].mean()),
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
    cm = confusion(y, pred, n_classes)
    p, r, f = _prf(cm)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(cm[i].sum())}
        for i, c in enumerate(classes)
    }
    out["confusion"] = {"labels": list(classes), "matrix": cm.tolist()}

    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "auc": []}
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        for k, v in _point(y[idx], pred[idx], prob[idx], n_classes).items():
            if v is not None:
                boots[k].append(v)
    out["ci"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in boots.items() if v}
    # n_boot = 0 (validation during training) leaves "ci" empty

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


def paired_difference(y: Sequence[int], prob_a: np.ndarray, prob_b: np.ndarray, n_boot: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Accuracy and macro-F1 of model A minus model B on the SAME images, with a paired
    bootstrap 95% CI (both models resampled together, so image difficulty cancels out)."""
    y = np.asarray(y, dtype=int)
    n_classes = prob_a.shape[1]
    pa, pb = np.asarray(prob_a).argmax(1), np.asarray(prob_b).argmax(1)

    def diff(idx: np.ndarray) -> tuple[float, float]:
        ya, a, b = y[idx], pa[idx], pb[idx]
        f1a = _prf(confusion(ya, a, n_classes))[2].mean()
        f1b = _prf(confusion(ya, b, n_classes))[2].mean()
        return float(np.mean(a == ya) - np.mean(b == ya)), float(f1a - f1b)

    acc, f1 = diff(np.arange(y.size))
    rng = np.random.default_rng(seed)
    boots = np.array([diff(rng.integers(0, y.size, y.size)) for _ in range(n_boot)])
    ci = np.percentile(boots, [2.5, 97.5], axis=0)
    return {"accuracy": acc, "accuracy_ci": [float(ci[0, 0]), float(ci[1, 0])],
            "macro_f1": f1, "macro_f1_ci": [float(ci[0, 1]), float(ci[1, 1])]}


# --------------------------------------------------------------------------------- calibration
# Why beside the accuracy metrics and not in trust/: `medkd evaluate` (distill) reports them, and
# distill may not import trust (they are sibling layers). trust.calibration fits the temperature.

def expected_calibration_error(y: Sequence[int], prob: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class confidence over *n_bins* equal-width bins of (0, 1] (Guo et al. 2017,
    eq. 3; 15 bins as there): sum over bins of |accuracy - mean confidence| weighted by the share
    of images in the bin. A bin holds confidences in (lo, hi]."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=np.float64)
    conf = prob.max(1)
    correct = prob.argmax(1) == y
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        m = bins == b
        total += m.sum() / y.size * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def negative_log_likelihood(y: Sequence[int], prob: np.ndarray, eps: float = 1e-12) -> float:
    """Mean -log p(true class); *eps* keeps a confidently wrong float16-rounded 0 finite."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=np.float64)
    return float(-np.mean(np.log(np.clip(prob[np.arange(y.size), y], eps, None))))


def brier_score(y: Sequence[int], prob: np.ndarray) -> float:
    """Multi-class Brier score (Brier 1950): mean over images of sum_k (p_k - [y = k])^2, in [0, 2]."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=np.float64)
    onehot = np.eye(prob.shape[1])[y]
    return float(np.mean(np.sum((prob - onehot) ** 2, axis=1)))


def calibration_metrics(y: Sequence[int], prob: np.ndarray, prob_uncalibrated: np.ndarray,
                        n_bins: int = 15) -> dict[str, float]:
    """ECE, NLL and Brier of the calibrated probabilities, and the ECE/NLL before calibration."""
    return {
        "ece": expected_calibration_error(y, prob, n_bins),
        "ece_uncalibrated": expected_calibration_error(y, prob_uncalibrated, n_bins),
        "nll": negative_log_likelihood(y, prob),
        "nll_uncalibrated": negative_log_likelihood(y, prob_uncalibrated),
        "brier": brier_score(y, prob),
    }
