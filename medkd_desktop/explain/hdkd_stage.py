"""HDKD stage activation maps (paper 004, Fig. 5): channel mean of the last block of stage 3.

Why a method of its own: 004 compares teacher and student by exactly this map — the output
of the last block of the third (last shared, convolutional) stage averaged over channels,
28x28 for a 224 input — because the HDKD teacher and student share that stage's shape, so
the two maps are directly comparable pixel for pixel. For HDKD models the layer is
``stage3``. Other architectures have no stage of that name; for them the stage whose
resolution is nearest 1/8 of the input (HDKD stage 3's stride) is used, so a teacher/student
pair of any family gets the map at the same depth-equivalent resolution.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import RawMap, as_spatial, capture_stage_maps, register_explainer

#: HDKD's stage 3 is at 1/8 of the input: a stride-2 stem and two halving MBCSA stages.
HDKD_STAGE3_STRIDE = 8


@register_explainer("hdkd_stage", label="HDKD stage map", class_specific=False, layers="stage3")
def hdkd_stage(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """HDKD stage-3 activation map (004 Fig. 5): channel mean of the last stage-3 block."""
    with capture_stage_maps(model, layers) as feats:
        logits = model(x)
    maps = [as_spatial(model, f) for f in feats]
    want = x.shape[-1] / HDKD_STAGE3_STRIDE
    # Nearest to 1/8 of the input; on a tie the deeper stage (closer to the decision).
    best = min(range(len(maps)), key=lambda i: (abs(maps[i].shape[-1] - want), -i))
    return RawMap(map=maps[best][0].float().mean(dim=0), layers=[layers[best]], logits=logits)
