"""`medkd evaluate` reproduces a card's test metrics, on a manifest that lives anywhere."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

from testdata import shared_path

from medkd_desktop.distill.config import TrainConfig
from medkd_desktop.distill.trainer import Trainer
from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry


def _small_manifest(tmp_path, per_split=24):
    """A manifest in tmp_path whose paths point (absolutely) at real histology tiles."""
    root = shared_path("histo-lc25000")
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = []
    for split in ("train", "val", "test"):
        picked += [dict(r, path=str(root / r["path"])) for r in rows if r["split"] == split][::37][:per_split]
    out = tmp_path / "elsewhere" / "manifest.csv"
    out.parent.mkdir()
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(picked)
    return out


def test_evaluate_reproduces_the_card_and_counts_every_row_without_split(tmp_path):
    manifest = _small_manifest(tmp_path)
    cfg = TrainConfig.from_dict(dict(
        task="histo-lc25000", role="baseline", classes=["colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"],
        manifest=str(manifest), arch="cnn5", arch_kwargs={"channels": [8, 16, 16, 32, 32]}, input={"size": 48},
        epochs=2, batch_size=12, warmup_epochs=0, precision="fp32", channels_last=False, out_dir=str(tmp_path / "out")))
    card = Trainer(cfg, device="cpu", run_dir=tmp_path / "run", cache_dir=tmp_path / "cache").run()

    def evaluate(*extra):
        out = subprocess.run([sys.executable, "-m", "medkd_desktop.cli", "evaluate", "--task", "histo-lc25000",
                              "--manifest", str(manifest), "--model", str(card.path), "--json", *extra],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    test = evaluate("--split", "test")
    assert {"accuracy", "macro_f1", "auc", "n", "per_class", "confusion", "ci", "by_source"} <= test.keys()
    for key in ("accuracy", "macro_f1", "auc", "n", "confusion", "ci"):
        assert test[key] == card.metrics[key], key
    n_rows = sum(1 for _ in open(manifest)) - 1
    assert evaluate()["n"] == n_rows  # no --split: every row counts

    # Calibration figures: the new card has no temperature, so calibrated = uncalibrated.
    assert test["temperature"] == 1.0 and test["ece"] == test["ece_uncalibrated"]
    assert 0 <= test["ece"] <= 1 and test["nll"] > 0 and 0 <= test["brier"] <= 2
    card.calibration = {"temperature": 3.0, "fitted_on": "val", "n": 24}
    card.save(card.path)
    scaled = evaluate("--split", "test")
    assert scaled["temperature"] == 3.0 and scaled["accuracy"] == test["accuracy"]  # T never changes a prediction
    assert scaled["ece_uncalibrated"] == test["ece"] and scaled["nll_uncalibrated"] == test["nll"]
    assert scaled["nll"] != test["nll"]


def test_bundled_cards_reproduce_their_test_metrics():
    """Every bundled model, re-evaluated on its manifest's test split, gives its card's figures.

    The preprocessed splits are cached where `medkd evaluate` caches them (the user cache), so a
    task's three models share one decode (the fMRI glass brains are rendered once) and a second
    run reuses it; no bootstrap, as the CIs are not compared (it would add ~2 s a card)."""
    import pytest
    import torch

    from medkd_desktop.distill.evaluate import evaluate_card
    from medkd_desktop.distill.trainer import default_cache_dir
    from medkd_desktop.models.registry import load_model

    cards = list(ModelRegistry([BUNDLED_DIR]).cards.values())
    if not cards:
        pytest.skip("no bundled models in trained_models/ yet")
    data = shared_path()
    for card in cards:
        result = evaluate_card(card, load_model(card), data / card.training["manifest"], "test", torch.device("cpu"),
                               cache_dir=default_cache_dir(), n_boot=0)
        for key in ("accuracy", "macro_f1", "confusion"):
            assert result[key] == card.metrics[key], (card.id, key)
        # The card's AUC was measured before calibration; softmax(z / T)_c can reorder one class's
        # scores across images when there are 3+ classes (measured: at most 0.0018, skin teacher).
        assert abs(result["auc"] - card.metrics["auc"]) < 0.005, card.id
        assert result["temperature"] == card.temperature
