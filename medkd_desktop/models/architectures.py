"""Name → architecture constructor, so model cards can store a string plus JSON kwargs.

Why a registry (timm's pattern): a card on disk says ``{"arch": "hdkd_student", "arch_kwargs":
{...}}`` and the app must rebuild exactly that network before loading its safetensors, without
a chain of ``if`` statements that every new architecture would have to edit. The papers' own
models register themselves here by name; any timm classifier is reachable as ``timm:<name>``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medkd_desktop.models.cnn5 import CNN5
from medkd_desktop.models.hdkd import HDKDStudent, HDKDTeacher
from medkd_desktop.models.timm_net import TimmNet

TIMM_PREFIX = "timm:"

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make ``fn(**kwargs) -> nn.Module`` buildable as ``create_arch(name, **kwargs)``."""
    if name.startswith(TIMM_PREFIX):
        raise ValueError(f"names starting with {TIMM_PREFIX!r} are reserved for timm models")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_archs() -> list[str]:
    """Registered names (the timm family is open-ended and shown as ``timm:<name>``)."""
    return sorted(_REGISTRY)


def create_arch(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture ``name`` with ``kwargs`` (e.g. ``num_classes``, ``in_chans``)."""
    if name.startswith(TIMM_PREFIX):
        return TimmNet(name[len(TIMM_PREFIX) :], **kwargs)
    try:
        fn = _REGISTRY[name]
    except KeyError:
        choices = ", ".join(list_archs())
        raise ValueError(
            f"unknown architecture {name!r}; choose one of: {choices}, or '{TIMM_PREFIX}<timm model name>'"
        ) from None
    return fn(**kwargs)


@register_arch("hdkd_teacher")
def hdkd_teacher(**kwargs: Any) -> nn.Module:
    """HDKD CNN teacher (004 §3.4): stages [6, 6, 9], channels [64, 96, 192]."""
    return HDKDTeacher(**kwargs)


@register_arch("hdkd_student")
def hdkd_student(**kwargs: Any) -> nn.Module:
    """HDKD hybrid student (004 §3.4): stages [2, 2, 3] + 3-layer DFLT with cls/dist tokens."""
    return HDKDStudent(**kwargs)


@register_arch("cnn5")
def cnn5(**kwargs: Any) -> nn.Module:
    """002's five-layer CNN student (conv-BN-ReLU-maxpool ×5, GAP, linear)."""
    return CNN5(**kwargs)
