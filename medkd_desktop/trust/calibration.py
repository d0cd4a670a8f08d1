"""Temperature scaling: one scalar T > 0 per model so that softmax(logits / T) is calibrated.

Implements Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017
(section 4.2): T minimises the negative log-likelihood on a held-out split (here the task's
``val`` split, never ``test``). Why temperature and not a richer map (vector/matrix scaling):
with a few hundred validation images one parameter cannot overfit, and it never changes the
predicted class, so the accuracy the card reports stays the accuracy of what the window shows.

Why a bounded 1-D search over log T (scipy's Brent) rather than LBFGS on T: the NLL is smooth and
unimodal in log T, log T keeps T positive without a constraint, and the bound (T in [0.05, 20])
keeps a degenerate split (all images right, NLL still falling as T -> 0) from running away.

Why a cross-validated check before a fitted T is used (:func:`fit_checked`): on a split with a
handful of errors (histology val: 2 of 306) the NLL keeps falling as T shrinks, and the fit
sharpens the probabilities far beyond what the data supports. So T is fitted on each half of val
and scored on the other half; it is kept only if that out-of-fold NLL beats T = 1. A rule read
from val alone, never from test.

The fit takes arrays (logits, labels): collecting a model's validation logits is the caller's
job (scripts/calibrate_bundled.py), since this layer may not import distill.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

#: The search range of T; a fitted T at either end means the split could not pin it down.
T_MIN, T_MAX = 0.05, 20.0


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T): the calibrated probabilities."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(y.size), y].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] minimising the mean NLL of softmax(logits / T) on (logits, labels)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if z.ndim != 2 or z.shape[0] != y.size or y.size == 0:
        raise ValueError(f"need logits (N, K) and N labels, got {z.shape} and {y.shape}")
    res = minimize_scalar(lambda log_t: _nll(z, y, math.exp(log_t)), bounds=(math.log(T_MIN), math.log(T_MAX)),
                          method="bounded", options={"xatol": 1e-5})
    t = float(math.exp(res.x))
    # Brent may stop a hair away from the optimum; never return a T worse than no scaling.
    return t if _nll(z, y, t) <= _nll(z, y, 1.0) else 1.0


def cross_validated_gain(logits: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0) -> float:
    """Mean NLL at T = 1 minus the out-of-fold NLL of T fitted on the other folds (> 0: T helps)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    order = np.random.default_rng(seed).permutation(y.size)
    parts = [order[i::folds] for i in range(folds)]
    gain = 0.0
    for i, held in enumerate(parts):
        fit_on = np.concatenate([p for j, p in enumerate(parts) if j != i])
        t = fit_temperature(z[fit_on], y[fit_on])
        gain += (_nll(z[held], y[held], 1.0) - _nll(z[held], y[held], t)) * held.size
    return gain / y.size


def fit_checked(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(T, cross-validated NLL gain): T fitted on all of *logits*, or 1.0 when the gain is not positive."""
    gain = cross_validated_gain(logits, labels)
    return (fit_temperature(logits, labels) if gain > 0 else 1.0), gain
