"""Layer-wise average feature maps (paper 002): A(i, j) = (1/N) * sum_k F_k(i, j), every stage.

Why this method exists next to the CAMs: 002's student is meant to be *read* layer by layer,
and its average feature maps need no gradient and no extra forward passes, so they are the
cheapest explanation the app has (002 reports a ~5x lower mean explanation time than
Grad-CAM/SHAP). The GUI shows them as an ordered shallow -> deep strip (``Heatmap.stages``);
the main ``map`` is the deepest stage, the one the classifier head reads.

Token stages (the HDKD student's DFLT) are averaged on the residual stream entering the
hooked LayerNorm (see ``capture_stage_maps``), because a LayerNorm output averages to ~0.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import RawMap, as_spatial, capture_stage_maps, register_explainer


@register_explainer("feature_maps", label="Average feature maps", class_specific=False, layers="all")
def feature_maps(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Average feature maps (002): the mean over filters of every stage, shallow to deep."""
    with capture_stage_maps(model, layers) as feats:
        logits = model(x)
    stages = [(name, as_spatial(model, f)[0].float().mean(dim=0)) for name, f in zip(layers, feats, strict=True)]
    return RawMap(map=stages[-1][1], layers=list(layers), logits=logits, stages=stages)
