"""Weight averaging: the EMA and SWA follow their formulas, BatchNorm statistics included, and
their state round-trips (a resumed run continues the same average)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from medkd_desktop.distill.averaging import WeightAverage, ema_decay_at, weight_average


pytestmark = pytest.mark.usefixtures("one_thread")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))


def _step(net, seed):
    """A fake optimiser step: new weights and new BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    net(torch.randn(4, 1, 6, 6, generator=g))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def _flat(net):
    return {k: v.detach().clone().float() for k, v in net.state_dict().items() if v.is_floating_point()}


def test_warm_up_then_the_configured_decay():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_off_means_no_average():
    assert weight_average(_net(), 0.0, 0, 10) is None
    with pytest.raises(ValueError):
        WeightAverage(_net(), ema_decay=0.9, swa_epochs=2, epochs=10)


def test_ema_follows_its_formula_for_weights_and_batchnorm_statistics():
    net = _net()
    net(torch.zeros(1, 1, 6, 6))  # materialise the lazy layer
    avg = WeightAverage(net, ema_decay=0.5)
    assert avg.judged(net) is net  # nothing averaged yet
    expected = None
    for i in range(4):
        _step(net, i)
        avg.after_step(net)
        w = _flat(net)
        if expected is None:
            expected = w
        else:
            d = ema_decay_at(0.5, i)
            expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
    got = _flat(avg.judged(net))
    assert avg.judged(net) is not net and avg.n_averaged == 4
    for k in expected:
        assert torch.allclose(got[k], expected[k], atol=1e-6), k
    assert "1.running_mean" in expected


def test_swa_averages_only_the_last_epochs_equally():
    net = _net()
    net(torch.zeros(1, 1, 6, 6))
    avg = WeightAverage(net, swa_epochs=2, epochs=5)
    kept = []
    for epoch in range(5):
        _step(net, epoch)
        avg.after_step(net)  # no effect for SWA
        avg.after_epoch(net, epoch)
        if epoch >= 3:
            kept.append(_flat(net))
        assert (avg.judged(net) is net) == (epoch < 3)
    got = _flat(avg.judged(net))
    for k in got:
        assert torch.allclose(got[k], (kept[0][k] + kept[1][k]) / 2, atol=1e-6), k


def test_state_round_trip_continues_the_same_average():
    net = _net()
    net(torch.zeros(1, 1, 6, 6))
    a = WeightAverage(net, ema_decay=0.9)
    for i in range(3):
        _step(net, i)
        a.after_step(net)
    b = WeightAverage(net, ema_decay=0.9)
    b.load_state_dict(a.state_dict())
    _step(net, 9)
    a.after_step(net)
    b.after_step(net)
    assert b.n_averaged == 4
    for k, v in _flat(a.judged(net)).items():
        assert torch.equal(v, _flat(b.judged(net))[k]), k
