"""The parts of a retraining run that a user relies on without seeing: splits never divide a
patient, near-duplicates are caught, an install that hits a full disk leaves nothing behind."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from retrain_data import CLASSES, brain_rows

from medkd_desktop.retrain.discover import Item, discover
from medkd_desktop.retrain.errors import RetrainError
from medkd_desktop.retrain.phash import near_pairs, phash
from medkd_desktop.retrain.splits import make_splits


def test_splits_keep_each_patient_whole_are_stratified_and_seeded():
    items, groups = [], []
    for c in CLASSES:
        for p in range(10):  # 10 patients per class, 1-3 images each
            for k in range(1 + p % 3):
                items.append(Item(Path(f"/x/{c}/{p}-{k}.png"), c))
                groups.append(f"{c}-{p}")
    plan = make_splits(items, groups, seed=3)
    where: dict[str, set[str]] = {}
    for g, s in zip(groups, plan.split):
        where.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in where.values())
    for c in CLASSES:
        per = [s for it, s in zip(items, plan.split) if it.label == c]
        assert {"train", "val", "test"} <= set(per)
    assert make_splits(items, groups, seed=3).split == plan.split
    assert make_splits(items, groups, seed=4).split != plan.split


def test_a_csv_split_is_kept_and_a_patient_given_two_splits_is_an_error(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label,patient_id,split\n"
                        "a.png,GLIOMA,p1,test\nb.png,glioma,p1,\nc.png,Notumor,p2,train\nd.png,notumor,p3,\n")
    items = discover(csv_path, CLASSES)
    assert [i.label for i in items] == ["glioma", "glioma", "notumor", "notumor"]
    plan = make_splits(items, ["p1", "p1", "p2", "p3"])
    assert plan.split[:3] == ["test", "test", "train"]
    csv_path.write_text("path,label,patient_id,split\na.png,glioma,p1,test\nb.png,glioma,p1,train\nc.png,notumor,p2,\n")
    items = discover(csv_path, CLASSES)
    with pytest.raises(RetrainError, match="different splits"):
        make_splits(items, ["p1", "p1", "p2"])


def test_perceptual_hash_finds_a_re_export_and_not_another_scan():
    from PIL import Image

    (a, _), (b, _) = brain_rows(per_class=2)[:2]
    img = torch.from_numpy(np.asarray(Image.open(a).convert("L"), dtype=np.float32) / 255)[None]
    brighter = (img * 1.05 + 0.02).clamp(0, 1)
    smaller = torch.nn.functional.interpolate(img[None], scale_factor=0.6, mode="bilinear", antialias=True)[0]
    other = torch.from_numpy(np.asarray(Image.open(b).convert("L"), dtype=np.float32) / 255)[None]
    h = np.array([phash(img)], dtype=np.uint64)
    copies = np.array([phash(brighter), phash(smaller), phash(other)], dtype=np.uint64)
    assert [j for _, j, _ in near_pairs(h, copies)] == [0, 1]


def test_an_install_that_fills_the_disk_leaves_no_model_behind(tmp_path, monkeypatch):
    """The weights (3 MB) do not fit a 1 MB folder: RetrainError, and neither card nor weights."""
    from medkd_desktop.models.card import ModelCard
    from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry, load_model
    from medkd_desktop.retrain.install import install

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "xdg" / "medkd-desktop" / "models"
    folder.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs here: needs root")
    try:
        bundled = ModelRegistry([BUNDLED_DIR]).card("brain-tumor-mri", "student")
        card = ModelCard.load(bundled.path)
        card.id, card.training = "brain-tumor-mri/student-x", {"retrain": {"based_on": bundled.id}}
        with pytest.raises(RetrainError, match="is full"):
            install(load_model(bundled), card)
        assert [p.name for p in (folder / "brain-tumor-mri").iterdir()] == []
        assert ModelRegistry().card("brain-tumor-mri", "student").id == "brain-tumor-mri/student"
    finally:
        subprocess.run(["umount", str(folder)], check=False)
