"""Tiny REAL training runs with the issue #20 levers on: they train, a killed run resumes to the
same weights with every lever at once, and an EMA run saves the averaged weights."""
from __future__ import annotations

import pytest
import torch
from model_factory import write_random_model
from test_trainer import _cfg
from testdata import shared_path

from medkd_desktop.distill.trainer import Trainer, TrainingCancelled
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.registry import load_model
from medkd_desktop.models.weights import load_verified_state

CLASSES = ["colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"]
CNN = {"channels": [8, 16, 16, 32, 32]}
ALL_AUGMENT = {"hflip": True, "vflip": True, "rot90": True, "rotate": 180.0, "scale": [0.7, 1.0],
               "brightness": 0.1, "contrast": 0.1, "trivial": True, "mixup": 0.2, "cutmix": 1.0, "mix_prob": 1.0}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One image cache for the module: the runs differ in training, not in data."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A random-weight teacher and a second card for the ensemble, as the trainer writes cards."""
    root = tmp_path_factory.mktemp("teachers")
    spec = InputSpec(size=48, channels=3)
    t = write_random_model(root / "t", "histo-lc25000", "teacher", "cnn5", CLASSES, spec, arch_kwargs=CNN, seed=1)
    b = write_random_model(root / "b", "histo-lc25000", "baseline", "cnn5", CLASSES, spec, arch_kwargs=CNN, seed=2)
    return str(t.path), str(b.path)


def _run(tmp_path, cache, cfg, events=None, **kw):
    return Trainer(cfg, device="cpu", run_dir=tmp_path / "run", data_root=shared_path(), cache_dir=cache,
                   emit=(events if events is not None else []).append, command=["medkd", "train", "test"],
                   threads=1, **kw).run()


def test_every_lever_at_once_trains_and_a_killed_run_resumes_to_the_same_weights(tmp_path, cache, teachers):
    teacher, second = teachers
    levers = dict(role="student", loss="kd_kl", teacher=teacher, teacher_ensemble=[second], teacher_tta="hflip",
                  at_weight=1.0, ema_decay=0.9, augment=ALL_AUGMENT, epochs=2)
    events: list[dict] = []
    full = _run(tmp_path / "full", cache, _cfg(tmp_path, out_dir=str(tmp_path / "a"), **levers), events)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and {"ce", "kl", "at"} <= progress[0]["parts"].keys()
    assert all(e["parts"]["at"] > 0 for e in progress)

    calls = {"n": 0}

    def stop_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 6  # 4 steps per epoch

    cfg_b = _cfg(tmp_path, out_dir=str(tmp_path / "b"), **levers)
    with pytest.raises(TrainingCancelled):
        _run(tmp_path / "resumed", cache, cfg_b, should_stop=stop_in_epoch_two)
    events = []
    resumed = _run(tmp_path / "resumed", cache, cfg_b, events)
    assert {"event": "resume", "epoch": 1} in events
    a, b = load_model(ModelCard.load(full.path)), load_model(ModelCard.load(resumed.path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_with_ema_validation_selection_and_the_written_weights_are_the_average(tmp_path, cache):
    card = _run(tmp_path, cache, _cfg(tmp_path, ema_decay=0.5, epochs=1))
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in ck["average"].items() if k.startswith("module.")}
    assert ck["best_state"].keys() == averaged.keys() == ck["model"].keys()
    assert all(torch.equal(ck["best_state"][k], averaged[k]) for k in averaged)
    assert not all(torch.equal(ck["model"][k], averaged[k]) for k in averaged)  # not the raw weights
    written = load_verified_state(card.weights_path, card.sha256, card.id)
    for k, v in written.items():
        assert torch.equal(v.float(), averaged[k].half().float()), k


@pytest.mark.parametrize("bad, match", [({"at_weight": 1.0}, "attention transfer .* needs a teacher"),
                                        ({"teacher": "x.json", "teacher_ensemble": ["y.json"]}, "reads none")])
def test_a_lever_without_a_teacher_to_refine_stops_with_a_reason(tmp_path, cache, bad, match):
    with pytest.raises(ValueError, match=match):
        _run(tmp_path, cache, _cfg(tmp_path, epochs=1, **bad))
