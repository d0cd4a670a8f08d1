"""Evaluate a model on a manifest: the same code for the trainer's final test and `medkd evaluate`.

Why shared: a card's test metrics must be exactly reproducible by `medkd evaluate`; one
function that predicts and scores guarantees it.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.card import ModelCard
from ..models.preprocess import InputSpec, normalize
from .data import CachedSplit, read_manifest
from .metrics import classification_metrics


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: torch.Tensor, spec: InputSpec, device: torch.device,
                  batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Softmax probabilities for cached [0, 1] images ``x`` (N, C, S, S)."""
    model.eval()
    probs = []
    for i in range(0, x.shape[0], batch_size):
        xb = normalize(x[i:i + batch_size].float(), spec).to(device)
        with autocast(device, precision):
            logits = model(xb)
        probs.append(torch.softmax(logits.float(), 1).cpu())
    return torch.cat(probs).numpy()


def subset_masks(split: CachedSplit, subsets: dict[str, dict[str, str]]) -> dict[str, np.ndarray]:
    """Named row masks, e.g. ``{"adult_only": {"exclude_source_contains": "lecuong1502"}}``."""
    masks = {}
    for name, rule in subsets.items():
        if "exclude_source_contains" in rule:
            masks[name] = np.array([rule["exclude_source_contains"] not in s.source for s in split.samples])
        elif "source_contains" in rule:
            masks[name] = np.array([rule["source_contains"] in s.source for s in split.samples])
    return masks


def evaluate_split(model: torch.nn.Module, split: CachedSplit, spec: InputSpec, device: torch.device,
                   subsets: dict[str, dict[str, str]] | None = None, n_boot: int = 1000) -> dict[str, Any]:
    prob = predict_proba(model, split.x, spec, device)
    return classification_metrics(split.y.numpy(), prob, split.classes,
                                  sources=[s.source for s in split.samples],
                                  subsets=subset_masks(split, subsets or {}), n_boot=n_boot)


def evaluate_card(card: ModelCard, model: torch.nn.Module, manifest: Path, split: str | None,
                  device: torch.device, cache_dir: Path | None = None, n_boot: int = 1000) -> dict[str, Any]:
    samples = read_manifest(manifest, card.input, split)
    if not samples:
        raise ValueError(f"no rows{' in split ' + split if split else ''} in {manifest}")
    data = CachedSplit(samples, card.classes, card.input, cache_dir)
    subsets = card.training.get("config", {}).get("subsets", {})
    return evaluate_split(model, data, card.input, device, subsets, n_boot=n_boot)
