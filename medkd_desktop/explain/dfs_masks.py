"""DFS-Ex dual-feature saliency masks (003, Eq. 2 and Eq. 4), hard and soft from one code path.

Why one module serves two callers, and why in the explain layer: the explainer draws the
paper-exact *hard* mask as the DFS-Ex heatmap and must work without the trainer (the review
app runs models, it does not train them); the ``dfkd`` loss, one layer up in ``distill``,
imports the *soft* mask from here, because the thresholded mask of Eq. 2 has zero gradient
almost everywhere and a student could never learn to move its saliency through it. Both come
from one standardised margin

    z = (max_d H[d, w, h] - mu - kappa * sigma) / sigma            (003 Eq. 2, rearranged)

so that ``hard = [z > 0]`` is exactly Eq. 2 and ``soft = sigmoid(z / temperature)`` tends to
it as the temperature goes to zero. Dividing by ``sigma`` makes the temperature a width in
units of the layer's own activation spread, so one value suits layers of any scale (early
layers and late layers differ by orders of magnitude) and teachers and students alike.

Masks are channel-aggregated (max over channels, as Eq. 2 does) and so do not depend on the
channel count; they are resized to one spatial size before fusion (Eq. 4), which is what lets
a teacher and a student of different widths and resolutions be compared pixel by pixel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Where mu and sigma of Eq. 2 are taken. "activations" is the paper: over all channels and
#: positions of the sample. "channel_max" takes them over the (H, W) map of channel maxima
#: instead, which does not drift with the channel count (the max of many channels sits well
#: above the mean of all of them, so for wide layers the paper's threshold can mark nearly
#: every pixel; 003 says kappa is "adjusted based on architecture characteristics").
Stats = Literal["activations", "channel_max"]

_EPS = 1e-6


class DFSExMasks(NamedTuple):
    """Texture mask, shape mask and their fusion G, each (B, H, W) at one common size."""

    texture: Tensor
    shape: Tensor
    fused: Tensor


def saliency_margin(feature: Tensor, kappa: float = 1.0, stats: Stats = "activations") -> Tensor:
    """Standardised margin z (B, H, W) of each position over the Eq. 2 threshold.

    ``z > 0`` exactly where 003 Eq. 2 sets R = 1. Differentiable (gradients reach the arg-max
    channel at each position and, through mu and sigma, every activation).
    """
    if feature.ndim != 4:
        raise ValueError(f"DFS-Ex needs a (B, C, H, W) feature map, got shape {tuple(feature.shape)}")
    if stats not in ("activations", "channel_max"):
        raise ValueError(f"stats must be 'activations' or 'channel_max', not {stats!r}")
    h = feature.float()
    peak = h.amax(dim=1)  # (B, H, W): max over channels d
    ref = h if stats == "activations" else peak.unsqueeze(1)
    dims = tuple(range(1, ref.ndim))
    mu = ref.mean(dim=dims)
    # sqrt(var + eps), not std(): std's gradient is infinite on a constant map.
    sigma = (ref.var(dim=dims, unbiased=False) + _EPS).sqrt()
    mu, sigma = mu.view(-1, 1, 1), sigma.view(-1, 1, 1)
    return (peak - mu - kappa * sigma) / sigma


def saliency_mask(
    feature: Tensor,
    kappa: float = 1.0,
    *,
    soft: bool = False,
    temperature: float = 0.5,
    stats: Stats = "activations",
) -> Tensor:
    """R of 003 Eq. 2 at the layer's own resolution: {0, 1} when hard, (0, 1) when soft."""
    z = saliency_margin(feature, kappa, stats)
    if not soft:
        return (z > 0).to(z.dtype)
    if temperature <= 0:
        raise ValueError("the soft-mask temperature must be > 0 (use soft=False for the hard mask)")
    return torch.sigmoid(z / temperature)


def resize_mask(mask: Tensor, size: tuple[int, int], *, soft: bool) -> Tensor:
    """Bring a (B, H, W) mask to *size*.

    Hard masks use nearest neighbour so that R stays in {0, 1} (and G in {0, eta, 1-eta, 1});
    soft masks use bilinear interpolation (anti-aliased when shrinking) so gradients spread
    smoothly rather than landing on one source pixel in four.
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    x = mask.unsqueeze(1)
    if soft:
        shrinking = size[0] < mask.shape[-2] or size[1] < mask.shape[-1]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    else:
        x = F.interpolate(x, size=size, mode="nearest")
    return x.squeeze(1)


def dfs_ex_masks(
    features: Sequence[Tensor],
    texture_index: int = 0,
    shape_index: int = -1,
    *,
    kappa: float = 1.0,
    eta: float = 0.5,
    size: tuple[int, int] | None = None,
    soft: bool = False,
    temperature: float = 0.5,
    stats: Stats = "activations",
) -> DFSExMasks:
    """DFS-Ex masks of one model: G = eta * R(texture) + (1 - eta) * R(shape) (003 Eq. 4).

    *features* are the model's stage outputs shallow to deep (``ModelOutput.features``); the
    texture layer defaults to the first stage and the shape layer to the last (003 §2.2: the
    first residual block and the penultimate map before the head). *size* defaults to the
    texture layer's resolution, the finer of the two. ``soft=False`` is the paper-exact mask
    for display; ``soft=True`` is the differentiable one the ``dfkd`` loss trains with.
    """
    if not features:
        raise ValueError("DFS-Ex needs the model's feature maps, but the model returned none")
    n = len(features)
    for name, idx in (("texture", texture_index), ("shape", shape_index)):
        if not -n <= idx < n:
            raise ValueError(f"{name} layer index {idx} is out of range for a model with {n} feature stages")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    tex_feat, shp_feat = features[texture_index], features[shape_index]
    out_size = tuple(size) if size is not None else tuple(tex_feat.shape[-2:])
    tex = resize_mask(saliency_mask(tex_feat, kappa, soft=soft, temperature=temperature, stats=stats), out_size, soft=soft)
    shp = resize_mask(saliency_mask(shp_feat, kappa, soft=soft, temperature=temperature, stats=stats), out_size, soft=soft)
    return DFSExMasks(texture=tex, shape=shp, fused=eta * tex + (1.0 - eta) * shp)
