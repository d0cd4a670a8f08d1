"""Batched augmentation: old configs augment exactly as before, new ops stay in range, a task
that forbids mirroring is never mirrored, and a seeded generator gives the same batch twice.

What would go wrong for a user if these failed: a chest-film student trained on mirrored
hearts; an old bundled config that no longer reproduces its card; a resumed run that sees
different images than the uninterrupted one.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medkd_desktop.distill.augment import augment_batch, check_augment_params
from medkd_desktop.distill.trivial import GRAY_OPS, OPS, RGB_OPS, trivial_augment

OLD_DEFAULT = {"hflip": True, "scale": [0.7, 1.0], "rotate": 10.0, "brightness": 0.1, "contrast": 0.1}
EVERYTHING = {**OLD_DEFAULT, "vflip": True, "rot90": True, "rotate": 180.0, "trivial": True}


pytestmark = pytest.mark.usefixtures("one_thread")


def _old_augment_batch(x, params, gen):
    """augment_batch as it was before the levers (commit e9c9458), verbatim."""
    b = x.shape[0]
    lo, hi = params.get("scale", [1.0, 1.0])
    area = lo + (hi - lo) * torch.rand(b, generator=gen)
    side = area.sqrt()
    rot = math.radians(params.get("rotate", 0.0)) * (2 * torch.rand(b, generator=gen) - 1)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if params.get("hflip") else torch.ones(b)
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


def _images(b=16, c=3, s=24, seed=0):
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed))


def _left_bright(b=32, c=1, s=32):
    """Left half 0.8, right half 0.2, plus mild texture: mirrored exactly when the right is brighter."""
    x = torch.full((b, c, s, s), 0.2)
    x[..., : s // 2] = 0.8
    return (x + 0.05 * _images(b, c, s)).clamp(0, 1)


@pytest.mark.parametrize("params", [OLD_DEFAULT, {"hflip": False, "scale": [0.9, 1.0], "rotate": 0.0,
                                                  "brightness": 0.05, "contrast": 0.05}, {}])
def test_configs_without_the_new_keys_augment_bit_for_bit_as_before(params):
    x = _images()
    new = augment_batch(x, params, torch.Generator().manual_seed(3))
    old = _old_augment_batch(x, params, torch.Generator().manual_seed(3))
    assert torch.equal(new, old)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_keeps_shape_and_range(channels):
    x = _images(c=channels)
    out = augment_batch(x, {**EVERYTHING, "trivial_strength": 3.0}, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    ops = RGB_OPS if channels == 3 else GRAY_OPS
    for name in ops:
        y = trivial_augment(x, torch.Generator().manual_seed(1), [name], strength=3.0)
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1, name


def test_each_op_at_strength_zero_is_the_identity():
    x = _images(c=3)
    for name in OPS:
        y = trivial_augment(x, torch.Generator().manual_seed(1), [name], strength=0.0)
        assert torch.allclose(y, x, atol=1e-5), name


def test_trivial_changes_images_and_picks_ops_per_image():
    x = _images(b=64, c=3)
    y = trivial_augment(x, torch.Generator().manual_seed(0))
    changed = (y - x).abs().flatten(1).amax(1) > 1e-4
    assert 0 < int(changed.sum()) < 64  # "identity" is one of the ops, so some images stay


def test_a_task_without_hflip_is_never_mirrored_even_with_trivial_rotation_and_crops():
    x = _left_bright()
    params = {"hflip": False, "scale": [0.7, 1.0], "rotate": 30.0, "brightness": 0.1, "contrast": 0.1,
              "trivial": True}
    for seed in range(8):
        out = augment_batch(x, params, torch.Generator().manual_seed(seed))
        left, right = out[..., :16].mean(dim=(1, 2, 3)), out[..., 16:].mean(dim=(1, 2, 3))
        assert bool((left > right).all()), seed
    # the same check does see mirroring when it is allowed
    out = augment_batch(x, {**params, "hflip": True}, torch.Generator().manual_seed(0))
    mirrored = out[..., :16].mean(dim=(1, 2, 3)) < out[..., 16:].mean(dim=(1, 2, 3))
    assert 0 < int(mirrored.sum()) < x.shape[0]


def test_vflip_flips_top_and_bottom():
    x = _left_bright().transpose(-1, -2)  # top bright, bottom dark
    out = augment_batch(x, {"hflip": True, "vflip": True}, torch.Generator().manual_seed(0))
    upside_down = out[..., :16, :].mean(dim=(1, 2, 3)) < out[..., 16:, :].mean(dim=(1, 2, 3))
    assert 0 < int(upside_down.sum()) < x.shape[0]


def test_rot90_is_a_lossless_quarter_turn():
    x = _images(b=32, c=1, s=16)
    out = augment_batch(x, {"rot90": True}, torch.Generator().manual_seed(0))
    turns = set()
    for i in range(x.shape[0]):
        k = [k for k in range(4) if torch.allclose(out[i], torch.rot90(x[i], k, dims=(-2, -1)), atol=1e-5)]
        assert len(k) == 1, i
        turns.add(k[0])
    assert len(turns) > 1


def test_same_generator_seed_same_batch_and_another_seed_another():
    x = _images()
    a = augment_batch(x, EVERYTHING, torch.Generator().manual_seed(7))
    b = augment_batch(x, EVERYTHING, torch.Generator().manual_seed(7))
    c = augment_batch(x, EVERYTHING, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_params_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown .augment. keys: trivail"):
        check_augment_params({"trivail": True})
    with pytest.raises(ValueError, match="vflip mirrors"):
        check_augment_params({"hflip": False, "vflip": True})
    with pytest.raises(ValueError, match="unknown trivial_ops: solarize"):
        check_augment_params({"trivial": True, "trivial_ops": ["solarize"]})
    with pytest.raises(ValueError, match="mix_prob"):
        check_augment_params({"mixup": 0.2, "mix_prob": 1.5})
    with pytest.raises(ValueError, match="need RGB"):
        trivial_augment(_images(c=1), torch.Generator(), ["hue"])
