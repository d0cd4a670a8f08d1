"""A tiny network whose every class looks at one known image quadrant, for testing explainers.

Class *i* reads only channel group *i*, and group *i* sees only quadrant ``quadrants[i]`` of
the image (bias-free convolutions + ReLU keep everything else at exactly 0). So the correct
explanation of class *i* is known: all heat in that quadrant. Head weights are positive and
large so that gradients, Score-CAM's softmax over channel scores and the class probabilities
all respond clearly to the quadrant's content.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

WIDTH = 4  # channels per class group


class QuadrantNet(nn.Module):
    def __init__(self, quadrants: tuple[tuple[int, int], ...] = ((0, 0), (0, 0)), in_chans: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.quadrants = quadrants
        g = len(quadrants)
        self.stage1 = nn.Sequential(nn.Conv2d(in_chans * g, WIDTH * g, 3, padding=1, groups=g, bias=False), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(WIDTH * g, WIDTH * g, 3, stride=2, padding=1, groups=g, bias=False), nn.ReLU())
        self.stage3 = nn.Sequential(nn.Conv2d(WIDTH * g, WIDTH * g, 3, stride=2, padding=1, groups=g, bias=False), nn.ReLU())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # positive weights: a non-zero input quadrant is never silenced
                nn.init.uniform_(m.weight, 0.0, 0.3)
        self.head_weight = nn.Parameter(torch.full((g, WIDTH), 4.0))
        self.stage_names = ["stage1", "stage2", "stage3"]
        self.config = {"num_classes": g}

    def _masks(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        masks = torch.zeros(len(self.quadrants), 1, h, w, dtype=x.dtype, device=x.device)
        for i, (r, c) in enumerate(self.quadrants):
            masks[i, :, r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2] = 1.0
        return masks

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        groups = x[:, None] * self._masks(x)[None]  # (B, G, C, H, W): group i sees quadrant i
        f = self.stage3(self.stage2(self.stage1(groups.flatten(1, 2))))
        pooled = f.mean(dim=(2, 3)).view(b, len(self.quadrants), WIDTH)
        return (pooled * self.head_weight).sum(-1)

    @staticmethod
    def reshape_transform(x: Tensor) -> Tensor:
        return x


def quadrant_share(m, r: int, c: int) -> float:
    """Fraction of the map's total heat inside quadrant (r, c)."""
    h, w = m.shape
    inside = m[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2].sum()
    total = m.sum()
    return float(inside / total) if total > 0 else 0.0
