"""Mixup and CutMix on a batch, and the loss of a mixed batch for any registered loss.

Why: with 1.5k training images a student from scratch memorises its train split within a few
dozen epochs; mixing images and their labels (Zhang et al. 2018, mixup, Eq. 1; Yun et al.
2019, CutMix, Eq. 1-2) keeps the targets from being one-hot and the inputs from repeating.

Why mix the *loss* rather than the targets: every loss in ``losses`` takes class indices, and
CE, label-smoothed CE and focal BCE (001 Eq. 4) are all linear in the target distribution, so
``lam * L(y_a) + (1 - lam) * L(y_b)`` equals the loss on the mixed soft target without any
loss knowing about mixing. A teacher term does not read the target, and the teacher sees the
same mixed image as the student, so it enters with weight ``lam + (1 - lam) = 1``, as it must.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..models.outputs import ModelOutput
from .losses import DistillLoss


@dataclass(frozen=True)
class MixedBatch:
    """Images and the two label sets they mix: ``lam`` of ``y_a``, ``1 - lam`` of ``y_b``."""

    x: Tensor
    y_a: Tensor
    y_b: Tensor
    lam: float

    def to(self, device: torch.device) -> MixedBatch:
        return MixedBatch(self.x.to(device), self.y_a.to(device), self.y_b.to(device), self.lam)


def _beta(alpha: float, gen: torch.Generator) -> float:
    """Beta(alpha, alpha) drawn through the trainer's generator, so that a resumed run mixes as
    the uninterrupted one would (torch's Beta sampler takes no generator; numpy's does)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al. 2019, Eq. 2): area ratio ``1 - lam``, centre uniform, clipped at
    the border. Returns (top, bottom, left, right)."""
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = (int(v) for v in (torch.randint(h, (1,), generator=gen), torch.randint(w, (1,), generator=gen)))
    return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)


def mix_batch(x: Tensor, y: Tensor, params: dict[str, Any], gen: torch.Generator) -> MixedBatch:
    """``x`` (B, C, H, W) in [0, 1], ``y`` (B,) class indices. With probability ``mix_prob`` the
    batch is mixed with a random permutation of itself: by mixup (``mixup`` = alpha of the
    Beta) or CutMix (``cutmix`` = alpha); with both set, each has half the batches. Neither
    set: the batch is returned as it is and no random number is drawn."""
    mixup, cutmix = float(params.get("mixup", 0.0)), float(params.get("cutmix", 0.0))
    if not (mixup or cutmix):
        return MixedBatch(x, y, y, 1.0)
    if float(torch.rand((), generator=gen)) >= float(params.get("mix_prob", 1.0)):
        return MixedBatch(x, y, y, 1.0)
    use_cutmix = cutmix > 0 and (mixup == 0 or float(torch.rand((), generator=gen)) < 0.5)
    lam = _beta(cutmix if use_cutmix else mixup, gen)
    perm = torch.randperm(x.shape[0], generator=gen)
    if use_cutmix:
        h, w = x.shape[-2:]
        top, bottom, left, right = cutmix_box(h, w, lam, gen)
        x = x.clone()
        x[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (h * w)  # the clipped box's true share
    else:
        x = lam * x + (1.0 - lam) * x[perm]
    return MixedBatch(x, y, y[perm], lam)


def mixed_loss(loss_fn: DistillLoss, student: ModelOutput, teacher: ModelOutput | None,
               batch: MixedBatch) -> tuple[Tensor, dict[str, float]]:
    """``lam * loss(y_a) + (1 - lam) * loss(y_b)``, parts likewise; an unmixed batch costs one call."""
    loss, parts = loss_fn(student, teacher, batch.y_a)
    if batch.lam >= 1.0:
        return loss, parts
    loss_b, parts_b = loss_fn(student, teacher, batch.y_b)
    lam = batch.lam
    return lam * loss + (1.0 - lam) * loss_b, {k: lam * v + (1.0 - lam) * parts_b[k] for k, v in parts.items()}
