"""TrivialAugment on cached [0, 1] batches: one photometric op per image, random strength.

Why TrivialAugment (Müller & Hutter 2021, "TrivialAugment: Tuning-free Yet State-of-the-Art
Data Augmentation", Algorithm 1): it has no policy to search and no magnitude to tune, which
suits small medical sets where every tuning run costs CPU hours. Each image draws one op
uniformly from a list and one strength uniformly from [0, max].

Why a list of our own instead of torchvision's: TrivialAugmentWide includes solarize,
posterize, equalize and large shears, which invent intensities a radiograph never has (a
solarised chest film inverts what "dense" means). Geometry (flips, rotation, crop) stays in
``augment.augment_batch``'s one affine warp, governed by the config's ``hflip``/``vflip``/
``rotate``/``rot90``, so that a task whose laterality matters is never mirrored by an op here.
The ops below only change intensities and colour, each monotone in the pixel value (hue and
saturation aside), so what is bright stays brighter than what is dark.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: One op: (images (n, C, H, W), signed strength s in [-1, 1] (n,), generator) -> images.
Op = Callable[[Tensor, Tensor, torch.Generator], Tensor]

_LUMA = (0.299, 0.587, 0.114)
# Largest change of each op at strength 1, chosen mild for medical images: intensity is
# diagnostic, so no op may turn dense into lucent (factors stay in [0.5, 1.5]).
_BRIGHTNESS, _CONTRAST, _GAMMA, _SHARPNESS, _NOISE, _HUE, _SATURATION = 0.5, 0.5, 0.5, 0.9, 0.04, 0.05, 0.5


def _per_image(s: Tensor) -> Tensor:
    return s.view(-1, 1, 1, 1)


def identity(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    return x


def brightness(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    return x * (1 + _BRIGHTNESS * _per_image(s))


def contrast(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (1 + _CONTRAST * _per_image(s)) + mean


def gamma(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    """Why gamma: radiographs and MR differ by scanner in their tone curve more than in offset."""
    return x.clamp_min(0).pow(torch.exp(_GAMMA * _per_image(s)))


def sharpness(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    """PIL's sharpness (torchvision ``adjust_sharpness``): s < 0 blurs, s > 0 sharpens."""
    c = x.shape[1]
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype) / 13.0
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
    return smooth + (1 + _SHARPNESS * _per_image(s)) * (x - smooth)


def noise(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    """Gaussian noise, as low-dose films and fast MR sequences add it."""
    return x + _NOISE * _per_image(s.abs()) * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def hue(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    """Hue rotation in YIQ space (a linear map, so batched): H&E stain and dermoscope white
    balance vary between labs; up to 5% of the hue circle."""
    theta = 2 * math.pi * _HUE * s
    rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype)
    yiq2rgb = torch.linalg.inv(rgb2yiq)
    cos, sin, one, zero = torch.cos(theta), torch.sin(theta), torch.ones_like(theta), torch.zeros_like(theta)
    rot = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                       torch.stack([zero, sin, cos], 1)], 1)  # (n, 3, 3)
    m = yiq2rgb @ rot.to(x.dtype) @ rgb2yiq
    return torch.einsum("nij,njhw->nihw", m, x)


def saturation(x: Tensor, s: Tensor, gen: torch.Generator) -> Tensor:
    gray = (x * torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return gray + (1 + _SATURATION * _per_image(s)) * (x - gray)


OPS: dict[str, Op] = {"identity": identity, "brightness": brightness, "contrast": contrast, "gamma": gamma,
                      "sharpness": sharpness, "noise": noise, "hue": hue, "saturation": saturation}
COLOUR_OPS = frozenset({"hue", "saturation"})
#: The default lists: grey images (radiographs, MR) get no colour ops; colour tiles get all.
GRAY_OPS = ("identity", "brightness", "contrast", "gamma", "sharpness", "noise")
RGB_OPS = (*GRAY_OPS, "hue", "saturation")


def default_ops(channels: int) -> tuple[str, ...]:
    return RGB_OPS if channels == 3 else GRAY_OPS


def trivial_augment(x: Tensor, gen: torch.Generator, ops: tuple[str, ...] | list[str] | None = None,
                    strength: float = 1.0) -> Tensor:
    """x: (B, C, H, W) in [0, 1] -> same shape, clamped to [0, 1].

    TrivialAugment's Algorithm 1, batched: each image draws an op index and a strength
    ``|s| ~ U(0, strength)`` with a random sign (a signed op goes both ways, e.g. darker or
    brighter), and each op runs once on the images that drew it.
    """
    names = list(ops) if ops is not None else list(default_ops(x.shape[1]))
    colour = sorted(COLOUR_OPS.intersection(names))
    if colour and x.shape[1] != 3:
        raise ValueError(f"trivial_ops {colour} need RGB images, these have {x.shape[1]} channel(s)")
    b = x.shape[0]
    pick = torch.randint(len(names), (b,), generator=gen)
    s = (2 * torch.rand(b, generator=gen) - 1) * float(strength)
    out = x.clone()
    for i, name in enumerate(names):
        rows = (pick == i).nonzero().flatten()
        if rows.numel() and name != "identity":
            out[rows] = OPS[name](x[rows], s[rows].to(x.dtype), gen)
    return out.clamp_(0.0, 1.0)
