"""Any timm classifier behind the same contract as the papers' own models.

Why a wrapper and not timm's ``features_only`` models: those drop the classifier, but the app
needs the logits *and* the stage maps from one pass (the distillation losses compare both;
the explainers hook the stages of the very model that predicted). Forward hooks on the modules
timm itself lists in ``feature_info`` give both without editing timm.

Weights: always ``pretrained=False``. Nothing is ever downloaded; trained weights come from
the app's own safetensors files.
"""
from __future__ import annotations

import json
import math
from typing import Any

import timm
from torch import Tensor, nn

from medkd_desktop.models.hooks import HookedStages


def _input_of_pointwise_head(net: nn.Module, last: str) -> str | None:
    """The stage before *last* when *last* is one 1x1, stride-1 convolution (MobileNetV3's
    96 -> 576 head conv): same grid, 6x fewer channels.

    Why: Score-CAM costs one forward pass per channel of its layer. A pointwise conv only mixes
    the channels of its input, so its input holds the same spatial information at the same
    resolution; for MobileNetV3-Small that is 96 instead of 576 forward passes.
    """
    modules = dict(net.named_modules())
    convs = [m for m in modules[last].modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != 1 or convs[0].kernel_size != (1, 1) or convs[0].stride != (1, 1):
        return None
    parent, _, index = last.rpartition(".")
    previous = f"{parent}.{int(index) - 1}" if index.isdigit() and int(index) > 0 else None
    return previous if previous in modules else None


def _reinit_classifier(net: nn.Module, std: float) -> None:
    """Start the classifier near zero (normal, *std*; bias 0), so the first logits are near uniform.

    Why: timm's EfficientNet-family init (MobileNetV3, EfficientNet) draws the classifier from
    U(+-1/sqrt(num_classes)), sized for 1000 classes. With 2 classes that is +-0.71 over 1024
    head features: measured on 64 fMRI glass brains, MobileNetV3-Small starts at logit std 1.4
    and cross-entropy 1.11 (GhostNet-0.5: 0.11 / 0.69; with ``head_init_std = 0.01``: 0.05 /
    0.69), and its training loss oscillated above ln 2.
    Opt-in (``arch_kwargs = {head_init_std = 0.01}``) so the bundled models' recorded configs
    still reproduce them.
    """
    head = net.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ValueError(f"head_init_std needs a linear classifier, {type(net).__name__} has {type(head).__name__}")
    nn.init.normal_(head.weight, std=std)
    nn.init.zeros_(head.bias)


class TimmNet(HookedStages, nn.Module):
    """``timm.create_model(model_name, num_classes=…, in_chans=…, **kwargs)`` with stage hooks.

    ``stage_names`` are the wrapper-qualified names (``model.<module>``) of every entry of the
    timm model's ``feature_info``, shallow to deep, so ``dict(self.named_modules())`` resolves
    them. Models whose pretrained config says ``fixed_input_size`` (e.g. visformer, whose
    position embeddings are sized at build time) accept only ``input_size``: build them with
    ``img_size=`` equal to the size the card's preprocessing produces.
    """

    def __init__(self, model_name: str, num_classes: int, in_chans: int = 3, head_init_std: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        if kwargs.pop("pretrained", False):
            raise ValueError("MedKD never loads pretrained timm weights; trained weights come from model files")
        # timm would load these itself (checkpoint files may be pickles, configs may point at the
        # hub); weights must instead come through the card's sha256-verified safetensors.
        forbidden = sorted({"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay"} & kwargs.keys())
        if forbidden:
            raise ValueError(f"timm weight-loading options are not allowed here: {forbidden}")
        if not timm.is_model(model_name):
            raise ValueError(f"timm has no model named {model_name!r} (see timm.list_models())")
        self.config = {"model_name": model_name, "num_classes": int(num_classes), "in_chans": int(in_chans), **kwargs}
        if head_init_std is not None:
            self.config["head_init_std"] = float(head_init_std)
        try:
            json.dumps(self.config)
        except TypeError as exc:
            raise ValueError(f"timm kwargs must be JSON-serialisable for the model card: {exc}") from exc
        self.model = timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs
        )
        if head_init_std is not None:
            _reinit_classifier(self.model, float(head_init_std))
        info = getattr(self.model, "feature_info", None)
        if not info:
            raise ValueError(f"timm model {model_name!r} does not list its stages (no feature_info)")
        entries = [dict(e) for e in info]
        if any(e.get("hook_type", "forward") not in (None, "forward") for e in entries):
            raise ValueError(f"timm model {model_name!r} exposes stages through pre-hooks, which are not supported")
        self.stage_names: list[str] = [f"model.{e['module']}" for e in entries]
        self.stage_channels: list[int] = [int(e["num_chs"]) for e in entries]
        self.stage_reductions: list[int] = [int(e["reduction"]) for e in entries]
        #: Per-method layer choices the explainers honour before their generic rule.
        self.method_layers: dict[str, str] = {}
        narrower = _input_of_pointwise_head(self, self.stage_names[-1])
        if narrower:
            self.method_layers["scorecam"] = narrower
        self.input_size: tuple[int, int] | None = None
        if self.model.pretrained_cfg.get("fixed_input_size", False):
            size = kwargs.get("img_size", self.model.pretrained_cfg["input_size"][-2:])
            self.input_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def forward(self, x: Tensor) -> Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"{self.config['model_name']} was built for {self.input_size[0]}x{self.input_size[1]} input, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        return self.model(x)

    def reshape_transform(self, x: Tensor) -> Tensor:
        """Maps pass through; a token sequence (B, prefix + N, C) with a square grid becomes
        (B, C, √N, √N), dropping the model's prefix (class/register) tokens."""
        if x.dim() == 4:
            return x
        if x.dim() != 3:
            raise ValueError(f"cannot turn a {x.dim()}-D activation into a feature map")
        tokens = x[:, int(getattr(self.model, "num_prefix_tokens", 0)) :]
        b, n, c = tokens.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} tokens do not form a square grid")
        return tokens.transpose(1, 2).reshape(b, c, side, side)
