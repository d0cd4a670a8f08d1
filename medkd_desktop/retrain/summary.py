"""The data summary shown before anything trains: classes, counts per split, skipped files, warnings.

Why warnings and not refusals: a site may knowingly retrain on forty images to see what happens;
it must only not do so unknowingly. Refused are only inputs that cannot give a model at all
(``check_usable``): fewer than ``MIN_IMAGES`` readable images, fewer than two classes left after
skipping, or an empty val or test split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .discover import Item
from .errors import RetrainError
from .phash import near_pairs
from .reading import ReadData
from .splits import SplitPlan, counts

FEW_IMAGES = 20  # per class, in all splits together
IMBALANCE = 5.0  # largest class / smallest class
MIN_IMAGES = 6
SHOWN_DUPLICATES = 20


@dataclass
class DataSummary:
    task: str
    classes: list[str]
    n_found: int
    n_images: int
    counts: dict[str, dict[str, int]]  # split -> class -> images
    patients: dict[str, int]  # split -> groups
    skipped: list[dict[str, str]]
    warnings: list[str]
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)  # pairs across splits

    def to_event(self) -> dict[str, Any]:
        return {"event": "summary", **asdict(self)}


def _duplicates(data: ReadData, plan: SplitPlan, root) -> list[dict[str, Any]]:
    out = []
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        ia, ib = plan.indices(a), plan.indices(b)
        if not ia or not ib:
            continue
        for i, j, d in near_pairs(data.hashes[ia], data.hashes[ib]):
            out.append({"splits": [a, b], "a": data.items[ia[i]].display(root), "b": data.items[ib[j]].display(root),
                        "bits": d})
    return out


def summarise(task: str, classes: list[str], found: list[Item], data: ReadData, plan: SplitPlan, root) -> DataSummary:
    c = counts(data.items, plan, classes)
    per_class = {k: sum(c[s][k] for s in c) for k in classes}
    warnings: list[str] = []
    present = {k: n for k, n in per_class.items() if n}
    for k, n in per_class.items():
        if 0 < n < FEW_IMAGES:
            warnings.append(f"class {k} has only {n} images: its figures will be uncertain")
    missing = [k for k in classes if not per_class[k]]
    if missing:
        warnings.append(f"no images of {', '.join(missing)}: the new student is never shown these classes "
                        "and is not tested on them")
    if len(present) >= 2 and max(present.values()) / min(present.values()) >= IMBALANCE:
        big, small = max(present, key=present.get), min(present, key=present.get)
        warnings.append(f"heavy imbalance: {present[big]} images of {big}, {present[small]} of {small}")
    for s in ("val", "test"):
        lacking = [k for k in present if not c[s][k]]
        if lacking:
            warnings.append(f"the {s} split has no images of {', '.join(lacking)} (too few patients)")
    dups = _duplicates(data, plan, root)
    if dups:
        warnings.append(f"{len(dups)} near-duplicate image pairs across splits (perceptual hash): the test figures "
                        "may flatter the model; remove the copies or give them one patient_id")
    if data.skipped:
        warnings.append(f"{len(data.skipped)} of {len(found)} files could not be read and are left out")
    patients = {s: len({g for g, p in zip(data.groups, plan.split) if p == s}) for s in c}
    return DataSummary(task=task, classes=list(classes), n_found=len(found), n_images=len(data.items), counts=c,
                       patients=patients, skipped=[{"path": s.path, "reason": s.reason} for s in data.skipped],
                       warnings=warnings, near_duplicates=dups[:SHOWN_DUPLICATES])


def check_usable(summary: DataSummary) -> None:
    if summary.n_images == 0:
        reasons = sorted({s["reason"] for s in summary.skipped})
        raise RetrainError(f"none of the {summary.n_found} files could be read ({'; '.join(reasons[:3])})")
    if summary.n_images < MIN_IMAGES:
        raise RetrainError(f"only {summary.n_images} readable images; at least {MIN_IMAGES} are needed")
    per_class = {k: sum(summary.counts[s][k] for s in summary.counts) for k in summary.classes}
    if sum(1 for n in per_class.values() if n) < 2:
        raise RetrainError("after skipping unreadable files only one class has images; at least two are needed")
    for s in ("train", "val", "test"):
        if not sum(summary.counts[s].values()):
            raise RetrainError(f"the {s} split is empty: each class needs images of at least three patients")


def class_array(items: list[Item], classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[it.label] for it in items], dtype=np.int64)
