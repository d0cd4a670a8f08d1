"""Explanation heatmaps behind one interface, and the numbers that say how far to trust them.

``explain(model, tensor, method, target=None, **opts) -> Heatmap`` for every method in
``list_methods()``: ``gradcam``, ``gradcam++``, ``scorecam``, ``layercam``, ``eigencam``
(pytorch-grad-cam), ``feature_maps`` (002), ``dfs_ex`` and ``attention`` (003),
``hdkd_stage`` (004). Metrics live in ``explain.metrics``, overlays in ``explain.overlay``.
Importing this package registers every method.
"""
from __future__ import annotations

# Import order = the order list_methods() gives (the CLI and GUI show methods in it).
from . import cam, feature_maps, dfs_ex, hdkd_stage  # noqa: F401,I001  (registration side effect)
from .base import (
    ExplainError,
    Heatmap,
    explain,
    explainer_info,
    list_methods,
    method_label,
    register_explainer,
    stage_names,
    target_layers,
)
from .cam import cam_classes, scorecam_batch_size
from .metrics import agreement, deletion_auc, insertion_auc, iou_topk, pair_agreement, pearson, road, ssim


def preload() -> None:
    """Import pytorch-grad-cam now (it is loaded on first use: torchvision, scikit-learn and
    OpenCV come with it). A worker can call this at start so the first analysis does not wait."""
    cam_classes()


__all__ = [
    "ExplainError",
    "Heatmap",
    "agreement",
    "deletion_auc",
    "explain",
    "explainer_info",
    "insertion_auc",
    "iou_topk",
    "list_methods",
    "method_label",
    "pair_agreement",
    "pearson",
    "preload",
    "register_explainer",
    "road",
    "scorecam_batch_size",
    "ssim",
    "stage_names",
    "target_layers",
]
