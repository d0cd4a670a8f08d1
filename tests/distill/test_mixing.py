"""Mixup / CutMix: the images mix as the labels say, and every loss sees the mixed target.

What would go wrong for a user if these failed: a student trained on mixed images against
the wrong label weights (CutMix's box clipped at the border but lambda not corrected), or a
distilled student whose teacher term is counted twice on mixed batches.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medkd_desktop.distill.losses import create_loss
from medkd_desktop.distill.mixing import MixedBatch, cutmix_box, mix_batch, mixed_loss
from medkd_desktop.models.outputs import ModelOutput


pytestmark = pytest.mark.usefixtures("one_thread")


def _labelled(b=8, s=16):
    """Image i is constant (i + 1) / (b + 1): every pixel says which image it came from."""
    y = torch.arange(b)
    x = ((y + 1).float() / (b + 1)).view(b, 1, 1, 1).expand(b, 3, s, s).clone()
    return x, y


def _value(y, b=8):
    return (y + 1).float() / (b + 1)


def test_without_mixing_keys_the_batch_is_untouched_and_no_random_number_is_drawn():
    x, y = _labelled()
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    m = mix_batch(x, y, {"hflip": True}, gen)
    assert m.x is x and m.lam == 1.0 and torch.equal(m.y_a, y) and torch.equal(m.y_b, y)
    assert torch.equal(gen.get_state(), state)


def test_mixup_mixes_pixels_with_the_labels_weights():
    x, y = _labelled()
    for seed in range(5):
        m = mix_batch(x, y, {"mixup": 0.4}, torch.Generator().manual_seed(seed))
        assert 0.0 <= m.lam <= 1.0 and torch.equal(m.y_a, y)
        expected = m.lam * _value(m.y_a) + (1 - m.lam) * _value(m.y_b)
        assert torch.allclose(m.x[:, 0, 0, 0], expected, atol=1e-6)
        assert float(m.x.min()) >= 0 and float(m.x.max()) <= 1


def test_cutmix_lambda_is_the_share_of_each_images_own_pixels():
    x, y = _labelled(s=20)
    for seed in range(10):
        m = mix_batch(x, y, {"cutmix": 1.0}, torch.Generator().manual_seed(seed))
        for i in range(len(y)):
            if m.y_b[i] == m.y_a[i]:
                continue
            own = (m.x[i] - _value(m.y_a[i])).abs() < 1e-6
            pasted = (m.x[i] - _value(m.y_b[i])).abs() < 1e-6
            assert bool((own | pasted).all())
            assert abs(float(own.float().mean()) - m.lam) < 1e-6, (seed, i)


def test_cutmix_box_is_clipped_at_the_border():
    for seed in range(20):
        top, bottom, left, right = cutmix_box(10, 12, 0.3, torch.Generator().manual_seed(seed))
        assert 0 <= top <= bottom <= 10 and 0 <= left <= right <= 12


def test_mix_prob_and_the_switch_between_mixup_and_cutmix():
    x, y = _labelled()
    gen = torch.Generator().manual_seed(0)
    never = [mix_batch(x, y, {"mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.0}, gen).lam for _ in range(20)]
    assert never == [1.0] * 20
    kinds = set()
    for _ in range(40):
        m = mix_batch(x, y, {"mixup": 0.4, "cutmix": 1.0}, gen)
        blended = not bool(((m.x[:, 0] - _value(m.y_a).view(-1, 1, 1)).abs() < 1e-6).any())
        kinds.add("mixup" if blended else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_same_seed_same_mix():
    x, y = _labelled()
    a = mix_batch(x, y, {"mixup": 0.4, "cutmix": 1.0}, torch.Generator().manual_seed(3))
    b = mix_batch(x, y, {"mixup": 0.4, "cutmix": 1.0}, torch.Generator().manual_seed(3))
    assert a.lam == b.lam and torch.equal(a.x, b.x) and torch.equal(a.y_b, b.y_b)


def _soft_ce(logits, soft, smoothing=0.0):
    soft = soft * (1 - smoothing) + smoothing / logits.shape[1]
    return -(soft * F.log_softmax(logits, 1)).sum(1).mean()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_on_a_mixed_batch_is_ce_against_the_mixed_soft_target(smoothing):
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y_a, y_b, lam = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 3, 0, 1, 2, 1]), 0.3
    loss, parts = mixed_loss(create_loss("ce", label_smoothing=smoothing), ModelOutput(logits), None,
                             MixedBatch(torch.zeros(6), y_a, y_b, lam))
    soft = lam * F.one_hot(y_a, 4).float() + (1 - lam) * F.one_hot(y_b, 4).float()
    assert torch.allclose(loss, _soft_ce(logits, soft, smoothing), atol=1e-6)
    assert parts["ce"] == pytest.approx(float(loss), abs=1e-6)


def test_focal_bce_on_a_mixed_batch_is_focal_bce_against_the_mixed_target():
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    y_a, y_b, lam = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 3, 0, 1, 2, 1]), 0.7
    loss, _ = mixed_loss(create_loss("fbce", gamma=2.0), ModelOutput(z), None, MixedBatch(torch.zeros(6), y_a, y_b, lam))
    t = lam * F.one_hot(y_a, 4).float() + (1 - lam) * F.one_hot(y_b, 4).float()
    p = torch.sigmoid(z)
    ref = -(t * (1 - p) ** 2 * F.logsigmoid(z) + (1 - t) * p ** 2 * F.logsigmoid(-z)).mean()
    assert torch.allclose(loss, ref, atol=1e-6)


def test_the_teacher_term_counts_once_on_a_mixed_batch():
    s = ModelOutput(torch.randn(6, 4, generator=torch.Generator().manual_seed(2)))
    t = ModelOutput(torch.randn(6, 4, generator=torch.Generator().manual_seed(3)))
    y_a, y_b = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 3, 0, 1, 2, 1])
    kd = create_loss("kd_kl", alpha=0.5, temperature=4.0)
    loss, parts = mixed_loss(kd, s, t, MixedBatch(torch.zeros(6), y_a, y_b, 0.25))
    soft = 0.25 * F.one_hot(y_a, 4).float() + 0.75 * F.one_hot(y_b, 4).float()
    kl = kd(s, t, y_a)[1]["kl"]
    assert parts["kl"] == pytest.approx(kl, rel=1e-6)
    assert float(loss) == pytest.approx(0.5 * float(_soft_ce(s.logits, soft)) + 0.5 * kl, rel=1e-5)
