"""The levers' config keys: off by default, invisible to the digest of configs that do not use
them (a run started before they existed still resumes), and refused when contradictory."""
from __future__ import annotations

from pathlib import Path

import pytest

from medkd_desktop.distill.config import TrainConfig
from medkd_desktop.paths import CONFIGS_DIR

#: TrainConfig.digest() of every bundled config at commit e9c9458, before the levers existed; a config whose
#: recipe a lever changed since has the new digest (cxr-covid-student: 60 epochs instead of 40).
DIGESTS_BEFORE = {
    "brain-tumor-mri-baseline.toml": "a845be163d88200b", "brain-tumor-mri-student.toml": "41ab183e27f2a27d",
    "brain-tumor-mri-teacher.toml": "626848f486d700f9", "cxr-covid-baseline.toml": "dd660e46884e221c",
    "cxr-covid-student.toml": "b859060e250dc97d", "cxr-covid-teacher.toml": "1c0857871522d963",
    "fmri-asd-baseline.toml": "c03832e639209f12", "fmri-asd-student.toml": "d390fafa743f0ada",
    "fmri-asd-teacher.toml": "cc9822444f085d18", "histo-lc25000-baseline.toml": "846ef44d98fcd14b",
    "histo-lc25000-student.toml": "956e2190f756382c", "histo-lc25000-teacher.toml": "5a038a8ff72a47ba",
    "skin-ham10000-baseline.toml": "e3082ceef8527898", "skin-ham10000-student.toml": "58c577f929f1719a",
    "skin-ham10000-teacher.toml": "4e8470e748bac982",
}
LEVERS = {"ema_decay": 0.999, "swa_epochs": 3, "teacher_tta": "hflip", "teacher_ensemble": ["x.json"],
          "at_weight": 1.0, "at_stage": 2}


def _histo(**overrides) -> TrainConfig:
    return TrainConfig.from_toml(Path(CONFIGS_DIR) / "histo-lc25000-student.toml", overrides)


@pytest.mark.parametrize("name", sorted(DIGESTS_BEFORE))
def test_bundled_configs_keep_the_digest_they_had_before_the_levers(name):
    assert TrainConfig.from_toml(Path(CONFIGS_DIR) / name).digest() == DIGESTS_BEFORE[name]


def test_the_tiny_trainer_test_config_keeps_its_digest_too():
    cfg = TrainConfig.from_dict(dict(
        task="histo-lc25000", role="baseline", classes=["colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"],
        manifest="histo-lc25000/manifest.csv", arch="cnn5", arch_kwargs={"channels": [8, 16, 16, 32, 32]},
        input={"size": 48, "channels": 3}, epochs=4, batch_size=16, lr=3e-3, warmup_epochs=0,
        precision="fp32", channels_last=False, limit=64, out_dir="/x/out"))
    assert cfg.digest() == "4e3eaabfd8cd7115"


@pytest.mark.parametrize("key", [k for k in LEVERS if k != "swa_epochs"])
def test_a_lever_set_away_from_its_default_changes_the_digest(key):
    assert _histo(**{key: LEVERS[key]}).digest() != _histo().digest()


def test_an_explicit_default_is_the_same_run_and_the_card_records_every_key():
    assert _histo(ema_decay=0.0, teacher_ensemble=[], at_weight=0.0).digest() == _histo().digest()
    assert _histo(swa_epochs=3).digest() != _histo().digest()
    assert {"ema_decay", "swa_epochs", "teacher_tta", "teacher_ensemble", "at_weight", "at_stage"} <= _histo().to_dict().keys()
    aug = {**_histo().augment, "trivial": True, "mixup": 0.2}
    assert _histo(augment=aug).digest() != _histo().digest()


def test_contradictions_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not both"):
        _histo(ema_decay=0.999, swa_epochs=5)
    with pytest.raises(ValueError, match=r"ema_decay must lie in \[0, 1\)"):
        _histo(ema_decay=1.0)
    with pytest.raises(ValueError, match="swa_epochs"):
        _histo(swa_epochs=41)
    with pytest.raises(ValueError, match="teacher_tta must be"):
        _histo(teacher_tta="rot90")
    with pytest.raises(ValueError, match="set `teacher` too"):
        _histo(teacher="", teacher_ensemble=["trained_models/histo-lc25000/baseline.json"])
    cxr = Path(CONFIGS_DIR) / "cxr-covid-student.toml"
    with pytest.raises(ValueError, match="laterality"):
        TrainConfig.from_toml(cxr, {"teacher_tta": "hflip"})
    with pytest.raises(ValueError, match="vflip mirrors"):
        TrainConfig.from_toml(cxr, {"augment": {"hflip": False, "vflip": True}})
    with pytest.raises(ValueError, match="unknown .augment. keys: mixpu"):
        _histo(augment={"hflip": True, "mixpu": 0.2})


def test_a_dotted_override_sets_one_key_of_a_table():
    cfg = _histo(**{"augment.trivial": True, "augment.rotate": 180.0, "ema_decay": 0.999})
    assert cfg.augment == {"hflip": True, "scale": [0.7, 1.0], "rotate": 180.0, "brightness": 0.1, "contrast": 0.1,
                           "trivial": True}
    assert cfg.ema_decay == 0.999
    with pytest.raises(ValueError, match="not a table"):
        _histo(**{"epochs.x": 1})


def test_the_unread_top_level_label_smoothing_is_refused_instead_of_silently_ignored():
    with pytest.raises(ValueError, match="loss_params"):
        _histo(label_smoothing=0.1)
    assert _histo(loss="ce", loss_params={"label_smoothing": 0.1}).loss_params == {"label_smoothing": 0.1}
