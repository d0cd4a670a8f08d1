"""The CAM family from pytorch-grad-cam: Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM, Eigen-CAM.

Why adapters and not our own CAMs: pytorch-grad-cam is the field's reference implementation
(design rule: use the field's libraries). What this module adds is what the app needs around
it:

* **Hooks released on every path.** A CAM object registers forward hooks on its target layer
  when it is built. Left attached, they would copy that layer's activation on *every* later
  inference of the model (memory growing until the next CAM call). The library's own
  ``__exit__`` also swallows ``IndexError`` (printing it), which would turn a bad class
  index into a blank map; ``_released`` removes the hooks in ``finally`` and lets errors out.
* **Backward pass only as deep as the target layer.** Grad-CAM needs d(score)/d(activation)
  at one layer, nothing below it. Parameters are frozen for the call and the target layer's
  output is re-rooted as a leaf that requires grad, so autograd runs from the logits down to
  that layer and stops: no weight gradients, no input gradient, no ``.grad`` left on the
  model. Measured single-threaded: CNN5 at 1x128 Grad-CAM 87 ms -> see the module report;
  the gradients at the layer are exactly the library's (the layer's output values are the same,
  only the graph above it is dropped).
* **Score-CAM batch size from a measured CPU rule** (``scorecam_batch_size``), and no tqdm
  progress bar on stderr (Score-CAM calls ``tqdm`` on every explanation).
* **Eigen-CAM oriented.** The first principal component's sign is arbitrary (SVD), so the raw
  Eigen-CAM lights the background for about half of all inputs; the projection is flipped
  where it anti-correlates with the activation strength.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytorch_grad_cam.score_cam as _score_cam_module
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from torch import Tensor, nn

from ..models.hooks import capture_outputs
from .base import RawMap, register_explainer, resolve_modules


class _NoProgressBar:
    """Stands in for the ``tqdm`` module inside pytorch_grad_cam.score_cam: ScoreCAM wraps its
    batch loop in ``tqdm.tqdm(...)`` with no way to turn it off, which would print a progress
    bar to stderr on every one of the thousands of explanations the app computes."""

    @staticmethod
    def tqdm(iterable: Any, *args: Any, **kwargs: Any) -> Any:
        return iterable


_score_cam_module.tqdm = _NoProgressBar  # type: ignore[assignment]


#: Score-CAM runs one forward pass per channel of the target layer, in batches of masked
#: inputs. On CPU a batch helps while it amortises per-call overhead (Python, hooks, small
#: kernels) and hurts once the batch's activations fall out of cache: measured single-threaded,
#: MobileNetV3-Small at 3x128 (largest stage 65 k values per image) kept gaining up to 64-128
#: images, DenseNet-121 (262 k) peaked near 32-64, CNN5 at 1x128 (524 k) near 16 and got
#: *slower* at 64. So the batch is sized by the model's largest stage activation per image:
#: about 8 M values (32 MB float32) per batch, a power of two between 8 and 128.
SCORECAM_VALUES_PER_BATCH = 8 << 20
SCORECAM_MIN_BATCH, SCORECAM_MAX_BATCH = 8, 128


def scorecam_batch_size(largest_stage_values: int) -> int:
    """Images per Score-CAM forward pass, given the model's largest stage output per image."""
    b = SCORECAM_VALUES_PER_BATCH // max(int(largest_stage_values), 1)
    b = 1 << max(int(b).bit_length() - 1, 0)  # a power of two, rounded down
    return int(min(max(b, SCORECAM_MIN_BATCH), SCORECAM_MAX_BATCH))


def largest_stage_values(model: nn.Module, x: Tensor) -> int:
    """Values per image of the model's largest stage output, measured by one forward pass
    (well under 1 % of a Score-CAM call, which runs one pass per channel)."""
    names = list(getattr(model, "stage_names", []) or [])
    if not names:
        return int(x[0].numel())
    with capture_outputs(model, names) as feats:
        model(x)
    return max(int(f[0].numel()) for f in feats if f is not None)


