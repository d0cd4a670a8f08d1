"""Fit temperature scaling (Guo et al. 2017) for bundled models on their task's `val` split.

Why a script and not a layer of the package: collecting a model's validation logits is
distill's (cached splits, the one preprocessing path) and fitting T is trust's, and neither
layer may import the other; only a script (or cli/bench) may use both.

For each card (the same record `medkd retrain` writes for a new student, retrain.calibrate): val
logits -> T = argmin NLL(softmax(logits / T)), kept only when a 2-fold cross-validation on val says
it lowers held-out NLL (trust.calibration.fit_checked) -> NLL and ECE (15 bins) on
val before and after -> the card's ``calibration`` field. The weights, their sha256 and the
test metrics are untouched (T never changes a prediction). Never fitted on `test`.

Run: `.venv/bin/python scripts/calibrate_bundled.py [--task T ...] [--role teacher ...] [--write]`
(without --write it prints what it would store).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from medkd_desktop.distill.data import CachedSplit, read_manifest
from medkd_desktop.distill.evaluate import predict_logits
from medkd_desktop.distill.trainer import default_cache_dir
from medkd_desktop.models.card import ROLES, ModelCard
from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry, load_model
from medkd_desktop.paths import shared_data_dir
from medkd_desktop.retrain.calibrate import calibration_record

SPLIT = "val"


def calibrate_card(card: ModelCard, device: torch.device) -> dict:
    """The card's ``calibration`` dict, fitted on the val split of its training manifest."""
    manifest = shared_data_dir() / card.training["manifest"]
    split = CachedSplit(read_manifest(manifest, card.input, SPLIT), card.classes, card.input, default_cache_dir())
    logits = predict_logits(load_model(card, device), split.x, card.input, device)
    return calibration_record(logits, split.y.numpy(), fitted_on=SPLIT,
                              manifest_sha256=card.training.get("manifest_sha256", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", action="append", help="task(s); default: every bundled task")
    ap.add_argument("--role", action="append", choices=ROLES, help="role(s); default: all three")
    ap.add_argument("--card", action="append", type=Path,
                    help="a card JSON anywhere (e.g. a retrained student in the user's model folder)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write", action="store_true", help="store the fit in each card's JSON")
    args = ap.parse_args(argv)
    registry = ModelRegistry([BUNDLED_DIR])  # the bundled cards only, never a user's versions
    device = torch.device(args.device)
    if args.card:
        cards = [ModelCard.load(p) for p in args.card]
    else:
        cards = []
        for task in args.task or registry.tasks():
            for role in args.role or ROLES:
                try:
                    cards.append(registry.card(task, role))
                except Exception:  # a task without a baseline
                    continue
    rows = []
    for card in cards:
        t0 = time.perf_counter()
        cal = calibrate_card(card, device)
        rows.append((card.id, cal))
        print(f"{card.id:32s} T={cal['temperature']:.3f}  NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f}  "
              f"ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}  (n={cal['n']}, "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
        if args.write:
            # Edit the JSON in place (not ModelCard.save): keeps every other key and its order.
            d = json.loads(card.path.read_text())
            d["calibration"] = cal
            card.path.write_text(json.dumps(d, indent=2) + "\n")
    print(json.dumps(dict(rows), indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
