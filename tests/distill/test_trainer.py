"""A short REAL training run on real images: the loss falls, a killed run resumes, a card is written."""
from __future__ import annotations

import json

import pytest
import torch
from testdata import shared_path

from medkd_desktop.distill.config import TrainConfig
from medkd_desktop.distill.trainer import Trainer, TrainingCancelled
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.registry import load_model


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(task="histo-lc25000", role="baseline", classes=["colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"],
                manifest="histo-lc25000/manifest.csv", arch="cnn5", arch_kwargs={"channels": [8, 16, 16, 32, 32]},
                input={"size": 48, "channels": 3}, epochs=4, batch_size=16, lr=3e-3, warmup_epochs=0,
                precision="fp32", channels_last=False, limit=64, out_dir=str(tmp_path / "out"))
    base.update(kw)
    return TrainConfig.from_dict(base)


def _trainer(tmp_path, cfg, events, **kw):
    return Trainer(cfg, device="cpu", run_dir=tmp_path / "run", data_root=shared_path(),
                   cache_dir=tmp_path / "cache", emit=events.append, command=["medkd", "train", "test"], **kw)


def test_short_real_run_lowers_the_loss_and_writes_a_card(tmp_path):
    events: list[dict] = []
    card = _trainer(tmp_path, _cfg(tmp_path), events).run()
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == 4
    assert epochs[-1]["train_loss"] < 0.9 * epochs[0]["train_loss"]
    for e in events:
        json.dumps(e)  # progress is JSON lines for the GUI
    assert {"progress", "epoch", "done"} <= {e["event"] for e in events}
    loaded = ModelCard.load(card.path)
    assert loaded.metrics["n"] == 64 and 0 <= loaded.metrics["accuracy"] <= 1
    assert loaded.training["manifest_sha256"] and loaded.training["config"]["arch"] == "cnn5"
    load_model(loaded)  # the written weights verify and load


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_the_same(tmp_path):
    cfg = _cfg(tmp_path, epochs=3, out_dir=str(tmp_path / "a"))
    full = _trainer(tmp_path / "full", cfg, []).run()

    calls = {"n": 0}

    def stop_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 6  # 4 steps per epoch: stops during the second epoch

    cfg_b = _cfg(tmp_path, epochs=3, out_dir=str(tmp_path / "b"))
    with pytest.raises(TrainingCancelled):
        _trainer(tmp_path / "resumed", cfg_b, [], should_stop=stop_in_epoch_two).run()
    events: list[dict] = []
    resumed = _trainer(tmp_path / "resumed", cfg_b, events).run()
    assert {"event": "resume", "epoch": 1} in events
    assert len([e for e in events if e["event"] == "epoch"]) == 2  # only epochs 2 and 3 were run again
    a, b = load_model(ModelCard.load(full.path)), load_model(ModelCard.load(resumed.path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.allclose(va.float(), vb.float(), atol=1e-5), ka
