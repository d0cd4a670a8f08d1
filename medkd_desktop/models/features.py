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

from .preprocess import InputSpec, denormalize

#: Stages read for the OOD score when nothing else is known, counted from the end: the last
#: (penultimate features) and the one before it (Lee et al. 2018 found earlier layers add to the
#: last). Each bundled model's own stages were chosen on val (scripts/fit_ood.py, docs/TRUST.md) and
#: are stored with its statistics; a retrained student inherits its base card's.
OOD_STAGES: tuple[int, ...] = (-1, -2)


def stages_from_end(model: nn.Module, count: int) -> tuple[int, ...]:
    """The last *count* stages of *model* (fewer if it has fewer), counted from the end."""
    return tuple(range(-1, -min(count, len(model.stage_names)) - 1, -1))


def pooled(feature: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C) by global average pooling; (B, C) passes through."""
    return feature.float().mean(dim=(2, 3)) if feature.ndim == 4 else feature.float()


def thumbnail(x01: Tensor, side: int) -> Tensor:
    """(B, C, H, W) input in [0, 1] model range -> (B, side * side): the channel mean, average-pooled.

    Why the input itself as one more, shallowest "layer": pooled stage features average the image's
    layout away, and layout is what tells a brain MR slice (a bright oval in dark corners) from a
    chest film that fills the frame; the chest student's features miss it (docs/TRUST.md). In [0, 1],
    not normalised: the score L2-normalises each layer, which then keeps the layout and drops the
    brightness; on signed, normalised values it did markedly worse on val."""
    return nn.functional.adaptive_avg_pool2d(x01.float().mean(dim=1, keepdim=True), side).flatten(1)


def logits_and_features(model: nn.Module, x: Tensor, stages: Sequence[int] = OOD_STAGES, thumbnail_side: int = 0,
                        spec: InputSpec | None = None) -> tuple[Tensor, list[Tensor]]:
    """One forward pass of normalised *x*: the logits and the pooled features of *stages* (float32,
    (B, C) each), then, if *thumbnail_side*, the thumbnail of *x* (*spec*: its normalisation)."""
    out = model.forward_train(x)
    feats = [f for f in out.features if f is not None]
    layers = [pooled(feats[i]) for i in stages]
    if thumbnail_side:
        if spec is None:
            raise ValueError("a thumbnail needs the input's normalisation (spec)")
        layers.append(thumbnail(denormalize(x, spec), thumbnail_side))
    return out.logits, layers
