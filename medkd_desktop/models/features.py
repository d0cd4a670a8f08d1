"""Pooled stage features: what the out-of-distribution score reads from a model.

Why the stages the model already names (``stage_names``, the ones distillation compares and the
layer strip shows) rather than a hook on each architecture's head: every bundled architecture has
them, and ``forward_train`` returns the logits and the stage maps of one forward pass, so the
score costs no second pass. Each map is global-average-pooled to a vector, which for the last
stage of a CNN is exactly the penultimate (pre-classifier) feature.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

#: Stages read for the OOD score, counted from the end: the last (penultimate features) and the
#: one before it (Lee et al. 2018 found earlier layers add to the last; measured in docs/TRUST.md).
OOD_STAGES: tuple[int, ...] = (-1, -2)


def pooled(feature: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C) by global average pooling; (B, C) passes through."""
    return feature.float().mean(dim=(2, 3)) if feature.ndim == 4 else feature.float()


def logits_and_features(model: nn.Module, x: Tensor, stages: Sequence[int] = OOD_STAGES
                        ) -> tuple[Tensor, list[Tensor]]:
    """One forward pass: the logits and the pooled features of *stages* (float32, (B, C) each)."""
    out = model.forward_train(x)
    feats = [f for f in out.features if f is not None]
    return out.logits, [pooled(feats[i]) for i in stages]
