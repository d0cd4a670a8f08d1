"""A new student's out-of-distribution statistics, fitted like the bundled models' (scripts/fit_ood.py).

Why: every model the window runs must carry a score that says when an input is unlike its training
images; a student retrained on a site's images has new features, so its statistics are fitted on
its own train split and its threshold on its own val split, with the score family measured best
for the bundled models (docs/TRUST.md).
"""
from __future__ import annotations

import numpy as np
import torch

from ..distill.data import CachedSplit
from ..models.features import OOD_STAGES, logits_and_features
from ..models.preprocess import InputSpec, normalize
from ..trust.ood import CHOSEN_SCORE, OodDetector


@torch.inference_mode()
def pooled_features(model: torch.nn.Module, x: torch.Tensor, spec: InputSpec, device: torch.device,
                    batch_size: int = 64) -> list[np.ndarray]:
    """Per stage of OOD_STAGES, the (N, D) pooled features of cached [0, 1] images *x*."""
    model.eval()
    out: list[list[np.ndarray]] = [[] for _ in OOD_STAGES]
    for i in range(0, x.shape[0], batch_size):
        _, feats = logits_and_features(model, normalize(x[i:i + batch_size].float(), spec).to(device))
        for j, f in enumerate(feats):
            out[j].append(f.cpu().numpy())
    return [np.concatenate(f) for f in out]


def fit_detector(model: torch.nn.Module, train: CachedSplit, val: CachedSplit, spec: InputSpec,
                 device: torch.device, info: dict) -> OodDetector:
    det = OodDetector.fit(CHOSEN_SCORE, pooled_features(model, train.x, spec, device), train.y.numpy(),
                          list(OOD_STAGES), info={"fitted_on": "train", "n_train": len(train), "threshold_on": "val",
                                                  "n_val": len(val), **info})
    det.fit_threshold(det.score(pooled_features(model, val.x, spec, device)))
    return det
