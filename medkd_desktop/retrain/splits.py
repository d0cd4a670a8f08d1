"""Train / val / test splits grouped by patient, stratified by class, seeded.

Why grouped: two radiographs of one patient in train and test let a model recognise the patient
instead of the disease, and the comparison would flatter it. Why stratified: with a few dozen
images per class, an unlucky draw can leave a class out of the test split entirely.

Each group (hashed patient) is placed as a whole. A group with a split given in the CSV keeps it
(all its rows must agree). The others are split per class of their most common label: shuffled
with the seed, then ``test_fraction`` of them to test and ``val_fraction`` to val (at least one
group each, when the class has three groups or more), the rest to train.
"""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from .discover import SPLITS, Item
from .errors import RetrainError

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15


@dataclass(frozen=True)
class SplitPlan:
    split: list[str]  # per item, "train" | "val" | "test"

    def indices(self, name: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == name]


def make_splits(items: list[Item], groups: list[str], seed: int = 0, val_fraction: float = VAL_FRACTION,
                test_fraction: float = TEST_FRACTION) -> SplitPlan:
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    assigned: dict[str, str] = {}
    for g, idx in members.items():
        given = {items[i].split for i in idx if items[i].split}
        if len(given) > 1:
            raise RetrainError(f"one patient's images are given different splits ({', '.join(sorted(given))}) in the "
                               "CSV; a patient belongs to one split")
        if given:
            assigned[g] = given.pop()
    by_class: dict[str, list[str]] = defaultdict(list)
    for g, idx in members.items():
        if g not in assigned:
            label = Counter(items[i].label for i in idx).most_common(1)[0][0]
            by_class[label].append(g)
    rng = np.random.default_rng(seed)
    for label in sorted(by_class):
        # a stable order before the seeded shuffle: by first file, not by hash (the hashes' salt is
        # per installation, and the same folder must split the same way on every computer)
        gs = sorted(by_class[label], key=lambda g: members[g][0])
        gs = [gs[i] for i in rng.permutation(len(gs))]
        n = len(gs)
        n_test = max(1, round(test_fraction * n)) if n >= 3 else 0
        n_val = max(1, round(val_fraction * n)) if n >= 3 else 0
        for k, g in enumerate(gs):
            assigned[g] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return SplitPlan([assigned[g] for g in groups])


def manifest_csv(items: list[Item], groups: list[str], plan: SplitPlan) -> str:
    """The run's data manifest: ``path,label,patient_group,split`` (the group is a keyed hash,
    never the PatientID). Its sha256 is the card's data provenance."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["path", "label", "patient_group", "split"])
    for it, g, s in zip(items, groups, plan.split):
        w.writerow([str(it.path), it.label, g, s])
    return out.getvalue()


def counts(items: list[Item], plan: SplitPlan, classes: list[str]) -> dict[str, dict[str, int]]:
    out = {s: {c: 0 for c in classes} for s in SPLITS}
    for it, s in zip(items, plan.split):
        out[s][it.label] += 1
    return out
