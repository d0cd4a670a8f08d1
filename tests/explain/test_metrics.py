"""Agreement and faithfulness figures on maps whose answers are known."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medkd_desktop.explain import agreement, deletion_auc, explain, insertion_auc, iou_topk, pearson, road, ssim
from medkd_desktop.explain.metrics import agreement_grid, map_agreement, perturbation_curve, top_region
from medkd_desktop.models.geometry import PlacedMap, input_box
from medkd_desktop.models.preprocess import InputSpec

sys.path.insert(0, str(Path(__file__).parent))
from quadrant import QuadrantNet  # noqa: E402


def _blob(cy: float, cx: float, side: int = 64, sigma: float = 6.0) -> np.ndarray:
    y, x = np.mgrid[:side, :side]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_identical_maps_agree_perfectly():
    m = _blob(20, 30)
    assert agreement(m, m) == pytest.approx({"pearson": 1.0, "ssim": 1.0, "iou_top20": 1.0})


def test_inverted_map_correlates_negatively_and_shares_no_top_region():
    m = _blob(20, 30)
    inv = 1.0 - m
    assert pearson(m, inv) == pytest.approx(-1.0)
    assert ssim(m, inv) < 0.0
    assert iou_topk(m, inv) == 0.0


def test_disjoint_hot_regions_have_zero_iou_and_a_shifted_blob_sits_in_between():
    a, b = _blob(12, 12), _blob(52, 52)
    assert iou_topk(a, b, k=20) == 0.0
    near = _blob(14, 14)
    assert 0.3 < iou_topk(a, near) < 1.0
    assert pearson(a, near) > pearson(a, b)
    assert ssim(a, near) > ssim(a, b)


def test_ssim_of_constant_maps_matches_the_closed_form():
    # Constant maps: variances and covariance vanish, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1).
    c1 = 0.01**2
    a, b = np.full((32, 32), 0.2, np.float32), np.full((32, 32), 0.6, np.float32)
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-6)


def test_top_region_keeps_ties_of_a_hard_mask_and_undefined_correlation_is_nan():
    mask = np.zeros((10, 10), np.float32)
    mask[:3] = 1.0  # 30 % of the pixels tied at the top
    assert top_region(mask, 20).sum() == 30
    assert np.isnan(pearson(mask, np.zeros_like(mask)))


def test_maps_of_different_sizes_are_compared_on_the_first_grid():
    big, small = _blob(40, 40, side=128, sigma=12), _blob(20, 20, side=64)
    assert pearson(big, small) > 0.99 and iou_topk(big, small) > 0.9


def test_map_agreement_compares_the_region_both_models_saw_on_one_grid():
    m = np.zeros((16, 16), np.float32)
    m[:, :8] = 1.0
    frame = (100, 200)
    square, stretch = InputSpec(size=16, crop="center_square"), InputSpec(size=16, crop="stretch")
    on_square = PlacedMap(m, input_box(frame, square), frame)
    assert map_agreement(on_square, on_square)["pearson"] == pytest.approx(1.0)
    # The same array on different crops of a wide frame is a different picture: the left half of
    # the centre square vs the left half of the whole frame. Over the square (where both models
    # looked) both are hot on its left half, so they agree there; mirrored, they do not.
    on_whole = PlacedMap(m, input_box(frame, stretch), frame)
    assert map_agreement(on_square, on_whole)["iou_top20"] > 0.8
    assert map_agreement(on_square, PlacedMap(m[:, ::-1].copy(), on_whole.box, frame))["iou_top20"] < 0.2
    # The grid: the common region (the square) at the finer map's resolution there.
    region, shape = agreement_grid(on_square, on_whole)
    assert region.as_tuple() == (0, 50, 100, 150) and shape == (16, 16)
    big = PlacedMap(np.ones((2000, 2000), np.float32), input_box((2000, 2500), square), (2000, 2500))
    assert agreement_grid(big, big)[1] == (256, 256)  # capped


# ----------------------------------------------------------------------------- faithfulness

X = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(5)) * 2 - 0.5


def _model_and_maps():
    model = QuadrantNet(((0, 0), (1, 1))).eval()  # class 0 reads top-left only
    right = np.zeros((48, 48), np.float32)
    right[:24, :24] = 1.0
    right += _blob(12, 12, side=48, sigma=8) * 0.5  # a ranking inside the quadrant too
    right /= right.max()
    return model, right, 1.0 - right


def test_deletion_and_insertion_reward_the_map_that_points_at_what_the_model_reads():
    # Baseline 0 (the card's mean intensity): QuadrantNet's filters are all positive, so any
    # non-zero fill would keep driving them and hide what the removed pixels contributed.
    model, right, wrong = _model_and_maps()
    assert deletion_auc(model, X, right, 0, baseline="zero") < deletion_auc(model, X, wrong, 0, baseline="zero") - 0.2
    assert insertion_auc(model, X, right, 0, baseline="zero") > insertion_auc(model, X, wrong, 0, baseline="zero") + 0.2
    # The explainers' own map scores like the right one.
    gc = explain(model, X, "gradcam", target=0)
    assert deletion_auc(model, X, gc, 0, baseline="zero") < deletion_auc(model, X, wrong, 0, baseline="zero") - 0.2


def test_perturbation_curve_runs_from_the_image_to_the_baseline():
    model, right, _ = _model_and_maps()
    frac, probs = perturbation_curve(model, X, right, 0, mode="deletion", steps=10)
    assert frac[0] == 0.0 and frac[-1] == 1.0 and len(probs) == 11
    with torch.no_grad():
        p0 = torch.softmax(model(X), -1)[0, 0].item()
    assert probs[0] == pytest.approx(p0, abs=1e-5)


def test_road_prefers_the_right_map_and_is_repeatable():
    model, right, wrong = _model_and_maps()
    r = road(model, X, right, 0, percentiles=(20, 50, 80))
    assert r == road(model, X, right, 0, percentiles=(20, 50, 80))
    assert r > road(model, X, wrong, 0, percentiles=(20, 50, 80))


def test_iou_of_two_mostly_cold_maps_with_different_hot_spots_is_zero():
    a = np.zeros((50, 50), np.float32)
    b = np.zeros((50, 50), np.float32)
    a[:5, :5] = 1.0  # 1% of pixels hot, top-left
    b[-5:, -5:] = 1.0  # 1% hot, bottom-right
    assert iou_topk(a, b, 20) == 0.0
    assert iou_topk(a, a, 20) == 1.0
