"""A new student's out-of-distribution statistics, fitted like the bundled models' (scripts/fit_ood.py).

Why: every model the window runs must carry a score that says when an input is unlike its training
images; a student retrained on a site's images has new features, so its statistics are fitted on
its own train split and its threshold on its own val split, with the score family measured best
for the bundled models (docs/TRUST.md).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..distill.data import CachedSplit
from ..models.features import OOD_STAGES, logits_and_features
from ..models.preprocess import InputSpec, normalize
from ..trust.ood import CHOSEN_SCORE, OodDetector


@torch.inference_mode()
def pooled_features(model: torch.nn.Module, x: torch.Tensor, spec: InputSpec, device: torch.device,
                    stages: Sequence[int] = OOD_STAGES, thumbnail: int = 0, batch_size: int = 64
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The logits and, per stage of *stages* (then the thumbnail), the (N, D) pooled features of
    cached [0, 1] images *x*."""
    model.eval()
    logits: list[np.ndarray] = []
    out: list[list[np.ndarray]] = [[] for _ in range(len(stages) + bool(thumbnail))]
    for i in range(0, x.shape[0], batch_size):
        lg, feats = logits_and_features(model, normalize(x[i:i + batch_size].float(), spec).to(device), stages,
                                        thumbnail, spec)
        logits.append(lg.float().cpu().numpy())
        for j, f in enumerate(feats):
            out[j].append(f.cpu().numpy())
    return np.concatenate(logits), [np.concatenate(f) for f in out]


def fit_detector(model: torch.nn.Module, train: CachedSplit, val: CachedSplit, spec: InputSpec,
                 device: torch.device, info: dict, base: dict | None = None) -> OodDetector:
    """*base*: the bundled student's card ``ood`` field, whose layers (chosen on val for that
    architecture) a retrained student reads too; without one, OOD_STAGES."""
    stages, thumb = list((base or {}).get("stages", OOD_STAGES)), int((base or {}).get("thumbnail", 0))
    det = OodDetector.fit(CHOSEN_SCORE, pooled_features(model, train.x, spec, device, stages, thumb)[1],
                          train.y.numpy(), stages, thumbnail=thumb,
                          info={"fitted_on": "train", "n_train": len(train), "threshold_on": "val",
                                "n_val": len(val), **info})
    det.fit_threshold(det.score(pooled_features(model, val.x, spec, device, stages, thumb)[1]))
    return det
