"""Explanation heatmaps behind one interface, and the numbers that say how far to trust them.

``explain(model, tensor, method, target=None, **opts) -> Heatmap`` for every method in
``list_methods()``: ``gradcam``, ``gradcam++``, ``scorecam``, ``layercam``, ``eigencam``
(pytorch-grad-cam), ``feature_maps`` (002), ``dfs_ex`` and ``attention`` (003),
``hdkd_stage`` (004). Metrics live in ``explain.metrics``, overlays in ``explain.overlay``.
The registry (``base``) imports every method module the first time it is asked for one.
"""
from __future__ import annotations

from typing import Any

#: Public names and the submodule each lives in. Loaded on first use (PEP 562): importing
#: ``medkd_desktop.explain.overlay`` (the window's colours) must not import torch and every
#: explainer while the window starts; the engine imports them on its worker thread.
_EXPORTS = {
    **dict.fromkeys(("ExplainError", "Heatmap", "explain", "explainer_info", "list_methods", "method_label",
                     "register_explainer", "stage_names", "target_layers"), "base"),
    **dict.fromkeys(("cam_classes", "scorecam_batch_size"), "cam"),
    **dict.fromkeys(("agreement", "deletion_auc", "insertion_auc", "iou_topk", "map_agreement", "pearson", "road",
                     "ssim"), "metrics"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)


def preload() -> None:
    """Import pytorch-grad-cam now (it is loaded on first use: torchvision, scikit-learn and
    OpenCV come with it). A worker can call this at start so the first analysis does not wait."""
    from .cam import cam_classes

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
    "map_agreement",
    "pearson",
    "preload",
    "register_explainer",
    "road",
    "scorecam_batch_size",
    "ssim",
    "stage_names",
    "target_layers",
]
