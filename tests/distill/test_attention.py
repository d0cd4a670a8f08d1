"""Attention transfer (Zagoruyko & Komodakis 2017, Eq. 1-2): zero exactly when the maps agree,
positive otherwise, across resolutions, and only the student learns from it.

What would go wrong for a user if these failed: a student pulled towards a map it already
matches (NaN gradients at zero distance), or a teacher drifting because of the student's loss.
"""
from __future__ import annotations

import math

import pytest
import torch
from model_factory import blob_features

from medkd_desktop.distill.attention import at_loss, attention_map, forward_with_map
from medkd_desktop.models.architectures import create_arch


pytestmark = pytest.mark.usefixtures("one_thread")


def _blob(corner: str, s: int = 8, seed: int = 0) -> torch.Tensor:
    return blob_features(8, s, corner, seed=seed)


def test_the_map_is_the_channel_mean_of_squares():
    a = torch.randn(2, 5, 4, 3)
    assert torch.allclose(attention_map(a), (a ** 2).mean(1))


def test_zero_for_identical_maps_and_for_maps_equal_up_to_scale_sign_and_width():
    t = _blob("tl")
    assert float(at_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(at_loss(-3.0 * t, t)) == pytest.approx(0.0, abs=1e-6)  # |A|^2: sign and scale drop out
    wide = t.repeat(1, 4, 1, 1)  # 32 channels against 8: channels are averaged away
    assert float(at_loss(wide, t)) == pytest.approx(0.0, abs=1e-6)


def test_positive_when_the_maps_differ_and_at_most_sqrt_two():
    same, other = at_loss(_blob("tl", seed=1), _blob("tl")), at_loss(_blob("br"), _blob("tl"))
    assert 0 < float(same) < float(other) <= math.sqrt(2) + 1e-6


def test_different_resolutions_are_compared_on_the_finer_grid():
    t = _blob("tl", s=8)
    s_coarse = _blob("tl", s=4)
    assert 0 <= float(at_loss(s_coarse, t)) < float(at_loss(_blob("br", s=4), t))
    flat_t, flat_s = torch.ones(2, 3, 8, 8), torch.ones(2, 5, 4, 4)
    assert float(at_loss(flat_s, flat_t)) == pytest.approx(0.0, abs=1e-6)


def test_gradients_reach_the_student_only_and_stay_finite_at_zero_distance():
    t = _blob("tl").requires_grad_(True)  # as if a caller forgot torch.no_grad()
    s = _blob("br", seed=2).requires_grad_(True)
    at_loss(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and bool(torch.isfinite(s.grad).all()) and float(s.grad.abs().sum()) > 0
    s2 = t.detach().clone().requires_grad_(True)
    at_loss(s2, t).backward()
    assert bool(torch.isfinite(s2.grad).all())


def test_forward_with_map_takes_a_cnn_stage_from_the_same_pass():
    model = create_arch("cnn5", num_classes=3, in_chans=1, channels=[4, 4, 8, 8, 8]).eval()
    x = torch.rand(2, 1, 32, 32)
    out, stage = forward_with_map(model, x, -1)
    assert stage is not None and stage.shape == out.features[-1].shape and torch.equal(stage, out.features[-1])
    plain, none = forward_with_map(model, x, None)
    assert none is None and torch.equal(plain.logits, out.logits)
    with pytest.raises(ValueError, match="at_stage 7"):
        forward_with_map(model, x, 7)


def test_a_transformer_stage_ending_in_layernorm_gives_its_residual_input_as_a_map():
    model = create_arch("hdkd_student", num_classes=3, in_chans=1, channels=(16, 24, 32), stem_stride=2,
                        depths=(1, 1, 1), embed_dim=32, dflt_depth=1, num_heads=2, head_dim=16, img_size=64).eval()
    out, stage = forward_with_map(model, torch.rand(2, 1, 64, 64), -1)
    assert stage is not None and stage.shape == out.features[-1].shape  # (B, C, h, w), tokens reshaped
    assert not torch.allclose(stage, out.features[-1])  # the norm's input, not its output
    assert stage.requires_grad  # in the student's graph: the AT term trains it
