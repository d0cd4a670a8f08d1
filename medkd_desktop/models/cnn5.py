"""The 5-layer CNN student of paper 002 (DenseNet121 → small CNN, layer-wise average feature maps).

Why so plain: 002's student exists to be *read* layer by layer — its explanation is the
filter-averaged feature map of each convolutional layer. One convolution per block, no
branches or skips, means each of the five maps is exactly one layer's output.

The paper (we have only a summary) fixes: five convolutional layers, max pooling (its design
trade-off list contrasts the student's max pooling with the teacher's average pooling), and a
classifier trained with CE + KL. It gives no widths or kernels, so this module chooses:
3×3 conv → BatchNorm → ReLU → 2×2 max-pool per block, widths doubling 32→512 (the usual
VGG-style progression), global average pooling and one linear layer. At 224×224 this is
0.97 GMACs vs 2.83 for timm's DenseNet121 (2.9×; 002 reports 566.89 M vs 232.70 M FLOPs,
2.4×, at an input size it does not state), and 1.57 M parameters.

``stage_names`` are the five ReLU outputs (``block1.act`` … ``block5.act``): the layers'
feature maps at full per-layer resolution, *before* each max-pool halves them, because those
are what 002 averages per layer and what gives the sharpest Grad-CAM of each layer.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from medkd_desktop.models.hooks import HookedStages


class ConvBlock(nn.Module):
    """One "layer" of 002's student: conv, batch norm, ReLU, then 2×2 max pooling."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        # Not in-place: the hooked activation must stay intact for explainers and losses.
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class CNN5(HookedStages, nn.Module):
    """Five conv blocks, global average pooling, dropout, linear classifier.

    ``channels`` sets width and depth (its length is the number of layers; 002 uses five,
    and its failure analysis suggests adding one or two layers when the student trails the
    teacher by more than 5 %, which ``channels`` of length 6–7 allows). ``ceil_mode`` pooling
    keeps odd-sized inputs (e.g. 100 px) from losing border pixels.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        kernel_size: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(f"CNN5 needs at least one layer of positive width, got channels={list(channels)}")
        self.config = {
            "num_classes": int(num_classes),
            "in_chans": int(in_chans),
            "channels": [int(c) for c in channels],
            "kernel_size": int(kernel_size),
            "dropout": float(dropout),
        }
        widths = [in_chans, *channels]
        for i in range(len(channels)):
            self.add_module(f"block{i + 1}", ConvBlock(widths[i], widths[i + 1], kernel_size))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels[-1], num_classes)
        self.stage_names: list[str] = [f"block{i + 1}.act" for i in range(len(channels))]

    def forward(self, x: Tensor) -> Tensor:
        for i in range(len(self.stage_names)):
            x = getattr(self, f"block{i + 1}")(x)
        return self.head(self.dropout(self.pool(x).flatten(1)))
