"""DFS-Ex masks (003 Eq. 2 and 4): the paper's threshold by hand, and the soft mask the dfkd loss
trains with tending to the hard one the explainer draws."""
from __future__ import annotations

import torch
from model_factory import blob_features

from medkd_desktop.explain.dfs_masks import dfs_ex_masks, saliency_mask


def test_dfs_ex_hard_mask_is_the_papers_threshold():
    early, late = blob_features(8, 16, "tl"), blob_features(32, 4, "tl")
    m = dfs_ex_masks([early, late], kappa=1.0, eta=0.5)
    expected = torch.zeros(2, 16, 16)
    expected[:, :8, :8] = 1.0
    assert torch.equal(m.texture, expected) and torch.equal(m.shape, expected)
    assert torch.equal(m.fused, expected)
    assert set(m.fused.unique().tolist()) <= {0.0, 1.0}
    # Eq. 2 by hand on one sample: max over channels > mean + kappa * std of all activations
    h = early[0]
    hand = (h.amax(0) > h.mean() + 1.0 * h.std(unbiased=False)).float()
    assert torch.equal(m.texture[0], hand)
    # Eq. 2 aggregates channels by their max: a region one channel of eight responds to is salient
    one = 0.1 * torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    one[:, 3, 8:, :8] += 3.0
    expected_one = torch.zeros(1, 16, 16)
    expected_one[:, 8:, :8] = 1.0
    assert torch.equal(saliency_mask(one), expected_one)
    # the width-independent statistics find the same region
    assert torch.equal(dfs_ex_masks([early, late], stats="channel_max").fused, expected)
    # the soft mask the loss trains with tends to the hard one as its temperature goes to 0
    for f in (early, late):
        hard = saliency_mask(f)
        assert torch.allclose(saliency_mask(f, soft=True, temperature=1e-3), hard, atol=1e-3)
        assert not torch.allclose(saliency_mask(f, soft=True, temperature=0.5), hard, atol=1e-3)
