"""How far to trust a heatmap: teacher-student agreement and faithfulness to the model.

Why these numbers: a heatmap is a picture, and two pictures that *look* alike can differ
where it matters. The app therefore reports

* **agreement** between the teacher's and the student's maps — Pearson r (do they rise and
  fall together), SSIM (do they have the same local structure; Wang et al. 2004, Gaussian
  window sigma 1.5) and IoU of the top-k % regions (do the hottest areas overlap; k = 20);
* **faithfulness** of each map to its own model — deletion AUC (remove the most important
  pixels first: a faithful map makes the class probability collapse quickly, so *lower* is
  better), insertion AUC (add them first to a blurred image: *higher* is better; RISE,
  Petsiuk et al. 2018), and ROAD (pytorch-grad-cam's noisy-linear-imputation version, which
  avoids the out-of-distribution artefacts of plain deletion; higher is better).

Two models' maps of one image are compared by :func:`map_agreement` on one documented grid
(:func:`agreement_grid`); the bare functions resize the second map to the first.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor, nn

from ..models.geometry import Box, PlacedMap, fit, resize_map
from .base import Heatmap, _eval_mode

Baseline = Literal["blur", "mean", "zero"]
MapLike = Heatmap | np.ndarray


def _as_map(m: MapLike) -> np.ndarray:
    arr = m.map if isinstance(m, Heatmap) else np.asarray(m)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap is 2-D (H, W), got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _pair(a: MapLike, b: MapLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_map(a), _as_map(b)
    if a.shape != b.shape:
        b = resize_map(np.clip(b, 0, 1), a.shape).astype(np.float64)
    return a, b


def pearson(a: MapLike, b: MapLike) -> float:
    """Pearson correlation of the two maps' pixels; NaN when either map is constant (undefined)."""
    a, b = _pair(a, b)
    x, y = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def ssim(a: MapLike, b: MapLike, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004): Gaussian window sigma 1.5 (11x11),
    K1 = 0.01, K2 = 0.03, population covariances; borders of half a window are left out of
    the mean, as in scikit-image. 1 for identical maps."""
    a, b = _pair(a, b)
    truncate = 3.5
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma, mode="reflect", truncate=truncate)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = int(truncate * sigma + 0.5)
    if min(s.shape) > 2 * pad:
        s = s[pad:-pad, pad:-pad]
    return float(s.mean())


def top_region(m: MapLike, k: float = 20.0) -> np.ndarray:
    """Boolean mask of the top *k* % of pixels. Ties at the threshold are all kept, so a hard
    mask (DFS-Ex) is compared as the region it marks, not an arbitrary raster-order subset."""
    arr = _as_map(m)
    if not 0 < k <= 100:
        raise ValueError(f"k must be a percentage in (0, 100], got {k}")
    n = max(1, int(round(arr.size * k / 100.0)))
    threshold = np.partition(arr.ravel(), arr.size - n)[arr.size - n]
    if threshold <= arr.min():
        # The cut falls in the cold floor (e.g. > 80% of a Grad-CAM is exactly 0): those pixels
        # carry no heat, and keeping them would make two mostly-cold maps "agree" with IoU 1.
        return arr > threshold
    return arr >= threshold


def iou_topk(a: MapLike, b: MapLike, k: float = 20.0) -> float:
    """Intersection over union of the two maps' top-k % regions (0 = disjoint, 1 = the same)."""
    a, b = _pair(a, b)
    ra, rb = top_region(a, k), top_region(b, k)
    union = np.logical_or(ra, rb).sum()
    return float(np.logical_and(ra, rb).sum() / union) if union else float("nan")


def agreement(a: MapLike, b: MapLike, k: float = 20.0) -> dict[str, float]:
    """Teacher-student agreement: ``{"pearson", "ssim", "iou_top<k>"}``."""
    return {"pearson": pearson(a, b), "ssim": ssim(a, b), f"iou_top{k:g}": iou_topk(a, b, k)}


#: Agreement grids are at most this many pixels on their longer side: enough for region overlap,
#: and SSIM on a full 2000 px radiograph would cost more than the explanation itself.
AGREEMENT_MAX_SIDE = 256


def agreement_grid(teacher: PlacedMap, student: PlacedMap) -> tuple[Box, tuple[int, int]]:
    """Where and at what resolution two models' maps of one image are compared.

    The region is the part of the analysed image both models saw (the intersection of their
    input boxes). The grid samples that region at the finer of the two maps' own resolutions
    there (so two 224 px maps of the same crop are compared pixel for pixel, unresampled),
    with its longer side capped at :data:`AGREEMENT_MAX_SIDE`.
    """
    region = teacher.box.intersection(student.box) or Box(0, 0, *teacher.image_shape)
    density = max(m.map.shape[0] / m.box.height for m in (teacher, student))
    density = max(density, *(m.map.shape[1] / m.box.width for m in (teacher, student)))
    shape = fit((max(1, round(region.height * density)), max(1, round(region.width * density))), AGREEMENT_MAX_SIDE)
    return region, shape


def map_agreement(teacher: PlacedMap, student: PlacedMap, k: float = 20.0) -> dict[str, float]:
    """THE teacher-student agreement of two placed maps (the window, ``medkd analyze``, ``medkd
    explain`` and ``medkd bench explain`` all report this figure), on :func:`agreement_grid`."""
    region, shape = agreement_grid(teacher, student)
    return agreement(teacher.over(region, shape), student.over(region, shape), k)


