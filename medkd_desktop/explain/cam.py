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
  model. The gradients at the layer are exactly the library's (the layer's output values are
  the same; only the graph below it is dropped), so the maps are identical, and cheaper.
* **Score-CAM batch size measured on the machine** (``tuned_batch_size``), and no tqdm
  progress bar on stderr (Score-CAM calls ``tqdm`` on every explanation).
* **Eigen-CAM oriented.** The first principal component's sign is arbitrary (SVD), so the raw
  Eigen-CAM lights the background for about half of all inputs; the projection is flipped
  where it anti-correlates with the activation strength.
* **Imported on first use.** ``import pytorch_grad_cam`` pulls in torchvision's model zoo,
  scikit-learn and OpenCV (seconds at start-up); the app, the CLI's argument errors and the
  non-CAM methods do not wait for it.
"""
from __future__ import annotations

import functools
import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
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


#: Score-CAM runs one forward pass per channel of the target layer (576 for MobileNetV3-Small,
#: 1024 for DenseNet-121), in batches of masked inputs. Whether batching pays on a CPU depends
#: on the model: measured single-threaded on this project's machine, per-image forward time
#: MobileNetV3-Small 3x128: 20.0 ms at batch 1, 6.9 at 16, 5.8 at 64, 7.0 at 128 (per-call
#: Python/hook overhead dominates a light model); CNN5 1x128: 40.8 / 35.4 (4) / 38.5 (8) /
#: 46.0 (16); the HDKD student 3x128: 36.2 / 43.2 (4) / 74 (16) (wide expanded activations
#: make big batches memory-bound). No fixed batch size suits all, so the batch is *measured*:
#: on first use per (model, input shape, thread count) the forward pass is timed at growing
#: batch sizes and the fastest per image is cached for that model (``tuned_batch_size``).
BATCH_CANDIDATES = (1, 4, 16, 64)
#: Score-CAM scores at most this many channels, the most spatially varied (Faster Score-CAM,
#: ``top_variance_channels``), on every architecture, so teacher and student maps are made the
#: same way; a model's ``scorecam_max_channels`` overrides it, ``max_channels=0`` is exact.
#: Why: a masked pass costs a full forward, so a 512- or 1024-channel layer takes a minute.
#: Measured against the exact map on four real test images each (one thread, shared machine):
#: CNN5 (brain MRI, 512 channels) 2.1-3.1 s vs 18-20 s, Pearson r 0.88-0.98; DenseNet-121
#: (chest X-ray, 1024 channels) 3.6-4.4 s vs 57-63 s, r 0.80-0.98, top-20% IoU 0.48-0.83
#: (128 channels: 7-9 s, r 0.87-0.99; 32: r 0.68-0.94); ResNet-10-T (chest X-ray, 512 channels)
#: 2.2-2.9 s vs 14-19 s, r 0.87-0.99, IoU 0.43-0.88.
SCORECAM_MAX_CHANNELS = 64
#: Memory guard: a batch's largest stage output may hold at most this many values (128 MB).
MAX_BATCH_STAGE_VALUES = 32 << 20
_batch_cache: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()


def scorecam_batch_size(largest_stage_values: int, candidates: tuple[int, ...] = BATCH_CANDIDATES) -> int:
    """The largest candidate batch whose largest stage output fits the memory guard."""
    fitting = [b for b in candidates if b * max(int(largest_stage_values), 1) <= MAX_BATCH_STAGE_VALUES]
    return max(fitting) if fitting else 1


def largest_stage_values(model: nn.Module, x: Tensor) -> int:
    """Values per image of the model's largest stage output, measured by one forward pass."""
    names = list(getattr(model, "stage_names", []) or [])
    if not names:
        return int(x[0].numel())
    with capture_outputs(model, names) as feats:
        model(x)
    return max(int(f[0].numel()) for f in feats if f is not None)


