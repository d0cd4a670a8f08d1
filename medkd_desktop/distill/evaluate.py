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
from .metrics import calibration_metrics, classification_metrics


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, spec: InputSpec, device: torch.device,
                   batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Logits (float32) for cached [0, 1] images ``x`` (N, C, S, S): what temperature scaling is fitted on."""
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = normalize(x[i:i + batch_size].float(), spec).to(device)
        with autocast(device, precision):
            logits = model(xb)
        out.append(logits.float().cpu())
    return torch.cat(out).numpy()


def softmax_t(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T), as the engine computes it for a card's temperature."""
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)) / temperature, 1).numpy()


def predict_proba(model: torch.nn.Module, x: torch.Tensor, spec: InputSpec, device: torch.device,
                  batch_size: int = 64, precision: str = "fp32", temperature: float = 1.0) -> np.ndarray:
    """Softmax probabilities (of logits / *temperature*) for cached [0, 1] images ``x`` (N, C, S, S)."""
    return softmax_t(predict_logits(model, x, spec, device, batch_size, precision), temperature)


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
                   subsets: dict[str, dict[str, str]] | None = None, n_boot: int = 1000,
                   temperature: float = 1.0) -> dict[str, Any]:
    """Metrics of softmax(logits / *temperature*) (the card's calibration; 1: none), with ECE, NLL
    and Brier before and after it: the temperature never changes a prediction, only confidences."""
    logits = predict_logits(model, split.x, spec, device)
    prob = softmax_t(logits, temperature)
    y = split.y.numpy()
    out = classification_metrics(y, prob, split.classes, sources=[s.source for s in split.samples],
                                 subsets=subset_masks(split, subsets or {}), n_boot=n_boot)
    out.update(calibration_metrics(y, prob, softmax_t(logits)), temperature=temperature)
    return out


def evaluate_card(card: ModelCard, model: torch.nn.Module, manifest: Path, split: str | None,
                  device: torch.device, cache_dir: Path | None = None, n_boot: int = 1000) -> dict[str, Any]:
    samples = read_manifest(manifest, card.input, split)
    if not samples:
        raise ValueError(f"no rows{' in split ' + split if split else ''} in {manifest}")
    data = CachedSplit(samples, card.classes, card.input, cache_dir)
    subsets = card.training.get("config", {}).get("subsets", {})
    return evaluate_split(model, data, card.input, device, subsets, n_boot=n_boot, temperature=card.temperature)