# --------------------------------------------------------------------------------------
# Faithfulness
# --------------------------------------------------------------------------------------


def _batch1(x: Tensor) -> Tensor:
    x = x if x.dim() == 4 else x.unsqueeze(0)
    if x.shape[0] != 1:
        raise ValueError("faithfulness metrics take one image at a time")
    return x.detach().float()


def make_baseline(x: Tensor, kind: Baseline) -> Tensor:
    """What removed pixels become: a blurred copy (sigma = 1/32 of the side: the image's
    coarse layout without its detail), the image's per-channel mean, or 0 (the card's mean
    intensity, since inputs are normalised)."""
    x = _batch1(x)
    if kind == "blur":
        sigma = max(1.0, x.shape[-1] / 32.0)
        arr = x.cpu().numpy()
        blurred = np.stack([gaussian_filter(c, sigma, mode="reflect") for c in arr[0]])[None]
        return torch.from_numpy(blurred).to(x.device, x.dtype)
    if kind == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()
    if kind == "zero":
        return torch.zeros_like(x)
    raise ValueError(f"baseline must be 'blur', 'mean' or 'zero', not {kind!r}")


@torch.no_grad()
def _class_probs(model: nn.Module, batch: Tensor, target: int, batch_size: int) -> np.ndarray:
    out = []
    for i in range(0, batch.shape[0], batch_size):
        out.append(torch.softmax(model(batch[i:i + batch_size]).float(), dim=-1)[:, target].cpu())
    return torch.cat(out).numpy()


def perturbation_curve(
    model: nn.Module,
    x: Tensor,
    saliency: MapLike,
    target: int | None = None,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    baseline: Baseline | None = None,
    steps: int = 20,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probability as the most salient pixels are removed (deletion) or added (insertion).

    Returns (fraction of pixels changed, probability of *target*), ``steps + 1`` points.
    Pixels are ranked by the map (resized to the input); equal values keep raster order.
    Default baselines: deletion fills with the image mean, insertion starts from the blur.
    """
    x = _batch1(x)
    device = next(model.parameters()).device
    x = x.to(device)
    sal = _as_map(saliency)
    h, w = x.shape[-2:]
    if sal.shape != (h, w):
        sal = resize_map(np.clip(sal, 0, 1), (h, w)).astype(np.float64)
    kind = baseline or ("mean" if mode == "deletion" else "blur")
    base = make_baseline(x, kind)
    start, end = (x, base) if mode == "deletion" else (base, x)
    order = torch.from_numpy(np.argsort(-sal.ravel(), kind="stable").copy()).to(device)
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(int)
    rank = torch.empty(h * w, dtype=torch.long, device=device)
    rank[order] = torch.arange(h * w, device=device)
    changed = rank[None, :] < torch.as_tensor(counts, device=device)[:, None]  # (steps+1, H*W)
    mask = changed.view(steps + 1, 1, h, w)
    batch = torch.where(mask, end, start)
    with _eval_mode(model):
        if target is None:
            with torch.no_grad():
                target = int(model(x).argmax(dim=-1)[0])
        probs = _class_probs(model, batch, int(target), batch_size)
    return counts / float(h * w), probs


def deletion_auc(model: nn.Module, x: Tensor, saliency: MapLike, target: int | None = None, *,
                 baseline: Baseline = "mean", steps: int = 20) -> float:
    """Area under the deletion curve (0..1). Lower = the map found what the model relies on."""
    f, p = perturbation_curve(model, x, saliency, target, mode="deletion", baseline=baseline, steps=steps)
    return float(np.trapezoid(p, f))


def insertion_auc(model: nn.Module, x: Tensor, saliency: MapLike, target: int | None = None, *,
                  baseline: Baseline = "blur", steps: int = 20) -> float:
    """Area under the insertion curve (0..1). Higher = the map's top pixels suffice for the class."""
    f, p = perturbation_curve(model, x, saliency, target, mode="insertion", baseline=baseline, steps=steps)
    return float(np.trapezoid(p, f))


def road(model: nn.Module, x: Tensor, saliency: MapLike, target: int | None = None, *,
         percentiles: Sequence[int] = (10, 20, 30, 40, 50, 60, 70, 80, 90), seed: int = 0) -> float:
    """ROAD combined score (pytorch-grad-cam ``ROADCombined``) on the class probability.

    (LeRF - MoRF) / 2 averaged over *percentiles*: positive when removing the least relevant
    pixels hurts less than removing the most relevant ones. The imputer adds noise, drawn
    here from a fixed *seed* so the same map always gets the same score.
    """
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x = _batch1(x).to(next(model.parameters()).device)
    sal = _as_map(saliency).astype(np.float32)
    if sal.shape != tuple(x.shape[-2:]):
        sal = resize_map(np.clip(sal, 0, 1), tuple(x.shape[-2:]))
    with _eval_mode(model), torch.no_grad():
        if target is None:
            target = int(model(x).argmax(dim=-1)[0])
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # The imputer hands torch tensors to numpy functions (a NumPy 2 deprecation notice per call).
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.manual_seed(seed)
            score = ROADCombined(percentiles=list(percentiles))(x, sal[None], [ClassifierOutputSoftmaxTarget(int(target))], model)
    return float(np.asarray(score).reshape(-1)[0])