def tuned_batch_size(model: nn.Module, x: Tensor) -> int:
    """Score-CAM's batch size for *model* on inputs shaped like *x*, measured once and cached.

    Each candidate batch (up to the memory guard) is run once to warm up and once timed; the
    fastest per image wins. Timings on a busy CPU jitter by +-30 %, so the search only stops
    early when a batch is clearly (> 25 %) slower per image than the best so far, i.e. the
    model has become memory-bound. Costs at most 2 x (1 + 4 + 16 + 64) = 170 image forward
    passes on first use; later calls reuse the result.
    """
    key = (tuple(x.shape[1:]), torch.get_num_threads(), str(x.device))
    per_model = _batch_cache.setdefault(model, {})
    if key in per_model:
        return per_model[key]
    limit = scorecam_batch_size(largest_stage_values(model, x))
    best, best_per_image = 1, math.inf
    for b in (c for c in BATCH_CANDIDATES if c <= limit):
        batch = x.expand(b, *x.shape[1:]).contiguous()
        model(batch)  # the first pass at a new shape pays allocation and kernel set-up
        t0 = time.perf_counter()
        model(batch)
        per_image = (time.perf_counter() - t0) / b
        if per_image < best_per_image:
            best, best_per_image = b, per_image
        elif per_image > 1.25 * best_per_image:
            break
    per_model[key] = best
    return best


def top_variance_channels(activations: np.ndarray, k: int | None) -> np.ndarray | None:
    """Faster Score-CAM's channel choice: the *k* channels whose map varies most over space.

    Score-CAM costs one forward pass per channel; a channel whose map is nearly flat masks the
    whole image almost uniformly and adds little. Scoring only the most varied channels (the
    "Faster Score-CAM" variant listed in the Score-CAM authors' repository) bounds the cost;
    the others weigh 0. ``None`` when every channel is kept. Takes one image's activations
    (1, C, H, W), as the app explains one image at a time.
    """
    channels = activations.shape[1]
    if not k or channels <= k:
        return None
    variance = activations[0].reshape(channels, -1).var(axis=1)
    return np.sort(np.argsort(-variance, kind="stable")[:k])


#: The CAMs that back-propagate (the others only run forward passes).
GRADIENT_METHODS = frozenset({"gradcam", "gradcam++", "layercam"})


@functools.cache
def cam_classes() -> dict[str, type]:
    """The pytorch-grad-cam class behind each method name, imported on first use.

    Two are small subclasses, each overriding one thing: Score-CAM's batch size (the library
    reads ``self.batch_size``) and Eigen-CAM's sign (``get_cam_image``: the library's
    projection, then the sign that correlates positively with mean absolute activation).
    """
    import pytorch_grad_cam
    import pytorch_grad_cam.score_cam as score_cam_module
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    score_cam_module.tqdm = _NoProgressBar  # type: ignore[attr-defined]

    class BatchedScoreCAM(pytorch_grad_cam.ScoreCAM):
        def __init__(self, model: nn.Module, target_layers: list[nn.Module], reshape_transform=None,
                     batch_size: int = 16, max_channels: int | None = None) -> None:
            super().__init__(model, target_layers, reshape_transform=reshape_transform)
            self.batch_size = int(batch_size)
            self.max_channels = max_channels

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            keep = top_variance_channels(activations, self.max_channels)
            if keep is None:
                return super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)
            weights = np.zeros(activations.shape[:2], dtype=np.float32)
            weights[:, keep] = super().get_cam_weights(input_tensor, target_layer, targets, activations[:, keep], grads)
            return weights

    class OrientedEigenCAM(pytorch_grad_cam.EigenCAM):
        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            proj = get_2d_projection(activations)
            strength = np.abs(activations).mean(axis=1)
            for i in range(proj.shape[0]):
                p, s = proj[i].ravel(), strength[i].ravel()
                if p.std() > 0 and s.std() > 0 and np.corrcoef(p, s)[0, 1] < 0:
                    proj[i] = -proj[i]
            return proj

    return {
        "gradcam": pytorch_grad_cam.GradCAM,
        "gradcam++": pytorch_grad_cam.GradCAMPlusPlus,
        "scorecam": BatchedScoreCAM,
        "layercam": pytorch_grad_cam.LayerCAM,
        "eigencam": OrientedEigenCAM,
    }


