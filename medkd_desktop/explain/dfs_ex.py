"""DFS-Ex dual-feature saliency (003 Eq. 2-4) and aggregated attention maps (003 Eq. 3).

Why here and not a CAM: 003's students are trained to reproduce the teacher's DFS-Ex map, so
the app must be able to *show* that same map for both models. It is the paper-exact hard
mask from ``explain.dfs_masks`` (the very code the ``dfkd`` loss uses, in its hard form):
R = [max over channels > mu + kappa * sigma] on an early (texture) and a late (shape) layer,
fused as G = eta * R_texture + (1 - eta) * R_shape. G takes only the values
{0, eta, 1 - eta, 1}, so it is upsampled with nearest neighbour and not rescaled: with the
default eta = 0.5 a clinician reads 1 as "texture and shape agree", 0.5 as "one of them".

Default ``stats="channel_max"`` (mu and sigma of Eq. 2 taken over the map of channel maxima)
rather than the paper's statistics over all activations: on the bundled architectures
(checked at random initialisation: ResNet-18's 64-channel stem and 512-channel last stage,
CNN5's first layer) the paper's threshold marks *every* pixel of layers wider than a few
dozen channels (the maximum of 64+ channels sits far above the mean
of all of them), giving a blank, uninformative map; 003 itself says kappa is "adjusted based
on architecture characteristics". ``stats="activations"`` gives the paper's exact statistic.

Transformer parts (003 §2.2): spatial importance comes from attention, not activations.
Eq. 3 averages the attention weights of the selected blocks, W_agg = mean_l W^(l); the map is
the attention the class (and distillation) tokens pay to each patch — or, for attention over
a plain grid without such tokens (Visformer), the attention each position receives — averaged
over heads. That is the ``attention`` method; DFS-Ex uses it as the shape layer whenever the
model's last stage is a token sequence (the HDKD student), thresholded by Eq. 2 like any map.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .base import ExplainError, RawMap, as_spatial, capture_stage_maps, register_explainer
from .dfs_masks import Stats, dfs_ex_masks


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Self-attention modules whose weights can be read: the HDKD DFLT's (``keep_attn``) and
    timm's (``fused_attn`` + ``attn_drop``: with the fused kernel off, ``attn_drop`` receives
    the softmax weights)."""
    found = []
    for name, m in model.named_modules():
        if hasattr(m, "keep_attn") and hasattr(m, "attn"):
            found.append((name, m))
        elif hasattr(m, "fused_attn") and isinstance(getattr(m, "attn_drop", None), nn.Module):
            found.append((name, m))
    return found


def has_attention(model: nn.Module) -> bool:
    return bool(attention_modules(model))


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[dict[str, Any]]]:
    """Yield one record per attention module; after a forward inside the block each holds
    ``attn`` (B, heads, T, T) and ``input_shape`` (of the module's input, to find the grid).

    Every switch it flips (``keep_attn``, ``fused_attn``) and every hook is restored in
    ``finally``, so later inference uses the fused kernel and keeps no attention tensors.
    """
    mods = attention_modules(model)
    records: list[dict[str, Any]] = [{"name": name} for name, _ in mods]
    handles, restore = [], []

    def keep(rec: dict[str, Any], key: str, fn):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            rec[key] = fn(module, inputs, output)

        return hook

    try:
        for rec, (_, m) in zip(records, mods, strict=True):
            handles.append(m.register_forward_hook(keep(rec, "input_shape", lambda _m, i, _o: tuple(i[0].shape))))
            if hasattr(m, "keep_attn"):
                restore.append((m, "keep_attn", m.keep_attn))
                m.keep_attn = True
                handles.append(m.register_forward_hook(keep(rec, "attn", lambda mod, _i, _o: mod.attn)))
            else:
                restore.append((m, "fused_attn", m.fused_attn))
                m.fused_attn = False
                handles.append(m.attn_drop.register_forward_hook(keep(rec, "attn", lambda _m, _i, out: out)))
        yield records
    finally:
        for h in handles:
            h.remove()
        for m, attr, value in restore:
            setattr(m, attr, value)
            if attr == "keep_attn":
                m.attn = None


