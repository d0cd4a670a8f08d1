"""Train-time augmentation on cached [0, 1] batches, one affine warp per image.

Why on tensors: the cache already holds the deterministic preprocessing; a random
scale/aspect/rotation/flip as one batched ``grid_sample`` costs far less than re-decoding
JPEGs, which matters on two CPU cores.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, params: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) in [0, 1]. Random resized crop (as zoom), rotation, h-flip, brightness/contrast."""
    b = x.shape[0]
    lo, hi = params.get("scale", [1.0, 1.0])
    area = lo + (hi - lo) * torch.rand(b, generator=gen)
    side = area.sqrt()  # fraction of the image's side that stays visible
    rot = math.radians(params.get("rotate", 0.0)) * (2 * torch.rand(b, generator=gen) - 1)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if params.get("hflip") else torch.ones(b)
    # crop centre anywhere the crop still fits inside the image
    tx = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)
    ty = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)
    cos, sin = torch.cos(rot) * side, torch.sin(rot) * side
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    bright, contrast = params.get("brightness", 0.0), params.get("contrast", 0.0)
    if bright or contrast:
        c = 1 + contrast * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
        s = bright * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c.to(x.dtype) + mean + s.to(x.dtype)
    return out.clamp_(0.0, 1.0)
