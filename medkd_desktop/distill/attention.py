"""Attention transfer: the student learns where the teacher's last stage responds.

Why (issue #20, "explanation-aligned distillation"): the app shows a teacher's and a
student's heatmaps side by side, and a student trained only on logits may reach the
teacher's answer while looking elsewhere. Zagoruyko & Komodakis 2017 ("Paying More Attention
to Attention", ICLR) match a cheap spatial attention map instead, on top of any loss:
Eq. 1 ``F(A) = sum_c |A_c|^p`` (here the mean over channels, which the normalisation below
makes the same), Eq. 2 ``beta/2 * || Q_S/||Q_S||_2 - Q_T/||Q_T||_2 ||_p`` with ``p = 2``,
``Q = vec(F(A))``. ``TrainConfig.at_weight`` plays ``beta/2``. The maps reduce channels away,
so student and teacher may differ in width; when their resolutions differ, the coarser map
is resized (bilinear) to the finer one's grid before normalising.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..explain.base import as_spatial, capture_stage_maps
from ..models.outputs import ModelOutput


def attention_map(a: Tensor, p: float = 2.0) -> Tensor:
    """(B, C, H, W) activations -> (B, H, W): the mean over channels of ``|A|^p`` (Eq. 1), in float32."""
    if a.ndim != 4:
        raise ValueError(f"attention transfer needs (B, C, H, W) maps, got shape {tuple(a.shape)}")
    return a.float().abs().pow(p).mean(dim=1)


def at_loss(student_map: Tensor, teacher_map: Tensor, p: float = 2.0) -> Tensor:
    """Eq. 2 without beta: per image the L2 distance of the unit-normalised attention vectors,
    averaged over the batch. In [0, sqrt(2)]; 0 exactly when the maps agree up to scale.
    The teacher's map is detached: only the student learns from this term."""
    q_s, q_t = attention_map(student_map, p), attention_map(teacher_map.detach(), p)
    if q_s.shape[0] != q_t.shape[0]:
        raise ValueError(f"student and teacher batch sizes differ: {q_s.shape[0]} vs {q_t.shape[0]}")
    hw = max(q_s.shape[-2:], q_t.shape[-2:], key=lambda s: s[0] * s[1])
    q_s, q_t = (q if q.shape[-2:] == hw else F.interpolate(q[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]
                for q in (q_s, q_t))
    v_s, v_t = F.normalize(q_s.flatten(1), dim=1), F.normalize(q_t.flatten(1), dim=1)
    return (v_s - v_t).norm(dim=1).mean()


def stage_name(model: nn.Module, stage: int) -> str:
    names: Sequence[str] = getattr(model, "stage_names", []) or []
    if not -len(names) <= stage < len(names):
        raise ValueError(f"{type(model).__name__} has {len(names)} stages; at_stage {stage} is not one of them")
    return names[stage]


def forward_with_map(model: nn.Module, x: Tensor, stage: int | None) -> tuple[ModelOutput, Tensor | None]:
    """``model.forward_train(x)`` and, if ``stage`` is given, that stage's map from the same pass.

    Why ``capture_stage_maps`` rather than ``ModelOutput.features``: a transformer stage that
    ends in a LayerNorm (the HDKD student's last stage) outputs zero-mean, unit-variance tokens,
    whose channel energy is flat by construction; its input, the residual stream, is what the
    explainers draw and what attention should be matched on.
    """
    if stage is None:
        return model.forward_train(x), None
    with capture_stage_maps(model, [stage_name(model, stage)]) as maps:
        out = model.forward_train(x)
    if maps[0] is None:
        raise ValueError(f"stage {stage_name(model, stage)} of {type(model).__name__} did not run")
    return out, as_spatial(model, maps[0])
