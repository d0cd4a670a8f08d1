"""Temporary forward hooks that collect named modules' outputs during one forward pass.

Why hooks rather than rewriting every ``forward``: the stage outputs that distillation losses
compare and that explainers display must be the *same* tensors the prediction was computed
from (same graph, so a feature loss back-propagates into the model). Hooks give that for the
papers' own models and for any timm model alike, without touching timm's code. They are
removed in ``finally`` so a failed forward never leaves a hook behind that would keep
capturing (and holding memory) on every later inference.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn


@contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[list[Tensor | None]]:
    """Yield a list that, after a forward run inside the block, holds each named module's output.

    The list is in the order of ``names``; an entry stays ``None`` if that module did not run.
    A module that runs more than once keeps its last output (stage modules run once).
    """
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"{type(model).__name__} has no module(s) named {missing}")
    captured: list[Tensor | None] = [None] * len(names)
    handles = []

    def make_hook(i: int):
        def hook(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            captured[i] = output

        return hook

    try:
        for i, name in enumerate(names):
            handles.append(modules[name].register_forward_hook(make_hook(i)))
        yield captured
    finally:
        for h in handles:
            h.remove()


class HookedStages:
    """Mixin for models whose ``stage_names`` are modules with (B, C, H, W) outputs.

    Gives them the training contract in one place: ``forward_train`` runs the ordinary
    ``forward`` once and returns its logits with the hooked stage maps; a model with token
    stages overrides ``reshape_transform`` (tokens -> maps) and it is applied here too.
    """

    stage_names: list[str]

    def forward_train(self, x: Tensor):
        from .outputs import ModelOutput

        with capture_outputs(self, self.stage_names) as feats:
            logits = self.forward(x)
        return ModelOutput(logits=logits, features=[self.reshape_transform(f) for f in feats])

    @staticmethod
    def reshape_transform(x: Tensor) -> Tensor:
        """Identity: the stages are already spatial maps."""
        return x
