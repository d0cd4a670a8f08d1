"""How much ASD-vs-TC signal survives the glass-brain rendering: two linear baselines on the same splits.

Why: the data README's reference (logistic regression on the 200 parcel values: 60-62% test) is what
an fMRI model should be compared with, but the app's models only ever see the nilearn glass brain,
a maximum-intensity projection of those parcels. Fitting the same logistic regression to the
rendered pixels the models are trained on separates what the rendering loses from what the CNNs
fail to learn. The regularisation strength is chosen on `val`; `test` is read once per input.

Run: `.venv/bin/python scripts/fmri_linear_baselines.py [--threshold T] [--json]`; the pixels are the
bundled student card's rendering, or that rendering at glass-brain threshold T (first use of a
rendering fills the user cache: about 5 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medkd_desktop.distill.data import CachedSplit, read_manifest
from medkd_desktop.distill.metrics import classification_metrics
from medkd_desktop.distill.trainer import default_cache_dir
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.paths import shared_data_dir

SPLITS = ("train", "val", "test")
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: Glass-brain pixels are average-pooled by this factor (160 px -> 20 x 20 x 3 = 1200 features),
#: so the pixel model has a few times the parcel model's 200 inputs, not 77 k for 614 subjects.
POOL = 8


def parcel_values(map_path: Path, labels: np.ndarray) -> np.ndarray:
    """The 200 CC200 parcel values of one painted map, z-scored within the subject over non-zero parcels
    (as the glass brain's ``normalise="zscore"``: site confounds the signal's scale)."""
    data = np.asanyarray(nib.load(map_path).dataobj, dtype=np.float32)
    values = np.array([data[labels == k].mean() for k in range(1, 201)], dtype=np.float64)
    nz = values != 0
    out = np.zeros_like(values)
    if nz.sum() > 1 and values[nz].std() > 0:
        out[nz] = (values[nz] - values[nz].mean()) / values[nz].std()
    return out


def fit_on_val(x: dict[str, np.ndarray], y: dict[str, np.ndarray], classes: list[str]) -> dict[str, object]:
    """Logistic regression with C picked on val; for that C, val accuracy and the test metrics with
    the same bootstrap CIs as the model cards (``classification_metrics``)."""
    best = None
    for c in C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x["train"], y["train"])
        val = model.score(x["val"], y["val"])
        if best is None or val > best[0]:
            best = (val, c, model)
    val, c, model = best
    test = classification_metrics(y["test"], model.predict_proba(x["test"]), classes)
    return {"C": c, "features": int(x["train"].shape[1]), "val_accuracy": round(val, 4),
            "test_accuracy": round(test["accuracy"], 4), "test_accuracy_ci": [round(v, 4) for v in test["ci"]["accuracy"]],
            "test_auc": round(test["auc"], 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", type=float, help="render the glass brains at this threshold (z units)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = shared_data_dir()
    manifest = root / "fmri-asd" / "manifest.csv"
    if not manifest.exists():
        print("fmri-asd data not found (../shared/data/fmri-asd): nothing to measure", file=sys.stderr)
        return 2
    card = ModelRegistry().card("fmri-asd", "student")
    spec = card.input
    if args.threshold is not None:
        spec = dataclasses.replace(spec, glass_brain={**spec.glass_brain, "threshold": args.threshold})
    splits = {s: CachedSplit(read_manifest(manifest, spec, s), card.classes, spec, default_cache_dir()) for s in SPLITS}
    y = {s: splits[s].y.numpy() for s in SPLITS}
    labels = np.asanyarray(nib.load(root / "fmri-asd" / "atlas" / "CC200_61x73x61_3mm.nii.gz").dataobj).astype(int)
    parcels = {s: np.stack([parcel_values(smp.path, labels) for smp in splits[s].samples]) for s in SPLITS}
    pixels = {s: torch.nn.functional.avg_pool2d(splits[s].x.float(), POOL).flatten(1).numpy() for s in SPLITS}
    result = {
        "map": card.input.fmri_map,
        "n": {s: int(len(y[s])) for s in SPLITS},
        "majority_test": round(max(np.mean(y["test"]), 1 - np.mean(y["test"])), 4),
        "parcels": fit_on_val(parcels, y, card.classes),
        "glass_brain_pixels": {**fit_on_val(pixels, y, card.classes), "size": spec.size, "pool": POOL,
                               "glass_brain": spec.glass_brain},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("parcels", "glass_brain_pixels"):
            r = result[name]
            lo, hi = r["test_accuracy_ci"]
            print(f"{name:20s} {r['features']:5d} features  C={r['C']:<7g} val {100 * r['val_accuracy']:.1f}%  "
                  f"test {100 * r['test_accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]  AUC {r['test_auc']:.3f}"
                  f"{'  glass brain ' + json.dumps(r['glass_brain']) if 'glass_brain' in r else ''}")
        print(f"majority class on test: {100 * result['majority_test']:.1f}% (n = {result['n']['test']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
