"""The teacher side of a distillation step: soft targets from one card or several, with TTA.

Why: the student can only be as good as its soft targets, and better targets cost no
training, only teacher forward passes, which run without gradients. Averaging a model's
logits over views (test-time augmentation) and over models (an ensemble, e.g. the teacher
plus the plain baseline student) lowers the targets' variance; both are standard
(Hinton et al. 2015 §1 distil an ensemble's averaged predictions into one model).

Only the logits are averaged. Feature maps (``dfkd``, ``hdkd``, attention transfer) come
from the primary teacher (``TrainConfig.teacher``) on the unflipped image: maps of a
mirrored view or of another architecture do not line up with the student's.

A teacher may read a larger input than the student (a stronger teacher at 160 px for a 128-px
student, issue #20): the student's batch is resized for it, bilinearly, since both come from
the same crop of the same image. Everything else about the input (channels, normalisation,
crop, preprocessing) must match, because the teacher is fed the student's normalised batch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.card import ModelCard
from ..models.input_spec import InputSpec
from ..models.outputs import ModelOutput
from ..models.registry import load_model
from .attention import forward_with_map

TTA = ("none", "hflip")


class Teacher(nn.Module):
    """``models[0]`` is the primary teacher; the others only add logits."""

    def __init__(self, models: Sequence[nn.Module], tta: str = "none", size: int | None = None) -> None:
        """``size``: the side the teachers read, when it differs from the student's batch."""
        super().__init__()
        if not models:
            raise ValueError("a teacher needs at least one model")
        if tta not in TTA:
            raise ValueError(f"teacher TTA must be one of {TTA}, not {tta!r}")
        self.members = nn.ModuleList(models)
        self.tta = tta
        self.size = size

    @property
    def primary(self) -> nn.Module:
        return self.members[0]

    @torch.no_grad()
    def forward(self, x: Tensor, map_stage: int | None = None) -> tuple[ModelOutput, Tensor | None]:
        """The primary's output with its logits replaced by the mean over members and views,
        and the primary's stage map (``map_stage``) for attention transfer."""
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out, stage_map = forward_with_map(self.primary, x, map_stage)
        if len(self.members) == 1 and self.tta == "none":
            return out, stage_map  # exactly the single teacher of before
        views = [x] if self.tta == "none" else [x, x.flip(-1)]
        logits = [out.logits.float()]
        for i, m in enumerate(self.members):
            for j, v in enumerate(views):
                if i or j:
                    logits.append(m(v).float())
        mean = torch.stack(logits).mean(0)  # float32: bf16 would round the average away
        return replace(out, logits=mean), stage_map


def load_teacher(teacher: str, ensemble: Sequence[str], tta: str, device: torch.device, *,
                 classes: Sequence[str], channels_last: bool, student_input: InputSpec,
                 feature_loss: bool = False, resolve: Callable[[str], Path] = Path) -> Teacher:
    """Load the cards, frozen. Ensemble cards must predict the same classes in the same order
    and read the same input as the primary, because they are fed the student's batch; the
    primary may differ from the student in size only, and not under a loss that matches
    feature maps (``feature_loss``: dfkd, hdkd compare maps of equal grids)."""
    cards = [ModelCard.load(resolve(p)) for p in [teacher, *ensemble]]
    ours, theirs = student_input.to_dict(), cards[0].input.to_dict()
    differ = sorted(k for k in ours if k != "size" and ours[k] != theirs.get(k))
    if differ:
        raise ValueError(f"teacher {cards[0].id} reads a different input than this run ({', '.join(differ)}); "
                         "it is fed the student's normalised batch, so only the size may differ")
    size = cards[0].input.size if cards[0].input.size != student_input.size else None
    if size and feature_loss:
        raise ValueError(f"teacher {cards[0].id} reads {cards[0].input.size} px, this run {student_input.size} px: "
                         "a loss that matches feature maps needs both at one size")
    for c in cards[1:]:
        if list(c.classes) != list(classes):
            raise ValueError(f"teacher_ensemble card {c.id} has classes {c.classes}, the run has {list(classes)}")
        if c.input.to_dict() != cards[0].input.to_dict():
            raise ValueError(f"teacher_ensemble card {c.id} reads a different input than the teacher "
                             f"({c.input.to_dict()} vs {cards[0].input.to_dict()})")
    models = []
    for c in cards:
        m = load_model(c, device)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        for p in m.parameters():
            p.requires_grad_(False)
        models.append(m)
    return Teacher(models, tta, size)
