"""Train-time augmentation on cached [0, 1] batches, one affine warp per image.

Why on tensors: the cache already holds the deterministic preprocessing; a random
scale/aspect/rotation/flip as one batched ``grid_sample`` costs far less than re-decoding
JPEGs, which matters on two CPU cores.

The config's ``[augment]`` table (``AUGMENT_KEYS``) decides what a task allows. Geometry:
``hflip`` (mirror left-right; false where laterality matters, as on radiographs), ``vflip``,
``rot90`` (a random quarter turn, lossless on a square tile: histology has no "up"),
``rotate`` (degrees either way; 180 = any angle), ``scale`` (crop area range). Intensity:
``brightness``, ``contrast`` (always on when non-zero), ``trivial`` (TrivialAugment, one op
per image from ``trivial_ops``, strength scaled by ``trivial_strength``; see ``trivial``).
Batch mixing, ``mixup``, ``cutmix``, ``mix_prob``, lives in ``mixing``. A key left out
draws no random numbers, so configs written before a key existed train bit for bit as before.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .trivial import OPS, trivial_augment

AUGMENT_KEYS = frozenset({"hflip", "vflip", "rot90", "rotate", "scale", "brightness", "contrast",
                          "trivial", "trivial_ops", "trivial_strength", "mixup", "cutmix", "mix_prob"})


def check_augment_params(params: dict[str, Any]) -> None:
    """Refuse a misspelt key (an experiment that silently ran without its lever wastes hours)
    and a vertical flip on a task that forbids mirroring: ``vflip`` is ``hflip`` followed by a
    half turn, so it mirrors anatomy just the same."""
    unknown = sorted(set(params) - AUGMENT_KEYS)
    if unknown:
        raise ValueError(f"unknown [augment] keys: {', '.join(unknown)} (known: {', '.join(sorted(AUGMENT_KEYS))})")
    if params.get("vflip") and not params.get("hflip"):
        raise ValueError("augment.vflip mirrors the image (a vertical flip is a horizontal flip plus a half turn), "
                         "but hflip is false for this task: leave vflip off too")
    bad_ops = sorted(set(params.get("trivial_ops") or []) - OPS.keys())
    if bad_ops:
        raise ValueError(f"unknown trivial_ops: {', '.join(bad_ops)} (known: {', '.join(OPS)})")
    for key in ("mixup", "cutmix", "trivial_strength"):
        if float(params.get(key, 0.0)) < 0:
            raise ValueError(f"augment.{key} must be >= 0, got {params[key]}")
    if not 0.0 <= float(params.get("mix_prob", 1.0)) <= 1.0:
        raise ValueError(f"augment.mix_prob must lie in [0, 1], got {params['mix_prob']}")


def _signs(b: int, gen: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)


def augment_batch(x: torch.Tensor, params: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) in [0, 1]. Random resized crop (as zoom), rotation, flips, brightness/contrast,
    then TrivialAugment if asked."""
    b = x.shape[0]
    lo, hi = params.get("scale", [1.0, 1.0])
    area = lo + (hi - lo) * torch.rand(b, generator=gen)
    side = area.sqrt()  # fraction of the image's side that stays visible
    rot = math.radians(params.get("rotate", 0.0)) * (2 * torch.rand(b, generator=gen) - 1)
    flip = _signs(b, gen) if params.get("hflip") else torch.ones(b)
    # crop centre anywhere the crop still fits inside the image
    tx = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)
    ty = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)
    # keys added later draw their random numbers after the original ones (same stream as before)
    vflip = _signs(b, gen) if params.get("vflip") else torch.ones(b)
    if params.get("rot90"):
        rot = rot + (math.pi / 2) * torch.randint(4, (b,), generator=gen)
    cos, sin = torch.cos(rot) * side, torch.sin(rot) * side
    # columns of the 2x2 part act on output x and y: negating one mirrors along that axis
    theta = torch.stack([torch.stack([cos * flip, -sin * vflip, tx], 1), torch.stack([sin * flip, cos * vflip, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    bright, contrast = params.get("brightness", 0.0), params.get("contrast", 0.0)
    if bright or contrast:
        c = 1 + contrast * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
        s = bright * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c.to(x.dtype) + mean + s.to(x.dtype)
    out = out.clamp_(0.0, 1.0)
    if params.get("trivial"):
        out = trivial_augment(out, gen, params.get("trivial_ops"), float(params.get("trivial_strength", 1.0)))
    return out
