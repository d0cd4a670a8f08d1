"""Weight averaging of the student: an EMA per optimiser step, or SWA over the last epochs.

Why: on ~1.5k images the weights of one epoch are noisy (val accuracy swings by points from
epoch to epoch); an average of recent weights generalises better at no training cost
(Polyak & Juditsky 1992; Izmailov et al. 2018, SWA, Eq. 1 ``w_swa <- (w_swa n + w) / (n + 1)``).
Built on ``torch.optim.swa_utils.AveragedModel``, with ``use_buffers=True`` so BatchNorm's
running statistics are averaged too: SWA's alternative, a pass over the train split to
recompute them (``update_bn``), would cost an epoch of forward passes on two CPU cores.

When an average is on, it is what validation judges, what the epoch selection keeps and what
the card's weights are: the raw weights only feed the average.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def ema_decay_at(decay: float, n_averaged: int) -> float:
    """The EMA decay after ``n_averaged`` updates: ``min(decay, (1 + n) / (10 + n))``.

    Why the warm-up (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``, timm's
    ``ModelEmaV3(use_warmup)``): at 0.999 a run of 50 steps per epoch would still be 95% the
    random initial weights after its first epoch, so early validation would judge noise.
    """
    return min(float(decay), (1.0 + n_averaged) / (10.0 + n_averaged))


def _ema_fn(decay: float):
    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], n_averaged: Tensor | int) -> None:
        d = ema_decay_at(decay, int(n_averaged))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (BatchNorm's num_batches_tracked) follow the model
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


class WeightAverage:
    """``ema_decay`` > 0: updated after every optimiser step. ``swa_epochs`` = k > 0: updated
    at the end of each of the last k of ``epochs`` epochs, with equal weights."""

    def __init__(self, model: nn.Module, *, ema_decay: float = 0.0, swa_epochs: int = 0, epochs: int = 0) -> None:
        if bool(ema_decay) == bool(swa_epochs):
            raise ValueError("a WeightAverage is either an EMA (ema_decay) or SWA (swa_epochs)")
        self.ema_decay, self.swa_epochs, self.epochs = float(ema_decay), int(swa_epochs), int(epochs)
        fn = _ema_fn(self.ema_decay) if self.ema_decay else None  # None: AveragedModel's SWA mean
        self.averaged = AveragedModel(model, multi_avg_fn=fn, use_buffers=True)
        for p in self.averaged.parameters():
            p.requires_grad_(False)

    @property
    def n_averaged(self) -> int:
        return int(self.averaged.n_averaged)

    def after_step(self, model: nn.Module) -> None:
        if self.ema_decay:
            self.averaged.update_parameters(model)

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        """``epoch`` counts from 0."""
        if self.swa_epochs and epoch >= self.epochs - self.swa_epochs:
            self.averaged.update_parameters(model)

    def judged(self, model: nn.Module) -> nn.Module:
        """The weights validation judges: the average once it holds any, else the model."""
        return self.averaged.module if self.n_averaged else model

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


def weight_average(model: nn.Module, ema_decay: float, swa_epochs: int, epochs: int) -> WeightAverage | None:
    """The config's average, or None when both are off (the run is then exactly as before)."""
    if not ema_decay and not swa_epochs:
        return None
    return WeightAverage(model, ema_decay=ema_decay, swa_epochs=swa_epochs, epochs=epochs)