def aggregate_attention(model: nn.Module, records: list[dict[str, Any]]) -> tuple[Tensor, list[str]]:
    """003 Eq. 3: W_agg = mean of the selected blocks' attention -> (B, h, w) patch importance.

    The selected blocks (L_attn) are the last run of blocks sharing the final block's token
    count (all DFLT layers; Visformer's stage-3 blocks), since maps of different grids cannot
    be averaged.
    """
    recs = [r for r in records if r.get("attn") is not None]
    if not recs:
        raise ExplainError(f"{type(model).__name__} recorded no attention weights.")
    t = recs[-1]["attn"].shape[-1]
    chosen = []
    for r in reversed(recs):
        if r["attn"].shape[-1] != t:
            break
        chosen.insert(0, r)
    w_agg = torch.stack([r["attn"].detach().float() for r in chosen]).mean(dim=0)  # Eq. 3
    w = w_agg.mean(dim=1)  # over heads: (B, T, T)
    shape = chosen[-1]["input_shape"]
    if len(shape) == 4:  # attention over a plain (B, C, H, W) grid, no prefix tokens
        grid, prefix = (int(shape[-2]), int(shape[-1])), 0
    else:
        reshape = getattr(model, "reshape_transform", None)
        if reshape is None:
            raise ExplainError(f"{type(model).__name__} has no reshape transform to lay its tokens on a grid.")
        grid = tuple(reshape(torch.zeros(1, t, 1)).shape[-2:])
        prefix = t - grid[0] * grid[1]
    rows = w[:, :prefix] if prefix else w  # cls/dist queries, or every query
    importance = rows.mean(dim=1)[:, prefix:]
    return importance.reshape(w.shape[0], *grid), [r["name"] for r in chosen]


def dfkd_settings(card: Any) -> dict[str, Any]:
    """kappa / eta / stats of the ``dfkd`` loss a student was trained with (from its card), so the
    map shown is the one the student learnt to match; other models get the defaults."""
    training = getattr(card, "training", None) or {}
    if training.get("method") != "dfkd":
        return {}
    params = training.get("loss_params") or {}
    return {k: params[k] for k in ("kappa", "eta", "stats") if k in params}


@register_explainer("dfs_ex", label="Dual-feature saliency (DFS-Ex)", class_specific=False, layers="texture_shape",
                    card_opts=dfkd_settings)
def dfs_ex(
    model: nn.Module,
    x: Tensor,
    target: int | None,
    layers: list[str],
    kappa: float = 1.0,
    eta: float = 0.5,
    stats: Stats = "channel_max",
) -> RawMap:
    """DFS-Ex (003 Eq. 2-4): hard texture mask (early layer) fused with shape mask (late layer)."""
    if len(layers) < 2:
        raise ExplainError("DFS-Ex needs a texture layer and a shape layer.")
    tex_name, shp_name = layers[0], layers[-1]
    attend = has_attention(model)
    with capture_stage_maps(model, [tex_name, shp_name]) as feats:
        if attend:
            with capture_attention(model) as records:
                logits = model(x)
        else:
            logits = model(x)
    tex_raw, shp_raw = feats
    tex = as_spatial(model, tex_raw)
    if shp_raw.dim() == 3 and attend:  # a token stage: Eq. 3's attention map is its saliency
        importance, names = aggregate_attention(model, records)
        shp, shp_label = importance[:, None], "attention " + ", ".join(names)
    else:
        shp, shp_label = as_spatial(model, shp_raw), shp_name
    try:
        masks = dfs_ex_masks([tex, shp], 0, 1, kappa=kappa, eta=eta, soft=False, stats=stats)
    except ValueError as exc:
        raise ExplainError(f"DFS-Ex settings rejected: {exc}") from None
    return RawMap(
        map=masks.fused[0], layers=[tex_name, shp_label], logits=logits, normalized=True, interpolation="nearest",
        stages=[(f"texture: {tex_name}", masks.texture[0]), (f"shape: {shp_label}", masks.shape[0])],
    )


@register_explainer("attention", label="Attention rollout", class_specific=False, layers="attention", supports=has_attention)
def attention(model: nn.Module, x: Tensor, target: int | None, layers: list[str]) -> RawMap:
    """Aggregated attention (003 Eq. 3): attention paid to each patch, averaged over blocks and heads."""
    with capture_attention(model) as records:
        logits = model(x)
    importance, names = aggregate_attention(model, records)
    return RawMap(map=importance[0], layers=names, logits=logits)


__all__ = ["aggregate_attention", "attention", "attention_modules", "capture_attention", "dfs_ex", "has_attention"]
