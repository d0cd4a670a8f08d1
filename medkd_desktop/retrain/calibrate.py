"""Temperature of a new student, fitted on the user's val split: the bundled models' recipe.

Why here: fitting T is ``trust.calibration``'s and collecting logits is ``distill``'s, and those
two layers may not import each other; ``scripts/calibrate_bundled.py`` (the bundled models) and
``medkd retrain`` (a new student) both build the card's ``calibration`` record with this function,
so every card's temperature means the same thing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..distill.evaluate import softmax_t
from ..distill.metrics import expected_calibration_error, negative_log_likelihood
from ..trust.calibration import fit_checked

METHOD = ("temperature scaling (Guo et al. 2017), NLL on val, T in [0.05, 20]; kept only if T fitted on each half "
          "of val lowers the other half's NLL (cv_nll_gain > 0), else T = 1")


def calibration_record(logits: np.ndarray, y: np.ndarray, *, fitted_on: str = "val", manifest_sha256: str = "") -> dict[str, Any]:
    """The card's ``calibration`` dict for val *logits* and labels *y*."""
    y = np.asarray(y, dtype=int)
    t, gain = fit_checked(logits, y)
    before, after = softmax_t(logits), softmax_t(logits, t)
    return {
        "temperature": round(t, 4),
        "fitted_on": fitted_on,
        "n": int(y.size),
        "nll_before": round(negative_log_likelihood(y, before), 4),
        "nll_after": round(negative_log_likelihood(y, after), 4),
        "ece_before": round(expected_calibration_error(y, before), 4),
        "ece_after": round(expected_calibration_error(y, after), 4),
        "cv_nll_gain": round(gain, 4),
        "method": METHOD,
        "manifest_sha256": manifest_sha256,
    }