class BatchedScoreCAM(ScoreCAM):
    """pytorch-grad-cam's ScoreCAM with the batch size set per call (it reads ``self.batch_size``)."""

    def __init__(self, model: nn.Module, target_layers: list[nn.Module], reshape_transform=None, batch_size: int = 16) -> None:
        super().__init__(model, target_layers, reshape_transform=reshape_transform)
        self.batch_size = int(batch_size)


class OrientedEigenCAM(EigenCAM):
    """Eigen-CAM whose projection points toward the strongly activated positions.

    Overrides the one function that computes the map: the library's projection, then a sign
    chosen so that the map correlates positively with the mean absolute activation.
    """

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):  # noqa: D102
        proj = get_2d_projection(activations)
        strength = np.abs(activations).mean(axis=1)
        for i in range(proj.shape[0]):
            p, s = proj[i].ravel(), strength[i].ravel()
            if p.std() > 0 and s.std() > 0 and np.corrcoef(p, s)[0, 1] < 0:
                proj[i] = -proj[i]
        return proj


@contextmanager
def _released(cam: BaseCAM) -> Iterator[BaseCAM]:
    try:
        yield cam
    finally:
        pass  # MUTATION
        cam.outputs = None  # drop the retained graph now, not at garbage collection


@contextmanager
def _backward_stops_at(model: nn.Module, modules: list[nn.Module]) -> Iterator[None]:
    """Freeze the parameters; with one target layer, make its output a grad-requiring leaf.

    The hook is registered before the CAM's own hooks, so they see (and take gradients of)
    the re-rooted tensor. With several target layers the graph must reach the shallowest
    one, so the input takes the gradient instead (``compute_input_gradient``).
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    handles = []
    for p in frozen:
        p.requires_grad_(False)
    try:
        if len(modules) == 1:
            handles.append(modules[0].register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_(True)))
        yield
    finally:
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)


def run_cam(
    cam_cls: type[BaseCAM], model: nn.Module, x: Tensor, target: int | None, layers: list[str], **cam_kwargs: Any
) -> RawMap:
    """Run one pytorch-grad-cam class on (1, C, H, W) *x* and hand back its [0, 1] map."""
    modules = resolve_modules(model, layers)
    reshape = getattr(model, "reshape_transform", None)
    targets = None if target is None else [ClassifierOutputTarget(int(target))]
    with _backward_stops_at(model, modules), _released(cam_cls(model, modules, reshape_transform=reshape, **cam_kwargs)) as cam:
        if cam.uses_gradients and len(modules) > 1:
            cam.compute_input_gradient = True
        grayscale = cam(input_tensor=x, targets=targets)
        logits = cam.outputs.detach()
    used = int(logits.argmax(dim=-1)[0]) if target is None else int(target)
    return RawMap(map=grayscale[0], layers=list(layers), logits=logits, target=used, normalized=True)


@register_explainer("gradcam", class_specific=True, layers="last", needs_grad=True)
def gradcam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Grad-CAM: channel weights = spatially averaged gradients of the class score."""
    return run_cam(GradCAM, model, x, target, layers)


@register_explainer("gradcam++", class_specific=True, layers="last", needs_grad=True)
def gradcam_plusplus(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Grad-CAM++: higher-order gradient weights, better for several instances of a finding."""
    return run_cam(GradCAMPlusPlus, model, x, target, layers)


@register_explainer("scorecam", class_specific=True, layers="last")
def scorecam(model: nn.Module, x: Tensor, target: int | None, layers: list[str], batch_size: int | None = None) -> RawMap:
    """Score-CAM (001): each channel weighted by the class score of the image masked by it."""
    b = int(batch_size) if batch_size else scorecam_batch_size(largest_stage_values(model, x))
    return run_cam(BatchedScoreCAM, model, x, target, layers, batch_size=b)


@register_explainer("layercam", class_specific=True, layers="last", needs_grad=True)
def layercam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Layer-CAM: positive gradients weight each position separately (finer than Grad-CAM)."""
    return run_cam(LayerCAM, model, x, target, layers)


@register_explainer("eigencam", class_specific=False, layers="last")
def eigencam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Eigen-CAM: first principal component of the layer's activations (class-agnostic)."""
    return run_cam(OrientedEigenCAM, model, x, target, layers)
