"""The ONE preprocessing path from a displayed frame to a model tensor.

Why one path: a model is only valid on inputs prepared exactly as in training. Training,
evaluation, the CLI and the GUI all call :func:`preprocess` (or its two halves, which the
trainer uses to cache the deterministic half and augment in between) with the card's
:class:`InputSpec`. The input is what the clinician sees — ``Frame.display()``: float32 in
[0, 1], gray (H, W) or RGB (H, W, 3) — so a DICOM and the JPEG it was exported to give the
same tensor.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import input_box
from .input_spec import PREPROCESSING_ID, InputSpec

__all__ = ["PREPROCESSING_ID", "InputSpec", "model_input_image", "normalize", "preprocess", "to_model_range"]

def to_model_range(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Deterministic geometry and colour: [0, 1] image -> (C, size, size) float32 tensor in [0, 1]."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if spec.channels == 1 and img.ndim == 3:
        img = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    if img.ndim == 2:
        img = img[..., None]
    img = img[input_box(img.shape[:2], spec).slices]
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    if t.shape[-2:] != (spec.size, spec.size):
        t = F.interpolate(t, size=(spec.size, spec.size), mode="bilinear", antialias=True, align_corners=False)
    t = t[0].clamp_(0.0, 1.0)
    if spec.channels == 3 and t.shape[0] == 1:
        t = t.expand(3, -1, -1).contiguous()
    return t


def normalize(t: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Channel-wise (x - mean) / std; works on (C, H, W) or (B, C, H, W)."""
    shape = (-1, 1, 1)
    mean = torch.tensor(spec.mean[: spec.channels], dtype=t.dtype, device=t.device).view(shape)
    std = torch.tensor(spec.std[: spec.channels], dtype=t.dtype, device=t.device).view(shape)
    return (t - mean) / std


def denormalize(t: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """The inverse of ``normalize``: model input back to [0, 1] model range."""
    shape = (-1, 1, 1)
    mean = torch.tensor(spec.mean[: spec.channels], dtype=t.dtype, device=t.device).view(shape)
    std = torch.tensor(spec.std[: spec.channels], dtype=t.dtype, device=t.device).view(shape)
    return t * std + mean


def preprocess(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Displayed frame ([0, 1], gray or RGB) -> normalised (C, size, size) model input."""
    return normalize(to_model_range(image, spec), spec)


def model_input_image(study, spec: InputSpec, volume: int = 0, slice_: int | None = None) -> np.ndarray:
    """The [0, 1] image a model of this *spec* sees for a study: the displayed frame, or for
    fMRI cards the glass-brain rendering of the card's summary map (a 3-D map is its own map)."""
    if not spec.fmri_map:
        return study.frame(volume, slice_).display()
    from ..studies.glass_brain import GlassBrainSettings, render_glass_brain

    volume_map = study.maps.get(spec.fmri_map) or study.maps.get("input")
    if volume_map is None:
        raise ValueError(f"this study has no {spec.fmri_map} map (maps: {', '.join(study.maps) or 'none'})")
    return render_glass_brain(volume_map.to_nifti(), GlassBrainSettings(**spec.glass_brain))