@contextmanager
def _released(cam: Any) -> Iterator[Any]:
    try:
        yield cam
    finally:
        cam.activations_and_grads.release()
        cam.outputs = None  # drop the retained graph now, not at garbage collection


@contextmanager
def _backward_stops_at(model: nn.Module, modules: list[nn.Module], uses_gradients: bool) -> Iterator[None]:
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
        if uses_gradients and len(modules) == 1:
            handles.append(modules[0].register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_(True)))
        yield
    finally:
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)


def run_cam(method: str, model: nn.Module, x: Tensor, target: int | None, layers: list[str], **cam_kwargs: Any) -> RawMap:
    """Run *method*'s pytorch-grad-cam class on (1, C, H, W) *x* and hand back its [0, 1] map."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_cls = cam_classes()[method]
    modules = resolve_modules(model, layers)
    reshape = getattr(model, "reshape_transform", None)
    targets = None if target is None else [ClassifierOutputTarget(int(target))]
    uses_gradients = method in GRADIENT_METHODS
    with _backward_stops_at(model, modules, uses_gradients), \
            _released(cam_cls(model, modules, reshape_transform=reshape, **cam_kwargs)) as cam:
        if cam.uses_gradients and len(modules) > 1:
            cam.compute_input_gradient = True
        grayscale = cam(input_tensor=x, targets=targets)
        logits = cam.outputs.detach()
    used = int(logits.argmax(dim=-1)[0]) if target is None else int(target)
    return RawMap(map=grayscale[0], layers=list(layers), logits=logits, target=used, normalized=True)


def _import_cams(_model: nn.Module, _x: Tensor) -> None:
    cam_classes()


def _calibrate_scorecam(model: nn.Module, x: Tensor) -> None:
    """The batch-size search (up to 170 image passes) is paid once per model, not timed as MET."""
    cam_classes()
    with torch.inference_mode():
        tuned_batch_size(model, x)


@register_explainer("gradcam", label="Grad-CAM", class_specific=True, layers="last", needs_grad=True, setup=_import_cams)
def gradcam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Grad-CAM: channel weights = spatially averaged gradients of the class score."""
    return run_cam("gradcam", model, x, target, layers)


@register_explainer("gradcam++", label="Grad-CAM++", class_specific=True, layers="last", needs_grad=True, setup=_import_cams)
def gradcam_plusplus(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Grad-CAM++: higher-order gradient weights, better for several instances of a finding."""
    return run_cam("gradcam++", model, x, target, layers)


@register_explainer("scorecam", label="Score-CAM", class_specific=True, layers="last", setup=_calibrate_scorecam)
def scorecam(model: nn.Module, x: Tensor, target: int | None, layers: list[str], batch_size: int | None = None,
             max_channels: int | None = None) -> RawMap:
    """Score-CAM (001): each channel weighted by the class score of the image masked by it.

    ``max_channels`` (default: the architecture's ``scorecam_max_channels``, else
    :data:`SCORECAM_MAX_CHANNELS`; 0 = all) scores only that many channels, the most varied.
    """
    b = int(batch_size) if batch_size else tuned_batch_size(model, x)
    k = max_channels if max_channels is not None else getattr(model, "scorecam_max_channels", SCORECAM_MAX_CHANNELS)
    return run_cam("scorecam", model, x, target, layers, batch_size=b, max_channels=k)


@register_explainer("layercam", label="LayerCAM", class_specific=True, layers="last", needs_grad=True, setup=_import_cams)
def layercam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Layer-CAM: positive gradients weight each position separately (finer than Grad-CAM)."""
    return run_cam("layercam", model, x, target, layers)


@register_explainer("eigencam", label="Eigen-CAM", class_specific=False, layers="last", setup=_import_cams)
def eigencam(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Eigen-CAM: first principal component of the layer's activations (class-agnostic)."""
    return run_cam("eigencam", model, x, target, layers)
